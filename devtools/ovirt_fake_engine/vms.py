"""VMs made, changed and removed through the API: ``POST /vms`` (from a saved OVF, ovirt-api.md §11.4),
``POST /vms/{id}/diskattachments``, ``DELETE /vms/{id}``, ``start``/``stop``.

Facts from BackendVmsResource.add/importVmFromConfiguration, ImportVmFromConfigurationCommand,
AttachDiskToVmCommand and RemoveVmCommand:

* ``cluster`` (id or name) is required; with a configuration ``type`` and ``data`` are too. The
  name and cluster of the body override the OVF's. The VM is created ``down`` (201).
* Refusals: the name is used (409 "Cannot import VM. The VM name is already in use…"); the OVF's VM
  id exists (409 VM_CANNOT_IMPORT_VM_EXISTS) unless ``regenerate_ids``; a NIC's MAC is used by
  another VM (409) unless ``regenerate_ids``, which also gives new NIC ids and MACs from the pool.
* The OVF's disks are attached when a disk with that id exists and is free (floating, not locked),
  with the OVF's interface/boot/plugged/pass-discard; the others are skipped (the engine only writes
  an audit log). NICs land on the one vNIC profile.
* Attach: the disk must exist (400), be free (409 "already attached"), not locked (409); one bootable
  disk per VM (409 DISK_BOOT_IN_USE); the VM up, paused or down.
* Remove: down VMs only (409 "VM is running."), not during a backup (409); ``detach_only=true`` keeps
  the disks (floating), otherwise they go with their images.
* Start: a down VM with an active bootable disk becomes ``powering_up``, then ``up`` one phase step
  later. Stop: ``down`` at once.

Guessed: an OVF that cannot be parsed (400, the fake's text); an unknown cluster id (400
CLUSTER_CAN_NOT_BE_EMPTY) or name (404 Entity not found); a plain ``POST /vms`` without a
configuration accepts only the Blank template.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import ovirtsdk4.types as types

from ovirt_fake_engine import disks as disk_rules
from ovirt_fake_engine import ovf
from ovirt_fake_engine.model import (
    ApiError,
    Attachment,
    Cluster,
    Disk,
    Nic,
    Vm,
    check_guid,
    failed,
    not_found,
)

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState


def _value(enum: object | None, default: str) -> str:
    value = getattr(enum, "value", None)
    return value if isinstance(value, str) else default


def macs_in_use(state: EngineState) -> dict[str, str]:
    """MAC → name of the VM using it."""
    return {n.mac: vm.name for vm in state.vms.values() for n in vm.nics}


def seed_nic(state: EngineState, vm: Vm) -> None:
    """Give a seeded VM its NIC ``nic1`` (virtio, on ovirtmgmt, a MAC from the pool)."""
    mac = state.inventory.new_mac(set(macs_in_use(state)))
    vm.nics.append(Nic(str(uuid.uuid4()), "nic1", "virtio", mac, state.inventory.vnic_profile_id))


def _cluster(state: EngineState, req: types.Vm) -> Cluster:
    ref = req.cluster
    if ref is None or (ref.id is None and ref.name is None):
        raise ApiError(400, "Incomplete parameters", "Vm [cluster.id|name] required for add")
    if ref.id is not None:
        check_guid(ref.id)
        found = state.inventory.clusters.get(ref.id)
        if found is None:
            raise failed(400, "Cannot add VM. The relevant Cluster doesn't exist.")
        return found
    for c in state.inventory.clusters.values():
        if c.name == ref.name:
            return c
    raise ApiError(404, "Operation Failed", f"Entity not found: {ref.name}")


def create(state: EngineState, req: types.Vm) -> Vm:
    """POST /vms: from ``initialization/configuration`` (an OVF), or an empty VM from Blank."""
    cluster = _cluster(state, req)
    conf = req.initialization.configuration if req.initialization is not None else None
    if conf is None:
        if not req.name:
            raise ApiError(400, "Incomplete parameters", "Vm [name] required for add")
        tpl = req.template
        if tpl is None or (tpl.id is None and tpl.name is None):
            raise ApiError(400, "Incomplete parameters", "Vm [template.id|name] required for add")
        if tpl.id not in (None, ovf.BLANK) or tpl.name not in (None, "Blank"):
            raise ApiError(404, "Operation Failed", f"Entity not found: {tpl.name or tpl.id}")
        _check_name(state, req.name, "add")
        return _new_vm(state, str(uuid.uuid4()), req.name, cluster)
    if conf.type is None or conf.data is None:
        missing = [n for n, v in (("type", conf.type), ("data", conf.data)) if v is None]
        raise ApiError(
            400, "Incomplete parameters", f"Vm [initialization.configuration.{missing[0]}] required for add"
        )
    try:
        saved = ovf.read(conf.data)
    except ovf.OvfError as e:
        raise failed(400, f"Cannot import VM. fake engine: {e}") from None
    regenerate = bool(req.initialization.regenerate_ids) if req.initialization is not None else False
    name = req.name or saved.name
    _check_name(state, name, "import")
    vm_id = saved.id
    if regenerate:
        vm_id = str(uuid.uuid4())
    elif vm_id in state.vms:
        raise failed(
            409,
            "Import VM failed - VM ID already exists in the system. Please remove the VM "
            f"({state.vms[vm_id].name}) from the system first",
        )
    used = macs_in_use(state)
    if not regenerate:
        for n in saved.nics:
            if n.mac in used:
                raise failed(409, f"MAC Address {n.mac} is already in use by VM or snapshot: {used[n.mac]}.")
    vm = _new_vm(state, vm_id, name, cluster)
    vm.memory, vm.cpus = saved.memory, saved.cpus
    for n in saved.nics:
        mac = state.inventory.new_mac(set(macs_in_use(state))) if regenerate else n.mac
        nic_id = str(uuid.uuid4()) if regenerate or not n.id else n.id
        vm.nics.append(
            Nic(nic_id, n.name, n.interface, mac, state.inventory.vnic_profile_id, n.linked, n.plugged)
        )
    for d in saved.disks:
        disk = state.disks.get(d.disk_id)
        if disk is not None and disk.vm_id is None and disk.status == "ok":
            _attach(vm, disk, d.attachment)  # others: AuditLog only, the VM is created without them
    return vm


def _check_name(state: EngineState, name: str, action: str) -> None:
    if any(v.name == name for v in state.vms.values()):
        raise failed(
            409,
            f"Cannot {action} VM. The VM name is already in use, please choose a unique name and try again.",
        )


def _new_vm(state: EngineState, vm_id: str, name: str, cluster: Cluster) -> Vm:
    vm = Vm(id=vm_id, name=name, status="down", host_id=state.host_id, cluster_id=cluster.id)
    state.vms[vm.id] = vm
    state.vm_backups[vm.id] = {}
    state.vm_checkpoints[vm.id] = []
    return vm


def _attach(vm: Vm, disk: Disk, att: Attachment) -> None:
    disk.vm_id = vm.id
    vm.disks.append(disk)
    vm.attachments[disk.id] = att


def attach(state: EngineState, vm_id: str, req: types.DiskAttachment) -> tuple[Disk, Attachment]:
    """POST /vms/{id}/diskattachments with an existing disk (AttachDiskToVmCommand.validate)."""
    vm = state.vm(vm_id)
    if req.disk is None or req.disk.id is None:
        raise ApiError(400, "Incomplete parameters", "DiskAttachment [disk.id] required for add")
    if req.interface is None:
        raise ApiError(400, "Incomplete parameters", "DiskAttachment [interface] required for add")
    check_guid(req.disk.id)
    state.settle()
    disk = state.disks.get(req.disk.id)
    cannot = "Cannot attach Virtual Disk."
    if disk is None:
        raise failed(400, f"{cannot} The specified disk does not exist.")
    if disk.status == "locked":
        raise failed(
            409,
            f"Cannot attach Virtual Disk: The following disks are locked: {disk.alias}. "
            "Please try again in a few minutes.",
        )
    if vm.status not in ("up", "paused", "down"):
        raise failed(409, f"{cannot} VM {vm.name} must be in status Down, Up or Paused.")
    if disk.vm_id is not None:
        raise failed(409, f"{cannot} The disk is already attached to VM.")
    att = Attachment(
        interface=_value(req.interface, "virtio_scsi"),
        bootable=bool(req.bootable),
        active=True if req.active is None else bool(req.active),
        pass_discard=bool(req.pass_discard),
        read_only=bool(req.read_only),
        logical_name=req.logical_name,
    )
    if att.bootable:
        for other in vm.disks:
            if vm.attachment(other).bootable:
                raise failed(409, f"{cannot} Disk {other.alias} in VM {vm.name} is already marked as boot.")
    _attach(vm, disk, att)
    return disk, att


def remove(state: EngineState, vm_id: str, detach_only: bool) -> None:
    """DELETE /vms/{id}[?detach_only=true] (RemoveVmCommand.validate)."""
    state.settle()
    vm = state.vm(vm_id)
    if vm.status != "down":
        raise failed(409, "Cannot remove VM. VM is running.")
    if state.busy(vm.id):
        raise failed(409, "Cannot remove VM. The VM is during a backup operation.")
    locked = [d.alias for d in vm.disks if d.status == "locked"]
    if locked:
        raise failed(
            409,
            f"Cannot remove VM: The following disks are locked: {', '.join(locked)}. "
            "Please try again in a few minutes.",
        )
    for disk in list(vm.disks):
        if detach_only:
            disk.vm_id = None
        else:
            disk_rules.drop(state, disk)
    del state.vms[vm.id]
    for b in state.vm_backups.pop(vm.id, {}).values():
        state.all_backups.pop(b.id, None)
    state.vm_checkpoints.pop(vm.id, None)


def start(state: EngineState, vm_id: str) -> None:
    """POST /vms/{id}/start: ``powering_up`` now, ``up`` one phase step later."""
    state.settle()
    vm = state.vm(vm_id)
    if vm.status != "down":
        raise failed(409, "Cannot run VM. VM is running.")
    if not any(vm.attachment(d).bootable and vm.attachment(d).active for d in vm.disks):
        raise failed(
            409,
            "Cannot run VM without at least one bootable disk.\nAlternatives:\n- Create a disk for this VM, "
            "and rerun the VM.\n- Change the boot sequence using the Edit VM command (Boot Option Sub-Tab).\n"
            "- Use the 'Run Once' command to select a different boot option and rerun the VM.",
        )
    locked = [d.alias for d in vm.disks if d.status == "locked"]
    if locked:
        raise failed(
            409,
            f"Cannot run VM: The following disks are locked: {', '.join(locked)}. "
            "Please try again in a few minutes.",
        )
    vm.status, vm.status_since = "powering_up", state.now()
    settle(state, state.now())


def stop(state: EngineState, vm_id: str) -> None:
    """POST /vms/{id}/stop: ``down`` at once (a powered-off guest)."""
    state.settle()
    vm = state.vm(vm_id)
    if vm.status == "down":
        raise failed(409, "Cannot stop VM. VM is not running.")
    if state.busy(vm.id):
        raise failed(409, "Cannot stop VM. The VM is during a backup operation.")
    vm.status, vm.status_since = "down", state.now()


def settle(state: EngineState, now: float) -> None:
    """VMs powering up for a phase step are up."""
    for vm in state.vms.values():
        if vm.status == "powering_up" and now >= vm.status_since + state.phase_seconds:
            vm.status = "up"


def nic(state: EngineState, vm_id: str, nic_id: str) -> Nic:
    """One NIC of the VM, or 404."""
    for n in state.vm(vm_id).nics:
        if n.id == nic_id:
            return n
    raise not_found()

"""``restore``: a restore point back onto the engine — as a new VM (default), as disks only, or as disks
attached to an existing VM.

Everything that can be refused is checked before anything is created (the point is complete and whole,
the storage domains and cluster exist, the new name is free, block-domain rules), so a wrong flag costs
nothing. Then, in the engine's order (ovirt-api.md §11): create and upload the disks (in parallel),
create the VM from the saved OVF with ``regenerate_ids`` (its disks taken out of the OVF, see
engine/ovf.py), attach the new disks as the originals were, and start it if asked. Every disk, transfer,
VM and attachment pushes its undo when created; any error, Ctrl-C, SIGTERM or SIGHUP unwinds the stack
and the closing line says what was removed — or exactly what is left and how to remove it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ovbackup.engine import ovf
from ovbackup.engine.model import (
    Cluster,
    Disk,
    DiskAttachment,
    DiskBackup,
    DiskFormat,
    StorageDomain,
    Vm,
)
from ovbackup.engine.services import SystemService, VmService
from ovbackup.engine.services.storage import pick
from ovbackup.errors import (
    ConfigError,
    NotFoundError,
    StateError,
)
from ovbackup.imageio.images import data_bytes, image_info, measure
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.undo import UndoStack, failed_run
from ovbackup.jobs.upload import DiskPlan, RestoredDisk, UploadJob, UploadOptions, restore_disk
from ovbackup.store.catalog import Catalog, DiskRecord, RestorePoint
from ovbackup.store.vmconfig import SavedDisk, VmConfig

# The engine's VM name rule (letters, digits, '.', '_', '-'), checked here so a bad --name fails before
# any byte is uploaded; not checked against a real engine's length limit.
_VM_NAME = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class RestoreOptions:
    name: str | None = None
    cluster: str | None = None
    storage_domain: str | None = None
    disk_refs: tuple[str, ...] = ()
    disks_only: bool = False
    attach_to: str | None = None
    fmt: str | None = None  # cow | raw; default: the original disk's
    sparse: bool | None = None  # default: the original disk's
    start: bool = False
    parallel_disks: int = 4
    upload: UploadOptions = field(default_factory=UploadOptions)


@dataclass(frozen=True)
class Plan:
    point: RestorePoint
    disks: tuple[DiskPlan, ...]
    attachments: dict[str, DiskAttachment]  # by source disk id: how to attach its new disk
    vm_name: str | None  # the new VM's, when one is created
    cluster: Cluster | None
    configuration: str | None  # the OVF without its disks
    attach_to: Vm | None


@dataclass(frozen=True)
class RestoreResult:
    point: str
    vm: Vm | None  # the new VM, or the one the disks were attached to; None for --disks-only
    disks: tuple[RestoredDisk, ...]
    verified: bool | None
    started: bool = False


def _domain(
    domains: list[StorageDomain], opts: RestoreOptions, saved: SavedDisk | None, label: str
) -> StorageDomain:
    if opts.storage_domain:
        return pick(domains, opts.storage_domain, "storage domain")
    if saved is None or not (saved.storage_domain_id or saved.storage_domain_name):
        raise ConfigError(
            f"the restore point does not record where disk {label} lived", hint="pass --storage-domain SD"
        )
    try:
        return pick(domains, saved.storage_domain_id or "", "storage domain")
    except NotFoundError:
        if not saved.storage_domain_name:
            raise
        return pick(domains, saved.storage_domain_name, "storage domain")


def _disk_plan(
    catalog: Catalog,
    point: RestorePoint,
    record: DiskRecord,
    saved: SavedDisk | None,
    domain: StorageDomain,
    opts: RestoreOptions,
) -> DiskPlan:
    label = record.alias or record.id
    fmt = opts.fmt or (saved.format if saved and saved.format else "cow")
    sparse = (
        opts.sparse
        if opts.sparse is not None
        else (saved.sparse if saved and saved.sparse is not None else True)
    )
    if domain.is_block and fmt == "raw" and sparse:
        raise ConfigError(
            f"disk {label}: the engine refuses a sparse raw disk on block storage domain {domain.label} "
            f"({domain.storage_type})",
            hint="use --format cow, or --no-sparse for a preallocated raw disk",
        )
    top = catalog.dir / record.file
    size = record.virtual_size or int(image_info(top)["virtual-size"])  # recorded at backup time
    # qcow2 on block storage is allocated up front at initial_size (ovirt-api.md §11.2).
    initial = measure(top, "qcow2") if domain.is_block and fmt == "cow" else None
    new = Disk(
        id=str(uuid.uuid4()),
        name=f"{label}-restore-{point.name}",
        format=DiskFormat(fmt),
        sparse=sparse,
        backup=DiskBackup.INCREMENTAL if fmt == "cow" else DiskBackup.NONE,
        provisioned_size=size,
        initial_size=initial,
        content_type=(saved.content_type if saved else None) or "data",
        storage_domains=(domain,),
    )
    return DiskPlan(record.id, record.alias, top, data_bytes(top), size, new, domain)


def _attachment(saved: SavedDisk | None, disk_id: str, first: bool) -> DiskAttachment:
    return DiskAttachment(
        disk=Disk(id=disk_id),
        active=saved.active if saved and saved.active is not None else True,
        interface=(saved.interface if saved else None) or "virtio_scsi",
        bootable=saved.bootable if saved and saved.bootable is not None else first,
        pass_discard=saved.pass_discard if saved else None,
        read_only=saved.read_only if saved and saved.read_only else None,
    )


def plan_restore(
    system: SystemService, catalog: Catalog, point_name: str | None, opts: RestoreOptions
) -> Plan:
    """Check everything that can be refused, before anything is created."""
    if opts.disks_only and opts.attach_to:
        raise ConfigError("choose one of --disks-only and --attach-to")
    if opts.start and (opts.disks_only or opts.attach_to):
        raise ConfigError("--start starts the new VM: it does not go with --disks-only or --attach-to")
    point = catalog.restorable(point_name)
    records = point.disks_matching(opts.disk_refs)
    config: VmConfig | None = point.config
    as_vm = not (opts.disks_only or opts.attach_to)
    if opts.fmt not in (None, "cow", "raw"):
        raise ConfigError(f"--format must be cow or raw, not {opts.fmt!r}")
    if as_vm and (config is None or not config.ovf):
        raise ConfigError(
            f"restore point {point.name} has no saved VM configuration (taken before ovbackup recorded it)",
            hint="restore its disks with --disks-only, or attach them to a VM with --attach-to VM",
        )
    attach_to = system.vms_service().find(opts.attach_to) if opts.attach_to else None
    cluster = vm_name = configuration = None
    if as_vm and config is not None and config.ovf:
        clusters = system.clusters_service().list()
        ref = opts.cluster or config.cluster_id or config.cluster_name or ""
        try:
            cluster = pick(clusters, ref, "cluster")
        except NotFoundError:
            if opts.cluster or not config.cluster_name:
                raise
            cluster = pick(clusters, config.cluster_name, "cluster")
        vm_name = opts.name or f"{config.vm_name}-restore-{point.name}"
        if not _VM_NAME.match(vm_name):
            raise ConfigError(f"{vm_name!r} is not a valid VM name: use letters, digits, '.', '_' and '-'")
        existing = system.vms_service().named(vm_name)
        if existing is not None:
            raise StateError(
                f"a VM named {vm_name} already exists (id {existing.id})", hint="choose another --name"
            )
        configuration = ovf.without_disks(config.ovf)
    domains = system.storage_domains_service().list()
    plans, attachments = [], {}
    for i, record in enumerate(records):
        saved = config.disk(record.id) if config else None
        domain = _domain(domains, opts, saved, record.alias or record.id)
        plans.append(_disk_plan(catalog, point, record, saved, domain, opts))
        attachments[record.id] = _attachment(saved, record.id, first=i == 0)
    return Plan(point, tuple(plans), attachments, vm_name, cluster, configuration, attach_to)


def _upload_all(job: UploadJob, plan: Plan, parallel: int) -> list[RestoredDisk]:
    pool = cf.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="restore")
    futures = [pool.submit(restore_disk, job, d) for d in plan.disks]
    try:
        return [f.result() for f in futures]  # the first failure raises here
    except BaseException:
        job.stopping.set()
        for f in futures:
            f.cancel()
        # Cancel the open transfers now so running uploads fail fast; the disks are removed once
        # every worker has stopped (a disk whose POST is still in flight must not be missed).
        job.undo.unwind(frozenset({"transfer"}))
        cf.wait(futures, timeout=120)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _remove_vm(system: SystemService, holder: list[str | None], name: str, timeout: float) -> str:
    from ovbackup.engine import polling

    vms = system.vms_service()
    vm_id = holder[0]
    if vm_id is None:  # the POST's reply never came: the name was free before, so a VM with it is ours
        found = vms.named(name)
        if found is None:
            return f"VM {name} was never created"
        vm_id = found.id
    service = vms.vm_service(vm_id)
    try:
        service.remove(detach_only=True)  # its disks are undone by their own entries
    except NotFoundError:
        return f"VM {name} ({vm_id}) is gone"
    with contextlib.suppress(NotFoundError):  # removal finishes in the background
        polling.wait_for(service.get, lambda v: False, timeout=timeout, what=f"removal of VM {name}")
    return f"removed VM {name} ({vm_id})"


def _create_vm(system: SystemService, plan: Plan, job: UploadJob, restored: list[RestoredDisk]) -> Vm:
    assert plan.vm_name and plan.cluster and plan.configuration is not None
    name = plan.vm_name
    holder: list[str | None] = [None]
    job.undo.push(
        f"VM {name}",
        lambda: _remove_vm(system, holder, name, job.opts.disk_timeout),
        f"remove VM {name} (keeping its disks) in the Administration Portal, or "
        + job.by_hand("DELETE", "vms/ID?detach_only=true"),
        kind="vm",
    )
    vm = system.vms_service().add_from_configuration(
        name=name, cluster_id=plan.cluster.id, configuration=plan.configuration
    )
    holder[0] = vm.id
    job.reporter.note(f"created VM {name} ({vm.id}) in cluster {plan.cluster.label}")
    _attach(job, system.vms_service().vm_service(vm.id), vm, plan, restored, undo_each=False)
    return vm


def _attach(
    job: UploadJob, service: VmService, vm: Vm, plan: Plan, restored: list[RestoredDisk], *, undo_each: bool
) -> None:
    for disk in restored:
        attachment = replace(plan.attachments[disk.source_id], disk=Disk(id=disk.id))
        if undo_each:  # an existing VM already boots from its own disk (the engine allows one)
            attachment = replace(attachment, bootable=False)
        service.attach_disk(attachment)
        if undo_each:  # an existing VM keeps existing: detach what we attached
            disk_id = disk.id

            def detach(disk_id: str = disk_id) -> str:
                try:
                    service.detach_disk(disk_id)
                except NotFoundError:
                    return f"disk {disk_id} was not attached to VM {vm.label}"
                return f"detached disk {disk_id} from VM {vm.label}"

            job.undo.push(
                f"attachment of disk {disk.id} to VM {vm.label}",
                detach,
                job.by_hand("DELETE", f"vms/{vm.id}/diskattachments/{disk.id}"),
                kind="attachment",
            )
        job.reporter.note(
            f"attached disk {disk.alias} to VM {vm.label} ({attachment.interface}"
            + (", bootable" if attachment.bootable else "")
            + ("" if attachment.active else ", inactive")
            + ")"
        )


def run_restore(
    system: SystemService,
    catalog: Catalog,
    point_name: str | None,
    opts: RestoreOptions,
    reporter: Reporter,
    planned: Callable[[Plan], None] | None = None,
) -> RestoreResult:
    """Plan (``planned`` is told the plan: nothing is created yet), then restore."""
    plan = plan_restore(system, catalog, point_name, opts)
    if planned is not None:
        planned(plan)
    job = UploadJob(system, UndoStack(reporter), opts.upload, reporter, threading.Event())
    vm: Vm | None = plan.attach_to
    started = False
    try:
        restored = _upload_all(job, plan, opts.parallel_disks)
        if plan.vm_name:
            vm = _create_vm(system, plan, job, restored)
        elif plan.attach_to is not None:
            service = system.vms_service().vm_service(plan.attach_to.id)
            _attach(job, service, plan.attach_to, plan, restored, undo_each=True)
        if opts.start and vm is not None:
            system.vms_service().vm_service(vm.id).start()
            started = True
            reporter.note(f"started VM {vm.label}")
    except BaseException as e:
        job.stopping.set()
        unwound = job.undo.unwind()
        raise failed_run("restore", e, unwound) from None
    job.undo.forget_all()
    verified = True if opts.upload.verify else None
    return RestoreResult(plan.point.name, vm, tuple(restored), verified, started)

"""Read, at backup time, what a restore will need: the VM's OVF, its cluster, its disks' placement and
attachments, its NICs (ovirt-api.md §11.1).

Two requests per backup (``GET /vms/{id}?all_content=true&follow=cluster`` and ``GET /vms/{id}/nics``);
the disks come from the attachments the backup already reads (``follow=disk,disk.storage_domains``).
Names of the cluster and storage domains are recorded when the engine inlines them; the ids always are.
A refusal here never fails the backup: the point is then recorded without a configuration and restores
as disks (``--disks-only``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ovbackup.engine.model import DiskAttachment, Nic, Vm
from ovbackup.engine.services import VmService
from ovbackup.errors import EngineError, NotFoundError, ResponseError
from ovbackup.jobs.reporter import Reporter
from ovbackup.store.vmconfig import SavedDisk, SavedNic, VmConfig


def saved_disk(attachment: DiskAttachment) -> SavedDisk:
    disk = attachment.disk
    domain = disk.storage_domains[0] if disk.storage_domains else None
    return SavedDisk(
        id=disk.id,
        alias=disk.name,
        format=disk.format.value if disk.format else None,
        sparse=disk.sparse,
        backup=disk.backup.value if disk.backup else None,
        content_type=disk.content_type,
        provisioned_size=disk.provisioned_size,
        storage_domain_id=domain.id if domain else None,
        storage_domain_name=domain.name if domain else None,
        interface=attachment.interface,
        bootable=attachment.bootable,
        active=attachment.active,
        pass_discard=attachment.pass_discard,
        read_only=attachment.read_only,
        logical_name=attachment.logical_name,
    )


def saved_nic(nic: Nic) -> SavedNic:
    return SavedNic(name=nic.name, interface=nic.interface, mac=nic.mac, vnic_profile_id=nic.vnic_profile_id)


def capture_config(
    vm_service: VmService, vm: Vm, attachments: Sequence[DiskAttachment], reporter: Reporter
) -> VmConfig | None:
    """The VM's restore configuration now, or None (with a warning) if the engine would not give it."""
    try:
        full = vm_service.get(all_content=True, follow="cluster")
        nics = vm_service.nics()
    except (EngineError, NotFoundError, ResponseError) as e:
        reporter.note(
            f"warning: could not read the configuration of VM {vm.label} ({e}); "
            "this restore point will restore as disks only"
        )
        return None
    if not full.configuration:
        reporter.note(
            f"warning: the engine sent no OVF for VM {vm.label}; "
            "this restore point will restore as disks only"
        )
    return VmConfig(
        vm_id=vm.id,
        vm_name=vm.label,
        cluster_id=full.cluster_id,
        cluster_name=full.cluster_name,
        ovf=full.configuration,
        disks=tuple(saved_disk(a) for a in attachments),
        nics=tuple(saved_nic(n) for n in nics),
    )

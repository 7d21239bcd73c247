"""The root of the tree and the VMs: find a VM, read its disks, reach its backups and checkpoints."""

from __future__ import annotations

from ovbackup.engine import bodies, xml
from ovbackup.engine.connection import Connection
from ovbackup.engine.model import (
    ActionResult,
    DiskAttachment,
    Nic,
    Vm,
)
from ovbackup.engine.services.backups import VmBackupsService
from ovbackup.engine.services.base import UUID_RE, Headers, Query, Service
from ovbackup.engine.services.checkpoints import VmCheckpointsService
from ovbackup.engine.services.disks import DisksService
from ovbackup.engine.services.storage import ClustersService, StorageDomainsService
from ovbackup.engine.services.transfers import ImageTransfersService
from ovbackup.errors import NotFoundError


class SystemService(Service):
    """The root of the tree (``/ovirt-engine/api``)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection, "")

    def vms_service(self) -> VmsService:
        return VmsService(self.connection, "vms")

    def image_transfers_service(self) -> ImageTransfersService:
        return ImageTransfersService(self.connection, "imagetransfers")

    def disks_service(self) -> DisksService:
        return DisksService(self.connection, "disks")

    def storage_domains_service(self) -> StorageDomainsService:
        return StorageDomainsService(self.connection, "storagedomains")

    def clusters_service(self) -> ClustersService:
        return ClustersService(self.connection, "clusters")


class VmsService(Service):
    def list(
        self,
        *,
        search: str | None = None,
        max: int | None = None,
        follow: str | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
    ) -> list[Vm]:
        """The VMs; ``follow="disk_attachments.disk"`` inlines every VM's disks in the same reply
        (engine 4.3+, ovirt-api.md §11.5), so a fleet is read in one request, not one per VM."""
        return self._get_many(
            self.path,
            "vm",
            xml.vm_from,
            query={"search": search, "max": max, "follow": follow},
            headers=headers,
            extra_query=query,
            timeout=timeout,
        )

    def vm_service(self, id: str) -> VmService:
        return VmService(self.connection, f"{self.path}/{id}")

    def add_from_configuration(
        self,
        *,
        name: str,
        cluster_id: str,
        configuration: str,
        regenerate_ids: bool = True,
        timeout: float | None = None,
    ) -> Vm:
        """Create a VM (down) from a saved OVF, synchronously (ovirt-api.md §11.4)."""
        body = bodies.build_vm_from_configuration(
            name=name, cluster_id=cluster_id, configuration=configuration, regenerate_ids=regenerate_ids
        )
        response = self.connection.request("POST", self.path, body=body, timeout=timeout)
        return xml.parse_one(response.content, "vm", xml.vm_from)

    def named(self, name: str, *, timeout: float | None = None) -> Vm | None:
        """The VM called exactly ``name``, or None (the search itself matches prefixes and globs)."""
        quoted = '"' + name.replace('"', "") + '"' if " " in name else name
        matches = [vm for vm in self.list(search=f"name={quoted}", timeout=timeout) if vm.name == name]
        return matches[0] if matches else None

    def find(self, name_or_id: str, *, timeout: float | None = None) -> Vm:
        """Resolve a VM given by UUID or by exact name (the engine's search is a prefix/glob match)."""
        if UUID_RE.match(name_or_id):
            try:
                return self.vm_service(name_or_id).get(timeout=timeout)
            except NotFoundError:
                pass  # a VM may be *named* like a UUID; fall through to the name search
        vm = self.named(name_or_id, timeout=timeout)
        if vm is None:
            raise NotFoundError(
                f"VM {name_or_id!r} not found", hint="`ovbackup vms` lists the VMs you can see"
            )
        return vm

    def open(self, name_or_id: str) -> tuple[Vm, VmService]:
        """The VM and its service: what every per-VM command starts with."""
        vm = self.find(name_or_id)
        return vm, self.vm_service(vm.id)


class VmService(Service):
    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(
        self,
        *,
        all_content: bool | None = None,
        follow: str | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
    ) -> Vm:
        """The VM; ``all_content=True`` adds its OVF (``Vm.configuration``, ovirt-api.md §11.1)."""
        try:
            return self._get_one(
                self.path,
                "vm",
                xml.vm_from,
                query={"all_content": all_content, "follow": follow},
                headers=headers,
                extra_query=query,
                timeout=timeout,
            )
        except NotFoundError:
            raise NotFoundError(f"VM {self.id} not found") from None

    def nics(self, *, timeout: float | None = None) -> list[Nic]:
        return self._get_many(f"{self.path}/nics", "nic", xml.nic_from, timeout=timeout)

    def attach_disk(self, attachment: DiskAttachment, *, timeout: float | None = None) -> None:
        self.connection.request(
            "POST",
            f"{self.path}/diskattachments",
            body=bodies.build_disk_attachment(attachment),
            timeout=timeout,
        )

    def detach_disk(self, disk_id: str, *, timeout: float | None = None) -> None:
        """Detach (never delete) one disk: ``DELETE /vms/{id}/diskattachments/{disk}``."""
        self.connection.request(
            "DELETE", f"{self.path}/diskattachments/{disk_id}", timeout=timeout, ok=(200, 202, 204)
        )

    def remove(self, *, detach_only: bool = False, timeout: float | None = None) -> None:
        """``DELETE /vms/{id}``; ``detach_only`` keeps its disks (ovirt-api.md §11.4)."""
        try:
            self.connection.request(
                "DELETE",
                self.path,
                query={"detach_only": True} if detach_only else None,
                timeout=timeout,
                ok=(200, 202, 204),
            )
        except NotFoundError:
            raise NotFoundError(f"VM {self.id} not found") from None

    def start(self, *, timeout: float | None = None) -> ActionResult:
        return self._action("start", timeout=timeout)

    def disk_attachments(self, *, timeout: float | None = None) -> list[DiskAttachment]:
        """The VM's disks, inlined with ``follow=disk`` so one request gives formats and backup flags,
        and their storage domains (names included) for the restore point."""
        return self._get_many(
            f"{self.path}/diskattachments",
            "disk_attachment",
            xml.disk_attachment_from,
            query={"follow": "disk,disk.storage_domains"},
            timeout=timeout,
        )

    def backups_service(self) -> VmBackupsService:
        return VmBackupsService(self.connection, f"{self.path}/backups")

    def checkpoints_service(self) -> VmCheckpointsService:
        return VmCheckpointsService(self.connection, f"{self.path}/checkpoints")

"""The root of the tree and the VMs: find a VM, read its disks, reach its backups and checkpoints."""

from __future__ import annotations

from ovbackup.engine import xml
from ovbackup.engine.connection import Connection
from ovbackup.engine.model import (
    DiskAttachment,
    Vm,
)
from ovbackup.engine.services.backups import VmBackupsService
from ovbackup.engine.services.base import UUID_RE, Headers, Query, Service
from ovbackup.engine.services.checkpoints import VmCheckpointsService
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

    def find(self, name_or_id: str, *, timeout: float | None = None) -> Vm:
        """Resolve a VM given by UUID or by exact name (the engine's search is a prefix/glob match)."""
        if UUID_RE.match(name_or_id):
            try:
                return self.vm_service(name_or_id).get(timeout=timeout)
            except NotFoundError:
                pass  # a VM may be *named* like a UUID; fall through to the name search
        quoted = '"' + name_or_id.replace('"', "") + '"' if " " in name_or_id else name_or_id
        matches = [vm for vm in self.list(search=f"name={quoted}", timeout=timeout) if vm.name == name_or_id]
        if not matches:
            raise NotFoundError(
                f"VM {name_or_id!r} not found", hint="`ovbackup vms` lists the VMs you can see"
            )
        return matches[0]

    def open(self, name_or_id: str) -> tuple[Vm, VmService]:
        """The VM and its service: what every per-VM command starts with."""
        vm = self.find(name_or_id)
        return vm, self.vm_service(vm.id)


class VmService(Service):
    def get(self, *, headers: Headers = None, query: Query = None, timeout: float | None = None) -> Vm:
        try:
            return self._get_one(
                self.path, "vm", xml.vm_from, headers=headers, extra_query=query, timeout=timeout
            )
        except NotFoundError:
            raise NotFoundError(f"VM {self.path.rsplit('/', 1)[-1]} not found") from None

    def disk_attachments(self, *, timeout: float | None = None) -> list[DiskAttachment]:
        """The VM's disks, inlined with ``follow=disk`` so one request gives formats and backup flags."""
        return self._get_many(
            f"{self.path}/diskattachments",
            "disk_attachment",
            xml.disk_attachment_from,
            query={"follow": "disk"},
            timeout=timeout,
        )

    def backups_service(self) -> VmBackupsService:
        return VmBackupsService(self.connection, f"{self.path}/backups")

    def checkpoints_service(self) -> VmCheckpointsService:
        return VmCheckpointsService(self.connection, f"{self.path}/checkpoints")

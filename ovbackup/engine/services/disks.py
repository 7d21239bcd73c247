"""``/disks``: create a disk for a restore, follow it until ``ok``, remove it."""

from __future__ import annotations

from ovbackup.engine import bodies, xml
from ovbackup.engine.model import Disk
from ovbackup.engine.services.base import EntityService, Service
from ovbackup.errors import NotFoundError


class DisksService(Service):
    """``/disks``: every disk the user can see (the SDK's ``DisksService``)."""

    def add(self, disk: Disk, *, timeout: float | None = None) -> Disk:
        """Create an empty disk; the engine answers 201 with it ``locked`` (ovirt-api.md §11.2)."""
        response = self.connection.request(
            "POST", self.path, body=bodies.build_disk(disk), timeout=timeout, ok=(200, 201, 202)
        )
        return xml.parse_one(response.content, "disk", xml.disk_from)

    def disk_service(self, id: str) -> DiskService:
        return DiskService(self.connection, f"{self.path}/{id}")


class DiskService(EntityService):
    def get(self, *, timeout: float | None = None) -> Disk:
        try:
            return self._get_one(self.path, "disk", xml.disk_from, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"disk {self.id} not found") from None

    def remove(self, *, timeout: float | None = None) -> None:
        """``DELETE /disks/{id}``; refused (409) while the disk is locked, e.g. by an open transfer."""
        try:
            self.connection.request("DELETE", self.path, timeout=timeout, ok=(200, 202, 204))
        except NotFoundError:
            raise NotFoundError(f"disk {self.id} not found") from None

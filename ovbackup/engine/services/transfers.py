"""``/imagetransfers``: one transfer per disk to read a backup's data through ovirt-imageio."""

from __future__ import annotations

from ovbackup.engine import xml
from ovbackup.engine.model import (
    ActionResult,
    ImageTransfer,
)
from ovbackup.engine.services.base import EntityService, Service
from ovbackup.errors import NotFoundError


class ImageTransfersService(Service):
    """``/imagetransfers``: one transfer per disk to read a backup's data through ovirt-imageio."""

    def add_backup_download(
        self,
        *,
        disk_id: str,
        backup_id: str,
        inactivity_timeout: int = 120,
        timeout: float | None = None,
    ) -> ImageTransfer:
        body = xml.build_image_transfer(
            disk_id=disk_id, backup_id=backup_id, inactivity_timeout=inactivity_timeout
        )
        response = self.connection.request("POST", self.path, body=body, timeout=timeout)
        return xml.parse_one(response.content, "image_transfer", xml.image_transfer_from)

    def add_for_disk(
        self,
        *,
        disk_id: str,
        direction: str,
        inactivity_timeout: int = 120,
        timeout: float | None = None,
    ) -> ImageTransfer:
        """A transfer of a disk itself, not of a backup: ``upload`` into a new disk, or ``download``
        of it (for its checksum), ovirt-api.md §11.3."""
        body = xml.build_image_transfer(
            disk_id=disk_id, backup_id=None, inactivity_timeout=inactivity_timeout, direction=direction
        )
        response = self.connection.request("POST", self.path, body=body, timeout=timeout)
        return xml.parse_one(response.content, "image_transfer", xml.image_transfer_from)

    def list(self, *, timeout: float | None = None) -> list[ImageTransfer]:
        """Every transfer the engine still remembers (finished ones for ~15/30 minutes)."""
        return self._get_many(self.path, "image_transfer", xml.image_transfer_from, timeout=timeout)

    def image_transfer_service(self, id: str) -> ImageTransferService:
        return ImageTransferService(self.connection, f"{self.path}/{id}")


class ImageTransferService(EntityService):
    def get(self, *, timeout: float | None = None) -> ImageTransfer:
        try:
            return self._get_one(self.path, "image_transfer", xml.image_transfer_from, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"image transfer {self.id} not found") from None

    def finalize(self, *, timeout: float | None = None) -> ActionResult:
        return self._action("finalize", timeout=timeout)

    def cancel(self, *, timeout: float | None = None) -> ActionResult:
        return self._action("cancel", timeout=timeout)

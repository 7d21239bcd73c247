"""``/vms/{vm}/checkpoints``: the chain incremental backups start from."""

from __future__ import annotations

from ovbackup import xml
from ovbackup.errors import NotFoundError
from ovbackup.model import (
    ActionResult,
    Checkpoint,
    Disk,
)
from ovbackup.services.base import Service


class VmCheckpointsService(Service):
    """``/vms/{vm}/checkpoints``: listed in chain order, root first."""

    def list(
        self,
        *,
        follow: str | None = None,
        max: int | None = None,
        timeout: float | None = None,
    ) -> list[Checkpoint]:
        data = self._get(self.path, query={"follow": follow, "max": max}, timeout=timeout)
        return xml.parse_many(data, "checkpoint", xml.checkpoint_from)

    def checkpoint_service(self, id: str) -> VmCheckpointService:
        return VmCheckpointService(self.connection, f"{self.path}/{id}")

    def service(self, path: str | None) -> Service:
        if not path:
            return self
        head, sep, rest = path.partition("/")
        return self.checkpoint_service(head).service(rest) if sep else self.checkpoint_service(head)


class VmCheckpointService(Service):
    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(self, *, follow: str | None = None, timeout: float | None = None) -> Checkpoint:
        try:
            data = self._get(self.path, query={"follow": follow}, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"checkpoint {self.id} not found") from None
        return xml.parse_one(data, "checkpoint", xml.checkpoint_from)

    def remove(self, *, timeout: float | None = None) -> ActionResult:
        try:
            response = self.connection.request("DELETE", self.path, timeout=timeout, ok=(200, 202))
        except NotFoundError:
            raise NotFoundError(f"checkpoint {self.id} not found") from None
        return xml.parse_action(response.content)

    def disks(self, *, timeout: float | None = None) -> list[Disk]:
        data = self._get(f"{self.path}/disks", timeout=timeout)
        return xml.parse_many(data, "disk", xml.disk_from)

    def service(self, path: str | None) -> Service:
        if not path:
            return self
        raise NotFoundError(f"no service at {self.path}/{path}")

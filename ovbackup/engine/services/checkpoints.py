"""``/vms/{vm}/checkpoints``: the chain incremental backups start from."""

from __future__ import annotations

from ovbackup.engine import xml
from ovbackup.engine.model import (
    ActionResult,
    Checkpoint,
    Disk,
)
from ovbackup.engine.services.base import EntityService, Service
from ovbackup.errors import NotFoundError


class VmCheckpointsService(Service):
    """``/vms/{vm}/checkpoints``: listed in chain order, root first."""

    def list(
        self,
        *,
        follow: str | None = None,
        max: int | None = None,
        timeout: float | None = None,
    ) -> list[Checkpoint]:
        return self._get_many(
            self.path,
            "checkpoint",
            xml.checkpoint_from,
            query={"follow": follow, "max": max},
            timeout=timeout,
        )

    def checkpoint_service(self, id: str) -> VmCheckpointService:
        return VmCheckpointService(self.connection, f"{self.path}/{id}")

    def service(self, path: str | None) -> Service:
        if not path:
            return self
        head, sep, rest = path.partition("/")
        return self.checkpoint_service(head).service(rest) if sep else self.checkpoint_service(head)


class VmCheckpointService(EntityService):
    def get(self, *, follow: str | None = None, timeout: float | None = None) -> Checkpoint:
        try:
            return self._get_one(
                self.path, "checkpoint", xml.checkpoint_from, query={"follow": follow}, timeout=timeout
            )
        except NotFoundError:
            raise NotFoundError(f"checkpoint {self.id} not found") from None

    def remove(self, *, timeout: float | None = None) -> ActionResult:
        try:
            response = self.connection.request("DELETE", self.path, timeout=timeout, ok=(200, 202))
        except NotFoundError:
            raise NotFoundError(f"checkpoint {self.id} not found") from None
        return xml.parse_action(response.content)

    def disks(self, *, timeout: float | None = None) -> list[Disk]:
        return self._get_many(f"{self.path}/disks", "disk", xml.disk_from, timeout=timeout)

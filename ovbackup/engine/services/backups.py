"""``/vms/{vm}/backups``: the seed's ``VmBackupsService`` and ``VmBackupService``."""

from __future__ import annotations

import time
import uuid

from ovbackup.engine import xml
from ovbackup.engine.connection import QueryValue
from ovbackup.engine.model import (
    ActionResult,
    Backup,
    Disk,
)
from ovbackup.engine.services.base import EntityService, Headers, Query, Service
from ovbackup.errors import ConnectError, DeadlineError, NotFoundError, RefusedError


class VmBackupsService(Service):
    """``/vms/{vm}/backups``: start and list backups (the seed's ``VmBackupsService``)."""

    #: attempts for a POST whose connection dropped; safe because the backup id is ours.
    add_attempts = 3
    add_retry_delay = 1.0

    def add(
        self,
        backup: Backup,
        *,
        require_consistency: bool | None = None,
        use_active: bool | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> Backup:
        """Start a backup. It always carries an id (a fresh UUID unless given), so a POST whose reply
        was lost can be resent: if the engine then refuses it because it already exists, the backup it
        already created is fetched and returned — never two backups.

        ``wait`` is the SDK's: the call returns once the engine answered the POST (either way; the
        backup's phases are waited for with ``jobs.lifecycle.wait_for_phase``).
        """
        if backup.id is None:
            from dataclasses import replace

            backup = replace(backup, id=str(uuid.uuid4()))
        params: dict[str, QueryValue | None] = dict(query or {})
        params.update({"require_consistency": require_consistency, "use_active": use_active})
        body = xml.build_backup(backup)
        backup_id = str(backup.id)

        def call() -> Backup:
            for attempt in range(1, self.add_attempts + 1):
                try:
                    response = self.connection.request(
                        "POST", self.path, query=params, body=body, headers=headers, timeout=timeout
                    )
                    return xml.parse_one(response.content, "backup", xml.backup_from)
                except (ConnectError, DeadlineError):
                    if attempt == self.add_attempts:
                        raise
                    time.sleep(self.add_retry_delay * attempt)
                except RefusedError:
                    if attempt == 1:
                        raise
                    # Our earlier POST probably reached the engine: that backup is ours (a 404 here
                    # means it did not, and the refusal was about something else: say so).
                    return self.backup_service(backup_id).get(timeout=timeout)
            raise AssertionError("unreachable")  # the last attempt returns or raises

        del wait  # the SDK's parameter: we return after the HTTP answer either way
        return call()

    def list(
        self,
        *,
        follow: str | None = None,
        max: int | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> list[Backup]:
        """All backups of the VM in one request (the engine keeps finished ones ~15 minutes).

        ``wait`` is the SDK's; the call returns once the engine answered, either way.
        """
        del wait
        return self._get_many(
            self.path,
            "backup",
            xml.backup_from,
            query={"follow": follow, "max": max},
            headers=headers,
            extra_query=query,
            timeout=timeout,
        )

    def backup_service(self, id: str) -> VmBackupService:
        return VmBackupService(self.connection, f"{self.path}/{id}")

    def service(self, path: str | None) -> Service:
        """Locate a service by relative path, with the seed's semantics ('' → self, 'id[/rest]')."""
        if not path:
            return self
        head, sep, rest = path.partition("/")
        if not sep:
            return self.backup_service(head)
        return self.backup_service(head).service(rest)


class VmBackupService(EntityService):
    """``/vms/{vm}/backups/{id}``."""

    def get(
        self,
        *,
        follow: str | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
    ) -> Backup:
        try:
            return self._get_one(
                self.path,
                "backup",
                xml.backup_from,
                query={"follow": follow},
                headers=headers,
                extra_query=query,
                timeout=timeout,
            )
        except NotFoundError:
            raise NotFoundError(
                f"backup {self.id} not found",
                hint="the engine forgets finished backups after about 15 minutes",
            ) from None

    def finalize(
        self, *, headers: Headers = None, query: Query = None, timeout: float | None = None
    ) -> ActionResult:
        try:
            return self._action("finalize", headers=headers, query=query, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"backup {self.id} not found") from None

    def disks(self, *, timeout: float | None = None) -> list[Disk]:
        """The backup's disks, with ``backup_mode`` (full/incremental) filled in by the engine."""
        try:
            return self._get_many(f"{self.path}/disks", "disk", xml.disk_from, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"backup {self.id} not found") from None

"""The engine's service tree, mirrored thinly: one class per service, one method per call.

Shapes follow the SDK (``VmBackupsService.add/list/backup_service/service`` and so on) so that anyone
who knows ``ovirtsdk4`` can read this; the extra keyword arguments (``headers``, ``query``, ``timeout``,
``wait``) mean what they mean there. Nothing here prints or decides policy.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar, overload

from ovbackup import xml
from ovbackup.connection import Connection, QueryValue
from ovbackup.errors import ConnectError, DeadlineError, NotFoundError, RefusedError
from ovbackup.model import (
    ActionResult,
    Backup,
    Checkpoint,
    Disk,
    DiskAttachment,
    ImageTransfer,
    Vm,
)

T = TypeVar("T")
Headers = Mapping[str, str] | None
Query = Mapping[str, QueryValue] | None
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _submit(call: Callable[[], T], wait: bool) -> T | Future[T]:
    """Run ``call`` now, or (``wait=False``) in a worker thread, returning a Future of the same result."""
    global _executor  # noqa: PLW0603 - one lazily created pool per process
    if wait:
        return call()
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ovbackup")
    return _executor.submit(call)


class Service:
    def __init__(self, connection: Connection, path: str) -> None:
        self.connection = connection
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def _get(
        self,
        path: str,
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        headers: Headers = None,
        extra_query: Query = None,
        timeout: float | None = None,
    ) -> bytes:
        merged: dict[str, QueryValue | None] = dict(extra_query or {})
        merged.update(query or {})
        response = self.connection.request(
            "GET", path, query=merged, headers=headers, timeout=timeout, ok=(200,)
        )
        return response.content

    def _get_many(
        self,
        path: str,
        tag: str,
        convert: Callable[[xml.Element], T],
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        headers: Headers = None,
        extra_query: Query = None,
        timeout: float | None = None,
    ) -> list[T]:
        """A collection parsed while it arrives: a VM's 10,000 backups never sit in memory as text."""
        merged: dict[str, QueryValue | None] = dict(extra_query or {})
        merged.update(query or {})
        response = self.connection.request(
            "GET", path, query=merged, headers=headers, timeout=timeout, ok=(200,), stream=True
        )
        return self.connection.read_stream(response, lambda raw: xml.parse_many(raw, tag, convert))

    def _action(
        self, action: str, *, headers: Headers = None, query: Query = None, timeout: float | None = None
    ) -> ActionResult:
        response = self.connection.request(
            "POST",
            f"{self.path}/{action}",
            body=xml.build_action(),
            headers=headers,
            query=query,
            timeout=timeout,
        )
        return xml.parse_action(response.content)


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
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
    ) -> list[Vm]:
        data = self._get(
            self.path,
            query={"search": search, "max": max},
            headers=headers,
            extra_query=query,
            timeout=timeout,
        )
        return xml.parse_many(data, "vm", xml.vm_from)

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


class VmService(Service):
    def get(self, *, headers: Headers = None, query: Query = None, timeout: float | None = None) -> Vm:
        try:
            data = self._get(self.path, headers=headers, extra_query=query, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"VM {self.path.rsplit('/', 1)[-1]} not found") from None
        return xml.parse_one(data, "vm", xml.vm_from)

    def disk_attachments(self, *, timeout: float | None = None) -> list[DiskAttachment]:
        """The VM's disks, inlined with ``follow=disk`` so one request gives formats and backup flags."""
        data = self._get(f"{self.path}/diskattachments", query={"follow": "disk"}, timeout=timeout)
        return xml.parse_many(data, "disk_attachment", xml.disk_attachment_from)

    def backups_service(self) -> VmBackupsService:
        return VmBackupsService(self.connection, f"{self.path}/backups")

    def checkpoints_service(self) -> VmCheckpointsService:
        return VmCheckpointsService(self.connection, f"{self.path}/checkpoints")


class VmBackupsService(Service):
    """``/vms/{vm}/backups``: start and list backups (the seed's ``VmBackupsService``)."""

    #: attempts for a POST whose connection dropped; safe because the backup id is ours.
    add_attempts = 3
    add_retry_delay = 1.0

    @overload
    def add(
        self,
        backup: Backup,
        *,
        require_consistency: bool | None = ...,
        use_active: bool | None = ...,
        headers: Headers = ...,
        query: Query = ...,
        timeout: float | None = ...,
        wait: Literal[True] = ...,
    ) -> Backup: ...

    @overload
    def add(
        self,
        backup: Backup,
        *,
        require_consistency: bool | None = ...,
        use_active: bool | None = ...,
        headers: Headers = ...,
        query: Query = ...,
        timeout: float | None = ...,
        wait: Literal[False],
    ) -> Future[Backup]: ...

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
    ) -> Backup | Future[Backup]:
        """Start a backup. It always carries an id (a fresh UUID unless given), so a POST whose reply
        was lost can be resent: if the engine then refuses it because it already exists, the backup it
        already created is fetched and returned — never two backups.
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
                    # Our earlier POST probably reached the engine: that backup is ours.
                    try:
                        return self.backup_service(backup_id).get(timeout=timeout)
                    except NotFoundError:
                        raise
            raise AssertionError("unreachable")

        return _submit(call, wait)

    @overload
    def list(
        self,
        *,
        follow: str | None = ...,
        max: int | None = ...,
        headers: Headers = ...,
        query: Query = ...,
        timeout: float | None = ...,
        wait: Literal[True] = ...,
    ) -> list[Backup]: ...

    @overload
    def list(
        self,
        *,
        follow: str | None = ...,
        max: int | None = ...,
        headers: Headers = ...,
        query: Query = ...,
        timeout: float | None = ...,
        wait: Literal[False],
    ) -> Future[list[Backup]]: ...

    def list(
        self,
        *,
        follow: str | None = None,
        max: int | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> list[Backup] | Future[list[Backup]]:
        """All backups of the VM in one request (the engine keeps finished ones ~15 minutes)."""

        def call() -> list[Backup]:
            return self._get_many(
                self.path,
                "backup",
                xml.backup_from,
                query={"follow": follow, "max": max},
                headers=headers,
                extra_query=query,
                timeout=timeout,
            )

        return _submit(call, wait)

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


class VmBackupService(Service):
    """``/vms/{vm}/backups/{id}``."""

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(
        self,
        *,
        follow: str | None = None,
        headers: Headers = None,
        query: Query = None,
        timeout: float | None = None,
    ) -> Backup:
        try:
            data = self._get(
                self.path, query={"follow": follow}, headers=headers, extra_query=query, timeout=timeout
            )
        except NotFoundError:
            raise NotFoundError(
                f"backup {self.id} not found",
                hint="the engine forgets finished backups after about 15 minutes",
            ) from None
        return xml.parse_one(data, "backup", xml.backup_from)

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
            data = self._get(f"{self.path}/disks", timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"backup {self.id} not found") from None
        return xml.parse_many(data, "disk", xml.disk_from)

    def service(self, path: str | None) -> Service:
        if not path:
            return self
        raise NotFoundError(f"no service at {self.path}/{path}")


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

    def image_transfer_service(self, id: str) -> ImageTransferService:
        return ImageTransferService(self.connection, f"{self.path}/{id}")


class ImageTransferService(Service):
    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(self, *, timeout: float | None = None) -> ImageTransfer:
        try:
            data = self._get(self.path, timeout=timeout)
        except NotFoundError:
            raise NotFoundError(f"image transfer {self.id} not found") from None
        return xml.parse_one(data, "image_transfer", xml.image_transfer_from)

    def finalize(self, *, timeout: float | None = None) -> ActionResult:
        return self._action("finalize", timeout=timeout)

    def cancel(self, *, timeout: float | None = None) -> ActionResult:
        return self._action("cancel", timeout=timeout)

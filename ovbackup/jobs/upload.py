"""One disk of a restore: create it, upload the point's image into it, check it, and know how to undo it.

Order per disk (ovirt-api.md §11.2, §11.3): ``POST /disks`` with an id we chose (so its undo is pushed
before the POST: a reply lost to Ctrl-C still leaves us knowing what to remove), wait for ``ok``,
``POST /imagetransfers`` (upload) and push its cancel, wait for ``transferring``, upload the chain's
guest data, finalize and wait for ``finished_success``, wait for the disk to be ``ok`` again, and with
``--verify`` compare imageio's checksum of the new disk (through a download transfer) with the local
chain's.

Undo of a disk: cancel any transfer still open on it and wait for its end — the engine then removes the
disk itself (a failed or cancelled upload removes its disk, §11.3) — and delete it if it is still there.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ovbackup.engine import polling
from ovbackup.engine.model import Disk, ImageTransfer, ImageTransferPhase, StorageDomain
from ovbackup.engine.services import DiskService, ImageTransfersService, SystemService
from ovbackup.errors import NotFoundError, RefusedError, TransferError
from ovbackup.imageio.client import ImageioSession, Progress, image_checksum, upload
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.transfers import TRANSFER_PACE, finalize_transfer, wait_transferring
from ovbackup.jobs.undo import Undo, UndoStack

_ENDED = frozenset(
    {ImageTransferPhase.FINISHED_SUCCESS, ImageTransferPhase.FINISHED_FAILURE, ImageTransferPhase.CANCELLED}
)


def ended(t: ImageTransfer) -> bool:
    """The transfer's command is over. A cancelled upload passes finished_cleanup and then ends
    finished_failure once the engine has removed its disk (TransferDiskImageCommand.endWithFailure,
    ovirt-api.md §11.3); for a download finished_cleanup is the end."""
    if t.phase == ImageTransferPhase.FINISHED_CLEANUP:
        return t.direction != "upload"
    return t.phase in _ENDED


# A new disk turns ok within a second or two (the engine creates an empty volume): poll like transfers.
DISK_PACE = polling.Pace(initial=0.1, factor=1.25, cap=2.0, steady=1.0)


@dataclass(frozen=True)
class UploadOptions:
    verify: bool = False
    max_workers: int = 4
    inactivity_timeout: int = 300
    transfer_timeout: float = 300.0
    disk_timeout: float = 900.0  # a disk becoming ok, or going away
    cafile: str | None = None
    secure: bool = True


@dataclass(frozen=True)
class DiskPlan:
    """What one disk of the point becomes: ``new`` is the POST /disks body (with our id)."""

    source_id: str
    alias: str | None
    top: Path  # the point's file; its backing chain is uploaded with it
    data: int  # bytes of data in the chain (what crosses the wire)
    size: int  # virtual size
    new: Disk
    domain: StorageDomain


@dataclass(frozen=True)
class RestoredDisk:
    source_id: str
    id: str
    alias: str | None
    storage_domain: str
    bytes: int
    seconds: float
    upload_seconds: float
    verified: bool | None


@dataclass
class UploadJob:
    system: SystemService
    undo: UndoStack
    opts: UploadOptions
    reporter: Reporter
    stopping: threading.Event

    def by_hand(self, method: str, path: str, body: str | None = None) -> str:
        """The command that does an undo by hand (curl asks for the password: none in argv)."""
        conn = self.system.connection
        data = f" -H 'Content-Type: application/xml' -d '{body}'" if body else ""
        return f"curl -X {method} -H 'Version: 4'{data} -u '{conn.username}' '{conn.url}/{path}'"


def _wait_disk(
    service: DiskService, label: str, timeout: float, stopping: threading.Event, *, created: bool = False
) -> Disk:
    """Until the disk is ok; ``created``: it was just added (the reply said locked)."""

    def ready(d: Disk) -> bool:
        if stopping.is_set():
            raise TransferError(f"stopped while waiting for disk {label}")
        if d.status in ("illegal",):
            raise TransferError(f"disk {label} became {d.status}")
        return d.status == "ok"

    return polling.wait_for(
        service.get, ready, timeout=timeout, what=f"disk {label}", pace=DISK_PACE, immediately=not created
    )


def _open_transfers_of(service: ImageTransfersService, disk_id: str) -> list[ImageTransfer]:
    return [t for t in service.list() if t.disk_id == disk_id and not ended(t)]


def cancel_and_wait(service: ImageTransfersService, transfer_id: str, timeout: float) -> str:
    """Cancel a transfer and wait for its end (the engine refuses to remove its disk before)."""
    ts = service.image_transfer_service(transfer_id)
    try:
        ts.cancel()
        polling.wait_for(
            ts.get,
            ended,
            timeout=timeout,
            what=f"image transfer {transfer_id}",
            pace=TRANSFER_PACE,
        )
    except NotFoundError:
        return f"image transfer {transfer_id} had already ended"
    return f"cancelled image transfer {transfer_id}"


def remove_disk(system: SystemService, disk_id: str, label: str, timeout: float) -> str:
    """Undo a disk this run created; idempotent. Returns what happened."""
    transfers = system.image_transfers_service()
    for t in _open_transfers_of(transfers, disk_id):
        cancel_and_wait(transfers, str(t.id), timeout)
    service = system.disks_service().disk_service(disk_id)
    deadline = polling.clock() + timeout
    while True:
        try:
            service.remove()
            break
        except NotFoundError:
            return f"removed disk {label} ({disk_id}) (by the engine, with its cancelled upload)"
        except RefusedError:
            # Locked: still being created, or its cancelled transfer is being cleaned up.
            if polling.clock() > deadline:
                raise
            polling.sleep(1.0)
    with contextlib.suppress(NotFoundError):  # the engine removes it in the background
        polling.wait_for(
            service.get,
            lambda d: False,
            timeout=timeout,
            what=f"removal of disk {label}",
            pace=DISK_PACE,
        )
    return f"removed disk {label} ({disk_id})"


def _open_transfer(job: UploadJob, disk_id: str, direction: str) -> tuple[str, str, str | None, Undo]:
    """Open a transfer of the new disk, its cancel on the stack: (id, url, proxy url, its undo)."""
    service = job.system.image_transfers_service()
    transfer = service.add_for_disk(
        disk_id=disk_id, direction=direction, inactivity_timeout=job.opts.inactivity_timeout
    )
    transfer_id = str(transfer.id)
    undo = job.undo.push(
        f"image transfer {transfer_id}",
        lambda: cancel_and_wait(service, transfer_id, job.opts.transfer_timeout),
        job.by_hand("POST", f"imagetransfers/{transfer_id}/cancel", "<action/>"),
        kind="transfer",
    )
    transfer = wait_transferring(service, transfer_id, job.opts.transfer_timeout)
    url = transfer.transfer_url or transfer.proxy_url
    if not url:
        raise TransferError(f"image transfer {transfer_id} has neither transfer_url nor proxy_url")
    return transfer_id, url, transfer.proxy_url if transfer.transfer_url else None, undo


def _close(job: UploadJob, transfer_id: str, undo: Undo) -> None:
    """Finalize a transfer and take its cancel off the stack once it finished."""
    finalize_transfer(job.system.image_transfers_service(), transfer_id, job.opts.transfer_timeout)
    job.undo.discard(undo)


def _verify(job: UploadJob, plan: DiskPlan, disk_id: str) -> None:
    """imageio's checksum of the new disk against the local chain's (same algorithm, block size)."""
    transfer_id, url, _, undo = _open_transfer(job, disk_id, "download")
    session = ImageioSession(url, cafile=job.opts.cafile, secure=job.opts.secure)
    try:
        remote = session.checksum()
    finally:
        session.close()
    _close(job, transfer_id, undo)
    algorithm, block_size = str(remote["algorithm"]), int(remote["block_size"])
    local = image_checksum(plan.top, algorithm=algorithm, block_size=block_size)
    if local != remote["checksum"]:
        raise TransferError(
            f"disk {plan.new.label}: checksum mismatch after upload "
            f"(imageio {str(remote['checksum'])[:16]}…, local {local[:16]}…)"
        )


def restore_disk(job: UploadJob, plan: DiskPlan) -> RestoredDisk:
    if job.stopping.is_set():
        raise TransferError("stopped before this disk started")
    started = time.monotonic()
    disks = job.system.disks_service()
    label = plan.new.label
    ids = [plan.new.id]  # the engine's answer wins if it ever chose another id
    job.undo.push(
        f"disk {label} ({plan.new.id})",
        lambda: remove_disk(job.system, ids[0], label, job.opts.disk_timeout),
        job.by_hand("DELETE", f"disks/{plan.new.id}"),
        kind="disk",
    )
    created = disks.add(plan.new)
    ids[0] = created.id
    service = disks.disk_service(created.id)
    _wait_disk(service, label, job.opts.disk_timeout, job.stopping, created=created.status != "ok")
    if job.stopping.is_set():
        raise TransferError("stopped before the upload started")
    transfer_id, url, proxy, transfer_undo = _open_transfer(job, created.id, "upload")
    if job.stopping.is_set():
        raise TransferError("stopped before the upload started")
    disk = Disk(id=created.id, name=label)
    job.reporter.disk_started(disk, "restore", plan.data, plan.size)
    progress = Progress(lambda done, size: job.reporter.disk_progress(created.id, done, size))
    # A new disk reads as zeroes except preallocated raw on block storage (an LV is not zeroed).
    disk_is_zero = not (plan.domain.is_block and plan.new.sparse is False)
    upload_started = time.monotonic()
    upload(
        plan.top,
        url,
        proxy_url=proxy,
        cafile=job.opts.cafile,
        secure=job.opts.secure,
        max_workers=job.opts.max_workers,
        disk_is_zero=disk_is_zero,
        progress=progress,
    )
    upload_seconds = time.monotonic() - upload_started
    _close(job, transfer_id, transfer_undo)
    _wait_disk(service, label, job.opts.disk_timeout, job.stopping)
    if job.opts.verify:
        _verify(job, plan, created.id)
    result = RestoredDisk(
        source_id=plan.source_id,
        id=created.id,
        alias=label,
        storage_domain=plan.domain.label,
        bytes=plan.data,
        seconds=round(time.monotonic() - started, 3),
        upload_seconds=round(upload_seconds, 3),
        verified=True if job.opts.verify else None,
    )
    job.reporter.disk_restored(result)
    return result

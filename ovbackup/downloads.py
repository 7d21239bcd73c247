"""Download a ready backup's disks into the catalog: one image transfer per disk, disks in parallel.

Per disk: create the transfer, wait for ``transferring``, read the extents (bytes to fetch, checked
against free space before any byte moves), download into ``*.partial``, optionally compare imageio's
checksum with the local image's, finalize the transfer, then rename the file into place. Any failure
cancels every transfer still open before the error propagates, so the caller can finalize the backup
(the engine refuses that while a transfer is open).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ovbackup import polling
from ovbackup.catalog import (
    PARTIAL,
    Catalog,
    Checksum,
    DiskRecord,
    RestorePoint,
    disk_file_name,
    fsync_dir,
    timestamp,
)
from ovbackup.errors import ConfigError, NotFoundError, OvbackupError
from ovbackup.model import Backup, Disk, DiskBackupMode, ImageTransfer, ImageTransferPhase
from ovbackup.services import ImageTransfersService
from ovbackup.transfer import (
    ImageioSession,
    Progress,
    TransferError,
    commit_overlay,
    copy_sparse,
    download,
    file_hash,
    image_checksum,
)

TRANSFERRING = ImageTransferPhase.TRANSFERRING
# Transfers change phase within a second or two (a ticket is added, a session closed): poll them
# faster than backups, whose phases follow VM operations, and back off gently to at most 1 s.
TRANSFER_PACE = polling.Pace(initial=0.1, factor=1.25, cap=1.0)
_WAITING = (ImageTransferPhase.INITIALIZING, ImageTransferPhase.RESUMING, ImageTransferPhase.UNKNOWN)
_FINISHED_OK = (ImageTransferPhase.FINISHED_SUCCESS,)
_FINALIZING = (ImageTransferPhase.FINALIZING_SUCCESS, ImageTransferPhase.TRANSFERRING)
_TERMINAL = (
    ImageTransferPhase.FINISHED_SUCCESS,
    ImageTransferPhase.FINISHED_FAILURE,
    ImageTransferPhase.FINISHED_CLEANUP,
    ImageTransferPhase.CANCELLED,
)


class Reporter(Protocol):
    """What the data plane tells the person watching (the CLI draws it; tests record it)."""

    def note(self, text: str) -> None: ...
    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None: ...
    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None: ...
    def disk_finished(self, record: DiskRecord) -> None: ...


@dataclass(frozen=True)
class DownloadOptions:
    fmt: str = "qcow2"  # qcow2 | raw
    verify: bool = False
    max_workers: int = 4
    parallel_disks: int = 4
    inactivity_timeout: int = 300
    transfer_timeout: float = 300.0  # waiting for transferring / finished
    cafile: str | None = None
    secure: bool = True
    space_margin: int = 64 * 1024 * 1024


class SpaceError(ConfigError):
    """Not enough free space in the backup directory for the data to transfer."""


class _Transfers:
    """Open transfers, so a failure anywhere can cancel them all before the backup is finalized."""

    def __init__(self, service: ImageTransfersService) -> None:
        self.service = service
        self.open: dict[str, ImageTransfer] = {}
        self.lock = threading.Lock()
        self.reserved = 0  # bytes promised to downloads in flight (free-space accounting)
        self.stopping = threading.Event()

    def add(self, transfer: ImageTransfer) -> None:
        with self.lock:
            self.open[str(transfer.id)] = transfer

    def closed(self, transfer_id: str) -> None:
        with self.lock:
            self.open.pop(transfer_id, None)

    def cancel_all(self, reporter: Reporter, timeout: float = 120.0) -> None:
        """Cancel every open transfer and wait until the engine has closed them: it refuses to
        finalize the backup while any transfer is still open (409)."""
        with self.lock:
            pending = list(self.open)
            self.open.clear()
        for transfer_id in pending:
            ts = self.service.image_transfer_service(transfer_id)
            try:
                ts.cancel()
                polling.wait_for(
                    ts.get,
                    lambda t: t.phase in _TERMINAL,
                    timeout=timeout,
                    what=f"image transfer {transfer_id}",
                    pace=TRANSFER_PACE,
                    status_line=False,
                )
                reporter.note(f"cancelled image transfer {transfer_id}")
            except NotFoundError:
                pass  # already gone
            except OvbackupError as e:
                reporter.note(f"could not cancel image transfer {transfer_id}: {e}")


def _wait_transfer(service: ImageTransfersService, transfer_id: str, timeout: float) -> ImageTransfer:
    def ready(t: ImageTransfer) -> bool:
        if t.phase == TRANSFERRING:
            return True
        if t.phase in _WAITING or t.phase is None:
            return False
        raise TransferError(f"image transfer {transfer_id} is {t.phase.value}, not transferring")

    return polling.wait_for(
        service.image_transfer_service(transfer_id).get,
        ready,
        timeout=timeout,
        what=f"image transfer {transfer_id}",
        describe=lambda t: t.phase.value if t.phase else "unknown",
        pace=TRANSFER_PACE,
        status_line=False,
    )


def _finalize_transfer(service: ImageTransfersService, transfer_id: str, timeout: float) -> None:
    ts = service.image_transfer_service(transfer_id)
    ts.finalize()

    def finished(t: ImageTransfer) -> bool:
        if t.phase in _FINISHED_OK:
            return True
        if t.phase in _FINALIZING or t.phase is None:
            return False
        raise TransferError(f"image transfer {transfer_id} ended {t.phase.value}")

    with contextlib.suppress(NotFoundError):  # engines before 4.4.7 delete it at once
        polling.wait_for(
            ts.get,
            finished,
            timeout=timeout,
            what=f"image transfer {transfer_id}",
            pace=TRANSFER_PACE,
            status_line=False,
        )


def _reserve(transfers: _Transfers, directory: Path, needed: int, margin: int) -> None:
    with transfers.lock:
        free = shutil.disk_usage(directory).free - transfers.reserved
        if needed + margin > free:
            raise SpaceError(
                f"not enough space in {directory}: {needed} bytes to download, {max(free, 0)} free",
                hint="free some space or use another --dir",
            )
        transfers.reserved += needed


def _release(transfers: _Transfers, amount: int) -> None:
    with transfers.lock:
        transfers.reserved -= amount


def _download_disk(
    disk: Disk,
    *,
    backup_id: str,
    from_checkpoint_id: str | None,
    point: str,
    catalog: Catalog,
    transfers: _Transfers,
    opts: DownloadOptions,
    reporter: Reporter,
    fallbacks: list[str],
) -> _Unsealed:
    if transfers.stopping.is_set():
        raise TransferError("stopped before this disk started")
    started = time.monotonic()
    transfer = transfers.service.add_backup_download(
        disk_id=disk.id, backup_id=backup_id, inactivity_timeout=opts.inactivity_timeout
    )
    transfer_id = str(transfer.id)
    transfers.add(transfer)
    transfer = _wait_transfer(transfers.service, transfer_id, opts.transfer_timeout)
    url = transfer.transfer_url or transfer.proxy_url
    if not url:
        raise TransferError(f"image transfer {transfer_id} has neither transfer_url nor proxy_url")
    proxy = transfer.proxy_url if transfer.transfer_url else None

    incremental = disk.backup_mode == DiskBackupMode.INCREMENTAL
    previous = catalog.previous_file(disk.id, from_checkpoint_id) if incremental else None
    if incremental and (previous is None or not (catalog.dir / previous.file).exists()):
        # Never an incremental on top of a missing parent: take this disk in full instead.
        fallbacks.append(
            f"disk {disk.name or disk.id}: no complete local file from checkpoint {from_checkpoint_id}, "
            "taken in full"
        )
        reporter.note(f"warning: {fallbacks[-1]}")
        incremental, previous = False, None
    if incremental and previous is not None and previous.format != opts.fmt:
        fallbacks.append(f"disk {disk.name or disk.id}: previous file is {previous.format}, taken in full")
        reporter.note(f"warning: {fallbacks[-1]}")
        incremental, previous = False, None
    mode = "incremental" if incremental else "full"

    session = ImageioSession(url, cafile=opts.cafile, secure=opts.secure)
    try:
        extents = session.extents(incremental=incremental)
        _reserve(transfers, catalog.dir, extents.data, opts.space_margin)
        final = catalog.dir / disk_file_name(point, disk.id, disk.name, mode, opts.fmt)
        partial = final.with_name(final.name + PARTIAL)
        reporter.disk_started(disk, mode, extents.data, extents.size)
        progress = Progress(lambda done, size: reporter.disk_progress(disk.id, done, size))
        try:
            fetch_started = time.monotonic()
            _fetch(url, proxy, partial, previous, catalog, opts, incremental, progress)
            download_seconds = time.monotonic() - fetch_started
        finally:
            _release(transfers, extents.data)
        checksum = None
        if opts.verify:
            remote = session.checksum()
            local = image_checksum(
                partial, algorithm=str(remote["algorithm"]), block_size=int(remote["block_size"])
            )
            if local != remote["checksum"]:
                raise TransferError(
                    f"disk {disk.name or disk.id}: checksum mismatch (imageio {remote['checksum'][:16]}…, "
                    f"local {local[:16]}…)"
                )
            checksum = Checksum(str(remote["algorithm"]), int(remote["block_size"]), local)
    finally:
        session.close()
    durable = _in_background(_fsync_and_hash, partial)  # overlaps with closing the transfer
    _finalize_transfer(transfers.service, transfer_id, opts.transfer_timeout)
    transfers.closed(transfer_id)
    record = DiskRecord(
        id=disk.id,
        alias=disk.name,
        mode=mode,
        format=opts.fmt,
        virtual_size=extents.size,
        file=final.name,
        backing_file=previous.file if (previous and opts.fmt == "qcow2") else None,
        bytes_transferred=extents.data,
        seconds=round(time.monotonic() - started, 3),
        download_seconds=round(download_seconds, 3),
        checksum=checksum,
    )
    return _Unsealed(record, partial, final, durable)


def _fsync_and_hash(path: Path) -> str:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return file_hash(path)


def _in_background(fn: Callable[[Path], str], path: Path) -> cf.Future[str]:
    future: cf.Future[str] = cf.Future()

    def run() -> None:
        try:
            future.set_result(fn(path))
        except BaseException as e:  # handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=run, name=f"seal-{path.name[:20]}", daemon=True).start()
    return future


@dataclass(frozen=True)
class _Unsealed:
    """A downloaded disk whose transfer is closed but whose file is still ``*.partial``.

    Its fsync and hash started as soon as the bytes were down; only the rename waits for the end.
    """

    record: DiskRecord
    partial: Path
    final: Path
    durable: cf.Future[str]  # the file's hash, once it is fsynced

    def seal(self, reporter: Reporter) -> DiskRecord:
        """Give the (durable) file its final name and record its hash for offline verify."""
        digest = self.durable.result()
        os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)
        record = replace(self.record, file_hash=digest)
        reporter.disk_finished(record)
        return record


@dataclass(frozen=True)
class PendingPoint:
    """Every disk downloaded and every transfer closed; the files still need sealing.

    Sealing (fsync, rename, hashing: seconds for big disks) needs nothing from the engine, so the
    ``backup`` job runs it while the engine finalizes the backup.
    """

    point: RestorePoint
    disks: tuple[_Unsealed, ...]
    reporter: Reporter

    def start_sealing(self) -> cf.Future[RestorePoint]:
        future: cf.Future[RestorePoint] = cf.Future()

        def seal_all() -> None:
            try:
                with cf.ThreadPoolExecutor(max_workers=max(1, len(self.disks))) as pool:
                    records = list(pool.map(lambda d: d.seal(self.reporter), self.disks))
                future.set_result(replace(self.point, disks=tuple(records)))
            except BaseException as e:  # handed to whoever waits for the result
                future.set_exception(e)

        threading.Thread(target=seal_all, name="sealing", daemon=True).start()
        return future


def _fetch(
    url: str,
    proxy: str | None,
    partial: Path,
    previous: DiskRecord | None,
    catalog: Catalog,
    opts: DownloadOptions,
    incremental: bool,
    progress: Progress,
) -> None:
    def get(dest: Path, fmt: str, incremental: bool, backing: str | None, backing_fmt: str | None) -> None:
        download(
            url,
            dest,
            proxy_url=proxy,
            cafile=opts.cafile,
            secure=opts.secure,
            incremental=incremental,
            backing_file=backing,
            backing_format=backing_fmt,
            fmt=fmt,
            max_workers=opts.max_workers,
            progress=progress,
        )

    if opts.fmt == "qcow2":
        # The backing file is named relative to the image, so the catalog directory can be moved.
        get(
            partial,
            "qcow2",
            incremental,
            previous.file if previous else None,
            previous.format if previous else None,
        )
        return
    if not incremental or previous is None:
        get(partial, "raw", False, None, None)
        return
    # raw incremental: apply the dirty extents to a (reflinked) copy of the previous raw image.
    copy_sparse(catalog.dir / previous.file, partial)
    overlay = partial.with_name(partial.name.removesuffix(PARTIAL) + ".overlay" + PARTIAL)
    try:
        get(overlay, "qcow2", True, str(partial), "raw")
        commit_overlay(overlay)
    finally:
        overlay.unlink(missing_ok=True)


def download_backup(
    transfers_service: ImageTransfersService,
    backup: Backup,
    disks: Sequence[Disk],
    catalog: Catalog,
    point: RestorePoint,
    opts: DownloadOptions,
    reporter: Reporter,
) -> PendingPoint:
    """Download every disk (``parallel_disks`` at a time) and close every transfer.

    On any failure or interruption, every open transfer is cancelled before the exception propagates.
    """
    transfers = _Transfers(transfers_service)
    fallbacks: list[str] = []
    pool = cf.ThreadPoolExecutor(max_workers=max(1, opts.parallel_disks), thread_name_prefix="disk")
    futures = [
        pool.submit(
            _download_disk,
            disk,
            backup_id=str(backup.id),
            from_checkpoint_id=backup.from_checkpoint_id,
            point=point.name,
            catalog=catalog,
            transfers=transfers,
            opts=opts,
            reporter=reporter,
            fallbacks=fallbacks,
        )
        for disk in disks
    ]
    try:
        downloaded = [f.result() for f in futures]  # first failure raises here
    except BaseException:
        transfers.stopping.set()
        for f in futures:
            f.cancel()
        transfers.cancel_all(reporter)  # running downloads fail fast once their ticket is gone
        cf.wait(futures, timeout=60)
        transfers.cancel_all(reporter)  # transfers created while we were cancelling
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    fallback = "; ".join(fallbacks) if fallbacks else point.fallback
    return PendingPoint(replace(point, fallback=fallback), tuple(downloaded), reporter)


def new_point(
    *,
    name: str,
    backup: Backup,
    vm_id: str,
    vm_name: str,
    engine_url: str,
    fmt: str,
    fallback: str | None,
) -> RestorePoint:
    return RestorePoint(
        name=name,
        backup_id=str(backup.id),
        mode="incremental" if backup.from_checkpoint_id else "full",
        format=fmt,
        started=timestamp(),
        finished=None,
        from_checkpoint_id=backup.from_checkpoint_id,
        to_checkpoint_id=backup.to_checkpoint_id,
        engine_url=engine_url,
        vm_id=vm_id,
        vm_name=vm_name,
        fallback=fallback,
    )

"""Download a ready backup's disks into the catalog: one image transfer per disk, disks in parallel.

Per disk: create the transfer, wait for ``transferring``, read the extents (bytes to fetch, checked
against free space before any byte moves), download into ``*.partial``, optionally compare imageio's
checksum with the local image's, and finalize the transfer; the file is sealed (fsync, hash, rename)
by ``sealing``. Any failure cancels every transfer still open before the error propagates, so the
caller can finalize the backup (the engine refuses that while a transfer is open).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ovbackup.catalog import (
    PARTIAL,
    Catalog,
    Checksum,
    DiskRecord,
    RestorePoint,
    disk_file_name,
    timestamp,
)
from ovbackup.model import Backup, Disk, DiskBackupMode
from ovbackup.reporter import Reporter
from ovbackup.sealing import PendingPoint, Unsealed, fsync_and_hash, in_background
from ovbackup.services import ImageTransfersService
from ovbackup.transfer import (
    ImageioSession,
    Progress,
    TransferError,
    commit_overlay,
    copy_sparse,
    download,
    image_checksum,
)
from ovbackup.transfer_sessions import (
    OpenTransfers,
    finalize_transfer,
    wait_transferring,
)


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


def _download_disk(
    disk: Disk,
    *,
    backup_id: str,
    from_checkpoint_id: str | None,
    point: str,
    catalog: Catalog,
    transfers: OpenTransfers,
    opts: DownloadOptions,
    reporter: Reporter,
    fallbacks: list[str],
) -> Unsealed:
    if transfers.stopping.is_set():
        raise TransferError("stopped before this disk started")
    started = time.monotonic()
    transfer = transfers.service.add_backup_download(
        disk_id=disk.id, backup_id=backup_id, inactivity_timeout=opts.inactivity_timeout
    )
    transfer_id = str(transfer.id)
    transfers.add(transfer)
    transfer = wait_transferring(transfers.service, transfer_id, opts.transfer_timeout)
    url = transfer.transfer_url or transfer.proxy_url
    if not url:
        raise TransferError(f"image transfer {transfer_id} has neither transfer_url nor proxy_url")
    proxy = transfer.proxy_url if transfer.transfer_url else None

    incremental = disk.backup_mode == DiskBackupMode.INCREMENTAL
    previous = catalog.previous_file(disk.id, from_checkpoint_id) if incremental else None
    if incremental and (previous is None or not catalog.chain_is_whole(previous)):
        # Never an incremental on a missing parent or a broken chain: take this disk in full instead.
        fallbacks.append(
            f"disk {disk.label}: no complete local file from checkpoint {from_checkpoint_id}, taken in full"
        )
        reporter.note(f"warning: {fallbacks[-1]}")
        incremental, previous = False, None
    if incremental and previous is not None and previous.format != opts.fmt:
        fallbacks.append(f"disk {disk.label}: previous file is {previous.format}, taken in full")
        reporter.note(f"warning: {fallbacks[-1]}")
        incremental, previous = False, None
    mode = "incremental" if incremental else "full"

    session = ImageioSession(url, cafile=opts.cafile, secure=opts.secure)
    try:
        extents = session.extents(incremental=incremental)
        transfers.reserve(catalog.dir, extents.data, opts.space_margin)
        final = catalog.dir / disk_file_name(point, disk.id, disk.name, mode, opts.fmt)
        partial = final.with_name(final.name + PARTIAL)
        reporter.disk_started(disk, mode, extents.data, extents.size)
        progress = Progress(lambda done, size: reporter.disk_progress(disk.id, done, size))
        try:
            fetch_started = time.monotonic()
            _fetch(url, proxy, partial, previous, catalog, opts, incremental, progress)
            download_seconds = time.monotonic() - fetch_started
        finally:
            transfers.release(extents.data)
        checksum = None
        if opts.verify:
            remote = session.checksum()
            local = image_checksum(
                partial, algorithm=str(remote["algorithm"]), block_size=int(remote["block_size"])
            )
            if local != remote["checksum"]:
                raise TransferError(
                    f"disk {disk.label}: checksum mismatch (imageio {remote['checksum'][:16]}…, "
                    f"local {local[:16]}…)"
                )
            checksum = Checksum(str(remote["algorithm"]), int(remote["block_size"]), local)
    finally:
        session.close()
    durable = in_background(fsync_and_hash, partial)  # overlaps with closing the transfer
    finalize_transfer(transfers.service, transfer_id, opts.transfer_timeout)
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
    return Unsealed(record, partial, final, durable)


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
    transfers = OpenTransfers(transfers_service)
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

"""Download a ready backup's disks into the catalog: one image transfer per disk, disks in parallel.

Per disk: create the transfer, wait for ``transferring``, read the extents (bytes to fetch, checked
against free space before any byte moves), download into ``*.partial``, optionally compare imageio's
checksum with the local image's, and finalize the transfer; the file is sealed (fsync, hash, rename)
by ``sealing``. Any failure cancels every transfer still open before the error propagates, so the
caller can finalize the backup (the engine refuses that while a transfer is open).
"""

from __future__ import annotations

import concurrent.futures as cf
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ovbackup.engine.model import Backup, BackupPhase, Disk, DiskBackupMode
from ovbackup.engine.services import ImageTransfersService, SystemService
from ovbackup.errors import (
    ExitCode,
    NotFoundError,
    OvbackupError,
    SpaceError,
    StateError,
    Terminated,
    TransferError,
)
from ovbackup.imageio.client import ImageioSession, Progress, download, image_checksum
from ovbackup.imageio.images import commit_overlay, copy_sparse
from ovbackup.jobs.capture import capture_config
from ovbackup.jobs.lifecycle import finalize_hint, interrupted_while
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.transfers import (
    OpenTransfers,
    TransferGate,
    finalize_transfer,
    wait_transferring,
)
from ovbackup.store.catalog import (
    PARTIAL,
    Catalog,
    Checksum,
    DiskRecord,
    RestorePoint,
    disk_file_name,
    timestamp,
)
from ovbackup.store.sealing import PendingPoint, Unsealed, fsync_and_hash, in_background
from ovbackup.store.vmconfig import VmConfig


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


@dataclass(frozen=True)
class _Job:
    """What every disk of one download shares."""

    backup_id: str
    from_checkpoint_id: str | None
    point: str
    catalog: Catalog
    transfers: OpenTransfers
    opts: DownloadOptions
    reporter: Reporter
    fallbacks: list[str]


def _open_transfer(job: _Job, disk: Disk) -> tuple[str, str, str | None]:
    """Create the disk's download transfer and wait until it is transferring: (id, url, proxy)."""
    if job.transfers.stopping.is_set():
        raise TransferError("stopped before this disk started")
    job.transfers.admit()  # a slot of the run's transfer gate (fleet runs), if there is one
    try:
        transfer = job.transfers.service.add_backup_download(
            disk_id=disk.id, backup_id=job.backup_id, inactivity_timeout=job.opts.inactivity_timeout
        )
    except BaseException:
        job.transfers.abandon()
        raise
    transfer_id = str(transfer.id)
    job.transfers.add(transfer)
    transfer = wait_transferring(job.transfers.service, transfer_id, job.opts.transfer_timeout)
    url = transfer.transfer_url or transfer.proxy_url
    if not url:
        raise TransferError(f"image transfer {transfer_id} has neither transfer_url nor proxy_url")
    return transfer_id, url, transfer.proxy_url if transfer.transfer_url else None


def _choose_base(job: _Job, disk: Disk) -> DiskRecord | None:
    """The local file this disk's incremental builds on; None for a full (also when the engine offers
    an incremental the catalog cannot build on: that disk is then taken in full, and the point says why)."""
    if disk.backup_mode != DiskBackupMode.INCREMENTAL:
        return None
    base = job.catalog.incremental_base(disk.id, job.from_checkpoint_id, job.opts.fmt)
    if base.record is None:
        job.fallbacks.append(f"disk {disk.label}: {base.reason}, taken in full")
        job.reporter.note(f"warning: {job.fallbacks[-1]}")
    return base.record


def _verify_checksum(session: ImageioSession, disk: Disk, partial: Path) -> Checksum:
    """imageio's checksum of the disk against the same checksum of the local image (chain included)."""
    remote = session.checksum()
    algorithm, block_size = str(remote["algorithm"]), int(remote["block_size"])
    local = image_checksum(partial, algorithm=algorithm, block_size=block_size)
    if local != remote["checksum"]:
        raise TransferError(
            f"disk {disk.label}: checksum mismatch (imageio {remote['checksum'][:16]}…, local {local[:16]}…)"
        )
    return Checksum(algorithm, block_size, local)


def _download_disk(job: _Job, disk: Disk) -> Unsealed:
    """One disk: open its transfer, choose its base, fetch, check, close; the file stays ``.partial``."""
    opts = job.opts
    started = time.monotonic()
    transfer_id, url, proxy = _open_transfer(job, disk)
    previous = _choose_base(job, disk)
    mode = "incremental" if previous is not None else "full"
    session = ImageioSession(url, cafile=opts.cafile, secure=opts.secure)
    try:
        extents = session.extents(incremental=previous is not None)
        job.transfers.reserve(job.catalog.dir, extents.data, opts.space_margin, f"disk {disk.label}")
        final = job.catalog.dir / disk_file_name(job.point, disk.id, disk.name, mode, opts.fmt)
        partial = final.with_name(final.name + PARTIAL)
        job.reporter.disk_started(disk, mode, extents.data, extents.size)
        progress = Progress(lambda done, size: job.reporter.disk_progress(disk.id, done, size))
        try:
            fetch_started = time.monotonic()
            _fetch(url, proxy, partial, previous, job.catalog, opts, progress)
            download_seconds = time.monotonic() - fetch_started
        except SpaceError:  # the space was there when we checked: another writer took it
            raise SpaceError.needing(
                f"no space left in {job.catalog.dir} while writing {final.name}",
                needed=extents.data,
                margin=opts.space_margin,
                free=shutil.disk_usage(job.catalog.dir).free,
            ) from None
        finally:
            job.transfers.release(extents.data)
        checksum = _verify_checksum(session, disk, partial) if opts.verify else None
    finally:
        session.close()
    durable = in_background(fsync_and_hash, partial)  # overlaps with closing the transfer
    finalize_transfer(job.transfers.service, transfer_id, opts.transfer_timeout)
    job.transfers.closed(transfer_id)
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
    progress: Progress,
) -> None:
    """Fetch into ``partial``: a full image, or the dirty extents on top of ``previous``."""

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
            previous is not None,
            previous.file if previous else None,
            previous.format if previous else None,
        )
        return
    if previous is None:
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
    *,
    gate: TransferGate | None = None,
    host: str | None = None,
    interrupt: Callable[[], None] | None = None,
) -> PendingPoint:
    """Download every disk (``parallel_disks`` at a time) and close every transfer.

    On any failure or interruption, every open transfer is cancelled before the exception propagates.
    ``gate`` bounds the transfers of a whole fleet run (``host``: where this backup's transfers run);
    ``interrupt`` is called while the disks download and may raise to stop them (a fleet's Ctrl-C
    reaching a job that runs in another thread).
    """
    transfers = OpenTransfers(transfers_service, gate, host)
    fallbacks: list[str] = []
    job = _Job(
        str(backup.id), backup.from_checkpoint_id, point.name, catalog, transfers, opts, reporter, fallbacks
    )
    pool = cf.ThreadPoolExecutor(max_workers=max(1, opts.parallel_disks), thread_name_prefix="disk")
    futures: list[cf.Future[Unsealed]] = []
    try:  # submitting too: a Ctrl-C between two submits must still stop the threads already running
        for disk in disks:
            futures.append(pool.submit(_download_disk, job, disk))
        downloaded = [_result(f, interrupt) for f in futures]  # first failure raises here
    except BaseException:
        transfers.stopping.set()
        for f in futures:
            f.cancel()
        transfers.cancel_all(reporter)  # running downloads fail fast once their ticket is gone
        cf.wait(futures, timeout=60)
        transfers.cancel_all(reporter)  # transfers created while we were cancelling
        pool.shutdown(wait=False, cancel_futures=True)
        for path in catalog.dir.glob(f"{point.name}.*{PARTIAL}"):  # never complete; frees a full disk
            path.unlink(missing_ok=True)
        raise
    pool.shutdown(wait=True)
    fallback = "; ".join(fallbacks) if fallbacks else point.fallback
    return PendingPoint(replace(point, fallback=fallback), tuple(downloaded), reporter.disk_finished)


def _result(future: cf.Future[Unsealed], interrupt: Callable[[], None] | None) -> Unsealed:
    if interrupt is None:
        return future.result()
    while True:  # in short waits, so ``interrupt`` is heard while a disk downloads
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            if future.done():
                raise  # the disk's own error (a socket timeout is a TimeoutError too)
            interrupt()


def new_point(
    *,
    name: str,
    backup: Backup,
    vm_id: str,
    vm_name: str,
    engine_url: str,
    fmt: str,
    fallback: str | None,
    config: VmConfig | None = None,
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
        config=config,
    )


def run_download(
    system: SystemService,
    vm_ref: str,
    backup_id: str,
    root: Path,
    opts: DownloadOptions,
    reporter: Reporter,
    *,
    disk_ids: Sequence[str],
    engine_url: str,
) -> RestorePoint:
    """Download a ready backup into the catalog as a restore point; the backup stays open (that is
    what ``download`` is for: pipelines that manage the backup themselves)."""
    vm, vm_service = system.vms_service().open(vm_ref)
    vm_name = vm.label
    service = vm_service.backups_service().backup_service(backup_id)
    backup = service.get()
    if backup.phase != BackupPhase.READY:
        phase = backup.phase.value if backup.phase else "unknown"
        raise StateError(f"backup {backup_id} is {phase}; only a ready backup can be downloaded")
    disks = service.disks()
    if disk_ids:
        missing = set(disk_ids) - {d.id for d in disks}
        if missing:
            raise NotFoundError(f"disk {', '.join(sorted(missing))} is not part of backup {backup_id}")
        disks = [d for d in disks if d.id in disk_ids]
    taken = {d.id for d in disks}
    attachments = [a for a in vm_service.disk_attachments() if a.disk.id in taken]
    config = capture_config(vm_service, vm, attachments, reporter)
    catalog = Catalog(root, vm_name)
    catalog.ensure(vm.id)
    with catalog.lock(0):
        catalog.remove_partials()
        point = new_point(
            name=catalog.new_point_name(),
            backup=backup,
            vm_id=vm.id,
            vm_name=vm_name,
            engine_url=engine_url,
            fmt=opts.fmt,
            fallback=None,
            config=config,
        )
        try:
            pending = download_backup(
                system.image_transfers_service(), backup, disks, catalog, point, opts, reporter
            )
            point = pending.start_sealing().result()
        except (KeyboardInterrupt, Terminated) as e:
            code = e.exit_code if isinstance(e, Terminated) else ExitCode.INTERRUPTED
            raise interrupted_while(vm_name, backup_id, "downloading", exit_code=code) from None
        except OvbackupError:
            # The transfers are cancelled; the backup stays open, as `download` promises.
            reporter.note(
                f"backup {backup_id} is still open on the engine: {finalize_hint(vm_name, backup_id)}"
            )
            raise
        point = replace(point, complete=True, finished=timestamp())
        catalog.write_config(point)
        catalog.record(point)
        return point

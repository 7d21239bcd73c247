"""The one-shot ``backup`` job: decide full or incremental, start, download, and always clean up.

Teardown order is the engine's: every open image transfer is finalized or cancelled first (finalizing
a backup with an open transfer is refused with 409), then the backup is finalized, then we wait for
``succeeded``/``failed`` — on success, on any error, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ovbackup.engine.model import Backup, BackupPhase, CheckpointState, Disk, Vm
from ovbackup.engine.services import SystemService, VmBackupsService, VmService
from ovbackup.errors import (
    BackupFailedError,
    Interrupted,
    NotFoundError,
    OvbackupError,
    RefusedError,
    StateError,
    Terminated,
)
from ovbackup.jobs.capture import capture_config
from ovbackup.jobs.checkpoints import trim_checkpoints
from ovbackup.jobs.download import DownloadOptions, download_backup, new_point
from ovbackup.jobs.lifecycle import finalize_backup, select_disks, wait_for_phase
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.teardown import cancel_disk_transfers, finish_after_failure
from ovbackup.jobs.transfers import TransferGate
from ovbackup.store.catalog import Catalog, RestorePoint, timestamp
from ovbackup.store.retention import chain_depth
from ovbackup.store.verify import changed_files


@dataclass(frozen=True)
class BackupOptions:
    mode: str = "auto"  # auto | full | incremental
    disk_ids: tuple[str, ...] = ()
    require_consistency: bool | None = None
    use_active: bool | None = None
    lock_wait: float = 0.0
    ready_timeout: float = 1800.0
    finish_timeout: float = 900.0
    download: DownloadOptions = field(default_factory=DownloadOptions)
    max_chain: int | None = None  # auto: full once the newest chain holds this many incrementals
    keep_checkpoints: int | None = None  # after success, remove the engine's oldest checkpoints


@dataclass(frozen=True)
class Plan:
    from_checkpoint_id: str | None
    fallback: str | None  # why a wanted incremental became full


def _never() -> None:
    pass


def plan_mode(
    catalog: Catalog, vm_service: VmService, mode: str, fmt: str, max_chain: int | None = None
) -> Plan:
    """Incremental from the newest complete restore point whose checkpoint the engine still has."""
    if mode == "full":
        return Plan(None, None)
    newest = catalog.newest_complete()
    reason = None
    if newest is not None and max_chain is not None and mode == "auto":
        depth = chain_depth(newest, catalog.points())
        if depth >= max_chain:
            return Plan(
                None, f"the chain of {newest.name} holds {depth} incrementals (--max-chain {max_chain})"
            )
    if newest is None:
        reason = f"no complete restore point in {catalog.dir}"
    elif not newest.to_checkpoint_id:
        reason = f"restore point {newest.name} has no checkpoint (raw disks only?)"
    elif newest.format != fmt:
        reason = f"restore point {newest.name} is {newest.format}, this backup is {fmt}"
    elif any(
        catalog.incremental_base(d.id, newest.to_checkpoint_id, fmt).record is None for d in newest.disks
    ):
        reason = f"files of restore point {newest.name} or of its backing chain are missing"
    elif changed := changed_files(catalog, newest):
        reason = (
            f"{changed[0]} (in the chain of restore point {newest.name}) changed since it was written: "
            "its hash no longer matches the catalog's"
        )
    else:
        try:
            checkpoint = vm_service.checkpoints_service().checkpoint_service(newest.to_checkpoint_id).get()
        except NotFoundError:
            reason = f"checkpoint {newest.to_checkpoint_id} no longer exists on the engine"
        else:
            if checkpoint.state == CheckpointState.INVALID:
                reason = f"checkpoint {newest.to_checkpoint_id} is invalid on the engine"
            else:
                return Plan(newest.to_checkpoint_id, None)
    if mode == "incremental":  # only --auto falls back to a full backup
        raise StateError(
            f"--incremental is not possible for VM {catalog.vm_name}: {reason}",
            hint="take a full backup with --full, or use --auto (a full one when needed)",
        )
    # A first backup is full by nature, not a fallback worth a warning.
    return Plan(None, None if newest is None else reason)


def _start(
    backups: VmBackupsService,
    backup_id: str,
    disks: Sequence[Disk],
    plan: Plan,
    opts: BackupOptions,
    reporter: Reporter,
) -> tuple[Backup, Plan]:
    """Start the backup; if the engine refuses the incremental because of its checkpoint, go full."""
    chosen = tuple(disks)
    try:
        backup = backups.add(
            Backup(id=backup_id, from_checkpoint_id=plan.from_checkpoint_id, disks=chosen),
            require_consistency=opts.require_consistency,
            use_active=opts.use_active,
        )
        return backup, plan
    except RefusedError as e:
        detail = (e.detail or "").lower()
        if plan.from_checkpoint_id and "checkpoint" in detail and opts.mode == "incremental":
            raise StateError(
                f"--incremental is not possible: the engine refused the incremental from checkpoint "
                f"{plan.from_checkpoint_id}: {e.detail}",
                hint="take a full backup with --full, or use --auto (a full one when needed)",
            ) from None
        if plan.from_checkpoint_id and "checkpoint" in detail:
            reason = f"the engine refused the incremental: {e.detail}"
            reporter.note(f"warning: {reason}; taking a full backup")
            full = Plan(None, reason)
            backup = backups.add(  # the refused POST created nothing: the id is still free
                Backup(id=backup_id, disks=chosen),
                require_consistency=opts.require_consistency,
                use_active=opts.use_active,
            )
            return backup, full
        raise


def finish_abandoned(
    system: SystemService, vm_service: VmService, catalog: Catalog, timeout: float, reporter: Reporter
) -> None:
    """Finish the backups of runs that died (SIGKILL, OOM, power loss): their points are still
    unfinished in the catalog. Cancel the open transfers of the VM's disks, finalize the backup, mark
    the point ended (incomplete) and go on; if the engine will not let go, fail before starting anew."""
    abandoned = catalog.unfinished()
    if not abandoned:
        return
    disks = {a.disk.id for a in vm_service.disk_attachments()}
    cancel_disk_transfers(system.image_transfers_service(), disks, reporter)
    for point in abandoned:
        reporter.note(
            f"restore point {point.name} was left unfinished by an earlier run (killed?); "
            f"finishing its backup {point.backup_id}"
        )
        service = vm_service.backups_service().backup_service(point.backup_id)
        if not finish_after_failure(service, catalog.vm_name, timeout, reporter):
            raise StateError(
                f"backup {point.backup_id} of an earlier run of VM {catalog.vm_name} could not be finished",
                hint=f"run `ovbackup cleanup {catalog.vm_name}`, then try again",
            )
        recorded = {d.file for d in point.disks} | ({point.config_file} if point.disks else set())
        for path in sorted(catalog.dir.glob(f"{point.name}.*")):
            if path.name not in recorded:  # sealed, but never recorded: nothing vouches for it
                path.unlink(missing_ok=True)
                reporter.note(f"removed {path.name}, never recorded by that run")
        if point.disks:
            catalog.record(replace(point, complete=False, finished=timestamp()))
        else:  # nothing of it is left to remember
            catalog.remove(point.name)


def run_backup(
    system: SystemService,
    vm_ref: str | Vm,
    root: Path,
    opts: BackupOptions,
    reporter: Reporter,
    *,
    engine_url: str,
    gate: TransferGate | None = None,
    interrupt: Callable[[], None] | None = None,
    on_start: Callable[[Backup, Plan], None] | None = None,
) -> RestorePoint:
    """Back up one VM (a name or id, or a VM a fleet run already listed).

    For fleet runs (jobs/fleet.py): ``gate`` bounds the run's image transfers; ``interrupt`` is called
    where the job can stop cleanly (lock taken, waiting for ready, downloading) and raises
    KeyboardInterrupt/Terminated to stop it as a signal would; ``on_start`` hears the started backup.
    """
    if isinstance(vm_ref, Vm):
        vm, vm_service = vm_ref, system.vms_service().vm_service(vm_ref.id)
    else:
        vm, vm_service = system.vms_service().open(vm_ref)
    check = interrupt or _never
    vm_name = vm.label
    catalog = Catalog(root, vm_name)
    catalog.ensure(vm.id)
    with catalog.lock(opts.lock_wait):
        check()
        finish_abandoned(system, vm_service, catalog, opts.finish_timeout, reporter)
        for path in catalog.remove_partials():
            reporter.note(f"removed partial file {path.name} left by an earlier run")
        plan = plan_mode(catalog, vm_service, opts.mode, opts.download.fmt, opts.max_chain)
        if plan.fallback:
            reporter.note(f"warning: {plan.fallback}; taking a full backup")
        attachments = vm_service.disk_attachments()
        selection = select_disks(attachments, opts.disk_ids, incremental=False, vm_name=vm_name)
        chosen = {d.id for d in selection.disks}
        config = capture_config(vm_service, vm, [a for a in attachments if a.disk.id in chosen], reporter)
        backups = vm_service.backups_service()
        # Our id, chosen before the POST and recorded in the catalog as an unfinished point: whatever
        # happens from here on (Ctrl-C while the POST is in flight, even SIGKILL), teardown or the next
        # run knows which backup to finalize.
        backup_id = str(uuid.uuid4())
        service = backups.backup_service(backup_id)
        point = new_point(
            name=catalog.new_point_name(),
            backup=Backup(id=backup_id, from_checkpoint_id=plan.from_checkpoint_id),
            vm_id=vm.id,
            vm_name=vm_name,
            engine_url=engine_url,
            fmt=opts.download.fmt,
            fallback=plan.fallback,
        )
        catalog.record(point)
        downloading = False
        try:
            backup, plan = _start(backups, backup_id, selection.disks, plan, opts, reporter)
            kind = f"incremental from {plan.from_checkpoint_id}" if plan.from_checkpoint_id else "full"
            reporter.note(f"started {kind} backup {backup_id} of VM {vm_name}")
            if on_start is not None:
                on_start(backup, plan)
            backup = wait_for_phase(
                service,
                BackupPhase.READY,
                timeout=opts.ready_timeout,
                vm_name=vm_name,
                on_poll=reporter.waiting,
                interrupt=interrupt,
                or_later=False,  # finalized by someone else: nothing left to download
            )
            point = replace(
                point,
                mode="incremental" if backup.from_checkpoint_id else "full",
                from_checkpoint_id=backup.from_checkpoint_id,
                to_checkpoint_id=backup.to_checkpoint_id,
                fallback=plan.fallback,
                config=config,
            )
            catalog.record(point)  # visible (as incomplete) while it runs
            downloading = True
            pending = download_backup(
                system.image_transfers_service(),
                backup,
                service.disks(),
                catalog,
                point,
                opts.download,
                reporter,
                gate=gate,
                host=backup.host_id or vm.host_id,  # a transfer of a live backup runs on the VM's host
                interrupt=interrupt,
            )
            point = pending.point
            sealing = pending.start_sealing()  # fsync, rename, hash while the engine finalizes
        except BaseException as e:
            # download_backup cancelled its transfers, unless a second Ctrl-C cut that short: cancel
            # what is still open of the backup's disks too, before finalizing (the engine insists).
            closed = finish_after_failure(
                service,
                vm_name,
                opts.finish_timeout,
                reporter,
                transfers=system.image_transfers_service() if downloading else None,
                disk_ids=[d.id for d in selection.disks],
                failure=e,
            )
            try:
                if closed and not downloading:  # nothing was fetched: nothing to remember
                    catalog.remove(point.name)
                elif closed:
                    catalog.record(replace(point, complete=False, finished=timestamp()))
                # not closed: stays unfinished, so the next run finishes the backup first
            except OvbackupError as failed:  # a full disk: it stays recorded as started, incomplete
                reporter.note(f"could not record the end of restore point {point.name}: {failed}")
            state = "finished" if closed else f"NOT finished: run `ovbackup cleanup {vm_name}`"
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted(f"interrupted; backup {backup_id} {state}") from None
            if isinstance(e, Terminated):
                raise Interrupted(f"{e.what}; backup {backup_id} {state}", exit_code=e.exit_code) from None
            raise
        try:
            result = finalize_backup(
                service,
                wait=True,
                wait_timeout=opts.finish_timeout,
                vm_name=vm_name,
                on_poll=reporter.waiting,
            )
        except BaseException:
            # Every disk is down and whole, but the engine did not confirm the backup (a timeout, a
            # refusal, Ctrl-C): the point keeps its files, recorded so they are never orphans, and
            # stays incomplete, so no incremental builds on it. Unfinished: the next run finishes the
            # backup on the engine first.
            catalog.record(sealing.result())
            raise
        point = sealing.result()  # the files got their final names while the engine finalized
        if result.backup is not None and result.backup.phase == BackupPhase.FAILED:
            catalog.record(replace(point, finished=timestamp()))
            raise BackupFailedError(f"backup {backup_id} of VM {vm_name} failed while finalizing")
        point = replace(
            point,
            complete=True,
            finished=timestamp(),
            verified=True if opts.download.verify else None,
        )
        catalog.write_config(point)
        catalog.record(point)
        if opts.keep_checkpoints is not None:
            trim_checkpoints(vm_service, opts.keep_checkpoints, point.to_checkpoint_id, reporter)
        return point

"""Backup lifecycle policy on top of the service tree: choose disks, wait for phases, finalize.

These are the rules an admin expects and the engine does not enforce for us: a backup is waited for
with a deadline, ``failed`` is an error, finalizing a backup that already finished is a no-op, and in
the snapshot-based flow ``ready`` may still show for a moment after finalize (ovirt-api.md §1.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from shlex import quote

from ovbackup.engine import polling
from ovbackup.engine.model import Backup, BackupPhase, Disk, DiskAttachment, DiskBackup
from ovbackup.engine.services import VmBackupService
from ovbackup.errors import (
    BackupFailedError,
    DeadlineError,
    ExitCode,
    Interrupted,
    NotFoundError,
    RefusedError,
    StateError,
)


@dataclass(frozen=True)
class DiskSelection:
    disks: tuple[Disk, ...]
    left_out: tuple[Disk, ...]  # attached disks not taken (raw disks in an incremental backup)


def select_disks(
    attachments: Sequence[DiskAttachment], requested: Sequence[str], *, incremental: bool, vm_name: str
) -> DiskSelection:
    """The disks to back up: the ones asked for, else every attached disk (incremental: only those
    enabled for incremental backup, since checkpoints only record qcow2 disks)."""
    attached = {a.disk.id: a.disk for a in attachments}
    if requested:
        missing = [d for d in requested if d not in attached]
        if missing:
            raise NotFoundError(
                f"disk {', '.join(missing)} is not attached to VM {vm_name}",
                hint=f"`ovbackup disks {quote(vm_name)}` lists the ids of its disks",
            )
        return DiskSelection(tuple(attached[d] for d in dict.fromkeys(requested)), ())
    disks = tuple(attached.values())
    if incremental:
        taken = tuple(d for d in disks if d.backup == DiskBackup.INCREMENTAL)
        left = tuple(d for d in disks if d.backup != DiskBackup.INCREMENTAL)
        disks = taken
    else:
        left = ()
    if not disks:
        what = "disks enabled for incremental backup" if incremental else "disks"
        raise NotFoundError(f"VM {vm_name} has no {what}")
    return DiskSelection(disks, left)


def finalize_hint(vm: str, backup_id: str) -> str:
    return f"finish it with `ovbackup finalize {vm} {backup_id}`"


def interrupted_while(
    vm: str, backup_id: str, doing: str, *, exit_code: ExitCode = ExitCode.INTERRUPTED
) -> Interrupted:
    """The error for a Ctrl-C / SIGTERM that leaves a backup open on purpose: say how to finish it."""
    return Interrupted(
        f"interrupted while {doing}; backup {backup_id} of VM {vm} is still open on the engine: "
        + finalize_hint(vm, backup_id),
        exit_code=exit_code,
    )


def wait_for_phase(
    service: VmBackupService,
    target: BackupPhase,
    *,
    timeout: float | None,
    vm_name: str,
    accept: Callable[[Backup], bool] | None = None,
    on_poll: polling.OnPoll | None = None,
    interrupt: Callable[[], None] | None = None,
    or_later: bool = True,
) -> Backup:
    """Poll the backup until it reaches ``target``; ``failed`` raises BackupFailedError (exit 8).

    A backup that already ``succeeded`` has passed every other phase and returns at once (it
    will never come back, so waiting would only run into the deadline). ``or_later=False`` is for callers
    that need the phase itself (the backup job needs ``ready`` to download): passing it is then a
    StateError (exit 5). Waiting for ``succeeded`` keeps going while the phase still reads ``ready``
    after finalize. ``interrupt`` is called after every poll and may raise to stop waiting.
    """

    def done(backup: Backup) -> bool:
        if interrupt is not None:
            interrupt()
        if accept is not None:
            return accept(backup)
        if backup.phase == BackupPhase.FAILED:
            raise BackupFailedError(f"backup {backup.id} of VM {vm_name} failed")
        if backup.phase != BackupPhase.SUCCEEDED or target == BackupPhase.SUCCEEDED:
            # ``finalizing`` proves nothing: a failing backup passes it too (FINALIZING_FAILURE)
            return backup.phase == target
        if or_later:  # succeeded: it went through every phase before
            return True
        raise StateError(
            f"backup {backup.id} of VM {vm_name} is already {backup.phase.value}, past {target.value}: "
            "someone else finalized it"
        )

    try:
        return polling.wait_for(
            service.get,
            done,
            timeout=timeout,
            what=f"backup {service.id}",
            describe=lambda b: b.phase.value if b.phase else "unknown phase",
            on_poll=on_poll,
        )
    except DeadlineError as e:
        hint = finalize_hint(vm_name, service.id) if target == BackupPhase.READY else None
        raise DeadlineError(
            f"timed out waiting for backup {service.id} of VM {vm_name} to be {target.value}: "
            f"{e.message.split(': ', 1)[-1]}",
            hint=hint or "it is still running on the engine",
        ) from None


@dataclass(frozen=True)
class FinalizeResult:
    backup: Backup | None
    already_finished: bool
    note: str | None = None


_ALREADY = ("no need to stop the backup again", "is already stopped", "already in")
_PREMATURE = "premature backup stop was initiated"


def finalize_backup(
    service: VmBackupService,
    *,
    wait: bool,
    wait_timeout: float | None,
    vm_name: str,
    allow_failed: bool = False,
    on_poll: polling.OnPoll | None = None,
) -> FinalizeResult:
    """Finalize a backup and (``wait``) poll until it finished.

    The engine answers 400 with a plain message when the backup already finished; that is not a failure
    for someone who wants it finished, unless it finished by failing. A backup stopped before ``ready``
    is stopped anyway ("premature backup stop", also a 400) and ends ``failed``. ``allow_failed`` (for
    cleanup) counts any finished backup as done: what matters there is that the VM leaves backup mode.
    """
    note = None
    already = False
    try:
        service.finalize()
    except RefusedError as e:
        detail = e.detail or e.reason or ""
        if _PREMATURE in detail:
            note = f"backup {service.id} was not ready yet: the engine stopped it early ({detail})"
        elif any(marker in detail for marker in _ALREADY):
            already = True
            note = f"backup {service.id} was already finished ({detail})"
            if "'FAILED'" in detail and not allow_failed:
                raise BackupFailedError(f"backup {service.id} of VM {vm_name} had already failed") from None
        else:
            raise
    if not wait:
        return FinalizeResult(None, already, note)
    try:
        backup = wait_for_phase(
            service,
            BackupPhase.SUCCEEDED,
            timeout=wait_timeout,
            vm_name=vm_name,
            accept=(lambda b: b.phase is not None and b.phase.finished) if allow_failed else None,
            on_poll=on_poll,
        )
    except NotFoundError:
        if already:  # finished long ago and already forgotten by the engine
            return FinalizeResult(None, already, note)
        raise
    return FinalizeResult(backup, already, note)

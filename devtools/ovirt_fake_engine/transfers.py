"""Image transfers (``/imagetransfers``): the engine's rules and phases, backed by the real data plane.

Everything runs under ``EngineState.lock`` and, like backups, advances lazily on the engine clock:
``settle()`` replays the transitions that are due, one ``phase_seconds`` step each. Facts follow
ovirt-api.md §4/§5.3/§6.1 and the engine's TransferDiskImageCommand:

* validation order: disk exists, backup exists (400), backup READY (409, internal phase name),
  format not ``cow`` (400). Two refusals are the fake's own texts, since the engine has no check
  there: an upload (the model's default direction) of a backup disk, and a disk outside the backup.
* POST answers ``initializing`` without URLs. One step later the session starts: a ticket id of
  its own (uuid4, like the engine's ``imagedTicketId``), qemu-nbd plus the imageio ticket
  (``DataPlane.start_transfer``; a dirty ticket with the from-checkpoint's bitmap when the disk's
  ``backup_mode`` is incremental), and only then ``transferring`` with ``transfer_url``.
  ``proxy_url`` is the same URL: there is no imageio proxy here, which is what the engine itself
  reports when ``ImageTransferProxyEnabled`` is off. If the session cannot start (daemon dead,
  ``fail_next_transfer``) the phase goes ``cancelled_system`` like the engine's
  "stopped by system" path.
* finalize: session stopped now, ``finalizing_success`` → ``finished_success``.
  cancel: session stopped now, ``cancelled_user`` → ``finalizing_cleanup`` → ``finished_cleanup``.
  system cancel: ``cancelled_system`` → ``finalizing_failure`` → ``finished_failure``.
  Once the session is stopped the URLs disappear (the engine clears the ticket id).
  finalize/cancel of a transfer that is already ending or finished is a no-op 200 here (the engine
  would blindly rewrite the phase and leave it stuck).
* inactivity: while ``transferring``, once ``inactivity_timeout`` engine-clock seconds passed
  without activity seen at the last poll, the ticket is polled: bytes served since the last poll or
  an operation in progress count as activity, otherwise the policy applies (``pause`` →
  ``paused_system``, ``cancel``/``legacy`` → ``cancelled_system``, as for a download). 0 disables.
* pause/resume/extend (TransferImageStatusCommand): pausing a download is refused (400, "handled
  by the client"), an upload goes ``paused_user``; resume of a transfer that is not paused is a
  409, a paused one goes ``resuming`` → ``transferring`` one step later; extend is the engine's
  keep-alive and changes nothing here (inactivity is judged from the ticket's activity, as the
  engine does with imageio ≥ 1.3).
* retention: finished transfers are forgotten (GET → 404) after ``transfer_retention`` seconds
  (success, engine 15 min) or ``failed_transfer_retention`` (failure/cleanup, engine 30 min).

Without a data plane attached the phases still work, but ``transfer_url`` points at a closed
loopback port: control-plane tests can drive transfers, downloads fail with "connection refused".
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import ovirtsdk4.types as types

from ovirt_fake_engine import disk_transfers
from ovirt_fake_engine.dataplane import DataPlaneError
from ovirt_fake_engine.model import ApiError, Backup, Disk, ImageTransfer, check_guid, failed, not_found

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState

_CANNOT = "Cannot transfer Virtual Disk."
DEFAULT_INACTIVITY_TIMEOUT = 60  # TransferImageClientInactivityTimeoutInSeconds
# Phases that move on by themselves, one engine step each (TransferDiskImageCommand handlers).
_NEXT = {
    "finalizing_success": "finished_success",
    "cancelled_user": "finalizing_cleanup",
    "finalizing_cleanup": "finished_cleanup",
    "cancelled_system": "finalizing_failure",
    "finalizing_failure": "finished_failure",
}
# Phases in which finalize/cancel still mean something.
_STOPPABLE = frozenset({"initializing", "transferring", "paused_system", "paused_user", "resuming"})
_NOWHERE = "https://127.0.0.1:9"  # no data plane: a closed port, downloads fail fast


def _value(enum: object | None, default: str) -> str:
    value = getattr(enum, "value", None)
    return value if isinstance(value, str) else default


def _host(state: EngineState, b: Backup) -> str:
    """TransferDiskImageCommand.initializeVds: a running VM's backup is read on the VM's host (hybrid
    backups record no host), a down VM's on any host (the first here)."""
    vm = state.vms.get(b.vm_id)
    return vm.host_id if vm is not None and vm.status == "up" else b.host_id or state.host_id


def create(state: EngineState, req: types.ImageTransfer) -> ImageTransfer:
    """POST /imagetransfers: validate in the engine's order, record an ``initializing`` transfer."""
    with state.lock:
        state.settle()
        disk_id = req.disk.id if req.disk is not None else None
        if disk_id is None:
            raise ApiError(400, "Incomplete parameters", "ImageTransfer [disk.id] required for add")
        backup_id = req.backup.id if req.backup is not None else None
        for value in (disk_id, backup_id):
            if value is not None:
                check_guid(value)
        disk = state.disks.get(disk_id)
        if disk is None:
            raise failed(400, f"{_CANNOT} The specified disk does not exist.")
        if backup_id is None:
            return _create_plain(state, req, disk)
        b = state.all_backups.get(backup_id)
        if b is None:
            raise failed(400, f"{_CANNOT} The specified VM backup does not exist.")
        if b.phase != "ready":
            raise failed(
                409,
                f"{_CANNOT} The VM backup is not in READY phase, backup phase is {b.internal_phase}.",
            )
        requested = _value(req.format, "")
        if requested == "cow":  # only an explicit cow is refused (isFormatApplicableForBackup)
            raise failed(400, f"{_CANNOT} The specified format is not applicable for VM backup.")
        direction = _value(req.direction, "upload")  # the model's default
        if direction != "download":
            raise failed(400, f"{_CANNOT} Only download is supported for VM backup, not {direction}.")
        if disk_id not in b.modes:
            raise failed(400, f"{_CANNOT} The disk {disk_id} is not part of VM backup {backup_id}.")
        now = state.now()
        timeout = req.inactivity_timeout
        t = ImageTransfer(
            id=str(uuid.uuid4()),
            disk_id=disk_id,
            backup_id=backup_id,
            direction=direction,
            format=requested or disk.format,  # omitted: the engine records the disk's format
            inactivity_timeout=DEFAULT_INACTIVITY_TIMEOUT if timeout is None else timeout,
            timeout_policy=_value(req.timeout_policy, "legacy"),
            host_id=_host(state, b),
            created=now,
            phase="initializing",
            phase_since=now,
        )
        t.doomed, state.fail_next_transfer = state.fail_next_transfer, False
        state.transfers[t.id] = t
        moving = sum(1 for x in state.transfers.values() if x.host_id == t.host_id and x.phase in _STOPPABLE)
        state.transfer_peaks[t.host_id] = max(state.transfer_peaks.get(t.host_id, 0), moving)
        everywhere = sum(1 for x in state.transfers.values() if x.phase in _STOPPABLE)
        state.transfer_peak_total = max(state.transfer_peak_total, everywhere)
        return t  # not progressed: the reply always shows initializing, without URLs


def _create_plain(state: EngineState, req: types.ImageTransfer, disk: Disk) -> ImageTransfer:
    """A transfer of a disk's active image, outside any backup (ovirt-img download/upload-disk).

    TransferDiskImageCommand.validateImageTransfer: the disk must not be illegal, not plugged to a
    VM that is not down, not locked; the image is locked until the transfer command ends.
    """
    direction = _value(req.direction, "upload")  # the model's default
    if disk.status == "illegal":
        raise failed(
            500,
            f"{_CANNOT} The following attached disks are in ILLEGAL status: {disk.alias} - please "
            "remove them and try again.",
        )
    vm = state.vms.get(disk.vm_id or "")
    if vm is not None and vm.status != "down":
        raise failed(409, f"{_CANNOT} The disk {disk.alias} is plugged to non-Down VMs: {vm.name}")
    if disk.status == "locked" or open_for_disk(state, disk.id):
        raise failed(
            409,
            f"Cannot transfer Virtual Disk: The following disks are locked: {disk.alias}. "
            "Please try again in a few minutes.",
        )
    now = state.now()
    timeout = req.inactivity_timeout
    t = ImageTransfer(
        id=str(uuid.uuid4()),
        disk_id=disk.id,
        backup_id=None,
        direction=direction,
        format=_value(req.format, "") or disk.format,
        inactivity_timeout=DEFAULT_INACTIVITY_TIMEOUT if timeout is None else timeout,
        timeout_policy=_value(req.timeout_policy, "legacy"),
        host_id=state.host_id,
        created=now,
        phase="initializing",
        phase_since=now,
    )
    t.doomed, state.fail_next_transfer = state.fail_next_transfer, False
    disk.status = "locked"
    state.transfers[t.id] = t
    return t


def get(state: EngineState, transfer_id: str) -> ImageTransfer:
    """GET /imagetransfers/{id}: settled, ``transferred`` fresh from the ticket; 404 when unknown."""
    with state.lock:
        state.settle()
        t = state.transfers.get(transfer_id)
        if t is None:
            raise not_found()
        if t.session:
            _poll(state, t, state.now())
        return t


def finalize(state: EngineState, transfer_id: str) -> None:
    """POST .../finalize: stop the session now; finished_success one step later."""
    _stop(state, transfer_id, "finalizing_success")


def cancel(state: EngineState, transfer_id: str) -> None:
    """POST .../cancel: stop the session now; cleanup phases follow."""
    _stop(state, transfer_id, "cancelled_user")


def pause(state: EngineState, transfer_id: str) -> None:
    """POST .../pause: refused for a download (ACTION_TYPE_FAILED_CANNOT_PAUSE_IMAGE_DOWNLOAD)."""
    with state.lock:
        t = get(state, transfer_id)
        if t.direction == "download":
            raise failed(
                400,
                "Cannot pause image download as it's handled by the client. "
                "Note that it can be canceled if you wish to stop it.",
            )
        if t.phase in _STOPPABLE:
            _enter(t, "paused_user", state.now())


def resume(state: EngineState, transfer_id: str) -> None:
    """POST .../resume: only a paused transfer (409 otherwise); ``resuming``, then ``transferring``."""
    with state.lock:
        t = get(state, transfer_id)
        if t.phase not in ("paused_system", "paused_user"):
            raise failed(409, "Cannot resume image transfer as it's not in a paused state.")
        _enter(t, "resuming", state.now())
        _progress(state, t, state.now())


def extend(state: EngineState, transfer_id: str) -> None:
    """POST .../extend: the engine's keep-alive; nothing to change here."""
    get(state, transfer_id)


def _stop(state: EngineState, transfer_id: str, phase: str) -> None:
    with state.lock:
        t = get(state, transfer_id)
        if t.phase not in _STOPPABLE:
            return
        now = state.now()
        _end_session(state, t)
        _enter(t, phase, now)
        _progress(state, t, now)


def abort_for_backup(state: EngineState, backup_id: str, at: float) -> None:
    """The backup failed: its open transfers are cancelled by the system (their sessions end)."""
    for t in list(state.transfers.values()):
        if t.backup_id == backup_id and t.phase in _STOPPABLE:
            _end_session(state, t)
            _enter(t, "cancelled_system", at)


def open_for_backup(state: EngineState, backup_id: str) -> bool:
    """StopVmBackupCommand.validate: a transfer of this backup whose command has not ended."""
    return any(t.backup_id == backup_id and not t.finished for t in state.transfers.values())


def open_for_disk(state: EngineState, disk_id: str) -> bool:
    """The disk is locked by a transfer whose command has not ended."""
    return any(t.disk_id == disk_id and not t.finished for t in state.transfers.values())


def settle(state: EngineState, now: float) -> None:
    """Apply due transitions, inactivity timeouts and retention (called from EngineState.settle)."""
    for t in list(state.transfers.values()):
        _progress(state, t, now)
        if t.finished:
            ok = t.phase == "finished_success"
            keep = state.transfer_retention if ok else state.failed_transfer_retention
            if now >= t.phase_since + keep:
                del state.transfers[t.id]


def close_sessions(state: EngineState) -> None:
    """Stop every qemu-nbd/ticket this engine started (engine shutdown); phases stay as they are."""
    with state.lock:
        for t in state.transfers.values():
            if t.session:
                _end_session(state, t)


def _enter(t: ImageTransfer, phase: str, at: float, state: EngineState | None = None) -> None:
    t.phase, t.phase_since = phase, at
    if state is not None:
        disk_transfers.entered(state, t)


def _progress(state: EngineState, t: ImageTransfer, now: float) -> None:
    while not t.finished:
        if t.phase == "transferring":
            if not _inactive(state, t, now):
                return
            continue
        nxt = _NEXT.get(t.phase) or (disk_transfers.UPLOAD_NEXT.get(t.phase) if t.upload else None)
        if nxt is None and t.phase not in ("initializing", "resuming"):
            return  # paused: waits for resume, finalize or cancel
        due = t.phase_since + state.phase_seconds
        if now < due:
            return
        if t.phase == "resuming":  # handleResuming extends the ticket: no session, no transfer
            t.last_activity = due
            _enter(t, "transferring" if t.session else "paused_system", due)
        elif nxt is None:
            _start_session(state, t, due)
        elif nxt == "finished_success" and t.upload and not disk_transfers.verified(state, t):
            _enter(t, "finalizing_failure", due, state)
        else:
            _enter(t, nxt, due, state)


def _start_session(state: EngineState, t: ImageTransfer, at: float) -> None:
    """initializing → transferring: qemu-nbd + imageio ticket, or cancelled_system if that fails."""
    ticket_id = str(uuid.uuid4())
    b = state.all_backups.get(t.backup_id) if t.backup_id is not None else None
    if t.doomed or (b is None and t.backup_id is not None):
        t.error = "fake engine: the transfer session was made to fail" if t.doomed else "backup gone"
        _enter(t, disk_transfers.stopped_by_system(t), at)
        return
    storage = state.storage
    if storage is None:
        t.url = f"{_NOWHERE}/images/{ticket_id}"
    else:
        incremental = b is not None and b.modes.get(t.disk_id) == "incremental"
        bitmap = b.from_checkpoint_id if b is not None and incremental else None
        try:
            session = storage.dataplane.start_transfer(
                storage.path(t.disk_id),
                bitmap=bitmap,
                ticket_id=ticket_id,
                transfer_id=t.id,
                # 0 disables the engine's check; imageio would read 0 as a zero socket timeout.
                inactivity_timeout=t.inactivity_timeout or DEFAULT_INACTIVITY_TIMEOUT,
                writable=t.upload,
                size_limit=storage.capacity(t.disk_id) if t.upload else None,
            )
        except (DataPlaneError, OSError) as e:
            t.error = str(e)
            _enter(t, disk_transfers.stopped_by_system(t), at)
            return
        t.url = session.transfer_url
    t.ticket_id, t.session, t.last_activity = ticket_id, True, at
    _enter(t, "transferring", at)


def _poll(state: EngineState, t: ImageTransfer, now: float) -> bool:
    """Read the ticket like the engine's TransferDiskImageCommand; True if there was activity.

    A ticket that cannot be read (daemon gone) ends the transfer as "stopped by system".
    """
    storage = state.storage
    if storage is None or t.ticket_id is None:
        return False
    try:
        info = storage.dataplane.ticket_info(t.ticket_id)
    except (DataPlaneError, OSError) as e:
        t.error = f"ticket {t.ticket_id} unreadable: {e}"
        _end_session(state, t, poll=False)
        _enter(t, disk_transfers.stopped_by_system(t), now)
        _progress(state, t, now)
        return False
    transferred, active = int(info.get("transferred") or 0), bool(info.get("active"))
    busy = active or transferred != t.transferred
    t.transferred, t.active = transferred, active
    if busy:
        t.last_activity = now
    return busy


def _inactive(state: EngineState, t: ImageTransfer, now: float) -> bool:
    """True when the inactivity timeout moved the transfer out of ``transferring``."""
    if t.inactivity_timeout <= 0 or now < t.last_activity + t.inactivity_timeout:
        return False
    if _poll(state, t, now) or t.phase != "transferring":
        return t.phase != "transferring"
    at = t.last_activity + t.inactivity_timeout
    if t.timeout_policy == "pause" or (t.timeout_policy == "legacy" and t.upload):
        _enter(t, "paused_system", at)
    else:  # cancel, and legacy for a download
        _end_session(state, t)
        _enter(t, "cancelled_system", at)
    return True


def _end_session(state: EngineState, t: ImageTransfer, poll: bool = True) -> None:
    """Remove the ticket and stop qemu-nbd (after a last read of ``transferred``)."""
    if not t.session:
        return
    storage = state.storage
    if storage is not None and t.ticket_id is not None:
        if poll:
            with contextlib.suppress(DataPlaneError, OSError):
                t.transferred = int(storage.dataplane.ticket_info(t.ticket_id).get("transferred") or 0)
        try:
            storage.dataplane.stop_transfer(t.ticket_id)
        except (DataPlaneError, OSError) as e:  # qemu-nbd is stopped even then
            t.error = str(e)
    t.session, t.active = False, False


# POST /imagetransfers/{id}/<verb>: what the engine's ImageTransferService answers.
ACTIONS: dict[str, Callable[[EngineState, str], None]] = {
    "cancel": cancel,
    "extend": extend,
    "finalize": finalize,
    "pause": pause,
    "resume": resume,
}

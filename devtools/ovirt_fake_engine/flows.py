"""The two backup flows of engine 4.5, as phase machines on the engine clock (one step each).

Which flow runs (BackendVmBackupsResource.add): the snapshot-based ``HybridBackupCommand`` by default
(cluster levels 4.7/4.8 have ``UseHybridBackup``), the older ``StartVmBackupCommand`` with
``?legacy=true`` or on an engine started with ``legacy=True`` (a cluster without ``UseHybridBackup``).
Facts from ovirt-api.md §1.3/§5.3 and the engine's HybridBackupCommand, StartVmBackupCommand and
StopVmBackupCommand (oVirt/ovirt-engine 0111fc6):

hybrid (VM up or down)
    POST: a snapshot is taken at once, the reply shows ``starting``, a ``<snapshot>`` and no
    ``<host>``; the snapshot carries the new checkpoint's bitmap from now on. Next step ``ready``: the
    checkpoint row is created (state ``created``) and ``to_checkpoint_id`` shown. finalize only marks
    the backup stopped (200, VM_BACKUP_STOPPED) and it still reads ``ready`` for one step, then
    ``finalizing`` (REMOVING_SNAPSHOT) for one, then ``succeeded``. A finalize before ``ready`` is no
    error: the backup still reaches ``ready`` (and its checkpoint), then finishes the same way. A
    failure (``fail_next_backup``: the snapshot fails) goes ``starting`` → ``failed`` directly
    (HybridBackupCommand.endWithFailure sets FAILED; no FINALIZING_FAILURE in this flow) and leaves
    no checkpoint, since none was created yet.
legacy, live (VM up)
    POST: the checkpoint row exists at once (state ``created``, StartVmBackupCommand.executeCommand)
    but the backup shows ``to_checkpoint_id`` only from ``ready``, when the host defined it; the
    reply shows ``initializing`` and a ``<host>``. Then ``starting``, ``ready``; finalize →
    ``finalizing`` → ``succeeded``. Failure, or a premature finalize (400 "premature backup stop"):
    ``finalizing`` (FINALIZING_FAILURE) → ``failed``, and the checkpoint row is removed
    (endWithFailure → removeCheckpointFromDb).
legacy, cold (VM down): as live without ``starting`` and without ``<host>``.

Where the fake guesses (the sources do not say, or it does not model it):
* ``fail_backup`` on a hybrid backup that is already ``ready``: the engine has no failure path
  there; the fake fails it directly and removes its checkpoint, as the legacy flow does.
* the ``<snapshot>`` link carries no ``href`` (commit 27a8d1c dropped the parent it was built from)
  and disappears once the backup finished (the engine's foreign key resets it when the snapshot is
  removed, and endWithFailure unsets it).
* the data: the fake serves the live image, not the snapshot (see storage.py), and a hybrid
  backup's disks list its ``backup_mode`` before ``ready`` too.
* the POST answers 201, as when the engine reports no VDSM tasks for the command.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ovirt_fake_engine import events, transfers
from ovirt_fake_engine.dataplane import DataPlaneError
from ovirt_fake_engine.model import TERMINAL, ApiError, Backup, Checkpoint

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState


def start(state: EngineState, b: Backup, now: float) -> None:
    """What the POST does after validation: snapshot (hybrid) or checkpoint row (legacy)."""
    events.backup(state, b, "started", now)
    cow = [d.id for d in b.disks if d.format == "cow"]
    if not cow:  # raw-only backups create no checkpoint (isBackupContainsRawDisksOnly)
        pass
    elif b.hybrid:
        b.checkpoint_id = str(uuid.uuid4())  # the snapshot's bitmap; the row comes at ready
    else:
        b.checkpoint_id = _add_checkpoint(state, b, now).id
    if b.hybrid:
        b.snapshot_id = str(uuid.uuid4())
        b.phase = "starting"
        if b.doomed:
            return  # the snapshot will fail: no bitmap to add
        if b.checkpoint_id is not None and state.storage is not None:
            try:
                state.storage.add_bitmaps(b.checkpoint_id, cow)
            except DataPlaneError:
                enter(state, b, "failed", now)


def progress(state: EngineState, b: Backup, now: float) -> None:
    """Replay every transition of ``b`` that is due by ``now``, each at its exact due time."""
    while b.phase not in TERMINAL:
        if b.phase == "ready" and not b.stopped:
            return  # waits for finalize
        due = b.phase_since + state.phase_seconds
        if now < due:
            return
        if b.phase == "initializing":
            nxt = "starting" if b.live else "ready"
        elif b.phase == "starting":
            nxt = "ready"
        elif b.phase == "ready":  # hybrid, stopped: the snapshot is being removed
            nxt = "finalizing"
        else:
            nxt = "failed" if b.failing else "succeeded"
        if nxt == "ready" and b.doomed:
            nxt = "failed" if b.hybrid else "finalizing"
            b.failing = not b.hybrid
        enter(state, b, nxt, due)


def enter(state: EngineState, b: Backup, phase: str, t: float) -> None:
    """Move ``b`` to ``phase`` at engine time ``t`` with the side effects the engine has there."""
    b.phase, b.phase_since = phase, t
    if phase == "ready":
        _ready(state, b, t)
    elif phase == "finalizing" and b.failing:
        transfers.abort_for_backup(state, b.id, t)  # their qemu-nbd must let go of the images
    elif phase == "failed":
        transfers.abort_for_backup(state, b.id, t)
        _drop_checkpoint(state, b)
        b.snapshot_id = None
        events.backup(state, b, "failed", t)
    elif phase == "succeeded":
        b.snapshot_id = None  # removed with the snapshot (fk_backups_snapshots ON DELETE SET DEFAULT)
        events.backup(state, b, "succeeded", t)
    if phase in TERMINAL:
        state.finished(b)


def _ready(state: EngineState, b: Backup, t: float) -> None:
    if b.checkpoint_id is None:
        return
    cow = [d.id for d in b.disks if d.format == "cow"]
    if b.hybrid:  # HybridBackupCommand.performNextOperation: the row only now
        _add_checkpoint(state, b, t, b.checkpoint_id)
    elif state.storage is not None:  # the host defines the checkpoint: bitmaps from now on
        try:
            state.storage.add_bitmaps(b.checkpoint_id, cow)
        except DataPlaneError:
            b.failing = True
            enter(state, b, "finalizing", t)
            return
    b.to_checkpoint_id = b.checkpoint_id


def _add_checkpoint(state: EngineState, b: Backup, t: float, checkpoint_id: str | None = None) -> Checkpoint:
    chain = state.vm_checkpoints[b.vm_id]
    cp = Checkpoint(
        id=checkpoint_id or str(uuid.uuid4()),
        vm_id=b.vm_id,
        parent_id=chain[-1].id if chain else None,
        created=t,
        description=b.description,
        disk_ids=[d.id for d in b.disks if d.format == "cow"],
    )
    chain.append(cp)
    return cp


def _drop_checkpoint(state: EngineState, b: Backup) -> None:
    """A failed backup leaves no checkpoint: the row if there is one, else the bitmaps alone."""
    if b.checkpoint_id is None:
        return
    if any(cp.id == b.checkpoint_id for cp in state.vm_checkpoints[b.vm_id]):
        state.unlink_checkpoint(b.vm_id, b.checkpoint_id)
    elif state.storage is not None:
        state.storage.remove_bitmaps(b.checkpoint_id, [d.id for d in b.disks])
    b.to_checkpoint_id = None


def finalize(state: EngineState, b: Backup, now: float) -> None:
    """StopVmBackupCommand.executeCommand on a settled backup; raw failure texts are 400 (§5.3)."""
    if b.phase in ("finalizing", *TERMINAL):
        raise ApiError(
            400,
            "Operation Failed",
            f"VM '{b.vm_id}' backup '{b.id}' is already in '{b.internal_phase}' phase, "
            "no need to stop the backup again",
        )
    if b.stopped:
        raise ApiError(
            400,
            "Operation Failed",
            f"VM '{b.vm_id}' backup '{b.id}' is already stopped, no need to stop the backup again",
        )
    if b.hybrid:
        b.stopped = True
        events.backup(state, b, "stopped", now)
        if b.phase == "ready":
            b.phase_since = now  # the stop counts from now: ready for one more step
        progress(state, b, now)
        return
    before = b.internal_phase
    b.failing = b.phase != "ready"
    enter(state, b, "finalizing", now)
    if not b.failing:
        events.backup(state, b, "finalized", now)
    progress(state, b, now)
    if b.failing:
        raise ApiError(
            400,
            "Operation Failed",
            f"Backup '{b.id}' is in '{before}' phase, premature backup stop was initiated.",
        )


def fail(state: EngineState, b: Backup, now: float) -> None:
    """Test switch: the backup fails now (legacy: through FINALIZING_FAILURE, one step)."""
    if b.hybrid or b.phase == "finalizing":
        enter(state, b, "failed", now)
        return
    b.failing = True
    enter(state, b, "finalizing", now)

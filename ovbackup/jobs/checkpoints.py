"""Which engine checkpoints to remove: the policy behind ``checkpoints purge`` and
``backup --keep-checkpoints``.

Each checkpoint is a dirty bitmap on every disk of the VM, and the engine never removes them by itself,
so they pile up (hundreds slow the VM down); they are removed oldest first. Removing one only makes an
incremental from it impossible (the engine re-links its child, ovirt-api.md, addendum), so the one the
next incremental starts from is never removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ovbackup.engine.model import Checkpoint
from ovbackup.engine.services import VmService
from ovbackup.errors import OvbackupError
from ovbackup.jobs.reporter import Reporter


def choose_purge(
    chain: Sequence[Checkpoint], *, keep: int | None, older_than: float | None, now: datetime
) -> list[Checkpoint]:
    """Checkpoints to remove, oldest first; never the newest (the next incremental starts there).

    ``keep``: leave the N newest (at least one); ``older_than``: only those created more than that
    many days before ``now``. Both given: both must hold.
    """
    candidates = list(chain[:-1])
    if keep is not None:
        candidates = list(chain[: max(0, len(chain) - max(keep, 1))])
    if older_than is not None:
        limit = now - timedelta(days=older_than)
        candidates = [c for c in candidates if c.creation_date is not None and c.creation_date < limit]
    return candidates


def choose_trim(chain: Sequence[Checkpoint], keep: int, protect: str | None) -> list[Checkpoint]:
    """Checkpoints to remove from the root (oldest) until ``keep`` remain, never ``protect``: the one
    the newest complete restore point's next incremental needs."""
    excess = len(chain) - max(keep, 0)
    doomed = []
    for checkpoint in chain:
        if excess <= 0:
            break
        if checkpoint.id == protect:
            continue
        doomed.append(checkpoint)
        excess -= 1
    return doomed


def trim_checkpoints(vm_service: VmService, keep: int, protect: str | None, reporter: Reporter) -> list[str]:
    """``backup --keep-checkpoints``: remove old checkpoints; a refusal is a warning (the backup itself
    succeeded)."""
    service = vm_service.checkpoints_service()
    removed = []
    try:
        for checkpoint in choose_trim(service.list(), keep, protect):
            service.checkpoint_service(checkpoint.id).remove()
            removed.append(checkpoint.id)
            reporter.note(f"removed checkpoint {checkpoint.id} (--keep-checkpoints {keep})")
    except OvbackupError as e:
        reporter.note(f"warning: could not remove old checkpoints: {e}")
    return removed

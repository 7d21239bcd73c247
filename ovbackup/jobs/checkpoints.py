"""Which engine checkpoints to remove: the policy behind ``checkpoints purge``.

Each checkpoint is a dirty bitmap on every disk of the VM, and the engine never removes them by itself,
so they pile up; only the root of the chain can be removed (ovirt-api.md, addendum), hence oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ovbackup.engine.model import Checkpoint


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

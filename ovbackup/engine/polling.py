"""One polling loop for every wait (backup phases, transfers): backoff, a deadline, an injectable clock.

Tests replace ``clock``/``sleep`` (or the module-level defaults) so a ten-minute wait takes no real time.
The loop never draws: whoever owns the terminal passes ``on_poll`` (hcloud-python's
``wait_until_finished`` style), so one live display at a time is the CLI's business and a closed pipe
cannot break a wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ovbackup.errors import DeadlineError

T = TypeVar("T")

#: Told the state after every poll (``"backup X: ready"``, seconds waited), and ``None`` once the wait
#: is over, so a live status line can be cleared.
OnPoll = Callable[[str | None, float], None]

#: module-level defaults, looked up at call time so tests can monkeypatch them.
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Pace:
    """Poll intervals: ``initial`` for the first ``steady`` seconds, then growing by ``factor`` up to
    ``cap`` seconds. A step that ends within ``steady`` is seen at most ``initial`` late."""

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 10.0
    steady: float = 0.0

    def intervals(self) -> Iterator[float]:
        interval, waited = self.initial, 0.0
        while True:
            yield interval
            waited += interval
            if waited >= self.steady - 1e-9:
                interval = min(self.cap, interval * self.factor)


#: backups: their phases follow VM operations (seconds to minutes); start near one second.
BACKUP_PACE = Pace()


def wait_for(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float | None,
    what: str,
    describe: Callable[[T], str] = str,
    pace: Pace = BACKUP_PACE,
    on_poll: OnPoll | None = None,
    immediately: bool = True,
) -> T:
    """Call ``fetch`` until ``done(result)``; raise DeadlineError after ``timeout`` seconds.

    ``immediately=False`` waits one interval before the first fetch: for a wait that starts right
    after an action whose reply already said the state (a new disk is ``locked``, a new transfer
    ``initializing``, a finalized one ``finalizing_success``), an instant fetch only repeats it.
    """
    now = clock
    start = now()
    elapsed = 0.0
    intervals = pace.intervals()
    try:
        if not immediately:
            sleep(next(intervals))
        while True:
            value = fetch()
            elapsed = now() - start
            if on_poll is not None:
                on_poll(f"{what}: {describe(value)}", elapsed)
            if done(value):
                return value
            if timeout is not None and elapsed >= timeout:
                raise DeadlineError(f"{what}: still {describe(value)} after {timeout:g} s")
            pause = next(intervals)
            if timeout is not None:
                pause = max(0.0, min(pause, timeout - elapsed))
            sleep(pause)
    finally:
        if on_poll is not None:
            on_poll(None, elapsed)

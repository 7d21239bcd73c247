"""The one polling loop: backoff, deadline, fake clock (no real waiting)."""

from __future__ import annotations

import pytest

from ovbackup.engine import polling
from ovbackup.errors import DeadlineError


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    t = FakeTime()
    monkeypatch.setattr(polling, "clock", t.clock)
    monkeypatch.setattr(polling, "sleep", t.sleep)
    return t


def test_backoff_starts_near_a_second_and_is_capped(fake: FakeTime) -> None:
    values = iter(range(100))
    result = polling.wait_for(lambda: next(values), lambda v: v == 8, timeout=None, what="x")
    assert result == 8
    assert fake.sleeps[0] == 1.0
    assert max(fake.sleeps) == 10.0
    assert fake.sleeps == sorted(fake.sleeps)


def test_deadline_raises_with_the_last_state(fake: FakeTime) -> None:
    with pytest.raises(DeadlineError, match="still starting after 30 s"):
        polling.wait_for(lambda: "starting", lambda v: False, timeout=30, what="backup b")
    assert fake.now == pytest.approx(30)  # the last sleep is trimmed to the deadline


def test_on_poll_is_told_each_state_and_the_end_and_nothing_is_printed(
    fake: FakeTime, capsys: pytest.CaptureFixture[str]
) -> None:
    states = iter(["starting", "starting", "ready"])
    seen: list[tuple[str | None, float]] = []
    polling.wait_for(
        lambda: next(states),
        lambda v: v == "ready",
        timeout=None,
        what="backup b",
        on_poll=lambda text, elapsed: seen.append((text, elapsed)),
    )
    assert seen == [
        ("backup b: starting", 0.0),
        ("backup b: starting", 1.0),
        ("backup b: ready", 2.5),
        (None, 2.5),
    ]
    assert capsys.readouterr() == ("", "")


def test_a_steady_pace_polls_evenly_first_then_backs_off() -> None:
    pace = polling.Pace(initial=0.1, factor=2.0, cap=1.0, steady=0.5)
    intervals = pace.intervals()
    got = [round(next(intervals), 6) for _ in range(10)]
    assert got == [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_wait_after_an_action_does_not_fetch_at_once(fake: FakeTime) -> None:
    """Right after POST /imagetransfers the reply said initializing: the first fetch waits a step,
    and a step that ends within the steady second is seen at most one interval late."""
    fetched: list[float] = []

    def fetch() -> str:
        fetched.append(fake.now)
        return "transferring" if fake.now >= 0.5 else "initializing"

    pace = polling.Pace(initial=0.1, factor=1.25, cap=1.0, steady=1.0)
    polling.wait_for(fetch, lambda v: v == "transferring", timeout=60, what="t", pace=pace, immediately=False)
    assert fetched[0] == pytest.approx(0.1)
    assert fetched[-1] == pytest.approx(0.5) and len(fetched) == 5

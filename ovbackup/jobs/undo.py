"""The cleanup stack of a run that creates things: every disk, VM, transfer or file pushes its undo as it
is created (or just before, when its id is chosen by us), and a failure unwinds them in reverse order.

An undo that fails is remembered with the way to do it by hand, so the one closing line can say exactly
what was removed and exactly what is left. Pushes may come from worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ovbackup.errors import ExitCode, HungUp, OvbackupError, Terminated, UndoneError
from ovbackup.jobs.reporter import Reporter


@dataclass
class Undo:
    what: str  # "disk web01_os-restore (id …)"
    run: Callable[[], str]  # does it; returns what happened ("removed disk …", "cancelled …")
    manual: str  # how to do it by hand, for the closing line when ``run`` fails
    kind: str = ""  # "transfer", "disk", "vm", …: lets a first pass cancel only the transfers
    done: bool = False


@dataclass(frozen=True)
class Unwound:
    removed: tuple[str, ...] = ()
    left: tuple[Undo, ...] = ()

    def summary(self) -> str:
        """One sentence for the closing error line."""
        parts = []
        if self.removed:
            parts.append(", ".join(self.removed))
        if self.left:
            parts.append(
                "LEFT BEHIND: " + "; ".join(f"{u.what} (remove it with: {u.manual})" for u in self.left)
            )
        return "; ".join(parts) if parts else "nothing had been created"


@dataclass
class UndoStack:
    reporter: Reporter
    _items: list[Undo] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    removed: list[str] = field(default_factory=list)
    left: list[Undo] = field(default_factory=list)

    def push(self, what: str, run: Callable[[], str], manual: str, *, kind: str = "") -> Undo:
        undo = Undo(what, run, manual, kind)
        with self._lock:
            self._items.append(undo)
        return undo

    def discard(self, undo: Undo) -> None:
        """The thing no longer needs undoing (a transfer that finished, a file handed to the user)."""
        with self._lock:
            undo.done = True
            if undo in self._items:
                self._items.remove(undo)

    def forget_all(self) -> None:
        """Success: everything created stays."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def unwind(self, kinds: frozenset[str] | None = None) -> Unwound:
        """Undo everything pushed so far (or only the given kinds), newest first; never raises. May be
        called again to catch what worker threads pushed meanwhile; the result covers every call."""
        while True:
            with self._lock:
                todo = [u for u in self._items if kinds is None or u.kind in kinds]
                if not todo:
                    break
                undo = todo[-1]
                self._items.remove(undo)
            try:
                outcome = undo.run()
            except (OvbackupError, KeyboardInterrupt, Terminated) as e:
                self.reporter.note(f"could not undo {undo.what}: {e or type(e).__name__}")
                self.left.append(undo)
            else:
                undo.done = True
                self.reporter.note(outcome)
                self.removed.append(outcome)
        return Unwound(tuple(self.removed), tuple(self.left))


def failed_run(job: str, e: BaseException, unwound: Unwound) -> UndoneError:
    """The one closing error of a run that unwound: why it failed, what was undone or is left, and the
    failure's own exit code (129/130/143 for SIGHUP/SIGINT/SIGTERM)."""
    if isinstance(e, HungUp):
        code, why = ExitCode.HANGUP, "hung up"
    elif isinstance(e, Terminated):
        code, why = ExitCode.TERMINATED, "terminated"
    elif isinstance(e, KeyboardInterrupt):
        code, why = ExitCode.INTERRUPTED, "interrupted"
    elif isinstance(e, OvbackupError):
        code, why = e.exit_code, str(e)
    else:
        code, why = ExitCode.ERROR, f"unexpected {type(e).__name__}: {e}"
    return UndoneError(f"{job} failed: {why}; {unwound.summary()}", exit_code=code)

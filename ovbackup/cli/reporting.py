"""How the data commands talk to the person: progress bars on a terminal, one line per disk otherwise.

All of it goes to stderr; stdout keeps the result document.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ovbackup.cli import reader_gone, write_stderr
from ovbackup.cli.render import human_size
from ovbackup.engine.model import Disk
from ovbackup.engine.polling import OnPoll
from ovbackup.store.catalog import DiskRecord


def status_line() -> OnPoll | None:
    """A live ``what: state (N s)`` line on stderr while a command waits, on a terminal only."""
    if not sys.stderr.isatty():
        return None

    def show(text: str | None, elapsed: float) -> None:
        # never raises: a closed terminal must not break a wait (or the teardown after it)
        write_stderr(f"\r\033[K{text} ({elapsed:.0f} s)" if text is not None else "\r\033[K")

    return show


class LineReporter:
    """For cron and CI logs: a line when a disk starts and when it finishes, nothing in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def waiting(self, text: str | None, elapsed: float) -> None:
        pass  # logs get the decisions (note), not a line per poll

    def _say(self, text: str) -> None:
        with self._lock:
            write_stderr(f"ovbackup: {text}\n")

    def note(self, text: str) -> None:
        self._say(text)

    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None:
        verb = {"restore": "to upload", "export": "to write"}.get(mode, "to download")
        self._say(f"disk {disk.label}: {mode}, {human_size(data_bytes)} {verb}")

    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None:
        pass

    def disk_finished(self, record: DiskRecord) -> None:
        rate = record.bytes_transferred / record.seconds if record.seconds else 0
        self._say(
            f"disk {record.alias or record.id}: {human_size(record.bytes_transferred)} in "
            f"{record.seconds:.1f} s ({human_size(int(rate))}/s) → {record.file}"
        )


class BarReporter(LineReporter):
    """On a terminal: a rich progress bar per disk (bytes, rate, ETA) and an overall one."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.total = self.progress.add_task("all disks", total=0)
        self.progress.start()

    @contextmanager
    def _drawing(self) -> Iterator[None]:
        """Draw; a terminal that went away (SSH dropped: EIO) never raises into the job or its teardown."""
        with self._lock:
            try:
                yield
            except (OSError, ValueError):
                reader_gone(sys.stderr)

    def note(self, text: str) -> None:
        with self._drawing():
            self.progress.console.print(f"ovbackup: {text}", markup=False, highlight=False)

    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None:
        with self._drawing():
            self.tasks[disk.id] = self.progress.add_task(f"{disk.label} ({mode})", total=size)
            total = self.progress.tasks[self.total].total or 0
            self.progress.update(self.total, total=total + size)

    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None:
        with self._drawing():
            task = self.tasks.get(disk_id)
            if task is None:
                return
            before = self.progress.tasks[task].completed
            self.progress.update(task, completed=done)
            self.progress.advance(self.total, done - before)

    def disk_finished(self, record: DiskRecord) -> None:
        self.note(f"disk {record.alias or record.id} done → {record.file}")

    def waiting(self, text: str | None, elapsed: float) -> None:
        # Through the progress display itself: one live display at a time, never a second writer.
        with self._drawing():
            self.progress.update(self.total, description=f"{text} ({elapsed:.0f} s)" if text else "all disks")

    def close(self) -> None:
        with self._drawing():
            self.progress.stop()


def make_reporter() -> LineReporter:
    return BarReporter() if sys.stderr.isatty() else LineReporter()


def close_reporter(reporter: LineReporter) -> None:
    if isinstance(reporter, BarReporter):
        reporter.close()

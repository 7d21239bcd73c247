"""How the data commands talk to the person: progress bars on a terminal, one line per disk otherwise.

All of it goes to stderr; stdout keeps the result document.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from ovbackup.cli import reader_gone, write_stderr
from ovbackup.cli.render import human_size
from ovbackup.engine.model import Disk
from ovbackup.engine.polling import OnPoll
from ovbackup.errors import ConfigError
from ovbackup.store.catalog import DiskRecord

if TYPE_CHECKING:
    from ovbackup.jobs.upload import RestoredDisk

PROGRESS = ("auto", "bars", "lines", "json")


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

    def disk_restored(self, disk: RestoredDisk) -> None:
        rate = disk.bytes / disk.upload_seconds if disk.upload_seconds else 0.0
        checked = ", checksum verified" if disk.verified else ""
        self.note(
            f"disk {disk.alias or disk.id}: {disk.bytes / 2**20:.1f} MiB uploaded in "
            f"{disk.upload_seconds:.1f} s ({rate / 2**20:.0f} MiB/s; {disk.seconds:.1f} s in all) "
            f"→ new disk {disk.id} on {disk.storage_domain}{checked}"
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonEvents:
    """``--progress json``: one JSON object per line on stderr, for CI steps and wrappers."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": now_iso(), **fields}, ensure_ascii=False)
        with self._lock:
            try:
                stream = self._stream or sys.stderr
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # a closed pipe must never break a job or its teardown
                pass


_TOLD_COMPLETE = float("inf")


class JsonReporter:
    """A one-VM job's Reporter for ``--progress json`` (restore): its events, nothing drawn.

    ``disk_progress`` at most once a second per disk, and once more when the disk is complete.
    """

    def __init__(self, events: JsonEvents | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.events = events or JsonEvents()
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, text: str) -> None:
        self.events.emit("note", text=text)

    def waiting(self, text: str | None, elapsed: float) -> None:
        pass  # the decisions arrive as notes; a wrapper does not want a line per poll

    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None:
        self.events.emit("disk_start", disk=disk.id, alias=disk.name, mode=mode, bytes=data_bytes, size=size)

    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None:
        now = self._clock()
        complete = size is not None and done >= size
        with self._lock:
            last = self._last.get(disk_id)
            if last == _TOLD_COMPLETE or (last is not None and now - last < 1.0 and not complete):
                return
            self._last[disk_id] = _TOLD_COMPLETE if complete else now
        self.events.emit("disk_progress", disk=disk_id, done=done, size=size)

    def disk_finished(self, record: DiskRecord) -> None:
        self.events.emit(
            "disk_done",
            disk=record.id,
            alias=record.alias,
            bytes=record.bytes_transferred,
            seconds=record.seconds,
            file=record.file,
        )

    def disk_restored(self, disk: RestoredDisk) -> None:
        self.events.emit(
            "disk_done",
            disk=disk.id,
            source=disk.source_id,
            alias=disk.alias,
            storage_domain=disk.storage_domain,
            bytes=disk.bytes,
            seconds=disk.seconds,
            upload_seconds=disk.upload_seconds,
            verified=disk.verified,
        )


Display = LineReporter | JsonReporter


def progress_mode(flag: str | None, configured: str | None) -> str:
    """``--progress`` (else the config's ``progress``, else auto) as bars, lines or json."""
    value = (flag or configured or "auto").strip().lower()
    if value not in PROGRESS:
        raise ConfigError(f"--progress must be one of {', '.join(PROGRESS)}, not {value!r}")
    if value == "auto":
        return "bars" if sys.stderr.isatty() else "lines"
    return value


def make_reporter(progress: str = "auto") -> Display:
    """The Reporter of a one-VM job: bars on a terminal, lines otherwise (auto), or JSON events."""
    mode = progress_mode(progress, None)
    if mode == "json":
        return JsonReporter()
    return BarReporter() if mode == "bars" else LineReporter()


def close_reporter(reporter: Display) -> None:
    if isinstance(reporter, BarReporter):
        reporter.close()

"""What the data plane tells the person watching: the CLI draws it, tests record it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ovbackup.engine.model import Disk
from ovbackup.store.catalog import DiskRecord

if TYPE_CHECKING:
    from ovbackup.jobs.upload import RestoredDisk


class Reporter(Protocol):
    """What the data plane tells the person watching (the CLI draws it; tests record it)."""

    def note(self, text: str) -> None: ...
    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None: ...
    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None: ...
    def disk_finished(self, record: DiskRecord) -> None: ...
    def disk_restored(self, disk: RestoredDisk) -> None:
        """A disk of a restore is uploaded (and checked): ``disk_finished`` of the way back."""
        ...

    def waiting(self, text: str | None, elapsed: float) -> None:
        """The engine's state while a job waits for it (``polling.OnPoll``); None when the wait ends."""
        ...

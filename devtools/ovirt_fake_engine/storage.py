"""Real disk images behind the fake engine's disks, kept in step with checkpoints.

Opt-in (``FakeEngine.attach_dataplane``) so the many control-plane tests stay fast. Once attached,
every VM disk has an image file in ``disk_dir``: qcow2 for ``format="cow"``, raw for ``"raw"``,
virtual size = ``provisioned_size``. A checkpoint is a persistent qcow2 dirty bitmap named after the
checkpoint id on each of its qcow2 disks (raw disks cannot hold bitmaps, which is why the engine
records only COW disks in checkpoints, ovirt-api.md §1.4).

Simplification: a real live backup exports a point-in-time view (scratch disks), while the fake
exports the live image. That is the same data as long as a test does not write to a disk between
the backup reaching ``ready`` and its transfers ending -- and the fake refuses such writes while a
transfer is open anyway (the image lock, see ``write``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from ovirt_fake_engine.dataplane import DataPlane
from ovirt_fake_engine.model import Disk


class DiskLockedError(RuntimeError):
    """A guest write hit a disk that an open image transfer holds (qemu's image lock)."""


class Storage:
    """Image files for the engine's disks plus the bitmaps that back its checkpoints."""

    def __init__(self, dataplane: DataPlane, disk_dir: Path) -> None:
        self.dataplane = dataplane
        self.disk_dir = Path(disk_dir).resolve()
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        self._paths: dict[str, Path] = {}
        self._capacity: dict[str, int] = {}
        self._lock = threading.Lock()

    def create(self, disk: Disk, capacity: int | None = None) -> Path:
        """Create the empty image of a new disk (idempotent: attaching twice keeps the data).

        A preallocated raw disk is fallocated; ``capacity`` (a qcow2 disk on a block domain) is
        the size of its "LV": the file is extended to it and uploads cannot write past it.
        """
        with self._lock:
            path = self._paths.get(disk.id)
            if path is not None:
                return path
            ext, fmt = ("qcow2", "qcow2") if disk.format == "cow" else ("raw", "raw")
            path = self.disk_dir / f"{disk.id}.{ext}"
            if not path.exists():
                prealloc = "falloc" if fmt == "raw" and not disk.sparse else None
                self.dataplane.create_disk(path, disk.provisioned_size, fmt, prealloc)
                if capacity is not None and fmt == "qcow2":
                    with path.open("r+b") as f:
                        f.truncate(max(capacity, path.stat().st_size))
            if capacity is not None and fmt == "qcow2":
                self._capacity[disk.id] = max(capacity, path.stat().st_size)
            self._paths[disk.id] = path
            return path

    def capacity(self, disk_id: str) -> int | None:
        """The "LV" size of a qcow2 disk on a block domain (None: a file domain, no limit)."""
        with self._lock:
            return self._capacity.get(disk_id)

    def remove(self, disk_id: str) -> None:
        """Delete a removed disk's image (a no-op for a disk without one)."""
        with self._lock:
            path = self._paths.pop(disk_id, None)
            self._capacity.pop(disk_id, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def path(self, disk_id: str) -> Path:
        """The image file of a disk; KeyError for a disk the engine does not have."""
        with self._lock:
            return self._paths[disk_id]

    def is_qcow2(self, disk_id: str) -> bool:
        """Only qcow2 images carry bitmaps."""
        return self.path(disk_id).suffix == ".qcow2"

    def write(self, disk_id: str, offset: int, length: int, pattern: int | None) -> None:
        """Write as the guest would (``None``: zeroes); the caller checks the image lock first."""
        self.dataplane.write(self.path(disk_id), offset, length, pattern)

    def add_bitmaps(self, checkpoint_id: str, disk_ids: list[str]) -> None:
        """Start recording "changes since this checkpoint" on each qcow2 disk of the checkpoint."""
        for disk_id in disk_ids:
            if disk_id in self._paths and self.is_qcow2(disk_id):
                path = self.path(disk_id)
                if checkpoint_id not in self.dataplane.bitmaps(path):
                    self.dataplane.add_bitmap(path, checkpoint_id)

    def remove_bitmaps(self, checkpoint_id: str, disk_ids: list[str]) -> None:
        """Drop a deleted (or never completed) checkpoint's bitmaps; missing ones are fine."""
        for disk_id in disk_ids:
            if disk_id in self._paths and self.is_qcow2(disk_id):
                path = self.path(disk_id)
                if checkpoint_id in self.dataplane.bitmaps(path):
                    self.dataplane.remove_bitmap(path, checkpoint_id)

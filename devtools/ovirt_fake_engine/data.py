"""The data-plane side of ``FakeEngine``: real disk images, guest writes and image transfers.

A mixin so engine.py keeps the HTTP, auth and fault-switch side. Attaching a
:class:`~ovirt_fake_engine.dataplane.DataPlane` is opt-in: without one the engine serves the control
plane only (transfers still change phase, but their URLs lead nowhere, see transfers.py).
"""

from __future__ import annotations

from pathlib import Path

from ovirt_fake_engine import transfers as rules
from ovirt_fake_engine.dataplane import DataPlane
from ovirt_fake_engine.model import TERMINAL, Backup, ImageTransfer
from ovirt_fake_engine.state import EngineState
from ovirt_fake_engine.storage import DiskLockedError, Storage


class DataPlaneControls:
    """Disk images, checkpoint bitmaps and transfers of a ``FakeEngine`` (which sets ``state``)."""

    state: EngineState

    def attach_dataplane(self, dataplane: DataPlane, disk_dir: Path | None = None) -> None:
        """Give every disk (existing and future) a real image in ``disk_dir`` served by ``dataplane``.

        Existing checkpoints get their bitmaps now, so seeded chains stay usable for incremental
        transfers. ``disk_dir`` defaults to ``<dataplane workdir>/disks``.
        """
        with self.state.lock:
            if self.state.storage is not None:
                raise RuntimeError("a data plane is already attached")
            storage = Storage(dataplane, disk_dir or dataplane.workdir / "disks")
            for disk in self.state.disks.values():
                storage.create(disk)
            self.state.storage = storage
            for chain in self.state.vm_checkpoints.values():
                for cp in chain:
                    storage.add_bitmaps(cp.id, cp.disk_ids)

    @property
    def dataplane(self) -> DataPlane | None:
        """The attached data plane (``kill_daemon()`` on it simulates a host crash)."""
        storage = self.state.storage
        return storage.dataplane if storage is not None else None

    @property
    def imageio_ca_file(self) -> Path | None:
        """The CA a client needs for the imageio daemon's HTTPS (None: plain HTTP or no data plane)."""
        dp = self.dataplane
        return dp.tls.ca_file if dp is not None and dp.tls is not None else None

    def _storage(self) -> Storage:
        storage = self.state.storage
        if storage is None:
            raise RuntimeError("no data plane attached: use attach_dataplane() or the data_engine fixture")
        return storage

    def disk_path(self, disk_id: str) -> Path:
        """The image file behind a disk (qcow2 or raw)."""
        return self._storage().path(disk_id)

    def write_disk(self, disk_id: str, offset: int, length: int, pattern: int | None = None) -> None:
        """Write as the guest would (``pattern`` byte, None = zeroes).

        Raises :class:`DiskLockedError` while a transfer of the disk has not finished, as the real
        image lock would. Pending phase changes are applied first, so a checkpoint that is already
        due has its bitmap before the write lands.
        """
        storage = self._storage()
        with self.state.lock:
            self.state.settle()
            if rules.open_for_disk(self.state, disk_id):
                raise DiskLockedError(f"disk {disk_id} is locked by an open image transfer")
            storage.write(disk_id, offset, length, pattern)

    def bitmaps(self, disk_id: str) -> list[str]:
        """Names of the persistent bitmaps (checkpoint ids) in a disk's image."""
        storage = self._storage()
        return storage.dataplane.bitmaps(storage.path(disk_id))

    @property
    def transfers(self) -> list[ImageTransfer]:
        """Every remembered image transfer, oldest first, phases settled to now."""
        with self.state.lock:
            self.state.settle()
            return list(self.state.transfers.values())

    def open_transfers(self) -> list[ImageTransfer]:
        """Transfers whose command has not ended (not finished_success/failure/cleanup)."""
        return [t for t in self.transfers if not t.finished]

    def open_backups(self, vm_id: str) -> list[Backup]:
        """The VM's backups that are neither succeeded nor failed."""
        return [b for b in self.state.backups(vm_id) if b.phase not in TERMINAL]

    def close_transfer_sessions(self) -> None:
        """Stop every ticket and qemu-nbd this engine started (done by ``stop()`` too)."""
        rules.close_sessions(self.state)


__all__ = ["DataPlaneControls", "DiskLockedError"]

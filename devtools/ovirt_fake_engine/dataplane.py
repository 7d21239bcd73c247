"""A real oVirt data plane for tests: the ovirt-imageio daemon serving disk images via qemu-nbd.

The fake engine calls :class:`DataPlane` to implement ``/imagetransfers``, and ovbackup's transfer
code talks to the real daemon, so the tests exercise the same HTTP API, NBD backend, extents and
dirty bitmaps as a production host. Nothing here is mocked; nothing needs root or system paths.

:class:`DataPlane` is the face the rest of the package uses; the work is done by one module per
job: daemon.py (the imageio daemon and its tickets), exports.py (qemu-nbd exports behind tickets),
images.py (creating, writing and bitmapping images) and procs.py (running and stopping programs).
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path

from ovirt_fake_engine import images
from ovirt_fake_engine.daemon import ImageioDaemon, TlsFiles, make_tls
from ovirt_fake_engine.exports import NbdExports, Transfer
from ovirt_fake_engine.images import image_info
from ovirt_fake_engine.procs import DataPlaneError

# Safety net: if a test run exits without stop() (a crashed fixture, sys.exit in a thread),
# still stop every process we started. The normal path is stop()/the context manager.
_LIVE: weakref.WeakSet[DataPlane] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for dp in list(_LIVE):
        with contextlib.suppress(Exception):
            dp.stop()


class DataPlane(ImageioDaemon):
    """An ovirt-imageio daemon on loopback and the qemu-nbd exports behind its tickets.

    Layout under ``workdir``: the daemon's (daemon.py) plus ``logs/qemu-nbd-<n>.log``.
    """

    def __init__(self, workdir: Path, tls: TlsFiles | None = None) -> None:
        super().__init__(workdir, tls)
        self._exports = NbdExports(self)

    def start(self) -> None:
        """Start the daemon (again after a kill: tickets do not survive, the port changes)."""
        _LIVE.add(self)
        super().start()

    def stop(self) -> None:
        """Stop every transfer and the daemon; safe to call twice or after failures."""
        errors = self._exports.stop_all()
        try:
            super().stop()
        finally:
            _LIVE.discard(self)
        if errors:
            raise DataPlaneError("cleanup problems: " + "; ".join(errors))

    # ---- transfers (exports.py) -------------------------------------------------------------
    def start_transfer(
        self,
        path: Path,
        *,
        bitmap: str | None = None,
        ticket_id: str | None = None,
        transfer_id: str | None = None,
        inactivity_timeout: int = 60,
        timeout: int = 3600,
        writable: bool = False,
        size_limit: int | None = None,
    ) -> Transfer:
        """Export ``path`` and install its ticket: see :meth:`NbdExports.start_transfer`."""
        return self._exports.start_transfer(
            path,
            bitmap=bitmap,
            ticket_id=ticket_id,
            transfer_id=transfer_id,
            inactivity_timeout=inactivity_timeout,
            timeout=timeout,
            writable=writable,
            size_limit=size_limit,
        )

    def transfers(self) -> list[Transfer]:
        """The exports that are up."""
        return self._exports.transfers()

    def stop_transfer(self, ticket_id: str) -> None:
        """Remove the ticket and stop its qemu-nbd (a no-op for an unknown id)."""
        self._exports.stop_transfer(ticket_id)

    # ---- images (images.py) -----------------------------------------------------------------
    def create_disk(
        self, path: Path, size: int, fmt: str = "qcow2", preallocation: str | None = None
    ) -> Path:
        """Create an empty image: see :func:`images.create`."""
        return images.create(path, size, fmt, preallocation)

    def write(self, path: Path, offset: int, length: int, pattern: int | None = None) -> None:
        """Write as the guest would (``None``: zeroes): see :func:`images.write`."""
        images.write(path, offset, length, pattern)

    def add_bitmap(self, path: Path, name: str) -> None:
        """Add an enabled persistent dirty bitmap (a checkpoint)."""
        images.add_bitmap(path, name)

    def remove_bitmap(self, path: Path, name: str) -> None:
        """Remove a bitmap, as the engine does when a checkpoint is deleted."""
        images.remove_bitmap(path, name)

    def bitmaps(self, path: Path) -> list[str]:
        """Names of the persistent bitmaps in a qcow2 image."""
        return images.bitmaps(path)


@contextlib.contextmanager
def running_dataplane(workdir: Path, tls: TlsFiles | None = None) -> Iterator[DataPlane]:
    """``with running_dataplane(tmp_path) as dp:`` -- for fixtures that prefer a function."""
    dp = DataPlane(workdir, tls)
    dp.start()
    try:
        yield dp
    finally:
        dp.stop()


__all__ = [
    "DataPlane",
    "DataPlaneError",
    "TlsFiles",
    "Transfer",
    "image_info",
    "make_tls",
    "running_dataplane",
]

"""The one place that reaches into ovirt-imageio's private modules: local images through the page cache.

``ovirt_imageio.client`` opens every local image with a qemu-nbd it starts itself and, when the file
system allows it, with ``cache=none`` (O_DIRECT). That suits a hypervisor, whose page cache belongs to
its guests; on a backup host it costs a second trip to the disk: ovbackup hashes each file right after
its download (the file hash the catalog records), and an O_DIRECT-written file has to be read back
from the disk for that — measured with ``benchmarks/backup.py``, the hash then took as long as the
download. With ``cache=writeback`` the hash reads memory, while :class:`ovbackup.imageio.client.WriteBehind`
flushes the file during the download and the fsync before the rename still makes it durable.

The client has no option for it, so this replaces ``Server._can_use_direct_io`` (its choice between
``none`` and ``writeback``) with one that says no. It is applied only on the ovirt-imageio versions it
was tested with (``TESTED``) and only if the attribute is where it was; anything else leaves imageio as
it is (O_DIRECT: correct, only slower).
"""

from __future__ import annotations

import threading

TESTED = ((2, 4), (2, 5))  # ovirt-imageio major.minor
_lock = threading.Lock()
_state: dict[str, bool] = {}
_replaced: dict[str, object] = {}  # what it replaced, for the tests to put back


def _version() -> tuple[int, ...] | None:
    try:
        from ovirt_imageio._internal import version
    except ImportError:
        return None
    try:
        return tuple(int(part) for part in str(version.string).split(".")[:2])
    except ValueError:
        return None


def page_cache_images() -> bool:
    """Make imageio's local qemu-nbd use the page cache; True when it does (idempotent, thread-safe)."""
    with _lock:
        if "applied" not in _state:
            _state["applied"] = _apply()
        return _state["applied"]


def _apply() -> bool:
    if _version() not in TESTED:
        return False
    try:
        from ovirt_imageio._internal import qemu_nbd
    except ImportError:
        return False
    server = getattr(qemu_nbd, "Server", None)
    if server is None or not callable(getattr(server, "_can_use_direct_io", None)):
        return False

    def _no_direct_io(self: object) -> bool:
        return False

    _replaced["_can_use_direct_io"] = server.__dict__["_can_use_direct_io"]
    server._can_use_direct_io = _no_direct_io
    return True

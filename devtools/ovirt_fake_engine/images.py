"""Disk images as the guest and the engine change them: create, write, bitmaps, ``qemu-img info``.

A checkpoint is a persistent qcow2 dirty bitmap; the bitmap is persistent in the qcow2 and stays
enabled, so it accumulates every write since it was added (exporting ``chk1`` after ``chk2`` exists
still gives "everything since chk1"). Granularity is 64 KiB (the cluster size): unaligned writes
show as rounded-up dirty ranges. While a transfer's qemu-nbd has an image open, writes and bitmap
changes fail with 'Failed to get "write" lock' (qemu's image locking): stop transfers first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ovirt_fake_engine.procs import DataPlaneError, run


def image_info(path: Path) -> dict[str, Any]:
    """Return ``qemu-img info`` JSON; ``-U`` so it works while a transfer has the image open."""
    out = run(["qemu-img", "info", "--output=json", "-U", str(path)], "qemu-img info")
    info: dict[str, Any] = json.loads(out)
    return info


def create(path: Path, size: int, fmt: str = "qcow2", preallocation: str | None = None) -> Path:
    """Create an empty image (all unallocated: every extent is a hole, unless ``preallocation``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = ["-o", f"preallocation={preallocation}"] if preallocation else []
    run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(path), str(size)], "qemu-img create")
    return path


def write(path: Path, offset: int, length: int, pattern: int | None = None) -> None:
    """Write as the guest would: ``pattern`` fills bytes, ``None`` writes zeroes.

    Zero writes (``write -z``) make qcow2 zero clusters: allocated, reported as
    ``zero: true, hole: false`` and dirty in bitmaps, but no data is sent for them.
    """
    fmt = image_info(path)["format"]
    cmd = f"write -z {offset} {length}" if pattern is None else f"write -P {pattern:#04x} {offset} {length}"
    out = run(["qemu-io", "-f", fmt, "-c", cmd, str(path)], "qemu-io")
    # Older qemu-io printed "write failed" but exited 0; do not trust the exit code alone.
    if "failed" in out:
        raise DataPlaneError(f"qemu-io {cmd!r} on {path}: {out}")


def add_bitmap(path: Path, name: str) -> None:
    """Add an enabled persistent dirty bitmap (a checkpoint) to a qcow2 image."""
    run(["qemu-img", "bitmap", "--add", "--enable", str(path), name], "qemu-img bitmap")


def remove_bitmap(path: Path, name: str) -> None:
    """Remove a bitmap, as the engine does when a checkpoint is deleted."""
    run(["qemu-img", "bitmap", "--remove", str(path), name], "qemu-img bitmap")


def bitmaps(path: Path) -> list[str]:
    """Names of the persistent bitmaps in a qcow2 image."""
    specific = image_info(path).get("format-specific", {}).get("data", {})
    return [b["name"] for b in specific.get("bitmaps", [])]

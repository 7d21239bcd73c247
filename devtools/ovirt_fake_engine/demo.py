"""The seeded VM with real disks that the ``data_engine`` fixture and ``python -m ovirt_fake_engine
--data-dir`` share, so what a person pokes at by hand is what the tests exercise.

``web01`` (up) has a qcow2 disk ``web01_os`` enabled for incremental backup, about a quarter
filled in four regions with distinct byte patterns, and a raw disk ``web01_raw`` with two regions.
The regions are public so tests can predict extents and dirty ranges.
"""

from __future__ import annotations

from ovirt_fake_engine.engine import FakeEngine
from ovirt_fake_engine.model import DiskSpec, Vm

MiB = 1 << 20


def os_regions(size: int) -> list[tuple[int, int, int]]:
    """(offset, length, pattern) of the data in ``web01_os``: 4 regions of size/16 = 25% of the disk."""
    length = size // 16
    offsets = (0, size * 5 // 32, size // 2, size - length)
    return [(off, length, pattern) for off, pattern in zip(offsets, (0x11, 0x22, 0x33, 0x44), strict=True)]


def raw_regions(size: int) -> list[tuple[int, int, int]]:
    """(offset, length, pattern) of the data in ``web01_raw``: 2 regions of size/16."""
    length = size // 16
    return [(0, length, 0x55), (size // 2, length, 0x66)]


class DataEngine(FakeEngine):
    """A ``FakeEngine`` with a data plane and the seeded ``web01``; ``web01`` is its ``Vm``."""

    web01: Vm


def seed_web01(engine: FakeEngine, os_size: int = 128 * MiB, raw_size: int = 64 * MiB) -> Vm:
    """Create ``web01`` with real, partly written disks (the engine needs a data plane attached)."""
    vm = engine.add_vm(
        "web01",
        status="up",
        disks=[
            DiskSpec(alias="web01_os", format="cow", backup="incremental", provisioned_size=os_size),
            DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=raw_size),
        ],
    )
    os_disk, raw_disk = vm.disks
    for offset, length, pattern in os_regions(os_size):
        engine.write_disk(os_disk.id, offset, length, pattern)
    for offset, length, pattern in raw_regions(raw_size):
        engine.write_disk(raw_disk.id, offset, length, pattern)
    return vm

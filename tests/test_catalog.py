"""The catalog: atomic manifest, restore-point lookups, partial files, and the per-VM lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ovbackup.errors import ConfigError, LockedError
from ovbackup.store.catalog import Catalog, DiskRecord, RestorePoint, disk_file_name, utc_stamp


def point(name: str, *, complete: bool = True, disks: tuple[DiskRecord, ...] = ()) -> RestorePoint:
    return RestorePoint(
        name=name,
        backup_id=f"b-{name}",
        mode="full",
        format="qcow2",
        started="s",
        finished="f",
        from_checkpoint_id=None,
        to_checkpoint_id=f"c-{name}",
        engine_url="https://e",
        vm_id="vm-1",
        vm_name="web01",
        complete=complete,
        disks=disks,
    )


def disk(file: str, backing: str | None = None) -> DiskRecord:
    return DiskRecord(
        id="d1", alias="os", mode="full", format="qcow2", virtual_size=1, file=file, backing_file=backing
    )


def test_points_round_trip_and_newest_complete(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    cat.ensure("vm-1")
    cat.record(point("20260101T000000Z", disks=(disk("a.qcow2"),)))
    cat.record(point("20260102T000000Z", disks=(disk("b.qcow2", "a.qcow2"),)))
    cat.record(point("20260103T000000Z", complete=False))
    newest = cat.newest_complete()
    assert newest is not None and newest.name == "20260102T000000Z"
    assert [d.file for d in cat.chain(newest.disks[0])] == ["b.qcow2", "a.qcow2"]
    assert cat.previous_file("d1", "c-20260102T000000Z") == disk("b.qcow2", "a.qcow2")
    assert cat.previous_file("d1", "c-20260101T000000Z") == disk("a.qcow2")
    assert cat.previous_file("d1", "c-20260103T000000Z") is None  # that point is not complete
    assert cat.previous_file("d1", None) is None
    manifest = json.loads((tmp_path / "web01" / "catalog.json").read_text())
    assert [p["complete"] for p in manifest["points"]] == [True, True, False]


def test_find_by_prefix_and_backup_id(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    cat.record(point("20260101T000000Z"))
    cat.record(point("20260102T000000Z"))
    assert cat.find("b-20260101T000000Z").name == "20260101T000000Z"
    assert cat.find("20260102").name == "20260102T000000Z"
    with pytest.raises(ConfigError, match="more than one"):
        cat.find("2026")


def test_directory_of_another_vm_is_refused(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    cat.record(point("20260101T000000Z"))
    with pytest.raises(ConfigError, match="another VM"):
        Catalog(tmp_path, "web01").ensure("vm-other")


def test_damaged_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "web01").mkdir()
    (tmp_path / "web01" / "catalog.json").write_text("{half")
    with pytest.raises(ConfigError, match="cannot read catalog"):
        Catalog(tmp_path, "web01").points()


def test_a_crash_while_writing_never_leaves_half_a_manifest(tmp_path: Path) -> None:
    """Kill a writer mid-loop: the manifest always parses and holds whole points."""
    script = (
        "import sys; from pathlib import Path\n"
        "from tests.test_catalog import point\n"
        "from ovbackup.store.catalog import Catalog\n"
        "cat = Catalog(Path(sys.argv[1]), 'web01')\n"
        "i = 0\n"
        "while True:\n"
        "    cat.record(point(f'2026{i:010d}'))\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=Path(__file__).parent.parent)
    manifest = tmp_path / "web01" / "catalog.json"
    deadline = time.monotonic() + 60  # a loaded machine may take long to start the writer at all
    while proc.poll() is None and time.monotonic() < deadline:
        if manifest.exists() and manifest.stat().st_size > 2000:  # a few points in: it is mid-loop
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    points = Catalog(tmp_path, "web01").points()
    assert points and all(p.complete for p in points)
    assert not list((tmp_path / "web01").glob("catalog.json.*"))  # only hidden temp files may remain


def test_partials_are_removed(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    cat.dir.mkdir(parents=True)
    (cat.dir / "x.qcow2.partial").write_text("half")
    (cat.dir / "y.qcow2").write_text("whole")
    assert [p.name for p in cat.remove_partials()] == ["x.qcow2.partial"]
    assert (cat.dir / "y.qcow2").exists()


def test_file_names_sort_by_time_and_show_disk_and_mode() -> None:
    early = disk_file_name("20260101T000000Z", "d-1", "web01 os", "full", "qcow2")
    late = disk_file_name("20260102T000000Z", "d-1", "web01 os", "incremental", "qcow2")
    assert early == "20260101T000000Z.web01_os.d-1.full.qcow2"
    assert sorted([late, early]) == [early, late] and ".incremental." in late
    assert len(utc_stamp()) == len("20260101T000000.000Z")


def test_new_point_names_never_collide(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    first = cat.new_point_name()
    cat.record(point(first))
    (cat.dir / f"{cat.new_point_name()}.os.d1.full.qcow2.partial").write_text("")
    names = {first}
    for _ in range(5):
        name = cat.new_point_name()
        assert name not in names and not list(cat.dir.glob(f"{name}.*"))
        cat.record(point(name))
        names.add(name)


def test_lock_is_exclusive_and_released_when_the_holder_dies(tmp_path: Path) -> None:
    cat = Catalog(tmp_path, "web01")
    cat.dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
            str(cat.dir / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(LockedError, match="another ovbackup run"), cat.lock(wait=0.3):
        pass
    holder.kill()
    holder.wait()
    with cat.lock(wait=0):  # the dead holder's lock is gone
        assert (cat.dir / ".lock").read_text() == str(os.getpid())

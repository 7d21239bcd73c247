"""``export``: each disk of a restore point as one standalone image, byte-exact, never overwriting, never
half-written — checked with ``qemu-img info``/``compare`` against the source disk at the point's time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from ovirt_fake_engine.demo import DataEngine

from ovbackup.imageio import images
from tests.harness import Cli
from tests.test_cli_backup_job import MiB, backup, files_by_disk, same_image, snapshot


def test_each_point_exports_as_standalone_byte_exact_images(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, raw_disk = data_engine.web01.disks
    full = backup(dcli).json()
    snap1 = snapshot(data_engine, tmp_path, "1")
    data_engine.write_disk(os_disk.id, 3 * MiB, 1 * MiB, 0xE1)
    data_engine.write_disk(raw_disk.id, 20 * MiB, 1 * MiB, 0xE2)
    inc1 = backup(dcli).json()
    data_engine.write_disk(os_disk.id, 90 * MiB, 2 * MiB, 0xE3)
    inc2 = backup(dcli).json()
    snap3 = snapshot(data_engine, tmp_path, "3")
    assert inc2["mode"] == "incremental"
    assert files_by_disk(inc2)[os_disk.id]["backing_file"] == files_by_disk(inc1)[os_disk.id]["file"]

    out = tmp_path / "export-latest"
    r = dcli("-o", "json", "export", "web01", "--to", str(out))  # POINT defaults to the newest
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["point"] == inc2["name"] and doc["vm"] == {"id": data_engine.web01.id, "name": "web01"}
    for d in doc["disks"]:
        path = Path(d["file"])
        assert path.parent == out and path.suffix == ".qcow2"
        info = images.image_info(path)
        assert info["format"] == "qcow2" and "backing-filename" not in info  # one standalone image
        assert same_image(path, snap3[d["source_id"]])
    ovf = (inc2["config"] or {}).get("ovf")  # engines that give the OVF: it is exported as vm.ovf
    assert doc["ovf"] == (str(out / "vm.ovf") if ovf else None)
    if ovf:
        assert (out / "vm.ovf").read_text() == ovf
    expected = ["web01_os.qcow2", "web01_raw.qcow2", *(["vm.ovf"] if ovf else [])]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)

    first = tmp_path / "export-first"
    r = dcli("-o", "json", "export", "web01", full["name"], "--to", str(first), "--format", "raw")
    assert r.code == 0, r.stderr
    for d in r.json()["disks"]:
        path = Path(d["file"])
        assert images.image_info(path)["format"] == "raw"
        assert same_image(path, snap1[d["source_id"]])
        assert path.stat().st_blocks * 512 < path.stat().st_size  # sparse: zeros are holes
    assert not same_image(first / "web01_os.raw", snap3[os_disk.id])


def test_export_refuses_to_overwrite_and_touches_nothing(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, _ = data_engine.web01.disks
    backup(dcli)
    out = tmp_path / "out"
    out.mkdir()
    (out / "web01_raw.qcow2").write_bytes(b"mine")
    r = dcli("export", "web01", "--to", str(out))
    assert r.code == 2 and "never overwrites" in r.stderr and "web01_raw.qcow2" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["web01_raw.qcow2"]  # not even the other disk
    assert (out / "web01_raw.qcow2").read_bytes() == b"mine"
    only = dcli("-o", "json", "export", "web01", "--to", str(out), "--disk", "web01_os")
    assert only.code == 0, only.stderr
    assert [d["source_id"] for d in only.json()["disks"]] == [os_disk.id]
    unknown = dcli("export", "web01", "--to", str(out), "--disk", "nope")
    assert unknown.code == 4 and "no disk 'nope'" in unknown.stderr


def test_export_writes_partial_files_then_renames(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup(dcli)
    out = tmp_path / "out"
    seen: list[list[str]] = []
    real = images.convert

    def watching(src: Path, dest: Path, fmt: str, *, on_progress: object = None) -> None:
        def progress(fraction: float) -> None:
            seen.append(sorted(p.name for p in out.iterdir()))

        real(src, dest, fmt, on_progress=progress)

    monkeypatch.setattr("ovbackup.jobs.export.convert", watching)
    r = dcli("-o", "json", "export", "web01", "--to", str(out))
    assert r.code == 0, r.stderr
    assert ["web01_os.qcow2.partial"] in seen  # while the first disk is written, only its .partial
    assert ["web01_os.qcow2", "web01_raw.qcow2.partial"] in seen
    ovf = ["vm.ovf"] if r.json()["ovf"] else []
    assert sorted(p.name for p in out.iterdir()) == sorted(["web01_os.qcow2", "web01_raw.qcow2", *ovf])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_interrupted_export_removes_what_it_wrote(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int, code: int
) -> None:
    backup(dcli)
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("keep")
    real = images.convert
    calls: list[Path] = []

    def interrupt_second(src: Path, dest: Path, fmt: str, *, on_progress: object = None) -> None:
        calls.append(dest)
        if len(calls) == 2:  # the first disk is complete; the second is half-written
            dest.write_bytes(b"half")
            os.kill(os.getpid(), sig)
        real(src, dest, fmt)

    monkeypatch.setattr("ovbackup.jobs.export.convert", interrupt_second)
    r = dcli("export", "web01", "--to", str(out))
    assert r.code == code, r.stderr
    assert "Traceback" not in r.stderr
    assert r.error_lines and "removed" in r.error_lines[-1] and "web01_os.qcow2" in r.error_lines[-1]
    assert sorted(p.name for p in out.iterdir()) == ["unrelated.txt"]


def test_export_of_an_unknown_or_incomplete_point(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()  # the directory exists, the VM has no points in it yet
    r = dcli("export", "web01", "--to", str(tmp_path / "x"))
    assert r.code == 4 and "no restore points of VM 'web01'" in r.stderr
    backup(dcli)
    by_id = dcli("-o", "json", "export", data_engine.web01.id, "--to", str(tmp_path / "by-id"))
    assert by_id.code == 0, by_id.stderr  # the VM's id works as well as its name
    missing = dcli("export", "web01", "20990101", "--to", str(tmp_path / "y"))
    assert missing.code == 4 and "no restore point matches" in missing.stderr
    no_dest = dcli("export", "web01")
    assert no_dest.code == 2 and "--to" in no_dest.stderr

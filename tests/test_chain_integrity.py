"""``backup`` never builds an incremental on a chain file that changed since it was written: each file's
size and mtime are recorded when it is sealed, checked before every incremental, and the file is hashed
only when they differ — a mismatch is a full backup (``--auto``, with the reason) or an error
(``--incremental``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ovirt_fake_engine.demo import DataEngine

from ovbackup.store import verify
from tests.harness import Cli
from tests.test_cli_backup_job import MiB, backup, files_by_disk, point_dir


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the chain check reads in full (a spy on the real hash)."""
    names: list[str] = []
    real = verify.file_hash

    def spy(path: Path, algorithm: str = "sha256") -> str:
        names.append(path.name)
        return real(path, algorithm)

    monkeypatch.setattr(verify, "file_hash", spy)
    return names


def later_mtime(path: Path, before: os.stat_result) -> None:
    """Make sure a write shows in the mtime even on a coarse file-system clock."""
    if path.stat().st_mtime_ns == before.st_mtime_ns:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))


def flip_last_byte(path: Path) -> None:
    before = path.stat()
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte ^ 0xFF]))
    assert path.stat().st_size == before.st_size  # the same size: only the hash can tell
    later_mtime(path, before)


def test_a_changed_byte_in_the_chain_is_never_built_on(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, hashed: list[str]
) -> None:
    os_disk = data_engine.web01.disks[0]
    full = backup(dcli).json()
    base = files_by_disk(full)[os_disk.id]
    path = point_dir(tmp_path) / base["file"]
    assert (base["file_size"], base["file_mtime_ns"]) == (path.stat().st_size, path.stat().st_mtime_ns)
    data_engine.write_disk(os_disk.id, 1 * MiB, 1 * MiB, 0xA1)
    inc = backup(dcli).json()
    assert inc["mode"] == "incremental" and hashed == []  # nothing changed: nothing read in full

    flip_last_byte(path)  # the full image under the newest point's incremental
    refused = backup(dcli, "--incremental")
    assert refused.code == 5, refused.stderr
    (line,) = refused.error_lines
    assert base["file"] in line and "hash no longer matches" in line

    r = backup(dcli)
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["mode"] == "full" and base["file"] in point["fallback"]
    assert all(d["mode"] == "full" and d["backing_file"] is None for d in point["disks"])
    (warning,) = [x for x in r.stderr.splitlines() if "warning" in x]
    assert base["file"] in warning and "taking a full backup" in warning
    assert hashed == [base["file"]] * 2  # once per run that looked at it, and only that file


def test_a_touched_file_is_hashed_once_and_still_built_on(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, hashed: list[str]
) -> None:
    os_disk = data_engine.web01.disks[0]
    full = backup(dcli).json()
    base = files_by_disk(full)[os_disk.id]
    path = point_dir(tmp_path) / base["file"]
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))  # `touch`, a copy
    inc = backup(dcli).json()
    assert inc["mode"] == "incremental" and inc["fallback"] is None
    assert hashed == [base["file"]]  # the stamp differed: read once, the content is the same
    recorded = files_by_disk(dcli("-o", "json", "catalog", "web01").json()[0])[os_disk.id]
    assert recorded["file_mtime_ns"] == path.stat().st_mtime_ns  # the new stamp is recorded
    hashed.clear()
    data_engine.write_disk(os_disk.id, 2 * MiB, 1 * MiB, 0xA2)
    assert backup(dcli).json()["mode"] == "incremental"
    assert hashed == []


def test_a_catalog_without_stamps_is_hashed_once(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, hashed: list[str]
) -> None:
    """Catalogs written before ovbackup recorded sizes and mtimes: their files are hashed the first
    time, then stamped, so a changed byte is still found and later runs are cheap."""
    full = backup(dcli).json()
    manifest = point_dir(tmp_path) / "catalog.json"
    document = json.loads(manifest.read_text())
    for point in document["points"]:
        for disk in point["disks"]:
            del disk["file_size"], disk["file_mtime_ns"]
    manifest.write_text(json.dumps(document))
    inc = backup(dcli).json()
    assert inc["mode"] == "incremental"
    assert sorted(hashed) == sorted(d["file"] for d in full["disks"])
    hashed.clear()
    assert backup(dcli).json()["mode"] == "incremental" and hashed == []


def test_files_prune_merges_or_repoints_are_stamped(
    dcli: Cli, data_engine: DataEngine, hashed: list[str]
) -> None:
    """prune --merge writes new files and rewrites the headers of the kept children: their new size,
    mtime and hash are recorded, so the next backup builds on them without reading them."""
    os_disk = data_engine.web01.disks[0]
    for i in range(3):
        data_engine.write_disk(os_disk.id, (1 + i) * MiB, MiB, 0xB0 + i)
        assert backup(dcli).code == 0
    pruned = dcli("-o", "json", "prune", "web01", "--keep-last", "2", "--merge", "--yes")
    assert pruned.code == 0, pruned.stderr
    assert pruned.json()["merged"]  # a file was written and its child re-pointed
    hashed.clear()
    data_engine.write_disk(os_disk.id, 9 * MiB, MiB, 0xBF)
    r = backup(dcli)
    assert r.code == 0, r.stderr
    assert r.json()["mode"] == "incremental" and hashed == []

"""A full disk: the backup directory on a small tmpfs of its own (mounted for the test; we are root in CI,
and scripts/setup needs root too), filled up by another writer in the middle of a download."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovirt_fake_engine.demo import DataEngine

from ovbackup.imageio import client as transfer
from tests.harness import Cli

MiB = 1 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 160 MiB tmpfs: room for web01's 40 MiB of data plus the 64 MiB safety margin, not much more."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (the suite runs as root): {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``directory`` up to ``leave`` free bytes, as another program would."""
    filler = directory / "someone-elses-file"
    st = os.statvfs(directory)
    size = st.f_bavail * st.f_frsize - leave
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        chunk = b"\xaa" * MiB
        while size > 0:
            size -= f.write(chunk[: min(len(chunk), size)])
    return filler


@pytest.fixture
def fcli(
    data_engine: DataEngine,
    small_fs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    cli = Cli(data_engine, tmp_path, monkeypatch, capsys)
    monkeypatch.setenv("OVBACKUP_DIR", str(small_fs / "backups"))
    return cli


def test_disk_full_while_downloading(
    fcli: Cli, data_engine: DataEngine, small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_update = transfer.Progress.update
    filled: list[Path] = []

    def fill_up(self: transfer.Progress, n: int) -> None:
        if not filled and self.size == 128 * MiB:  # web01_os has begun: another writer takes the rest
            filled.append(fill(small_fs))
        real_update(self, n)

    monkeypatch.setattr(transfer.Progress, "update", fill_up)
    r = fcli("-o", "json", "backup", "web01", "--parallel-disks", "1")
    assert r.code == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.error_lines) == 1, r.stderr
    error = r.error_lines[0]
    vm_dir = small_fs / "backups" / "web01"
    assert error.startswith(f"ovbackup: error: no space left in {vm_dir} while writing "), error
    assert ".web01_os." in error and ".full.qcow2" in error and ".partial" not in error  # which file
    assert "96.0 MiB needed (32.0 MiB of data + 64.0 MiB safety margin)" in error  # how much, why
    assert data_engine.open_transfers() == [] and data_engine.open_backups(data_engine.web01.id) == []
    assert sorted(p.name for p in vm_dir.iterdir()) == [".lock", "catalog.json"]  # no .tmp, no .partial
    assert [p["complete"] for p in fcli("-o", "json", "catalog", "web01").json()] == [False]

    filled[0].unlink()  # the admin makes room; the next run goes on
    monkeypatch.setattr(transfer.Progress, "update", real_update)
    again = fcli("-o", "json", "backup", "web01")
    assert again.code == 0, again.stderr
    assert [p["complete"] for p in fcli("-o", "json", "catalog", "web01").json()] == [False, True]


def test_not_enough_space_says_how_much_with_the_margin(
    fcli: Cli, data_engine: DataEngine, small_fs: Path
) -> None:
    (small_fs / "backups").mkdir()
    fill(small_fs, leave=80 * MiB)
    r = fcli("-o", "json", "backup", "web01", "--parallel-disks", "1")
    assert r.code == 2, r.stderr
    assert len(r.error_lines) == 1, r.stderr
    assert "not enough space in" in r.error_lines[0] and "for disk web01_os" in r.error_lines[0]
    assert "96.0 MiB needed (32.0 MiB of data + 64.0 MiB safety margin), 80.0 MiB free" in r.error_lines[0]
    assert data_engine.open_transfers() == [] and data_engine.open_backups(data_engine.web01.id) == []


def test_a_full_disk_never_leaves_a_catalog_temp_file(fcli: Cli, small_fs: Path) -> None:
    from ovbackup.errors import SpaceError
    from ovbackup.store.catalog import Catalog, RestorePoint

    catalog = Catalog(small_fs, "web01")
    catalog.ensure("vm-id")
    fill(small_fs)
    point = RestorePoint(
        "20261127T023000.123Z", "b", "full", "qcow2", "now", None, None, None, "u", "vm", "web01"
    )
    with pytest.raises(
        SpaceError, match=r"no space left in .* to write catalog.json: \d+ B needed, 0 B free"
    ):
        catalog.record(point)
    assert sorted(p.name for p in catalog.dir.iterdir()) == []

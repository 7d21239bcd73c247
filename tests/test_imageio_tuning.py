"""Local images through the page cache (imageio/tuning.py) and the write-behind flusher of a download:
what makes the file hash after each download read memory instead of the disk (benchmarks/backup.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from ovirt_imageio._internal import qemu_nbd
from ovirt_imageio._internal.nbd import UnixAddress

from ovbackup.imageio import client, tuning


@pytest.fixture
def pristine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with imageio's own choice and an unapplied tuning (undone afterwards)."""
    original = tuning._replaced.get("_can_use_direct_io", qemu_nbd.Server.__dict__["_can_use_direct_io"])
    monkeypatch.setattr(qemu_nbd.Server, "_can_use_direct_io", original)
    monkeypatch.setattr(tuning, "_state", {})
    monkeypatch.setattr(tuning, "_replaced", {})


def qemu_nbd_cache(image: Path, sock: Path) -> str:
    """The ``--cache`` of the qemu-nbd that imageio's client starts for ``image`` (read from /proc)."""
    with qemu_nbd.run(str(image), "qcow2", UnixAddress(str(sock))):
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"qemu-nbd") and any(str(sock).encode() in a for a in argv):
                (cache,) = [a.decode() for a in argv if a.startswith(b"--cache=")]
                return cache.removeprefix("--cache=")
    raise AssertionError("no qemu-nbd found")


def direct_io_dir(tmp_path: Path) -> Path:
    """A directory whose file system takes O_DIRECT (tmpfs does not): tmp_path, else one in the checkout."""
    for base in (tmp_path, Path(__file__).resolve().parent.parent):
        probe = Path(tempfile.mkdtemp(prefix=".odirect-", dir=base))
        try:
            (probe / "f").write_bytes(b"")
            os.close(os.open(probe / "f", os.O_RDWR | os.O_DIRECT))
            return probe
        except OSError:
            shutil.rmtree(probe)
    raise AssertionError("no directory here takes O_DIRECT: cannot show imageio choosing it")


def test_downloads_write_through_the_page_cache(pristine: None, tmp_path: Path) -> None:
    where = direct_io_dir(tmp_path)
    image = where / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    # on this file system imageio itself picks O_DIRECT (a second trip to the disk for the file hash)
    assert qemu_nbd_cache(image, tmp_path / "a.sock") == "none"
    assert tuning.page_cache_images() is True
    assert qemu_nbd_cache(image, tmp_path / "b.sock") == "writeback"
    assert tuning.page_cache_images() is True  # idempotent
    if where.parent != tmp_path:
        shutil.rmtree(where)


def test_an_untested_imageio_is_left_as_it_is(pristine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "_version", lambda: (9, 9))
    original = qemu_nbd.Server._can_use_direct_io
    assert tuning.page_cache_images() is False
    assert qemu_nbd.Server._can_use_direct_io is original


def test_write_behind_flushes_the_file_while_the_download_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "disk.qcow2.partial"
    flushed: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        flushed.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    with client.WriteBehind(dest, interval=0.02):
        time.sleep(0.1)  # the file does not exist yet: nothing to flush, no error
        assert flushed == []
        dest.write_bytes(b"x" * 4096)
        deadline = time.monotonic() + 5
        while not flushed and time.monotonic() < deadline:
            time.sleep(0.02)
    assert flushed and set(flushed) == {dest.stat().st_ino}
    count = len(flushed)
    time.sleep(0.1)
    assert len(flushed) == count  # the flusher stopped with the download

"""Proofs that the test data plane is a real one: the stock ``ovirt_imageio.client`` downloads
full and incremental backups from it, over HTTP and TLS, and the server's checksum matches the
client's. If qemu, imageio or :mod:`ovirt_fake_engine.dataplane` break, these tests fail -- they are
never skipped.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine.dataplane import DataPlane, DataPlaneError, image_info, make_tls
from ovirt_imageio import client

MiB = 1 << 20
DISK_SIZE = 128 * MiB
# ~25% of the disk: four 8 MiB data regions with distinct patterns, spread over the image.
DATA_REGIONS = [
    (0, 8 * MiB, 0x11),
    (20 * MiB, 8 * MiB, 0x22),
    (64 * MiB, 8 * MiB, 0x33),
    (120 * MiB, 8 * MiB, 0x44),
]
DATA_BYTES = sum(length for _, length, _ in DATA_REGIONS)
# An allocated zero region (qcow2 zero clusters): reported zero but not a hole, never sent.
ZERO_REGION = (40 * MiB, 4 * MiB)


class Recorder:
    """Implements the ``client.ProgressBar`` interface the client uses: ``size`` and ``update``."""

    def __init__(self) -> None:
        self.size: int | None = None
        self.updates: list[int] = []
        self._lock = threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self.updates.append(n)


@pytest.fixture
def dataplane(tmp_path: Path) -> Iterator[DataPlane]:
    with DataPlane(tmp_path / "dataplane") as dp:
        yield dp


@pytest.fixture
def disk(dataplane: DataPlane, tmp_path: Path) -> Path:
    path = dataplane.create_disk(tmp_path / "disk.qcow2", DISK_SIZE)
    for offset, length, pattern in DATA_REGIONS:
        dataplane.write(path, offset, length, pattern)
    dataplane.write(path, *ZERO_REGION)
    return path


def get_json(url: str, cafile: Path | None = None) -> Any:
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    with urllib.request.urlopen(url, context=context, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code


def compare(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
    """``qemu-img compare``: rc 0 = identical guest-visible content, 1 = differ."""
    return subprocess.run(
        ["qemu-img", "compare", "-U", str(a), str(b)], capture_output=True, text=True, check=False
    )


def ranges(extents: list[dict[str, Any]], key: str) -> list[tuple[int, int]]:
    return [(e["start"], e["length"]) for e in extents if e[key]]


def assert_contiguous(extents: list[dict[str, Any]], size: int) -> None:
    offset = 0
    for e in extents:
        assert e["start"] == offset
        offset += e["length"]
    assert offset == size


def test_full_download_sends_only_data(dataplane: DataPlane, disk: Path, tmp_path: Path) -> None:
    transfer = dataplane.start_transfer(disk)
    assert transfer.transfer_url == f"{dataplane.data_url}/images/{transfer.ticket_id}"
    assert dataplane.data_url.startswith("http://127.0.0.1:")

    # OPTIONS: what the client negotiates. No "unix_socket": the client would bypass HTTP with it.
    request = urllib.request.Request(transfer.transfer_url, method="OPTIONS")
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.headers["Allow"] == "OPTIONS,GET"
        options = json.loads(resp.read())
    assert set(options["features"]) == {"extents", "checksum"}
    assert options["max_readers"] == 8
    assert "unix_socket" not in options

    extents = get_json(f"{transfer.transfer_url}/extents")
    assert_contiguous(extents, DISK_SIZE)
    data = [(e["start"], e["length"]) for e in extents if not e["zero"]]
    assert data == [(offset, length) for offset, length, _ in DATA_REGIONS]
    zero_not_hole = [(e["start"], e["length"]) for e in extents if e["zero"] and not e["hole"]]
    assert zero_not_hole == [ZERO_REGION]
    holes = sum(length for _, length in ranges(extents, "hole"))
    assert holes == DISK_SIZE - DATA_BYTES - ZERO_REGION[1]
    # Not a dirty ticket: the dirty context does not exist.
    assert http_status(f"{transfer.transfer_url}/extents?context=dirty") == 404

    dst = tmp_path / "full.qcow2"
    progress = Recorder()
    client.download(transfer.transfer_url, str(dst), None, incremental=False, progress=progress)

    result = compare(disk, dst)
    assert result.returncode == 0, result.stdout + result.stderr
    # The daemon served exactly the data extents: holes and zero clusters were not sent.
    info = dataplane.ticket_info(transfer.ticket_id)
    assert info["transferred"] == DATA_BYTES
    assert info["connections"] == 0
    # Progress counts skipped extents too, so it always adds up to the virtual size.
    assert progress.size == DISK_SIZE
    assert sum(progress.updates) == DISK_SIZE

    dataplane.stop_transfer(transfer.ticket_id)
    assert transfer.process.poll() is not None
    assert not transfer.nbd_socket.exists()
    # The ticket is gone: the same URL is now refused.
    assert http_status(f"{transfer.transfer_url}/extents") == 403
    dataplane.stop_transfer(transfer.ticket_id)  # idempotent, like finalizing twice


def test_incremental_download_reports_and_copies_only_dirty(
    dataplane: DataPlane, disk: Path, tmp_path: Path
) -> None:
    # Full backup: the checkpoint's bitmap starts when the full backup is taken.
    dataplane.add_bitmap(disk, "chk1")
    assert dataplane.bitmaps(disk) == ["chk1"]
    full = tmp_path / "full.qcow2"
    transfer = dataplane.start_transfer(disk)
    client.download(transfer.transfer_url, str(full), None, incremental=False)
    dataplane.stop_transfer(transfer.ticket_id)

    # Guest writes after the checkpoint: one over old data, one into a hole.
    written = [(4 * MiB, 2 * MiB), (96 * MiB, 1 * MiB)]
    dataplane.write(disk, *written[0], pattern=0xA5)
    dataplane.write(disk, *written[1], pattern=0x5A)
    assert compare(full, disk).returncode == 1

    transfer = dataplane.start_transfer(disk, bitmap="chk1")
    assert dataplane.ticket_info(transfer.ticket_id)["dirty"] is True
    dirty = get_json(f"{transfer.transfer_url}/extents?context=dirty")
    assert_contiguous(dirty, DISK_SIZE)
    assert ranges(dirty, "dirty") == written
    assert all(not e["zero"] for e in dirty if e["dirty"])
    # The zero context still works on a dirty ticket.
    assert_contiguous(get_json(f"{transfer.transfer_url}/extents?context=zero"), DISK_SIZE)

    overlay = tmp_path / "incr.qcow2"
    client.download(
        transfer.transfer_url,
        str(overlay),
        None,
        incremental=True,
        backing_file=str(full),
        backing_format="qcow2",
    )
    assert dataplane.ticket_info(transfer.ticket_id)["transferred"] == sum(n for _, n in written)
    dataplane.stop_transfer(transfer.ticket_id)

    info = image_info(overlay)
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == str(full)
    result = compare(overlay, disk)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dirty_zero_write_is_reported_dirty_and_zero(
    dataplane: DataPlane, disk: Path, tmp_path: Path
) -> None:
    dataplane.add_bitmap(disk, "chk1")
    full = tmp_path / "full.qcow2"
    transfer = dataplane.start_transfer(disk)
    client.download(transfer.transfer_url, str(full), None)
    dataplane.stop_transfer(transfer.ticket_id)

    dataplane.write(disk, 20 * MiB, 2 * MiB)  # guest zeroes part of a data region
    transfer = dataplane.start_transfer(disk, bitmap="chk1")
    dirty = get_json(f"{transfer.transfer_url}/extents?context=dirty")
    changed = [(e["start"], e["length"], e["zero"]) for e in dirty if e["dirty"]]
    assert changed == [(20 * MiB, 2 * MiB, True)]
    overlay = tmp_path / "incr.qcow2"
    client.download(
        transfer.transfer_url,
        str(overlay),
        None,
        incremental=True,
        backing_file=str(full),
        backing_format="qcow2",
    )
    # Dirty zero extents are zeroed locally; nothing is read from the server.
    assert dataplane.ticket_info(transfer.ticket_id)["transferred"] == 0
    assert compare(overlay, disk).returncode == 0


def test_tls_download(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "pki")
    with DataPlane(tmp_path / "dataplane", tls=tls) as dp:
        assert dp.data_url.startswith("https://127.0.0.1:")
        disk = dp.create_disk(tmp_path / "disk.qcow2", 16 * MiB)
        dp.write(disk, 1 * MiB, 3 * MiB, 0x7E)
        transfer = dp.start_transfer(disk)

        # The certificate is really checked: no CA, no connection.
        with pytest.raises(urllib.error.URLError) as err:
            urllib.request.urlopen(f"{transfer.transfer_url}/extents", timeout=30)
        assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
        extents = get_json(f"{transfer.transfer_url}/extents", cafile=tls.ca_file)
        assert_contiguous(extents, 16 * MiB)

        dst = tmp_path / "full.qcow2"
        client.download(transfer.transfer_url, str(dst), str(tls.ca_file), secure=True)
        assert dp.ticket_info(transfer.ticket_id)["transferred"] == 3 * MiB
        assert compare(disk, dst).returncode == 0


def test_checksum_matches_client(dataplane: DataPlane, disk: Path, tmp_path: Path) -> None:
    transfer = dataplane.start_transfer(disk)
    remote = get_json(f"{transfer.transfer_url}/checksum")
    assert remote["algorithm"] == "blake2b"
    assert remote["block_size"] == 4 * MiB
    assert len(remote["checksum"]) == 64  # blake2b with digest_size=32, hex
    assert client.checksum(str(disk)) == remote

    # Same image through the download path -> same checksum.
    dst = tmp_path / "full.qcow2"
    client.download(transfer.transfer_url, str(dst), None)
    assert client.checksum(str(dst)) == remote

    # Other block sizes must match on both sides (the hash is per block).
    other = get_json(f"{transfer.transfer_url}/checksum?block_size={2 * MiB}")
    assert other["block_size"] == 2 * MiB
    assert other != remote
    assert client.checksum(str(disk), block_size=2 * MiB) == other

    algorithms = get_json(f"{transfer.transfer_url}/checksum/algorithms")["algorithms"]
    assert "blake2b" in algorithms


def test_raw_image_is_served_without_holes(dataplane: DataPlane, tmp_path: Path) -> None:
    disk = dataplane.create_disk(tmp_path / "disk.raw", 8 * MiB, fmt="raw")
    dataplane.write(disk, 2 * MiB, 1 * MiB, 0x42)
    transfer = dataplane.start_transfer(disk)
    assert transfer.fmt == "raw"
    extents = get_json(f"{transfer.transfer_url}/extents")
    assert_contiguous(extents, 8 * MiB)
    assert not any(e["hole"] for e in extents)  # raw never reports holes
    dst = tmp_path / "full.qcow2"
    client.download(transfer.transfer_url, str(dst), None)
    assert compare(disk, dst).returncode == 0


def test_image_is_locked_while_exported(dataplane: DataPlane, disk: Path) -> None:
    transfer = dataplane.start_transfer(disk)
    with pytest.raises(DataPlaneError, match="lock"):
        dataplane.write(disk, 0, MiB, 0x01)
    with pytest.raises(DataPlaneError, match="lock"):
        dataplane.add_bitmap(disk, "chk1")
    dataplane.stop_transfer(transfer.ticket_id)
    dataplane.add_bitmap(disk, "chk1")
    dataplane.remove_bitmap(disk, "chk1")
    assert dataplane.bitmaps(disk) == []


def test_missing_bitmap_is_rejected(dataplane: DataPlane, disk: Path) -> None:
    with pytest.raises(DataPlaneError, match="no bitmap"):
        dataplane.start_transfer(disk, bitmap="nope")
    assert dataplane.transfers() == []


def test_daemon_killed_mid_download(dataplane: DataPlane, disk: Path, tmp_path: Path) -> None:
    transfer = dataplane.start_transfer(disk)

    class KillOnFirstUpdate(Recorder):
        def update(self, n: int) -> None:
            super().update(n)
            dataplane.kill_daemon()

    with pytest.raises(Exception):  # noqa: B017 - any client error; the point is it fails
        client.download(
            transfer.transfer_url, str(tmp_path / "part.qcow2"), None, progress=KillOnFirstUpdate()
        )
    assert not dataplane.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dataplane.port), timeout=5).close()

    # The export survives the daemon; cleanup still stops it.
    assert transfer.process.poll() is None
    dataplane.stop_transfer(transfer.ticket_id)
    assert transfer.process.poll() is not None

    # A restarted daemon serves new tickets (on a new port).
    dataplane.start()
    again = dataplane.start_transfer(disk)
    client.download(again.transfer_url, str(tmp_path / "again.qcow2"), None)
    assert compare(disk, tmp_path / "again.qcow2").returncode == 0


def test_stop_cleans_every_process(tmp_path: Path) -> None:
    dp = DataPlane(tmp_path / "dataplane")
    dp.start()
    disk = dp.create_disk(tmp_path / "disk.qcow2", 4 * MiB)
    transfers = [dp.start_transfer(disk), dp.start_transfer(disk)]  # shared read locks
    daemon_log = dp.daemon_log
    dp.stop()
    assert all(t.process.poll() is not None for t in transfers)
    assert not dp.running
    dp.stop()  # twice is fine
    assert "Ready for requests" in daemon_log.read_text()
    assert all(t.log_file.exists() for t in transfers)


def test_long_workdir_uses_short_socket_dir(tmp_path: Path) -> None:
    workdir = tmp_path / ("x" * 90)
    with DataPlane(workdir) as dp:
        disk = dp.create_disk(tmp_path / "disk.qcow2", 4 * MiB)
        dp.write(disk, 0, MiB, 0x10)
        transfer = dp.start_transfer(disk)
        assert not transfer.nbd_socket.is_relative_to(workdir)
        assert len(str(transfer.nbd_socket)) < 108
        client.download(transfer.transfer_url, str(tmp_path / "dst.qcow2"), None)
        assert compare(disk, tmp_path / "dst.qcow2").returncode == 0
        sockets_dir = transfer.nbd_socket.parent
    assert not sockets_dir.exists()
    assert (workdir / "logs" / "daemon.log").exists()


def test_concurrent_transfers_from_threads(dataplane: DataPlane, disk: Path) -> None:
    # The fake engine starts transfers from its request threads.
    results: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(dataplane.start_transfer(disk).ticket_id)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(results)) == 4
    for ticket_id in results:
        extents = get_json(f"{dataplane.data_url}/images/{ticket_id}/extents")
        assert_contiguous(extents, DISK_SIZE)
    with pytest.raises(DataPlaneError, match="already exists"):
        dataplane.start_transfer(disk, ticket_id=results[0])

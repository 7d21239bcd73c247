"""End-to-end proofs that the fake engine serves real backup data: the stock ``ovirt_imageio.client``
downloads a full and then an incremental backup through transfers created on the fake, and
``qemu-img compare`` finds the guest-visible content equal to the disks. Over HTTP and HTTPS, with
parallel downloads, and with the fixture's real-time phases (polled, never timed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine import Disk
from ovirt_fake_engine.demo import DataEngine, os_regions
from ovirt_imageio import client
from ovirtsdk4.reader import Reader
from test_engine_transfers import NO_TIMEOUT, STEP, Api

MiB = 1 << 20
P = types.ImageTransferPhase


@pytest.fixture
def eng(data_engine: DataEngine) -> DataEngine:
    data_engine.configure(phase_seconds=STEP)
    return data_engine


def same_content(a: Path, b: Path) -> bool:
    """``qemu-img compare``: guest-visible content equal (rc 0), whatever the formats."""
    proc = subprocess.run(["qemu-img", "compare", "-U", str(a), str(b)], capture_output=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def extents(url: str, context: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/extents?context={context}", timeout=60) as r:
        data: list[dict[str, Any]] = json.loads(r.read())
        return data


def merged(exts: list[dict[str, Any]], key: str) -> list[tuple[int, int]]:
    """Ranges where ``key`` is true, adjacent extents merged."""
    out: list[tuple[int, int]] = []
    for e in exts:
        if not e[key]:
            continue
        if out and out[-1][0] + out[-1][1] == e["start"]:
            out[-1] = (out[-1][0], out[-1][1] + e["length"])
        else:
            out.append((e["start"], e["length"]))
    return out


def backup_ready(api: Api, eng: DataEngine, from_cp: str | None = None) -> types.Backup:
    backup_id = api.start_backup(eng.web01, from_cp=from_cp)
    eng.advance(2 * STEP)
    b = api.backup(eng.web01, backup_id)
    assert b.phase == types.BackupPhase.READY
    return b


def finish(api: Api, eng: DataEngine, transfer_ids: list[str], backup_id: str) -> None:
    """Finalize the transfers, then the backup (ovirt-api.md §6.1: in that order)."""
    for tid in transfer_ids:
        api.read(api.post(f"/imagetransfers/{tid}/finalize"))
    eng.advance(STEP)
    assert [api.transfer(tid).phase for tid in transfer_ids] == [P.FINISHED_SUCCESS] * len(transfer_ids)
    api.read(api.post(f"/vms/{eng.web01.id}/backups/{backup_id}/finalize"))
    eng.advance(2 * STEP)  # hybrid: still ready for a step after finalize
    assert api.backup(eng.web01, backup_id).phase == types.BackupPhase.SUCCEEDED
    assert eng.open_transfers() == [] and eng.open_backups(eng.web01.id) == []


def test_full_then_incremental_download(eng: DataEngine, tmp_path: Path) -> None:
    api = Api(eng)
    os_disk, raw_disk = eng.web01.disks
    full = backup_ready(api, eng)
    modes = {d.id: d.backup_mode for d in api.read(api.get(f"/vms/{eng.web01.id}/backups/{full.id}/disks"))}
    assert modes == {os_disk.id: types.DiskBackupMode.FULL, raw_disk.id: types.DiskBackupMode.FULL}
    opened = {d.id: api.open_transfer(full.id, d.id) for d in (os_disk, raw_disk)}
    full_files = {d.id: tmp_path / f"full.{d.alias}.qcow2" for d in (os_disk, raw_disk)}
    for d in (os_disk, raw_disk):
        url = str(opened[d.id].transfer_url)
        with pytest.raises(urllib.error.HTTPError) as err:
            extents(url, "dirty")  # a full backup's ticket is not dirty
        assert err.value.code == 404
        client.download(url, str(full_files[d.id]), None)
        assert same_content(full_files[d.id], eng.disk_path(d.id))
    data = sum(length for _, length, _ in os_regions(os_disk.provisioned_size))
    assert api.transfer(opened[os_disk.id].id).transferred == data  # only data extents were sent
    finish(api, eng, [t.id for t in opened.values()], str(full.id))

    # The guest writes (64 KiB aligned, the bitmap granularity), then an incremental backup.
    writes = [(10 * MiB, 1 * MiB, 0x77), (100 * MiB, 2 * MiB, 0x88)]
    for offset, length, pattern in writes:
        eng.write_disk(os_disk.id, offset, length, pattern)
    eng.write_disk(raw_disk.id, 5 * MiB, 1 * MiB, 0x99)
    inc = backup_ready(api, eng, from_cp=str(full.to_checkpoint_id))
    modes = {d.id: d.backup_mode for d in api.read(api.get(f"/vms/{eng.web01.id}/backups/{inc.id}/disks"))}
    assert modes == {os_disk.id: types.DiskBackupMode.INCREMENTAL, raw_disk.id: types.DiskBackupMode.FULL}
    opened = {d.id: api.open_transfer(inc.id, d.id) for d in (os_disk, raw_disk)}

    url = str(opened[os_disk.id].transfer_url)
    assert merged(extents(url, "dirty"), "dirty") == [(o, n) for o, n, _ in writes]
    overlay = tmp_path / "inc.web01_os.qcow2"
    backing = full_files[os_disk.id]
    client.download(
        url, str(overlay), None, incremental=True, backing_file=str(backing), backing_format="qcow2"
    )
    assert same_content(overlay, eng.disk_path(os_disk.id))
    assert not same_content(backing, eng.disk_path(os_disk.id))  # the overlay really adds the writes
    assert api.transfer(opened[os_disk.id].id).transferred == sum(n for _, n, _ in writes)

    raw_copy = tmp_path / "inc.web01_raw.qcow2"  # raw disks are always full
    client.download(str(opened[raw_disk.id].transfer_url), str(raw_copy), None)
    assert same_content(raw_copy, eng.disk_path(raw_disk.id))
    finish(api, eng, [t.id for t in opened.values()], str(inc.id))


def test_tls_download(tls_data_engine: DataEngine, tmp_path: Path) -> None:
    eng = tls_data_engine
    eng.configure(phase_seconds=STEP)
    api = Api(eng)
    b = backup_ready(api, eng)
    os_disk = eng.web01.disks[0]
    t = api.open_transfer(str(b.id), os_disk.id)
    assert str(t.transfer_url).startswith("https://127.0.0.1:") and eng.imageio_ca_file is not None
    dst = tmp_path / "os.qcow2"
    client.download(str(t.transfer_url), str(dst), str(eng.imageio_ca_file), secure=True)
    assert same_content(dst, eng.disk_path(os_disk.id))
    finish(api, eng, [str(t.id)], str(b.id))


def test_parallel_downloads_while_polling(eng: DataEngine, tmp_path: Path) -> None:
    api = Api(eng)
    b = backup_ready(api, eng)
    opened = [api.open_transfer(str(b.id), d.id) for d in eng.web01.disks]
    errors: list[BaseException] = []
    done = threading.Event()

    def download(t: types.ImageTransfer, disk: Disk) -> None:
        try:
            dst = tmp_path / f"{disk.alias}.qcow2"
            client.download(str(t.transfer_url), str(dst), None, max_workers=4)
            assert same_content(dst, eng.disk_path(disk.id))
        except BaseException as e:
            errors.append(e)

    def poll() -> None:
        poller = Api(eng)
        try:
            while not done.is_set():
                for t in opened:
                    assert poller.transfer(str(t.id)).phase == P.TRANSFERRING
        except BaseException as e:
            errors.append(e)

    workers = [
        threading.Thread(target=download, args=(t, d)) for t, d in zip(opened, eng.web01.disks, strict=True)
    ]
    poller = threading.Thread(target=poll)
    for th in [*workers, poller]:
        th.start()
    for th in workers:
        th.join()
    done.set()
    poller.join()
    assert errors == []
    finish(api, eng, [str(t.id) for t in opened], str(b.id))


def test_fixture_phases_advance_in_real_time(data_engine: DataEngine, tmp_path: Path) -> None:
    """With the fixture's 0.05 s steps a client polling like ovbackup (0.25 s) gets there unaided."""
    api = Api(data_engine)

    def wait(read: Any, phase: object) -> Any:
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while (cur := read()).phase != phase:
            assert time.monotonic() < deadline, cur.phase
            time.sleep(0.25)
        return cur

    vm = data_engine.web01
    backup_id = api.start_backup(vm, disks=[vm.disks[0].id])
    wait(lambda: api.backup(vm, backup_id), types.BackupPhase.READY)
    t = api.read(api.add_transfer(backup_id, vm.disks[0].id, "<format>raw</format>"), 201)
    t = wait(lambda: api.transfer(t.id), P.TRANSFERRING)
    client.download(str(t.transfer_url), str(tmp_path / "os.qcow2"), None)
    api.read(api.post(f"/imagetransfers/{t.id}/finalize"))
    wait(lambda: api.transfer(t.id), P.FINISHED_SUCCESS)
    api.read(api.post(f"/vms/{vm.id}/backups/{backup_id}/finalize"))
    wait(lambda: api.backup(vm, backup_id), types.BackupPhase.SUCCEEDED)
    assert same_content(tmp_path / "os.qcow2", data_engine.disk_path(vm.disks[0].id))


def test_no_process_outlives_the_engine(eng: DataEngine) -> None:
    api = Api(eng)
    b = backup_ready(api, eng)
    api.open_transfer(str(b.id), eng.web01.disks[0].id, timeout=NO_TIMEOUT)
    assert eng.dataplane is not None
    (session,) = eng.dataplane.transfers()
    eng.stop()  # a test that forgets to finalize: the engine still ends its qemu-nbd
    assert eng.dataplane.transfers() == [] and session.process.poll() is not None


def test_main_with_data_dir_serves_real_disks(tmp_path: Path) -> None:
    """``python -m ovirt_fake_engine --data-dir``: demo disks are real images; SIGTERM stops everything."""
    url_file, data_dir = tmp_path / "url", tmp_path / "data"
    cmd = [sys.executable, "-m", "ovirt_fake_engine", "--port", "0", "--url-file", str(url_file), "--tls"]
    scratch = tmp_path / "tmp"  # the engine's own temporary files (its TLS CA and keys) go here
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([*cmd, "--data-dir", str(data_dir)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while not url_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        url = url_file.read_text().strip()
        (ca,) = scratch.glob("fake-engine-*/fake-engine-ca.pem")
        r = requests.get(f"{url}/vms", auth=("admin@internal", "secret-pw"), timeout=60, verify=str(ca))
        vms = Reader.read(r.content)
        assert [v.name for v in vms] == ["web01", "db01", "paused01"]
        assert len(list((data_dir / "disks").iterdir())) == 4  # every demo disk has an image
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "imageio data URL: https://127.0.0.1:" in err
    leftover = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True, check=False)
    assert leftover.stdout == ""
    assert list(scratch.iterdir()) == []  # its temporary directory goes with it

"""The one-shot ``backup`` job and ``download``/``catalog``/``verify``, with real data: a real imageio
daemon serving real qcow2/raw images through qemu-nbd, dirty bitmaps for incrementals."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine.demo import DataEngine
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS

from ovbackup.imageio import client as transfer
from tests.harness import Cli, Result

MiB = 1 << 20


def snapshot(engine: DataEngine, tmp_path: Path, label: str) -> dict[str, Path]:
    """A copy of every disk of web01 as it is now, to compare restore points with."""
    copies = {}
    for disk in engine.web01.disks:
        dest = tmp_path / f"snap-{label}-{disk.alias}.qcow2"
        subprocess.run(
            ["qemu-img", "convert", "-O", "qcow2", str(engine.disk_path(disk.id)), str(dest)], check=True
        )
        copies[disk.id] = dest
    return copies


def same_image(a: Path, b: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], check=False).returncode == 0


def backup(cli: Cli, *args: str) -> Result:
    return cli("-o", "json", "backup", "web01", *args)


def point_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups" / "web01"


def assert_nothing_left_open(engine: DataEngine) -> None:
    assert engine.open_transfers() == []
    assert engine.open_backups(engine.web01.id) == []


def files_by_disk(point: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in point["disks"]}


@BOTH_FLOWS
def test_full_then_two_incrementals_restore_byte_exact(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, raw_disk = data_engine.web01.disks
    directory = point_dir(tmp_path)

    r1 = backup(dcli)
    assert r1.code == 0, r1.stderr
    full = r1.json()
    assert full["mode"] == "full" and full["complete"] is True and full["fallback"] is None
    snap1 = snapshot(data_engine, tmp_path, "1")
    assert_nothing_left_open(data_engine)
    # zeros are never transferred: 4 regions of 8 MiB on the qcow2 disk, 2 of 4 MiB on the raw one
    assert files_by_disk(full)[os_disk.id]["bytes_transferred"] == 32 * MiB
    assert files_by_disk(full)[raw_disk.id]["bytes_transferred"] == 8 * MiB

    data_engine.write_disk(os_disk.id, 1 * MiB, 1 * MiB, 0xA1)
    data_engine.write_disk(os_disk.id, 100 * MiB, 2 * MiB, 0xA2)
    data_engine.write_disk(raw_disk.id, 10 * MiB, 1 * MiB, 0xA3)
    r2 = backup(dcli)
    assert r2.code == 0, r2.stderr
    inc1 = r2.json()
    assert inc1["mode"] == "incremental" and inc1["from_checkpoint_id"] == full["to_checkpoint_id"]
    os_rec = files_by_disk(inc1)[os_disk.id]
    assert (
        os_rec["mode"] == "incremental" and os_rec["backing_file"] == files_by_disk(full)[os_disk.id]["file"]
    )
    assert os_rec["bytes_transferred"] == 3 * MiB  # only what the guest wrote
    assert files_by_disk(inc1)[raw_disk.id]["mode"] == "full"  # raw disks are always full
    snap2 = snapshot(data_engine, tmp_path, "2")

    data_engine.write_disk(os_disk.id, 64 * MiB, 512 * 1024, 0xB1)
    data_engine.write_disk(os_disk.id, 1 * MiB, 64 * 1024, None)  # guest zeroes part of earlier data
    r3 = backup(dcli)
    assert r3.code == 0, r3.stderr
    inc2 = r3.json()
    assert inc2["from_checkpoint_id"] == inc1["to_checkpoint_id"]
    assert files_by_disk(inc2)[os_disk.id]["bytes_transferred"] == 512 * 1024  # zeroed range is not sent
    snap3 = snapshot(data_engine, tmp_path, "3")
    assert_nothing_left_open(data_engine)

    for point, snap in ((full, snap1), (inc1, snap2), (inc2, snap3)):
        for disk_id, rec in files_by_disk(point).items():
            assert same_image(directory / rec["file"], snap[disk_id]), (point["name"], rec["file"])
    assert not same_image(directory / files_by_disk(full)[os_disk.id]["file"], snap3[os_disk.id])

    names = sorted(p.name for p in directory.iterdir() if p.suffix in (".qcow2", ".raw"))
    assert names == sorted(names, key=lambda n: n.split(".")[0])  # ls order is time order
    assert all((".full." in n) or (".incremental." in n) for n in names)

    catalog = dcli("-o", "json", "catalog", "web01")
    assert catalog.code == 0
    assert [p["mode"] for p in catalog.json()] == ["full", "incremental", "incremental"]
    table = dcli("catalog", "web01")
    assert inc2["backup_id"] in table.stdout

    verified = dcli("-o", "json", "verify", "web01")
    assert verified.code == 0, verified.stderr
    assert verified.json()["ok"] is True
    assert [len(d["files"]) for d in verified.json()["disks"] if d["id"] == os_disk.id] == [3]


def test_raw_format_points_are_complete_sparse_images(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, _ = data_engine.web01.disks
    full = backup(dcli, "--format", "raw")
    assert full.code == 0, full.stderr
    data_engine.write_disk(os_disk.id, 5 * MiB, 1 * MiB, 0xC1)
    inc = backup(dcli, "--format", "raw")
    assert inc.code == 0, inc.stderr
    point = inc.json()
    assert point["mode"] == "incremental" and point["format"] == "raw"
    rec = files_by_disk(point)[os_disk.id]
    assert rec["mode"] == "incremental" and rec["backing_file"] is None and rec["file"].endswith(".raw")
    assert rec["bytes_transferred"] == 1 * MiB
    path = point_dir(tmp_path) / rec["file"]
    assert same_image(path, data_engine.disk_path(os_disk.id))
    assert path.stat().st_blocks * 512 < path.stat().st_size  # sparse: zeros not written
    assert (
        same_image(
            point_dir(tmp_path) / files_by_disk(full.json())[os_disk.id]["file"],
            snapshot(data_engine, tmp_path, "x")[os_disk.id],
        )
        is False
    )


def test_removed_checkpoint_forces_a_full_backup(dcli: Cli, data_engine: DataEngine) -> None:
    full = backup(dcli).json()
    assert dcli("checkpoints", "remove", "web01", full["to_checkpoint_id"], "--yes").code == 0
    r = backup(dcli)
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["mode"] == "full"
    assert "no longer exists" in point["fallback"] and "warning" in r.stderr


def test_explicit_full_and_incremental(dcli: Cli, data_engine: DataEngine) -> None:
    no_chain = backup(dcli, "--incremental")
    assert no_chain.code == 5 and "no complete restore point" in no_chain.stderr
    assert len(no_chain.error_lines) == 1 and "--full" in no_chain.error_lines[0]
    assert_nothing_left_open(data_engine)
    assert backup(dcli, "--full").json()["mode"] == "full"
    assert backup(dcli, "--full").json()["mode"] == "full"
    assert backup(dcli, "--incremental").json()["mode"] == "incremental"
    assert backup(dcli, "--full", "--auto").code == 2


@BOTH_FLOWS
def test_failure_mid_download_finalizes_and_records_no_complete_point(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = backup(dcli).json()
    os_disk, _ = data_engine.web01.disks
    data_engine.write_disk(os_disk.id, 3 * MiB, 1 * MiB, 0xD1)
    dp = data_engine.dataplane
    assert dp is not None
    real_update = transfer.Progress.update

    def crash(self: transfer.Progress, n: int) -> None:
        if dp.running:
            dp.kill_daemon()  # the host's imageio dies in the middle of the transfer
        real_update(self, n)

    monkeypatch.setattr(transfer.Progress, "update", crash)
    failed = backup(dcli)
    assert failed.code == 8, failed.stderr
    assert "Traceback" not in failed.stderr
    assert_nothing_left_open(data_engine)
    points = dcli("-o", "json", "catalog", "web01").json()
    assert [p["complete"] for p in points] == [True, False]

    monkeypatch.setattr(transfer.Progress, "update", real_update)
    dp.start()
    again = backup(dcli)
    assert again.code == 0, again.stderr
    point = again.json()
    # incremental from the last *complete* point: its checkpoint still has every change since
    assert point["mode"] == "incremental" and point["from_checkpoint_id"] == full["to_checkpoint_id"]
    rec = files_by_disk(point)[os_disk.id]
    assert same_image(point_dir(tmp_path) / rec["file"], data_engine.disk_path(os_disk.id))
    assert not list(point_dir(tmp_path).glob("*.partial"))
    assert "partial" not in (rec["backing_file"] or "")


def test_verify_catches_a_corrupted_file(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    point = backup(dcli, "--verify").json()
    assert point["verified"] is True
    assert all(d["checksum"]["algorithm"] == "blake2b" for d in point["disks"])
    os_file = next(d["file"] for d in point["disks"] if ".web01_os." in d["file"])
    path = point_dir(tmp_path) / os_file
    with open(path, "r+b") as f:  # flip guest data in the last cluster of the image file
        f.seek(-4096, os.SEEK_END)
        f.write(b"\xff" * 4096)
    r = dcli("verify", "web01")
    assert r.code == 8
    assert "checksum differs" in r.stderr and os_file in r.stderr
    assert dcli("-o", "json", "catalog", "web01").json()[-1]["verified"] is False


def test_checksum_mismatch_at_backup_time_fails_the_backup(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ovbackup.jobs import download as downloads

    monkeypatch.setattr(downloads, "image_checksum", lambda *a, **k: "0" * 64)
    r = backup(dcli, "--verify")
    assert r.code == 8 and "checksum mismatch" in r.stderr
    assert_nothing_left_open(data_engine)
    assert [p["complete"] for p in dcli("-o", "json", "catalog", "web01").json()] == [False]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@BOTH_FLOWS
def test_interrupt_during_download_cleans_up(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch, sig: int, code: int
) -> None:
    real_update = transfer.Progress.update
    sent: list[int] = []

    def interrupt(self: transfer.Progress, n: int) -> None:
        if not sent:
            sent.append(sig)
            os.kill(os.getpid(), sig)  # delivered to the main thread, as from a terminal or systemd
        real_update(self, n)

    monkeypatch.setattr(transfer.Progress, "update", interrupt)
    r = backup(dcli)
    assert r.code == code, r.stderr
    assert "finalized" in r.stderr
    assert_nothing_left_open(data_engine)
    assert [p["complete"] for p in dcli("-o", "json", "catalog", "web01").json()] == [False]


def test_a_second_run_waits_for_the_lock_then_gives_up(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    directory = point_dir(tmp_path)
    directory.mkdir(parents=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = backup(dcli, "--lock-wait", "0.5")
    finally:
        os.close(fd)
    assert r.code == 9 and "holds the lock" in r.stderr
    assert data_engine.backups(data_engine.web01.id) == []  # nothing was started


def test_not_enough_space_fails_early_and_cleans_up(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 * MiB, 9 * MiB, 1 * MiB))
    r = backup(dcli)
    assert r.code == 2 and "not enough space" in r.stderr
    assert_nothing_left_open(data_engine)


def test_missing_qemu_says_what_to_install(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "qemu-nbd" else real_which(name))
    r = backup(dcli)
    assert r.code == 2 and "qemu-utils" in r.stderr
    assert data_engine.backups(data_engine.web01.id) == []


def test_download_leaves_the_backup_open(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    added = dcli("-o", "json", "add", "web01").json()
    not_ready_yet = dcli("download", "web01", "00000000-0000-4000-8000-000000000000")
    assert not_ready_yet.code == 4
    r = dcli("-o", "json", "download", "web01", added["id"], "--parallel-disks", "1")
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["complete"] is True and point["backup_id"] == added["id"]
    assert "still open on the engine" in r.stderr
    for rec in point["disks"]:
        assert same_image(point_dir(tmp_path) / rec["file"], data_engine.disk_path(rec["id"]))
    assert data_engine.open_transfers() == []
    assert [b.id for b in data_engine.open_backups(data_engine.web01.id)] == [added["id"]]
    assert dcli("finalize", "web01", added["id"]).code == 0


@pytest.mark.parametrize("data_engine", ["tls"], indirect=True)
def test_backup_over_tls_with_the_engine_ca(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    ca = data_engine.imageio_ca_file
    assert ca is not None
    untrusted = backup(dcli)
    assert untrusted.code == 8 and "certificate" in untrusted.stderr.lower()
    assert_nothing_left_open(data_engine)
    r = dcli("--cafile", str(ca), "-o", "json", "backup", "web01")
    assert r.code == 0, r.stderr
    for rec in r.json()["disks"]:
        assert same_image(point_dir(tmp_path) / rec["file"], data_engine.disk_path(rec["id"]))


def test_a_disk_new_to_the_chain_is_taken_in_full(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    from ovirt_fake_engine import DiskSpec

    full = backup(dcli).json()
    new = data_engine.add_disk(
        data_engine.web01.id,
        DiskSpec(alias="web01_data", format="cow", backup="incremental", provisioned_size=32 * MiB),
    )
    data_engine.write_disk(new.id, 0, 2 * MiB, 0x77)
    r = backup(dcli)
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["mode"] == "incremental" and point["from_checkpoint_id"] == full["to_checkpoint_id"]
    rec = files_by_disk(point)[new.id]
    assert rec["mode"] == "full" and rec["backing_file"] is None and rec["bytes_transferred"] == 2 * MiB
    assert same_image(point_dir(tmp_path) / rec["file"], data_engine.disk_path(new.id))


def test_incremental_never_becomes_a_full_one(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only --auto falls back: --incremental with no usable checkpoint fails (exit 5, one line) before
    a backup starts, and when the engine refuses the checkpoint it starts no full one instead."""
    from ovbackup.engine.model import Checkpoint, CheckpointState
    from ovbackup.engine.services import VmCheckpointService

    full = backup(dcli).json()
    assert dcli("checkpoints", "remove", "web01", full["to_checkpoint_id"], "--yes").code == 0
    data_engine.reset_log()
    gone = backup(dcli, "--incremental")
    assert gone.code == 5, gone.stderr
    (line,) = gone.error_lines
    assert "--incremental is not possible" in line and "no longer exists" in line
    assert "Traceback" not in gone.stderr and gone.stdout == ""
    assert not [q for q in data_engine.requests if q.method == "POST" and q.path.endswith("/backups")]
    assert [p["name"] for p in dcli("-o", "json", "catalog", "web01").json()] == [full["name"]]

    # The checkpoint vanishes between our check and the start: the engine refuses the incremental.
    monkeypatch.setattr(
        VmCheckpointService, "get", lambda self, **_: Checkpoint(id=self.id, state=CheckpointState.CREATED)
    )
    data_engine.reset_log()
    refused = backup(dcli, "--incremental")
    assert refused.code == 5, refused.stderr
    (line,) = refused.error_lines
    assert "the engine refused the incremental" in line and "doesn't exist" in line
    posts = [q for q in data_engine.requests if q.method == "POST" and q.path.endswith("/backups")]
    assert len(posts) == 1  # no second POST for a full backup
    assert_nothing_left_open(data_engine)
    assert [p["name"] for p in dcli("-o", "json", "catalog", "web01").json()] == [full["name"]]


@BOTH_FLOWS
def test_engine_refusing_the_incremental_falls_back_to_full(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ovbackup.engine.model import Checkpoint, CheckpointState
    from ovbackup.engine.services import VmCheckpointService

    full = backup(dcli).json()
    assert dcli("checkpoints", "remove", "web01", full["to_checkpoint_id"], "--yes").code == 0
    # The checkpoint vanishes between our check and the start (another admin, a race): the engine's
    # refusal, not our check, must send the backup back to full.
    monkeypatch.setattr(
        VmCheckpointService,
        "get",
        lambda self, **_: Checkpoint(id=self.id, state=CheckpointState.CREATED),
    )
    r = backup(dcli)
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["mode"] == "full" and "refused the incremental" in point["fallback"]
    assert "doesn't exist" in point["fallback"]
    assert_nothing_left_open(data_engine)


@BOTH_FLOWS
def test_ctrl_c_while_waiting_for_ready_still_finalizes(dcli: Cli, data_engine: DataEngine) -> None:
    data_engine.configure(phase_seconds=100)  # engine-clock steps: only the fake sleeps move it
    pressed: list[bool] = []

    def interrupt(_: float) -> None:
        if not pressed:  # one Ctrl-C, during the first wait for ready
            pressed.append(True)
            raise KeyboardInterrupt

    dcli.time.on_sleep = interrupt
    r = backup(dcli)
    assert r.code == 130
    assert "finalized backup" in r.stderr and r.error_lines[0].endswith("finished")
    assert_nothing_left_open(data_engine)
    assert dcli("-o", "json", "catalog", "web01").json() == []  # no point was ever started


def test_download_of_an_incremental_builds_on_the_file_of_its_from_checkpoint(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, _ = data_engine.web01.disks
    first = backup(dcli, "--full").json()
    data_engine.write_disk(os_disk.id, 2 * MiB, 1 * MiB, 0xF1)
    second = backup(dcli, "--full").json()  # newer, but not the base of the incremental below
    data_engine.write_disk(os_disk.id, 6 * MiB, 1 * MiB, 0xF2)
    added = dcli("-o", "json", "add", "web01", "--from-checkpoint", first["to_checkpoint_id"]).json()
    r = dcli("-o", "json", "download", "web01", added["id"])
    assert r.code == 0, r.stderr
    rec = files_by_disk(r.json())[os_disk.id]
    assert rec["mode"] == "incremental"
    assert rec["backing_file"] == files_by_disk(first)[os_disk.id]["file"]
    assert rec["backing_file"] != files_by_disk(second)[os_disk.id]["file"]
    assert rec["bytes_transferred"] == 2 * MiB  # both writes since the first checkpoint
    assert same_image(point_dir(tmp_path) / rec["file"], data_engine.disk_path(os_disk.id))
    assert dcli("finalize", "web01", added["id"]).code == 0


def test_a_broken_local_chain_forces_a_full_backup(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    os_disk, _ = data_engine.web01.disks
    full = backup(dcli).json()
    data_engine.write_disk(os_disk.id, 2 * MiB, 1 * MiB, 0x91)
    assert backup(dcli).json()["mode"] == "incremental"
    (point_dir(tmp_path) / files_by_disk(full)[os_disk.id]["file"]).unlink()  # someone cleaned up
    r = backup(dcli)
    assert r.code == 0, r.stderr
    assert r.json()["mode"] == "full" and "backing chain are missing" in r.json()["fallback"]


@pytest.mark.parametrize("presses", [2, 3])
def test_ctrl_c_during_the_teardown(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch, presses: int
) -> None:
    real_update = transfer.Progress.update
    pressed: list[str] = []

    def first(self: transfer.Progress, n: int) -> None:
        if not pressed:
            pressed.append("download")
            data_engine.configure(
                phase_seconds=1.0
            )  # engine steps now take (fake) sleeps: the next presses land
            os.kill(os.getpid(), signal.SIGINT)
        real_update(self, n)

    def more(_: float) -> None:  # the next presses land while the teardown waits for the engine
        # (in the main thread, as a real Ctrl-C: worker threads poll their transfers too)
        if pressed and len(pressed) < presses and threading.current_thread() is threading.main_thread():
            pressed.append("teardown")
            raise KeyboardInterrupt

    monkeypatch.setattr(transfer.Progress, "update", first)
    dcli.time.on_sleep = more
    r = backup(dcli)
    assert r.code == 130, r.stderr
    assert len(pressed) == presses
    assert "interrupted: still finishing backup" in r.stderr  # the second press is answered
    (error,) = r.error_lines
    if presses == 2:  # the teardown went on to the end
        assert "finalized backup" in r.stderr and error.endswith(" finished")
        assert_nothing_left_open(data_engine)
    else:  # a third press abandons it, and says why and what to do
        assert "could not finalize backup" in r.stderr and "interrupted twice while finishing it;" in r.stderr
        assert error.endswith("NOT finished: run `ovbackup cleanup web01`")
        assert dcli("cleanup", "web01", "--yes").code == 0
        assert_nothing_left_open(data_engine)


def test_a_finalize_that_times_out_keeps_the_files_in_an_incomplete_point(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ovbackup.engine.services import VmBackupService

    real_finalize = VmBackupService.finalize

    def stuck(self: VmBackupService, **kwargs: Any) -> Any:  # the engine takes it and never finishes
        data_engine.configure(phase_seconds=1e9)
        return real_finalize(self, **kwargs)

    monkeypatch.setattr(VmBackupService, "finalize", stuck)
    r = backup(dcli)
    assert r.code == 6, r.stderr
    (stuck,) = dcli("-o", "json", "catalog", "web01").json()
    assert stuck["complete"] is False and stuck["finished"] is None and len(stuck["disks"]) == 2
    on_disk = {p.name for p in point_dir(tmp_path).iterdir() if not p.name.startswith(("catalog", "."))}
    assert on_disk == {d["file"] for d in stuck["disks"]}  # every file is in the catalog: none orphaned

    monkeypatch.setattr(VmBackupService, "finalize", real_finalize)
    data_engine.configure(phase_seconds=0.05)
    again = backup(dcli)
    assert again.code == 0, again.stderr
    assert f"finishing its backup {stuck['backup_id']}" in again.stderr
    assert again.json()["mode"] == "full"  # never an incremental on the unconfirmed point
    points = dcli("-o", "json", "catalog", "web01").json()
    assert [(p["complete"], len(p["disks"])) for p in points] == [(False, 2), (True, 2)]
    assert points[0]["finished"] is not None
    assert_nothing_left_open(data_engine)


def test_a_token_expiring_under_parallel_disk_downloads_costs_one_login(
    dcli: Cli, data_engine: DataEngine
) -> None:
    from urllib.parse import parse_qs

    from ovbackup.engine.connection import SSO_LOGOUT_PATH, SSO_TOKEN_PATH

    disks = len(data_engine.web01.disks)
    issued = len(data_engine.tokens_issued)
    data_engine.reset_log()
    # Both disks' transfers are requested together, and the token expires under them: two 401s.
    data_engine.gather_next(disks, expire_tokens=True, method="POST", path="/imagetransfers")
    r = backup(dcli, "--parallel-disks", str(disks))
    assert r.code == 0, r.stderr
    assert len(r.json()["disks"]) == disks
    logins = [q for q in data_engine.requests if q.path == SSO_TOKEN_PATH]
    assert len(logins) == 2  # the run's login and one re-login, not one per disk thread
    tokens = data_engine.tokens_issued[issued:]
    logouts = [q for q in data_engine.requests if q.path == SSO_LOGOUT_PATH]
    assert sorted(parse_qs(q.body.decode())["token"][0] for q in logouts) == sorted(tokens)
    assert_nothing_left_open(data_engine)

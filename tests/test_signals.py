"""Signals and bad luck from outside, on a real ``ovbackup`` process: SIGINT, SIGTERM and SIGHUP (an SSH
session dropping) run the same teardown — transfers cancelled, the backup finalized — and exit 130 / 143 /
129; the restore point stays incomplete. Real data path: the fake engine's imageio daemon and qemu-nbd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ovirt_fake_engine.demo import DataEngine

from tests.harness import process_env


def environment(engine: DataEngine, tmp_path: Path) -> dict[str, str]:
    return process_env(engine, tmp_path, OVBACKUP_DIR=str(tmp_path / "backups"))


def start_backup(engine: DataEngine, tmp_path: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "ovbackup", "--password-file", str(tmp_path / "password")]
    return subprocess.Popen(
        [*argv, "-o", "json", "backup", "web01", *args],
        env=environment(engine, tmp_path),
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def catalog_points(tmp_path: Path) -> list[dict[str, object]]:
    manifest = tmp_path / "backups" / "web01" / "catalog.json"
    return json.loads(manifest.read_text())["points"] if manifest.exists() else []


def assert_nothing_left_open(engine: DataEngine) -> None:
    assert engine.open_transfers() == []
    assert engine.open_backups(engine.web01.id) == []


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        (signal.SIGHUP, 129, "hung up"),
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGINT, 130, "interrupted"),
    ],
)
@pytest.mark.parametrize("moment", ["waiting for ready", "downloading"])
def test_a_signal_runs_the_teardown(
    data_engine: DataEngine, tmp_path: Path, sig: int, code: int, said: str, moment: str
) -> None:
    data_engine.configure(phase_seconds=1.0)  # a second per phase: the signal lands while we wait
    proc = start_backup(data_engine, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if moment == "waiting for ready":
            wait_until(lambda: bool(data_engine.open_backups(data_engine.web01.id)), "the backup to start")
        else:
            wait_until(lambda: bool(data_engine.open_transfers()), "an image transfer")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    error = [line for line in err.splitlines() if line.startswith("ovbackup: error:")]
    assert len(error) == 1 and error[0].startswith(f"ovbackup: error: {said}; backup "), err
    assert error[0].endswith(" finished"), err
    assert "finalized backup" in err
    assert_nothing_left_open(data_engine)
    assert out == ""  # no restore point printed
    assert all(p["complete"] is False for p in catalog_points(tmp_path))


def test_a_closed_pipe_never_stops_the_backup(data_engine: DataEngine, tmp_path: Path) -> None:
    # `ovbackup backup web01 2>&1 | head -1`: the reader goes away after the first line.
    read, write = os.pipe()
    proc = start_backup(data_engine, tmp_path, stdout=write, stderr=write)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            first = pipe.readline()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.startswith(b"ovbackup: "), first  # whatever it said first, the reader then left
    assert_nothing_left_open(data_engine)
    points = catalog_points(tmp_path)
    assert [p["complete"] for p in points] == [True]  # the backup itself went on to the end
    assert code == 1  # only the restore point could not be printed (README: exit codes)


def test_a_closed_stderr_never_stops_the_backup(data_engine: DataEngine, tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # stderr's reader is gone before the first message
    proc = start_backup(data_engine, tmp_path, stdout=subprocess.PIPE, stderr=write)
    os.close(write)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert json.loads(out)["complete"] is True
    assert_nothing_left_open(data_engine)


def kill_during_download(engine: DataEngine, tmp_path: Path) -> str:
    """Start `backup`, SIGKILL it while its first transfer opens; return the backup id it left."""
    engine.configure(phase_seconds=1.0)
    proc = start_backup(engine, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: bool(engine.open_transfers()), "an image transfer")
        proc.kill()  # SIGKILL: no teardown can run (OOM killer, power loss)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    engine.configure(phase_seconds=0.05)
    (left,) = engine.open_backups(engine.web01.id)
    assert engine.open_transfers(), "the killed run should have left its transfer open"
    return str(left.id)


def test_the_next_backup_finishes_what_a_killed_run_left(data_engine: DataEngine, tmp_path: Path) -> None:
    left = kill_during_download(data_engine, tmp_path)
    (stale,) = catalog_points(tmp_path)
    assert stale["backup_id"] == left and stale["finished"] is None  # recorded before the POST

    proc = start_backup(data_engine, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"left unfinished by an earlier run (killed?); finishing its backup {left}" in err
    assert "cancelled image transfer" in err and f"finalized backup {left}" in err
    assert json.loads(out)["complete"] is True
    assert_nothing_left_open(data_engine)
    points = catalog_points(tmp_path)
    assert [p["backup_id"] for p in points] == [json.loads(out)["backup_id"]]  # nothing fetched: forgotten
    assert not [p for p in (tmp_path / "backups" / "web01").iterdir() if p.name.endswith(".partial")]


def test_cleanup_cancels_the_transfers_a_killed_run_left(data_engine: DataEngine, tmp_path: Path) -> None:
    left = kill_during_download(data_engine, tmp_path)
    argv = [sys.executable, "-m", "ovbackup", "--password-file", str(tmp_path / "password")]
    done = subprocess.run(
        [*argv, "-o", "json", "cleanup", "web01", "--yes"],
        env=environment(data_engine, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "cancelled image transfer" in done.stderr and f"finalized backup {left}" in done.stderr
    assert [b["id"] for b in json.loads(done.stdout)] == [left]
    assert_nothing_left_open(data_engine)

"""The fake engine as a program and a package: ``python -m ovirt_fake_engine`` and the
``ovbackup-fake-engine`` console script, one engine per data directory, and ``configure``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

import pytest
import requests
from ovirt_fake_engine import FakeEngine
from ovirtsdk4.reader import Reader

SCRIPT = str(Path(sys.executable).with_name("ovbackup-fake-engine"))
MODULE = [sys.executable, "-m", "ovirt_fake_engine"]


def start(cmd: list[str], url_file: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--url-file", str(url_file), *args], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while not url_file.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return err


def test_configure_is_the_one_way_to_set_knobs(engine: FakeEngine) -> None:
    engine.configure(phase_seconds=0, tz=UTC, fail_next_backup=True, transfer_retention=5.0)
    state = engine.state
    assert (state.phase_seconds, state.tz, state.fail_next_backup, state.transfer_retention) == (
        0,
        UTC,
        True,
        5.0,
    )
    with pytest.raises(TypeError, match=r"unknown fake engine knob.*phase_secs"):
        engine.configure(phase_secs=1)
    with pytest.raises(AttributeError, match=r"engine.configure\(phase_seconds=...\)"):
        engine.phase_seconds = 1  # type: ignore[misc]  (a silent no-op would be worse)
    assert state.phase_seconds == 0


@pytest.mark.parametrize("cmd", [MODULE, [SCRIPT]], ids=["python -m", "console script"])
def test_both_entry_points_serve(tmp_path: Path, cmd: list[str]) -> None:
    helped = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert helped.returncode == 0 and "--data-dir" in helped.stdout
    assert helped.stdout.startswith(f"usage: {'ovbackup-fake-engine' if cmd == [SCRIPT] else 'python -m'}")
    url_file = tmp_path / "url"
    proc = start(cmd, url_file, "--demo")
    try:
        r = requests.get(
            f"{url_file.read_text().strip()}/vms", auth=("admin@internal", "secret-pw"), timeout=60
        )
        assert [v.name for v in Reader.read(r.content)] == ["web01", "db01", "paused01"]
    finally:
        err = stop(proc)
    assert "fake oVirt engine at http://127.0.0.1:" in err


def test_a_data_dir_serves_one_engine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start(MODULE, tmp_path / "url1", "--data-dir", str(data))
    try:
        second = subprocess.run(
            [*MODULE, "--port", "0", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"python -m ovirt_fake_engine: error: {data} is in use by a running fake engine (pid {first.pid})"
        )
        assert "Traceback" not in second.stderr
    finally:
        stop(first)
    again = start(MODULE, tmp_path / "url2", "--data-dir", str(data))  # the lock went with the first
    stop(again)

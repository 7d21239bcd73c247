"""How ``restore`` talks while it uploads: rich bars per disk on a real terminal, one line per disk in a
log, JSON Lines events with ``--progress json``; and the upload over TLS to imageio, verified with the
CA (never ``--insecure``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine.demo import DataEngine

from ovbackup.cli.reporting import JsonEvents, JsonReporter
from tests.harness import Cli
from tests.test_cli_backup_job import backup, same_image
from tests.test_cli_restore import assert_left_as_it_was, by_source, disk_ids, restore, vm_names
from tests.test_terminal import environment, run_on_pty


def events_of(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr is one JSON object (nothing else is written there in json mode)."""
    lines = stderr.splitlines()
    assert lines, "no events"
    return [json.loads(line) for line in lines]


def test_progress_json_tells_the_run_each_disk_and_the_result(dcli: Cli, data_engine: DataEngine) -> None:
    point = backup(dcli).json()
    r = restore(dcli, "--name", "web01-events", "--progress", "json")
    assert r.code == 0, r.stderr
    doc = r.json()
    events = events_of(r.stderr)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_result"
    assert all("time" in e for e in events)
    start = events[0]
    assert start["vm"] == "web01" and start["point"] == point["name"] and start["new_vm"] == "web01-events"
    assert {d["source"] for d in start["disks"]} == set(by_source(doc))

    new_ids = {d["id"] for d in doc["disks"]}
    for source_id, disk in by_source(doc).items():
        mine = [e for e in events if e.get("disk") == disk["id"]]
        assert mine[0]["event"] == "disk_start" and mine[-1]["event"] == "disk_done"
        assert mine[0]["mode"] == "restore" and mine[0]["bytes"] == disk["bytes"]
        progress = [e for e in mine if e["event"] == "disk_progress"]
        assert progress and progress[-1]["done"] == progress[-1]["size"]  # the last one says complete
        done = mine[-1]
        assert (done["source"], done["bytes"], done["alias"]) == (source_id, disk["bytes"], disk["alias"])
        assert done["upload_seconds"] == disk["upload_seconds"]
    assert {e["disk"] for e in events if e["event"] == "disk_start"} == new_ids
    assert kinds.index("run_start") < min(i for i, k in enumerate(kinds) if k == "disk_start")
    assert any(e["event"] == "note" and "created VM web01-events" in e["text"] for e in events)

    result = events[-1]
    assert result["ok"] is True and result["exit_code"] == 0
    assert result["vm"] == doc["vm"] and result["point"] == doc["point"] and result["disks"] == 2
    assert result["bytes"] == sum(d["bytes"] for d in doc["disks"])


def test_progress_json_result_of_a_failed_restore(dcli: Cli, data_engine: DataEngine) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    data_engine.fault_next("POST", "/vms")
    r = dcli("-o", "json", "restore", "web01", "--name", "web01-fault", "--progress", "json")
    assert r.code != 0
    *events, error_line = r.stderr.splitlines()  # the one error line of every failure comes last
    assert error_line.startswith("ovbackup: error:")
    result = json.loads(events[-1])
    assert result["event"] == "run_result" and result["ok"] is False and result["exit_code"] == r.code
    assert "removed disk" in result["error"]
    assert_left_as_it_was(data_engine, disks, vms)


def test_progress_json_tells_a_disk_at_most_once_a_second_and_when_complete() -> None:
    stream = io.StringIO()
    now = [100.0]
    reporter = JsonReporter(JsonEvents(stream), clock=lambda: now[0])
    for step in range(1, 31):  # 30 updates, 0.25 s apart: 7.25 s
        reporter.disk_progress("D", step * 10, 300)
        now[0] += 0.25
    reporter.disk_progress("D", 300, 300)  # told again (a retry): no second completion
    told = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["done"] for e in told] == [10, 50, 90, 130, 170, 210, 250, 290, 300]


def test_a_bar_per_disk_on_a_terminal_and_a_line_per_disk_otherwise(
    data_engine: DataEngine, tmp_path: Path
) -> None:
    env = environment(data_engine, tmp_path, OVBACKUP_DIR=str(tmp_path / "backups"))
    pw = ["--password-file", str(tmp_path / "password")]
    code, out = run_on_pty([*pw, "backup", "web01"], env)
    assert code == 0, out
    code, out = run_on_pty([*pw, "restore", "web01", "--name", "web01-tty"], env)
    assert code == 0, out
    assert "all disks" in out  # rich's overall bar, then one bar per disk with its size
    for alias in ("web01_os", "web01_raw"):
        assert f"{alias}-restore-" in out and "(restore)" in out, out
    assert "MiB" in out and "\x1b[" in out

    piped = subprocess.run(
        [sys.executable, "-m", "ovbackup", *pw, "-o", "json", "restore", "web01", "--name", "web01-log"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    doc = json.loads(piped.stdout)
    done = [line for line in piped.stderr.splitlines() if " uploaded in " in line]
    assert len(done) == 2 and "all disks" not in piped.stderr and "\r" not in piped.stderr
    for disk in doc["disks"]:
        assert sum(disk["id"] in line for line in done) == 1  # exactly one line names each new disk


@pytest.mark.parametrize("data_engine", ["tls"], indirect=True)
def test_restore_uploads_over_tls_verified_with_the_ca(dcli: Cli, data_engine: DataEngine) -> None:
    ca = data_engine.imageio_ca_file
    assert ca is not None
    assert dcli("--cafile", str(ca), "-o", "json", "backup", "web01").code == 0
    disks, vms = disk_ids(data_engine), vm_names(data_engine)

    untrusted = restore(dcli, "--name", "web01-tls")  # verification on, but not this CA
    assert untrusted.code != 0 and "certificate" in untrusted.stderr.lower(), untrusted.stderr
    assert "Traceback" not in untrusted.stderr
    assert_left_as_it_was(data_engine, disks, vms)

    data_engine.reset_log()
    r = dcli("--cafile", str(ca), "-o", "json", "restore", "web01", "--name", "web01-tls")
    assert r.code == 0, r.stderr
    assert "verification is OFF" not in r.stderr
    transfers = [q for q in data_engine.requests if q.method == "POST" and q.path.endswith("/imagetransfers")]
    assert len(transfers) == 2
    dp = data_engine.dataplane
    assert dp is not None and dp.data_url.startswith("https://")  # the only imageio there is
    snap = {d.id: data_engine.disk_path(d.id) for d in data_engine.web01.disks}
    for source_id, disk in by_source(r.json()).items():
        assert same_image(data_engine.disk_path(disk["id"]), snap[source_id])

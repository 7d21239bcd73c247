"""``backup`` of a fleet against the fake engine with real data: several VMs on two hosts, one that
always fails (paused: the engine refuses its backup), isolation, selection, parallelism, the transfer
gate, reports, metrics, hooks, signals, and shards run by two processes sharing one directory."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine import DiskSpec, Vm
from ovirt_fake_engine.demo import DataEngine

from ovbackup.errors import LockedError
from ovbackup.imageio import client as transfer
from ovbackup.jobs import fleet as fleet_job
from tests.harness import Cli, Result

MiB = 1 << 20
APPS = ("app01", "app02", "app03")


@pytest.fixture
def fleet(data_engine: DataEngine) -> dict[str, Vm]:
    """app01 on the first host, app02 and app03 on a second one, three small disks each, some data;
    broken01 is paused, so the engine refuses every backup of it."""
    second = data_engine.add_host("fake-host-2")
    vms = {}
    for i, name in enumerate(APPS):
        vm = data_engine.add_vm(
            name,
            disks=[
                DiskSpec(alias=f"{name}_os", format="cow", backup="incremental", provisioned_size=16 * MiB),
                DiskSpec(alias=f"{name}_data", format="cow", backup="incremental", provisioned_size=8 * MiB),
                DiskSpec(alias=f"{name}_raw", format="raw", backup="none", provisioned_size=8 * MiB),
            ],
            host_id=None if i == 0 else second,
        )
        for j, disk in enumerate(vm.disks):
            data_engine.write_disk(disk.id, j * MiB, 2 * MiB, 0x10 + 16 * i + j)
        vms[name] = vm
    vms["broken01"] = data_engine.add_vm(
        "broken01", status="paused", disks=[DiskSpec(alias="broken01_os", provisioned_size=8 * MiB)]
    )
    vms["web01"] = data_engine.web01
    return vms


def same_image(a: Path, b: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], check=False).returncode == 0


def catalog(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "backups" / name / "catalog.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    points: list[dict[str, Any]] = data["points"] if isinstance(data, dict) else data
    return points


def assert_nothing_open(engine: DataEngine, vms: dict[str, Vm]) -> None:
    assert engine.open_transfers() == []
    for vm in vms.values():
        assert engine.open_backups(vm.id) == [], vm.name


def by_vm(r: Result) -> dict[str, dict[str, Any]]:
    return {v["vm"]: v for v in r.json()["vms"]}


def active_backups_peak(engine: DataEngine) -> int:
    """The most backups running at once, from the engine's request log (POST start … POST finalize)."""
    active = peak = 0
    for q in engine.requests:
        if q.method == "POST" and re.fullmatch(r"/ovirt-engine/api/vms/[^/]+/backups", q.path):
            active += 1
        elif q.method == "POST" and re.fullmatch(
            r"/ovirt-engine/api/vms/[^/]+/backups/[^/]+/finalize", q.path
        ):
            active -= 1
        peak = max(peak, active)
    return peak


def test_a_failing_vm_does_not_stop_the_others(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    r = dcli("-o", "json", "backup", "app01", "broken01", "app02", "app03", "--parallel", "2")
    assert r.code == 10, r.stderr
    doc = r.json()
    assert (doc["ok"], doc["failed"], doc["skipped"]) == (3, 1, 0)
    rows = by_vm(r)
    assert [v["vm"] for v in doc["vms"]] == ["app01", "broken01", "app02", "app03"]
    assert rows["broken01"]["status"] == "failed" and "Up or Down" in rows["broken01"]["error"]
    for name in APPS:
        row = rows[name]
        assert row["status"] == "ok" and row["mode"] == "full" and row["error"] is None
        assert row["id"] == fleet[name].id and row["seconds"] > 0
        (point,) = catalog(tmp_path, name)
        assert point["complete"] is True and point["name"] == row["point"]
        assert row["bytes"] == point["bytes_transferred"]
        assert 6 * MiB <= row["bytes"] < 7 * MiB  # the data written; zeros never cross the wire
        for disk in point["disks"]:
            assert same_image(tmp_path / "backups" / name / disk["file"], data_engine.disk_path(disk["id"]))
    assert_nothing_open(data_engine, fleet)
    assert "ovbackup: error: 1 of 4 VM(s) failed and 0 skipped: broken01" in r.stderr
    assert "broken01" in r.stderr and "app03" in r.stderr  # the summary table, on stderr beside JSON
    again = dcli("-o", "json", "backup", "app01", "app02", "--parallel", "2")
    assert again.code == 0, again.stderr
    assert {v["mode"] for v in again.json()["vms"]} == {"incremental"}


def test_unknown_names_fail_before_anything_starts(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm]
) -> None:
    r = dcli("backup", "app01", "nope1", "app02", "nope2")
    assert r.code == 4
    assert r.error_lines == [r.error_lines[0]] and "'nope1', 'nope2'" in r.error_lines[0]
    assert all(data_engine.backups(vm.id) == [] for vm in fleet.values())


def test_all_search_and_exclude(dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm]) -> None:
    every = dcli("-o", "json", "backup", "--all", "--exclude", "broken*", "--exclude", "web01")
    assert every.code == 0, every.stderr
    assert sorted(by_vm(every)) == list(APPS)
    some = dcli("-o", "json", "backup", "--search", "name=app0*", "--exclude", "*3", "--full")
    assert some.code == 0, some.stderr
    assert sorted(by_vm(some)) == ["app01", "app02"]
    assert dcli("backup", "app01", "--all").code == 2
    assert dcli("backup").code == 2
    none = dcli("-o", "json", "backup", "--search", "name=nothing*")
    assert none.code == 0 and none.json() == {"vms": [], "ok": 0, "failed": 0, "skipped": 0}


def test_parallel_runs_backups_at_the_same_time(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm]
) -> None:
    data_engine.reset_log()
    one = dcli("-o", "json", "backup", *APPS, "--parallel", "1")
    assert one.code == 0, one.stderr
    assert active_backups_peak(data_engine) == 1
    data_engine.reset_log()
    two = dcli("-o", "json", "backup", *APPS, "--parallel", "2")
    assert two.code == 0, two.stderr
    assert active_backups_peak(data_engine) == 2
    logins = [q for q in data_engine.requests if q.path.endswith("/sso/oauth/token")]
    assert len(logins) == 1  # one engine session for the whole run


@pytest.mark.parametrize("per_host", [1, 2])
def test_per_host_bounds_the_transfers_through_each_host(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], per_host: int
) -> None:
    args = ("--parallel", "3", "--parallel-disks", "3", "--per-host", str(per_host), "--max-transfers", "16")
    r = dcli("-o", "json", "backup", *APPS, *args)
    assert r.code == 0, r.stderr
    peaks = data_engine.transfer_peaks
    assert set(peaks) == {data_engine.state.host_id, fleet["app02"].host_id}
    assert max(peaks.values()) <= per_host, peaks
    assert_nothing_open(data_engine, fleet)


def test_max_transfers_caps_all_hosts_together(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm]
) -> None:
    args = ("--parallel", "3", "--parallel-disks", "3", "--per-host", "3", "--max-transfers", "2")
    r = dcli("backup", *APPS, *args)
    assert r.code == 0, r.stderr
    assert data_engine.transfer_peak_total <= 2
    assert_nothing_open(data_engine, fleet)


def test_lock_held_elsewhere_and_a_busy_vm_are_skipped(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    lock_dir = tmp_path / "backups" / "app01"
    lock_dir.mkdir(parents=True)
    fd = os.open(lock_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    added = dcli("-o", "json", "add", "app02").json()  # someone else's backup of app02 is running
    try:
        r = dcli("-o", "json", "backup", *APPS, "--parallel", "3")
    finally:
        os.close(fd)
    assert r.code == 10, r.stderr
    rows = by_vm(r)
    assert rows["app01"]["status"] == "skipped" and "holds the lock" in rows["app01"]["error"]
    assert rows["app02"]["status"] == "skipped" and "during a backup operation" in rows["app02"]["error"]
    assert rows["app03"]["status"] == "ok"
    assert data_engine.backups(fleet["app01"].id) == []
    assert [b.id for b in data_engine.backups(fleet["app02"].id)] == [added["id"]]  # ours never started
    assert dcli("finalize", "app02", added["id"]).code == 0


def test_report_progress_json_and_log_file(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    report, log = tmp_path / "report.json", tmp_path / "fleet.log"
    r = dcli(
        "-o", "json", "backup", "app01", "broken01", "--progress", "json",
        "--report", str(report), "--log-file", str(log),
    )  # fmt: skip
    assert r.code == 10
    saved = json.loads(report.read_text())
    assert {k: saved[k] for k in ("vms", "ok", "failed", "skipped")} == r.json()
    assert not list(tmp_path.glob(".report.json*"))  # written through a temp file, renamed
    # Every line is an event, but the final error line (and debug lines another in-process run's
    # --debug left configured: issue 11 §5).
    lines = [
        line
        for line in r.stderr.splitlines()
        if not line.startswith(("ovbackup: error:", "ovbackup: debug:"))
    ]
    events = [json.loads(line) for line in lines]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_result"
    for kind in ("vm_start", "mode", "disk_start", "disk_progress", "disk_done", "vm_result"):
        assert kind in kinds, kind
    mode = next(e for e in events if e["event"] == "mode")
    assert mode["vm"] == "app01" and mode["mode"] == "full" and mode["backup_id"]
    results = {e["vm"]: e["status"] for e in events if e["event"] == "vm_result"}
    assert results == {"app01": "ok", "broken01": "failed"}
    assert events[-1]["ok"] == 1 and events[-1]["failed"] == 1 and events[-1]["exit_code"] == 10
    lines = log.read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line) for line in lines)
    app = [line.split(" ", 1)[1] for line in lines if " app01: " in line]
    assert app[0].startswith("app01: start")
    assert any(line.startswith("app01: full backup ") for line in app[1:])  # the mode decision
    assert any("disk app01_os: " in line and " bytes in " in line for line in app)
    assert app[-1].startswith("app01: ok in ")
    assert any("broken01: failed" in line for line in lines)
    dcli("backup", "app02", "--log-file", str(log))
    assert any(" app02: ok in " in line for line in log.read_text().splitlines())  # appended


def test_metrics_file_parses_and_merges(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    path = tmp_path / "ovbackup.prom"

    def samples() -> dict[tuple[str, str], float]:
        out = {}
        for family in text_string_to_metric_families(path.read_text()):
            for s in family.samples:
                out[(s.name, s.labels.get("vm") or s.labels.get("status") or "")] = s.value
        return out

    first = dcli("-o", "json", "backup", "app01", "app02", "broken01", "--metrics-file", str(path))
    assert first.code == 10
    m1 = samples()
    assert m1[("ovbackup_last_status", "app01")] == 1 and m1[("ovbackup_last_status", "broken01")] == 0
    assert ("ovbackup_last_success_timestamp_seconds", "broken01") not in m1
    assert m1[("ovbackup_bytes_transferred", "app02")] == by_vm(first)["app02"]["bytes"] >= 6 * MiB
    assert abs(m1[("ovbackup_last_success_timestamp_seconds", "app01")] - time.time()) < 60
    assert (m1[("ovbackup_run_vms", "ok")], m1[("ovbackup_run_vms", "failed")]) == (2, 1)

    data_engine.write_disk(fleet["app01"].disks[0].id, 0, 1 * MiB, 0x99)
    second = dcli("-o", "json", "backup", "app01", "--metrics-file", str(path))  # the others keep theirs
    assert second.code == 0, second.stderr
    m2 = samples()
    for key in (("ovbackup_last_status", "app02"), ("ovbackup_bytes_transferred", "app02")):
        assert m2[key] == m1[key]
    assert m2[("ovbackup_last_status", "broken01")] == 0
    assert second.json()["mode"] == "incremental"
    assert m2[("ovbackup_bytes_transferred", "app01")] == second.json()["bytes_transferred"]
    success = m2[("ovbackup_last_success_timestamp_seconds", "app01")]
    assert success >= m1[("ovbackup_last_success_timestamp_seconds", "app01")]

    data_engine.set_vm_status(fleet["app01"].id, "paused")
    assert dcli("backup", "app01", "--metrics-file", str(path)).code == 5  # one VM: today's exit code
    m3 = samples()
    assert m3[("ovbackup_last_status", "app01")] == 0
    assert m3[("ovbackup_last_success_timestamp_seconds", "app01")] == success  # freshness kept


HOOK = """#!/bin/sh
echo "$1|$OVBACKUP_PHASE|$OVBACKUP_VM|$OVBACKUP_VM_ID|$OVBACKUP_DIR|$OVBACKUP_POINT|$OVBACKUP_STATUS" \\
    >> "$HOOK_LOG"
echo "hook says $1"
if [ "$1" = backup-start ] && [ "$OVBACKUP_VM" = "$FAIL_VM" ]; then exit 3; fi
if [ "$1" = backup-start ] && [ "$OVBACKUP_VM" = "$HANG_VM" ]; then echo $$ > "$HOOK_LOG.pid"; sleep 60; fi
exit 0
"""


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    script, log = tmp_path / "hook.sh", tmp_path / "hook.log"
    script.write_text(HOOK)
    monkeypatch.setenv("HOOK_LOG", str(log))
    return f"sh {script}", log


def test_hooks_phases_order_and_environment(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path, hook: tuple[str, Path]
) -> None:
    command, log = hook
    r = dcli("-o", "json", "backup", "app01", "broken01", "--hook", command)
    assert r.code == 10
    rows = by_vm(r)
    calls = [line.split("|") for line in log.read_text().splitlines()]
    assert [(c[0], c[2]) for c in calls] == [
        ("job-start", ""),
        ("backup-start", "app01"),
        ("backup-end", "app01"),
        ("backup-start", "broken01"),
        ("backup-abort", "broken01"),
        ("job-end", ""),
    ]
    assert all(c[0] == c[1] for c in calls)  # OVBACKUP_PHASE is the argument too
    directory = str(tmp_path / "backups")
    assert all(c[4] == directory for c in calls)
    assert calls[1][3] == fleet["app01"].id and calls[3][3] == fleet["broken01"].id
    assert calls[2][5] == rows["app01"]["point"] and calls[2][6] == "ok"
    assert calls[4][6] == "failed" and calls[-1][6] == "failed"
    assert "hook backup-end: hook says backup-end" in r.stderr  # its output, on stderr


def test_a_failing_backup_start_hook_skips_only_that_vm(
    dcli: Cli,
    data_engine: DataEngine,
    fleet: dict[str, Vm],
    hook: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, log = hook
    monkeypatch.setenv("FAIL_VM", "app02")
    r = dcli("-o", "json", "backup", *APPS, "--hook", command, "--parallel", "2")
    assert r.code == 10
    rows = by_vm(r)
    assert (
        rows["app02"]["status"] == "skipped"
        and rows["app02"]["error"] == "skipped: hook backup-start exited 3"
    )
    assert rows["app01"]["status"] == rows["app03"]["status"] == "ok"
    assert data_engine.backups(fleet["app02"].id) == []
    phases = [line.split("|")[:3:2] for line in log.read_text().splitlines()]
    assert ["backup-end", "app02"] not in phases and ["backup-abort", "app02"] not in phases


def test_a_hanging_hook_is_killed_after_its_timeout(
    dcli: Cli,
    data_engine: DataEngine,
    fleet: dict[str, Vm],
    hook: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, log = hook
    monkeypatch.setenv("HANG_VM", "app01")
    started = time.monotonic()
    r = dcli("-o", "json", "backup", "app01", "app02", "--hook", command, "--hook-timeout", "0.5")
    assert time.monotonic() - started < 30
    assert r.code == 10
    rows = by_vm(r)
    assert rows["app01"]["status"] == "skipped" and "timed out" in rows["app01"]["error"]
    assert rows["app02"]["status"] == "ok"
    with pytest.raises(ProcessLookupError):  # the hook's shell is gone (and its sleep with it)
        os.kill(int(Path(f"{log}.pid").read_text()), 0)


def test_ctrl_c_tears_down_every_running_vm(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_update = transfer.Progress.update
    sent: list[bool] = []
    apps = [fleet[n] for n in APPS]

    def interrupt(self: transfer.Progress, n: int) -> None:
        running = [vm for vm in apps if data_engine.open_backups(vm.id)]
        if not sent and len(running) >= 2:  # two VMs are in the middle of their backups
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        real_update(self, n)

    monkeypatch.setattr(transfer.Progress, "update", interrupt)
    r = dcli("-o", "json", "backup", *APPS, "web01", "--parallel", "2")
    assert sent and r.code == 130, r.stderr
    assert "stopping: tearing down the running VMs" in r.stderr
    assert_nothing_open(data_engine, fleet)
    rows = by_vm(r)
    started = [name for name in (*APPS, "web01") if data_engine.backups(fleet[name].id)]
    assert len(started) >= 2
    assert all(b.phase in ("succeeded", "failed") for n in started for b in data_engine.backups(fleet[n].id))
    interrupted = [n for n, row in rows.items() if row["error"] and "interrupted" in row["error"]]
    assert len(interrupted) >= 2
    for name, row in rows.items():
        if row["status"] == "skipped":
            assert data_engine.backups(fleet[name].id) == []  # nothing new started after the signal


def test_config_section_supplies_the_fleet_options(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    metrics = tmp_path / "m.prom"
    config = tmp_path / "ovbackup.conf"
    config.write_text(
        f"[fleet]\nparallel = 2\nper_host = 1\nexclude = broken* web01\nmetrics_file = {metrics}\n"
        "max_transfers = 3\n"
    )
    r = dcli("--config-file", str(config), "-c", "fleet", "-o", "json", "backup", "--all")
    assert r.code == 0, r.stderr
    assert sorted(by_vm(r)) == list(APPS)
    assert "ovbackup_last_status" in metrics.read_text()
    assert max(data_engine.transfer_peaks.values()) <= 1
    bad = tmp_path / "bad.conf"
    bad.write_text("[fleet]\nparallel = many\n")
    assert dcli("--config-file", str(bad), "-c", "fleet", "backup", "--all").code == 2


def test_one_vm_with_a_hook_keeps_todays_output(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], hook: tuple[str, Path]
) -> None:
    command, log = hook
    r = dcli("-o", "json", "backup", "app01", "--hook", command)
    assert r.code == 0, r.stderr
    point = r.json()
    assert point["vm_name"] == "app01" and point["complete"] is True and len(point["disks"]) == 3
    assert "restore point" in r.stderr and "complete" in r.stderr
    assert len(log.read_text().splitlines()) == 4
    refused = dcli("backup", "broken01", "--hook", command)
    assert refused.code == 5 and "Up or Down" in refused.error_lines[0]


def test_two_shard_processes_share_one_directory_without_overlap(
    data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path
) -> None:
    extra = [
        data_engine.add_vm(f"svc{i:02}", disks=[DiskSpec(alias=f"svc{i:02}_os", provisioned_size=4 * MiB)])
        for i in range(5)
    ]
    password = tmp_path / "pw"
    password.write_text(data_engine.password + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_"))}
    env.update(
        OVIRT_URL=data_engine.url, OVIRT_USERNAME=data_engine.username, OVBACKUP_DIR=str(tmp_path / "shared")
    )

    def start(shard: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "ovbackup", "--password-file", str(password), "-o", "json", "backup",
                "--all", "--exclude", "broken01", "--shard", shard, "--parallel", "2"]  # fmt: skip
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [start("0/2"), start("1/2")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    names = [{v["vm"] for v in json.loads(out)["vms"]} for out, _ in outs]
    everyone = {vm.name for vm in (*fleet.values(), *extra)} - {"broken01"}
    assert names[0] | names[1] == everyone and not names[0] & names[1]
    for vm in (*fleet.values(), *extra):
        if vm.name == "broken01":
            continue
        assert len(data_engine.backups(vm.id)) == 1, vm.name  # backed up exactly once
        points = json.loads((tmp_path / "shared" / vm.name / "catalog.json").read_text())
        points = points["points"] if isinstance(points, dict) else points
        assert [p["complete"] for p in points] == [True]


def test_backup_prune_applies_the_policy_to_each_vm_that_succeeded(
    dcli: Cli, data_engine: DataEngine, fleet: dict[str, Vm], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ovbackup.conf"
    config.write_text("[nightly]\nkeep_last = 1\nmerge = yes\n")
    argv = ["--config-file", str(config), "-c", "nightly", "-o", "json", "backup"]
    for night in range(3):
        for i, name in enumerate(("app01", "app02")):  # the guests write between the nights
            data_engine.write_disk(fleet[name].disks[0].id, (4 + night) * MiB, MiB, 0x70 + 8 * night + i)
        r = dcli(*argv, "app01", "broken01", "app02", "--parallel", "2", "--prune")
        assert r.code == 10, r.stderr
        rows = by_vm(r)
        assert rows["broken01"]["status"] == "failed"
        for name in ("app01", "app02"):
            assert rows[name]["status"] == "ok", rows[name]
            # one point left, the newest: after the first night a merged full, byte-exact with the disk
            (point,) = catalog(tmp_path, name)
            assert point["name"] == rows[name]["point"] and point["complete"]
            vm_dir = tmp_path / "backups" / name
            for disk in point["disks"]:
                assert disk["backing_file"] is None, disk
                assert same_image(vm_dir / disk["file"], data_engine.disk_path(disk["id"]))
            own = {d["file"] for d in point["disks"]} | {f"{point['name']}.config.json"}
            assert {p.name for p in vm_dir.iterdir()} <= own | {"catalog.json", ".lock"}
        assert r.stderr.count("pruned ") == 2, r.stderr
    assert not any(p["complete"] for p in catalog(tmp_path, "broken01"))  # a failed VM is never pruned
    # a prune that fails after a good backup: the VM is failed (monitoring must notice), its point is kept
    (tmp_path / "backups" / "app02" / ".prune-journal.json").write_text("{torn")
    r = dcli(*argv, "app01", "app02", "--prune")
    assert r.code == 10, r.stderr
    rows = by_vm(r)
    assert rows["app01"]["status"] == "ok" and rows["app02"]["status"] == "failed"
    assert "but the prune after it failed: cannot read the prune journal" in rows["app02"]["error"]
    assert rows["app02"]["point"] in [p["name"] for p in catalog(tmp_path, "app02") if p["complete"]]
    # a `prune` elsewhere takes app01's lock between its backup and its prune: failed, not ok or skipped
    (tmp_path / "backups" / "app02" / ".prune-journal.json").unlink()
    real = fleet_job.run_prune

    def lock_taken(root: Path, vm: str, *args: Any, **kwargs: Any) -> Any:
        if vm == "app01":
            raise LockedError("VM app01 is locked by another ovbackup run (pid 4242)")
        return real(root, vm, *args, **kwargs)

    monkeypatch.setattr(fleet_job, "run_prune", lock_taken)
    r = dcli(*argv, "app01", "app02", "--prune")
    assert r.code == 10, r.stderr
    rows = by_vm(r)
    assert rows["app02"]["status"] == "ok" and rows["app01"]["status"] == "failed", rows
    assert "but the prune after it failed" in rows["app01"]["error"] and "lock" in rows["app01"]["error"]
    assert_nothing_open(data_engine, fleet)

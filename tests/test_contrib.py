"""contrib/: the systemd units and the Kubernetes CronJob are valid and run a command ovbackup accepts.

``systemd-analyze verify`` checks the units where it is installed (no warnings either); everywhere the
command lines are taken out of the files and run against an engine that is not there: exit 7 (cannot
connect) proves every flag parsed, where a typo would be a usage error (exit 2).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
OVBACKUP = Path(sys.executable).parent / "ovbackup"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(CONTRIB / "systemd" / name)
    return parser


def env_without_engine(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_"))}
    env.update(
        OVIRT_URL="http://127.0.0.1:9",
        OVIRT_USERNAME="admin@internal",
        OVIRT_PASSWORD="x",
        OVBACKUP_DIR=str(tmp_path / "backups"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        PATH=f"{OVBACKUP.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def test_service_runs_a_sharded_fleet_backup(tmp_path: Path) -> None:
    service = unit("ovbackup@.service")
    argv = shlex.split(service["Service"]["ExecStart"])
    assert Path(argv[0]).name == "ovbackup"
    assert argv[argv.index("backup") + 1 :][:3] == ["--all", "--shard", "${SHARD}"]
    assert "--metrics-file" in argv and "--report" in argv
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["Environment"] == "SHARD=0/1"  # the last Environment= line: the default
    # A real run of that command line (SHARD as systemd would substitute it, files in tmp_path).
    run = [str(OVBACKUP)] + [a.replace("${SHARD}", "0/1") for a in argv[1:]]
    for where in ("/var/lib/ovbackup", "/var/lib/node_exporter/textfile_collector", "/var/log/ovbackup"):
        run = [a.replace(where, str(tmp_path)) for a in run]
    r = subprocess.run(run, env=env_without_engine(tmp_path), capture_output=True, text=True, check=False)
    assert r.returncode == 7, r.stderr  # cannot reach the engine: every flag was accepted
    assert "cannot reach the engine" in r.stderr


def test_timer_starts_the_service_nightly() -> None:
    timer = unit("ovbackup-fleet.timer")
    assert timer["Timer"]["OnCalendar"].endswith("02:30:00")
    assert timer["Timer"]["Unit"].startswith("ovbackup@")
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    # verify needs the binary to exist and the user to be known: point them at this machine's.
    text = (CONTRIB / "systemd" / "ovbackup@.service").read_text()
    text = text.replace("/usr/local/bin/ovbackup", str(OVBACKUP))
    text = "\n".join("User=root" if line.startswith("User=") else line for line in text.splitlines())
    text = "\n".join("Group=root" if line.startswith("Group=") else line for line in text.splitlines())
    (tmp_path / "ovbackup@0.service").write_text(text + "\n")
    shutil.copy(CONTRIB / "systemd" / "ovbackup-fleet.timer", tmp_path / "ovbackup-fleet.timer")
    r = subprocess.run(
        ["systemd-analyze", "verify", "ovbackup@0.service", "ovbackup-fleet.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "ovbackup" not in r.stderr, r.stderr  # no warnings about our units either


def cronjob() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((CONTRIB / "kubernetes" / "ovbackup-cronjob.yaml").read_text()))
    assert len(documents) == 1
    doc: dict[str, Any] = documents[0]
    return doc


def test_cronjob_is_an_indexed_job_with_one_shard_per_index(tmp_path: Path) -> None:
    doc = cronjob()
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"
    job = doc["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    (container,) = job["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith("exec ovbackup ")
    argv = shlex.split(command[2])
    shard = argv[argv.index("--shard") + 1]
    assert shard == f"$JOB_COMPLETION_INDEX/{job['completions']}"
    assert job["parallelism"] == job["completions"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OVBACKUP_DIR"] == container["volumeMounts"][0]["mountPath"]
    # The shell line as the pod runs it, for index 1 (files under tmp_path, no engine there).
    run_env = {**env_without_engine(tmp_path), "JOB_COMPLETION_INDEX": "1"}
    line = command[2].replace("/backup/reports", str(tmp_path))
    r = subprocess.run(["sh", "-c", line], env=run_env, capture_output=True, text=True, check=False)
    assert r.returncode == 7, r.stderr

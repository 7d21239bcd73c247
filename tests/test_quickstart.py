"""The README's quick start runs as written, and every command is documented (docs cannot drift)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from typer.main import get_command

from ovbackup.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_quick_start_is_two_commands() -> None:
    assert quick_start_commands() == ["./scripts/demo", "./scripts/test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_demo_runs_the_main_job_against_the_fake_engine() -> None:
    # The venv running these tests already has ovbackup installed: the script skips its set-up step.
    env = {**os.environ, "VENV": sys.prefix, "PHASE_SECONDS": "0.2"}
    result = subprocess.run(
        ["./scripts/demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    started = re.search(r"started full backup ([0-9a-f-]{36}) of VM web01", out)
    assert started, out[-3000:]
    backup_id = started.group(1)
    assert f"backup {backup_id} is ready" in out
    assert backup_id in result.stdout  # listed by `ovbackup list web01`
    assert f"backup {backup_id} is succeeded" in out  # and finalized


def _commands(group: object, prefix: str = "") -> list[str]:
    names = []
    for name, command in getattr(group, "commands", {}).items():
        names.append(prefix + name)
        names.extend(_commands(command, prefix + name + " "))
    return names


def test_every_command_has_help_and_appears_in_the_readme() -> None:
    root = get_command(app)
    commands = _commands(root)
    assert {
        "add",
        "list",
        "show",
        "finalize",
        "wait",
        "disks",
        "cleanup",
        "vms",
        "backup",
        "download",
        "catalog",
        "verify",
        "checkpoints list",
        "checkpoints purge",
    } <= set(commands)
    for name in commands:
        assert f"ovbackup {name}" in README, f"`ovbackup {name}` is not in the README"
        *parents, last = name.split()
        group = root
        for parent in parents:
            group = group.commands[parent]  # type: ignore[attr-defined]
        assert group.commands[last].help, f"`{name}` has no help"  # type: ignore[attr-defined]


def test_every_exit_code_is_in_the_readme() -> None:
    from ovbackup.errors import ExitCode

    table = README.split("## Exit codes", 1)[1]
    for code in ExitCode:
        assert re.search(rf"\|\s*[^|]*\b{int(code)}\b[^|]*\|", table), f"exit code {int(code)} missing"

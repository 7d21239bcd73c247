"""The README's quick start runs as written, and every command is documented (docs cannot drift)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
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


def data_path_block() -> str:
    section = README.split("## Trying the data path by hand", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.dataplane
def test_the_data_path_block_runs_as_pasted(tmp_path: Path) -> None:
    """The README's block, run by bash as one piece (as when pasted), stopping at the first failure:
    it waits for the engine's URL file instead of racing it, and keeps its files private."""
    block = data_path_block()
    assert "/tmp" not in block and "mktemp -d" in block  # no fixed, shared paths
    venv = Path(sys.prefix)
    if venv != ROOT / ".venv":  # the venv running the tests, wherever it is
        block = block.replace(".venv/bin/", f"{venv}/bin/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_"))}
    env["TMPDIR"] = str(tmp_path)  # mktemp -d makes its directory here, so the test sees it go
    proc = subprocess.Popen(
        ["bash", "-e", "-c", block],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the engine and its data plane too: killed below if the block failed
    )
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    assert re.search(r"full restore point \S+ of web01 complete", err), err
    assert re.search(r"incremental restore point \S+ of web01 complete", err), err
    assert "of web01 verified" in err
    assert "incremental" in out and "(full)" in out  # the two points in catalog's table, on stdout
    assert list(tmp_path.iterdir()) == []  # the last line removed everything


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


def readme_exit_codes(readme: str = README) -> dict[int, str]:
    """The README's exit-code table, row by row: {code: meaning}; a row may hold several codes (130 / 143)."""
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[:2] and [c.strip() for c in rows[0].strip("|").split("|")] == ["code", "meaning"], rows[:2]
    codes: dict[int, str] = {}
    for row in rows[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 2 and cells[1], f"malformed exit-code row: {row!r}"
        for code in cells[0].split("/"):
            assert code.strip().isdigit(), f"not an exit code: {code!r} in {row!r}"
            codes[int(code)] = cells[1]
    return codes


def test_every_exit_code_is_in_the_readme() -> None:
    from ovbackup.errors import ExitCode

    documented = readme_exit_codes()
    assert set(documented) == {int(c) for c in ExitCode}


def test_the_exit_code_table_parser_notices_a_missing_row() -> None:
    for code in (2, 9):  # the rows a regex across lines used to find anyway
        row = next(line for line in README.splitlines() if line.startswith(f"| {code} |"))
        assert code not in readme_exit_codes(README.replace(row + "\n", ""))

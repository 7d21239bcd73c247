"""What starting ovbackup imports: help and TAB completion must not load what only talking to an engine needs.

These check module names, never times (benchmarks/startup.py prints those). Each case runs in a fresh
interpreter, since this test process has long imported everything.
"""

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imported inside command bodies only; the packages pull in a good part of the start-up time each.
ENGINE_ONLY = (
    "requests",
    "rich",
    "urllib3",
    "defusedxml",
    "ovbackup.engine.connection",
    "ovbackup.engine.services",
    "ovbackup.cli.render",
)
# typer checks values with pydantic; ovbackup.cli.typer_fast checks plain ones itself, without it.
NOT_FOR_HELP_OR_TAB = (*ENGINE_ONLY, "pydantic")

PROBE = """
import json, sys
from ovbackup.cli import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
"""
BUILD_APP = """
import json, sys
from typer.main import get_command
from ovbackup.cli import main
from ovbackup.cli.app import app
get_command(app)
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
"""


def probe(
    tmp_path: Path, program: str, *args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> tuple[set[str], str]:
    """The modules loaded at the end of the program, and its stderr."""
    out = tmp_path / "modules.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("_OVBACKUP_", "COMP_", *drop))}
    proc = subprocess.run(
        [sys.executable, "-c", program, str(out), *args],
        check=False,
        cwd=ROOT,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text())), proc.stderr


def imported(tmp_path: Path, program: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    return probe(tmp_path, program, *args, env=env)[0]


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def test_building_the_app(tmp_path: Path) -> None:
    modules = imported(tmp_path, BUILD_APP)
    assert "ovbackup.cli.app" in modules
    assert loaded(modules, ENGINE_ONLY) == []


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["list", "--help"], ["checkpoints", "purge", "--help"], ["download", "-h"]],
    ids=" ".join,
)
def test_help(tmp_path: Path, args: list[str]) -> None:
    modules = imported(tmp_path, PROBE, *args)
    assert "ovbackup.cli.app" in modules
    assert loaded(modules, NOT_FOR_HELP_OR_TAB) == []


@pytest.mark.parametrize(
    "words", ["ovbackup l", "ovbackup checkpoints p", "ovbackup --out", "ovbackup download vm id --f"]
)
def test_completion_request(tmp_path: Path, words: str) -> None:
    env = {
        "_OVBACKUP_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    modules = imported(tmp_path, PROBE, env=env)
    assert "ovbackup.cli.app" in modules
    assert loaded(modules, NOT_FOR_HELP_OR_TAB) == []


ENGINE = ("--engine-url", "http://127.0.0.1:9", "-u", "admin@internal")


@pytest.mark.parametrize(
    "args",
    [
        ["list", "web01"],
        ["-o", "json", "--timeout", "2.5", "--header", "X-A: 1", "list", "web01", "--max", "3"],
        ["backup", "web01", "--dir", "D", "--disk", "a", "--max-workers", "2", "--lock-wait", "1.5"],
        ["checkpoints", "purge", "web01", "--keep", "2", "--older-than", "0.5", "--dry-run"],
    ],
    ids=" ".join,
)
def test_command_run(tmp_path: Path, args: list[str]) -> None:
    # Every value parsed natively (ovbackup.cli.typer_fast): the run goes as far as the password, no
    # further (no OVIRT_PASSWORD, no config file, no terminal), and never loads pydantic.
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    args = [str(tmp_path / "backups") if a == "D" else a for a in args]
    modules, stderr = probe(tmp_path, PROBE, *ENGINE, *args, env=env, drop=("OVIRT_", "OVBACKUP_"))
    assert "no password" in stderr
    assert loaded(modules, ("pydantic",)) == []


def _callbacks() -> list[Callable[..., Any]]:
    from ovbackup.cli.app import app

    found: list[Callable[..., Any]] = []
    apps = [app]
    while apps:
        current = apps.pop()
        if current.registered_callback and current.registered_callback.callback:
            found.append(current.registered_callback.callback)
        found += [c.callback for c in current.registered_commands if c.callback]
        apps += [g.typer_instance for g in current.registered_groups if g.typer_instance]
    return found


def test_command_annotations_are_not_strings() -> None:
    # typer evaluates string annotations (`from __future__ import annotations`) twice per command on
    # every run, ~15 ms in all; the command modules keep real ones.
    callbacks = _callbacks()
    assert len(callbacks) > 10
    for callback in callbacks:
        strings = {k: v for k, v in inspect.get_annotations(callback).items() if isinstance(v, str)}
        assert not strings, f"{callback.__module__}.{callback.__qualname__}: {strings}"


UNTESTED_TYPER = """
import json, sys
import typer
typer.__version__ = "0.99.0"  # a release the fast path was never tested with
from ovbackup.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--version"], 0), (["list"], 2), (["--timeout", "x", "vms"], 2), (["vms", "--timeout", "0"], 2)],
    ids=["version", "missing-argument", "bad-float", "below-min"],
)
def test_an_untested_typer_runs_stock_typer_with_the_same_results(
    tmp_path: Path, args: list[str], code: int
) -> None:
    """The guarded module refuses to load: stock typer (pydantic) parses, and the answers are the same."""
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_", "_OVBACKUP_"))}
    proc = subprocess.run(
        [sys.executable, "-c", UNTESTED_TYPER, str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    result = json.loads(out.read_text())
    assert result["code"] == code, proc.stderr
    assert "ovbackup.cli.typer_fast" not in result["modules"]
    assert "Traceback" not in proc.stderr
    if code == 2:
        assert "pydantic" in result["modules"]  # typer's own coercion did the parsing
        assert "ovbackup: error:" in proc.stderr or "Usage:" in proc.stderr

"""``--help`` says what goes where, and a usage error is the one line the README promises.

Every command of the app is read (the list comes from the app itself, so a new command is checked too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command

from ovbackup.cli import main
from ovbackup.cli.app import app
from tests.harness import Cli

# What typer's stock help writes and a person cannot act on: `{VM}`, `[[POINT]]`, `VM <str>`,
# `<list[str]>`, `[x>=0.001]`, `[1<=x<=16]`.
NOT_PLACEHOLDERS = re.compile(r"\{[A-Z_]+\}|\[\[|<[a-z][a-z_\[\]]*>|\bx[<>]=|<=x\b")


def command_paths(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = command or get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


COMMANDS = list(command_paths())


def help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "--help"]) == 0
    out, err = capsys.readouterr()
    assert not err
    return out


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "ovbackup")
def test_every_help_says_what_goes_where(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(path, capsys)
    assert not NOT_PLACEHOLDERS.findall(text), text
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: ovbackup"), usage


def test_placeholders_name_the_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert help_of(("verify",), capsys).startswith("Usage: ovbackup verify [OPTIONS] VM [POINT]\n")
    assert help_of(("backup",), capsys).startswith("Usage: ovbackup backup [OPTIONS] [VM]...\n")
    text = help_of(("backup",), capsys)
    assert re.search(r"-o, --output table\|json ", text), text
    assert re.search(r"--format qcow2\|raw ", text)
    assert "[default: 4; 1 to 16]" in text  # --max-workers: the bounds in words
    text = help_of(("wait",), capsys)
    assert "--phase ready|succeeded " in text
    assert re.search(r"^  VM +VM name or id\.", text, re.M)  # the argument without its Python type
    assert "-u, --username USER " in help_of((), capsys)


USAGE_ERRORS = [
    (["list", "web01", "--bogus"], "no such option: --bogus", "ovbackup list [OPTIONS] VM"),
    (["show", "web01"], "missing argument 'BACKUP_ID'", "ovbackup show [OPTIONS] VM BACKUP_ID"),
    (["list", "web01", "--max", "many"], "invalid value for '--max'", "ovbackup list [OPTIONS] VM"),
    (["list", "web01", "--max", "0"], "invalid value for '--max'", "ovbackup list [OPTIONS] VM"),
    (["--timeout", "soon", "list", "web01"], "invalid value for '--timeout'", "ovbackup [OPTIONS] COMMAND"),
    (["lst", "web01"], "no such command 'lst'. Did you mean 'list'?", "ovbackup [OPTIONS] COMMAND"),
    (["checkpoints", "purge"], "missing argument 'VM'", "ovbackup checkpoints purge [OPTIONS] VM"),
    (["-o", "yaml", "list", "web01"], "unknown output format 'yaml'", None),
    (["wait", "web01", "B", "--phase", "gone"], "--phase must be ready or succeeded", None),
    (["backup", "web01", "--dir", "/nonexistent", "--format", "vmdk"], "--format must be qcow2 or raw", None),
    (["add", "web01", "--disk"], "option '--disk' requires an argument", None),
]


@pytest.mark.parametrize(
    ("argv", "message", "usage"), USAGE_ERRORS, ids=[" ".join(e[0]) for e in USAGE_ERRORS]
)
def test_a_usage_error_is_one_line_and_the_usage(
    cli: Cli, argv: list[str], message: str, usage: str | None
) -> None:
    r = cli(*argv)
    assert r.code == 2, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("ovbackup: error: ") and message in lines[0], r.stderr
    if usage is None:
        assert len(lines) == 1, r.stderr
    else:
        assert len(lines) == 2 and lines[1].startswith(f"usage: {usage}"), r.stderr
    assert "Traceback" not in r.stderr and "Error:" not in r.stderr and "Try " not in r.stderr

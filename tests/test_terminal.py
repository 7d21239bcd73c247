"""Behaviour that depends on a terminal, checked on a real pseudo-terminal: colour (and NO_COLOR),
confirmation prompts, the password prompt that must never happen without one, tables that never cut an
id at any width, and progress bars that share the terminal with nothing else."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest
from ovirt_fake_engine import FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine
from rich.cells import cell_len

from ovbackup.store.catalog import Catalog, DiskRecord, RestorePoint
from tests.harness import process_env

COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-7]|9[0-7]|38)(?:;|m)")  # SGR foreground colours


def run_on_pty(
    args: list[str],
    env: dict[str, str],
    answer: bytes | None = None,
    prompt: bytes = b"?",
    timeout: float = 60,
    columns: int | None = None,
) -> tuple[int, str]:
    """Run ovbackup with stdin, stdout and stderr on one pty; type ``answer`` once ``prompt`` shows.

    ``columns``: the pty's window size (TIOCSWINSZ), and no COLUMNS in the environment, so the
    program learns its width from the terminal as it does in a real one."""
    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovbackup", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    answered = answer is None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the pty
                break
            if not chunk:
                break
            output += chunk
            if not answered and prompt in output:
                os.write(master, answer or b"")
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(master)
    return code, output.decode(errors="replace")


def environment(engine: FakeEngine, tmp_path: Path, **extra: str) -> dict[str, str]:
    return process_env(engine, tmp_path, **{"TERM": "xterm-256color", "COLUMNS": "200", **extra})


def test_colour_on_a_terminal_unless_no_color(engine: FakeEngine, web01: Vm, tmp_path: Path) -> None:
    engine.add_backups(web01.id, 1, phase="succeeded")
    env = environment(engine, tmp_path)
    pw = ["--password-file", str(tmp_path / "password")]
    code, coloured = run_on_pty([*pw, "list", "web01"], env)
    assert code == 0 and COLOUR.search(coloured) and "succeeded" in coloured
    code, plain = run_on_pty([*pw, "list", "web01"], {**env, "NO_COLOR": "1"})
    assert code == 0 and "succeeded" in plain
    assert not COLOUR.search(plain), plain  # bold may stay; colours go (https://no-color.org)


def test_remove_asks_on_a_terminal_and_no_keeps_it(engine: FakeEngine, web01: Vm, tmp_path: Path) -> None:
    checkpoint = engine.add_checkpoint(web01.id)
    env = environment(engine, tmp_path)
    args = ["--password-file", str(tmp_path / "password"), "checkpoints", "remove", "web01", checkpoint.id]
    code, out = run_on_pty(args, env, answer=b"n\n")
    assert "Remove checkpoint" in out and code == 1
    assert [c.id for c in engine.checkpoints(web01.id)] == [checkpoint.id]
    code, out = run_on_pty(args, env, answer=b"y\n")
    assert code == 0, out
    assert engine.checkpoints(web01.id) == []


def test_password_is_prompted_only_on_a_terminal(engine: FakeEngine, web01: Vm, tmp_path: Path) -> None:
    env = environment(engine, tmp_path)
    code, out = run_on_pty(
        ["-o", "json", "list", "web01"], env, answer=(engine.password + "\n").encode(), prompt=b"Password for"
    )
    assert code == 0, out
    assert "Password for admin@internal" in out
    assert engine.password not in out  # not echoed
    piped = subprocess.run(
        [sys.executable, "-m", "ovbackup", "list", "web01"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert piped.returncode == 2 and "no password" in piped.stderr


def test_backup_draws_progress_bars_on_a_terminal_and_lines_otherwise(
    data_engine: DataEngine, tmp_path: Path
) -> None:
    env = environment(data_engine, tmp_path, OVBACKUP_DIR=str(tmp_path / "backups"))
    pw = ["--password-file", str(tmp_path / "password")]
    code, out = run_on_pty([*pw, "backup", "web01"], env)
    assert code == 0, out
    assert "all disks" in out and "web01_os (full)" in out and "MiB" in out  # rich bars
    piped = subprocess.run(
        [sys.executable, "-m", "ovbackup", *pw, "-o", "json", "backup", "web01"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    per_disk = [line for line in piped.stderr.splitlines() if " → " in line]
    assert len(per_disk) == 2 and "all disks" not in piped.stderr  # one line per disk, no bars
    assert json.loads(piped.stdout)["mode"] == "incremental"


# -- tables at any width --------------------------------------------------------------------------
# Escape sequences a terminal understands: CSI (colours, cursor, erase), OSC, and the two-byte ones.
WELL_FORMED = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[78=>]"
)
WIDTHS = (80, 120, 200)


def screen_lines(raw: str) -> list[str]:
    """What the terminal shows, line by line (the output has no cursor movement but \\r\\n)."""
    return WELL_FORMED.sub("", raw).replace("\r\n", "\n").split("\n")


def assert_shown_whole(raw: str, columns: int, ids: set[str], headers: list[str]) -> None:
    lines = screen_lines(raw)
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, "\n".join(too_wide)  # the terminal would wrap these, in the middle of an id
    text = "\n".join(lines)
    for value in ids:  # whole, on one line, as a copy from the screen gets it
        assert re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text), f"{value} not whole:\n{text}"
    for word in {w for h in headers for w in h.split()}:  # no header split as "Form/at"
        assert re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text), f"header word {word!r} split:\n{text}"


@pytest.mark.parametrize("columns", WIDTHS)
def test_list_never_cuts_an_id(engine: FakeEngine, web01: Vm, tmp_path: Path, columns: int) -> None:
    backups = engine.add_backups(web01.id, 3, phase="succeeded")
    ids = {b.id for b in backups} | {b.to_checkpoint_id for b in backups if b.to_checkpoint_id}
    assert len(ids) == 6
    code, out = run_on_pty(
        ["--password-file", str(tmp_path / "password"), "list", "web01"],
        environment(engine, tmp_path),
        columns=columns,
    )
    assert code == 0, out
    assert_shown_whole(out, columns, ids, ["Backup ID", "Phase", "Checkpoints (from → to)"])


def catalog_of_three(root: Path) -> tuple[set[str], list[RestorePoint]]:
    """A full and two incrementals of web01 with their files: every catalog column has a value."""
    catalog = Catalog(root, "web01")
    catalog.dir.mkdir(parents=True)
    points, previous, backing = [], None, None
    for n, mode in enumerate(("full", "incremental", "incremental")):
        name = f"2026112{n}T023000.123Z"
        file = f"{name}.web01_os.d1.{mode}.qcow2"
        (catalog.dir / file).write_bytes(b"x" * 1024 * (n + 1))
        checkpoint = str(uuid.uuid4())
        disk = DiskRecord(
            id=str(uuid.uuid4()),
            alias="web01_os",
            mode=mode,
            format="qcow2",
            virtual_size=2**31,
            file=file,
            backing_file=backing,
            bytes_transferred=2**26 * (n + 1),
        )
        point = RestorePoint(
            name=name, backup_id=str(uuid.uuid4()), mode=mode, format="qcow2", started="s", finished="f",
            from_checkpoint_id=previous, to_checkpoint_id=checkpoint, engine_url="https://e/ovirt-engine/api",
            vm_id=str(uuid.uuid4()), vm_name="web01", complete=True, verified=n == 0 or None, disks=(disk,),
        )  # fmt: skip
        catalog.record(point)
        points.append(point)
        previous, backing = checkpoint, file
    ids = (
        {p.name for p in points} | {p.backup_id for p in points} | {p.to_checkpoint_id or "" for p in points}
    )
    return ids, points


@pytest.mark.parametrize("columns", WIDTHS)
def test_catalog_never_cuts_an_id(tmp_path: Path, columns: int) -> None:
    ids, _ = catalog_of_three(tmp_path / "backups")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_", "NO_COLOR"))}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    code, out = run_on_pty(["catalog", "web01", "--dir", str(tmp_path / "backups")], env, columns=columns)
    assert code == 0, out
    assert_shown_whole(out, columns, ids, ["Point", "Backup ID", "Checkpoints (from → to)", "Complete"])
    if columns >= 200:  # room for every column: none is dropped
        for header in ("Mode", "Disks", "Bytes", "Verified", "Depth", "Holds alone"):
            assert header.split()[0] in out, out


def test_backup_on_a_terminal_has_one_live_display(data_engine: DataEngine, tmp_path: Path) -> None:
    """The status line while the backup starts and finishes goes through the progress display: nothing
    writes around rich's live bars (it redirects stderr: a raw "\\r\\x1b[K…" written meanwhile came
    out as mangled escapes, "\\x1b\\x1b[1m[")."""
    env = environment(data_engine, tmp_path, OVBACKUP_DIR=str(tmp_path / "backups"))
    code, out = run_on_pty(
        ["--password-file", str(tmp_path / "password"), "backup", "web01"], env, columns=100
    )
    assert code == 0, out
    shown = WELL_FORMED.sub("", out)
    assert "\x1b" not in shown, repr(shown[max(0, shown.find("\x1b") - 80) :][:200])
    # the status line was drawn while the bars were live
    assert re.search(r"backup [0-9a-f-]{36}: (starting|ready|finalizing|succeeded) \(\d+ s\)", shown), shown
    assert "all disks" in shown and "web01_os (full)" in shown

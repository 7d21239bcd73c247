"""Behaviour that depends on a terminal, checked on a real pseudo-terminal: colour (and NO_COLOR),
confirmation prompts, and the password prompt that must never happen without one."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from ovirt_fake_engine import FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine

COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-7]|9[0-7]|38)(?:;|m)")  # SGR foreground colours


def run_on_pty(
    args: list[str],
    env: dict[str, str],
    answer: bytes | None = None,
    prompt: bytes = b"?",
    timeout: float = 60,
) -> tuple[int, str]:
    """Run ovbackup with stdin, stdout and stderr on one pty; type ``answer`` once ``prompt`` shows."""
    master, slave = pty.openpty()
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
    password = tmp_path / "password"
    password.write_text(engine.password + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_", "NO_COLOR"))}
    env.update(
        OVIRT_URL=engine.url,
        OVIRT_USERNAME=engine.username,
        TERM="xterm-256color",
        COLUMNS="200",
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        **extra,
    )
    return env


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

"""man/ovbackup.1 is generated from the app (scripts/man: help2man and every command's --help) and current."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from typer.main import get_command

from ovbackup.cli.app import app
from ovbackup.cli.manpage import command_paths

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "ovbackup.1"


def regenerate(out: Path) -> str:
    assert shutil.which("help2man"), "help2man is needed (scripts/setup installs it)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_"))}
    proc = subprocess.run(
        ["./scripts/man", str(out)],
        cwd=ROOT,
        env={**env, "VENV": sys.prefix},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return (out / "ovbackup.1").read_text()


def test_man_page_is_current(tmp_path: Path) -> None:
    assert PAGE.is_file(), f"{PAGE} is missing: run ./scripts/man"
    assert regenerate(tmp_path) == PAGE.read_text(), "man/ovbackup.1 is out of date: run ./scripts/man"


def test_man_page_has_every_command_and_exit_code() -> None:
    page = PAGE.read_text()
    sections = re.findall(r'^\.SS "([a-z ]+)"$', page, re.M)
    assert sections == [" ".join(p) for p in command_paths(get_command(app))]
    exit_status = page.split('.SH "EXIT STATUS"', 1)[1].split("\n.SH ", 1)[0]
    from tests.test_quickstart import readme_exit_codes

    for code in readme_exit_codes():
        assert re.search(rf"^\\fB[^\n]*(?<!\d){code}(?!\d)", exit_status, re.M), (
            f"exit code {code} not in the man page"
        )
    assert "\\-\\-password\\-file" in page  # minus signs, so a copied option works


def test_man_page_renders_without_warnings() -> None:
    groff = shutil.which("groff")
    if groff is None:  # man-db's renderer; where it is missing there is nothing to check it with
        return
    proc = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-z", str(PAGE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr

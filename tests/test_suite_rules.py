"""The suite's own rules hold: in CI a skipped test fails, and set-up does not reinstall what is current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n\ndef test_needs_a_shell():\n    pytest.skip('zsh is not installed')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "test_skipping.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_skip_fails_in_ci_and_stays_a_skip_elsewhere(tmp_path: Path) -> None:
    in_ci = run_pytest(tmp_path, "true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert "1 failed" in in_ci.stdout and "skipped in CI (Skipped: zsh is not installed)" in in_ci.stdout
    local = run_pytest(tmp_path, None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout


def test_the_seed_of_the_random_order_is_printed(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, None)
    assert "replay it with: ./scripts/test --randomly-seed=" in result.stdout, result.stdout


def test_setup_does_not_reinstall_when_nothing_changed() -> None:
    venv = Path(sys.prefix)
    installed = sorted(venv.glob("lib/python*/site-packages/ovbackup-*.dist-info/RECORD"))
    assert installed, f"ovbackup is not installed in {venv}"
    before = installed[0].stat().st_mtime_ns
    result = subprocess.run(
        ["./scripts/setup"],
        cwd=ROOT,
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "pip" not in result.stdout + result.stderr
    after = sorted(venv.glob("lib/python*/site-packages/ovbackup-*.dist-info/RECORD"))
    assert after == installed and after[0].stat().st_mtime_ns == before  # not reinstalled

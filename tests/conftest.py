"""ovbackup's fixtures: the CLI run in-process against the fake engine.

The fake engine's own fixtures (``engine``, ``tls_engine``, ``data_engine``, ``dataplane``, ``web01``, …)
come from its pytest plugin, ``ovirt_fake_engine.pytest_plugin`` (devtools/), loaded by its entry point.
The suite's CI rules (skips fail in CI, random order) are in the top-level conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ovirt_fake_engine import FakeEngine
from ovirt_fake_engine.demo import DataEngine

from tests.harness import Cli


@pytest.fixture
def cli(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Run ``ovbackup`` in-process against ``engine`` (env set, password file given, fake clock)."""
    return Cli(engine, tmp_path, monkeypatch, capsys)


@pytest.fixture
def dcli(
    data_engine: DataEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """``cli`` against the engine with real disks (``data_engine``), ``OVBACKUP_DIR`` set to tmp/backups."""
    cli = Cli(data_engine, tmp_path, monkeypatch, capsys)
    monkeypatch.setenv("OVBACKUP_DIR", str(tmp_path / "backups"))
    return cli

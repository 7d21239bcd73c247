"""Run the real CLI in-process against the fake engine, with a fake clock that also moves the engine's.

``main(argv)`` is the same boundary the console script uses (exit codes, one-line errors), so these are
end-to-end runs; only sleeping is faked, so a 15-minute wait takes no real time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine import FakeEngine

from ovbackup.cli import main
from ovbackup.engine import polling
from ovbackup.engine.services import VmBackupsService

ENV_VARS = (
    "OVIRT_URL",
    "OVIRT_USERNAME",
    "OVIRT_PASSWORD",
    "OVIRT_CAFILE",
    "OVIRT_INSECURE",
    "OVBACKUP_CONFIG",
    "OVBACKUP_CONFIG_FILE",
    "OVBACKUP_OUTPUT",
    "OVBACKUP_DIR",
    "NO_COLOR",
)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("ovbackup: error:")]


class FakeClock:
    """polling's clock and sleep: sleeping moves this clock and the engine's by the same amount."""

    def __init__(self, engine: FakeEngine | None) -> None:
        self.now = 1000.0
        self.engine = engine
        self.slept: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.engine is not None:
            self.engine.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


class Cli:
    def __init__(
        self,
        engine: FakeEngine,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.engine = engine
        self.capsys = capsys
        self.password_file = tmp_path / "password"
        self.password_file.write_text(engine.password + "\n")
        self.time = FakeClock(engine)
        for var in ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("OVIRT_URL", engine.url)
        monkeypatch.setenv("OVIRT_USERNAME", engine.username)
        monkeypatch.setattr(polling, "clock", self.time.clock)
        monkeypatch.setattr(polling, "sleep", self.time.sleep)
        monkeypatch.setattr(VmBackupsService, "add_retry_delay", 0.0)

    def __call__(self, *args: str, password: bool = True) -> Result:
        self.capsys.readouterr()
        argv = (["--password-file", str(self.password_file)] if password else []) + list(args)
        code = main(argv)
        out, err = self.capsys.readouterr()
        return Result(code, out, err)


def process_env(engine: FakeEngine, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``ovbackup`` run as its own process against ``engine``: none of the
    caller's OVIRT_/OVBACKUP_/NO_COLOR settings, a private config home, and the password in
    ``tmp_path/password`` (for ``--password-file``); ``extra`` on top."""
    password = tmp_path / "password"
    password.write_text(engine.password + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVIRT_", "OVBACKUP_", "NO_COLOR"))}
    env.update(
        OVIRT_URL=engine.url, OVIRT_USERNAME=engine.username, XDG_CONFIG_HOME=str(tmp_path / "xdg"), **extra
    )
    return env

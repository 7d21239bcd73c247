"""``--hook CMD``, vzdump style: run at each phase of a fleet run, with the phase in the environment.

Phases, in order: ``job-start``; per VM ``backup-start`` then ``backup-end`` (ok) or ``backup-abort``
(failed); ``job-end``. The command is split like a shell would (no shell runs it) and gets the phase as
its last argument, as vzdump's ``--script`` does, and ``OVBACKUP_PHASE``, ``OVBACKUP_VM``,
``OVBACKUP_VM_ID``, ``OVBACKUP_DIR``, ``OVBACKUP_POINT``, ``OVBACKUP_STATUS`` in its environment. Its
output (stdout and stderr) is handed to the reporter line by line. A hook that runs past its timeout
is killed with its whole process group (a shell script's children too).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ovbackup.errors import ConfigError

PHASES = ("job-start", "backup-start", "backup-end", "backup-abort", "job-end")
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class HookResult:
    phase: str
    code: int | None  # None: killed after the timeout
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.code is None:
            return f"hook {self.phase} timed out and was killed"
        return f"hook {self.phase} exited {self.code}"


def parse_hook(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise ConfigError(f"--hook {command!r}: {e}") from None
    if not argv:
        raise ConfigError("--hook needs a command")
    return argv


def run_hook(
    argv: list[str],
    phase: str,
    env: Mapping[str, str | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    output: Callable[[str], None],
) -> HookResult:
    """Run the hook for ``phase``; never raises for the hook's own failure (the caller decides)."""
    full_env = dict(os.environ)
    full_env["OVBACKUP_PHASE"] = phase
    for key, value in env.items():
        full_env[key] = value or ""
    try:
        process = subprocess.Popen(
            [*argv, phase],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills the children too
            text=True,
            errors="replace",
        )
    except OSError as e:
        output(f"hook {phase}: cannot run {argv[0]}: {e.strerror or e}")
        return HookResult(phase, 127, "")
    try:
        text, _ = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        _kill(process)
        text, _ = process.communicate()
        code = None
    except BaseException:  # Ctrl-C while a hook runs: do not leave it behind
        _kill(process)
        process.wait()
        raise
    for line in (text or "").splitlines():
        output(f"hook {phase}: {line}")
    return HookResult(phase, code, text or "")


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)

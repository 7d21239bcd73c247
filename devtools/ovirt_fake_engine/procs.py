"""Running the data plane's programs: qemu tools, qemu-nbd and the imageio daemon, bounded in time.

Every wait is bounded (generous for slow CI, short enough that a broken setup fails a test quickly),
every process is stopped with SIGTERM then SIGKILL, and a failing tool's error carries its output.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Linux sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_PATH = 107


class DataPlaneError(RuntimeError):
    """The daemon, qemu-nbd or a qemu tool failed; the message carries the relevant log tail."""


def run(cmd: list[str], what: str) -> str:
    """Run a qemu tool and raise with its output on failure (qemu tools print errors to stderr)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise DataPlaneError(
            f"{what} failed (rc={proc.returncode}): {' '.join(cmd)}\n{proc.stderr}{proc.stdout}"
        )
    return proc.stdout


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path} unreadable>"
    return "\n".join(text.splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, wait, then SIGKILL: a process must never outlive the test that started it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def wait_for_unix_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                time.sleep(0.02)
            else:
                return True
    return False

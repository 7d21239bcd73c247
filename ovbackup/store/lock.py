"""The per-VM lock: one ovbackup run at a time changes a VM's catalog and files.

flock, so the kernel releases it when the holder dies (SIGKILL, OOM, power loss): a lock is never stale.
It also works between hosts on NFS v4 (locks go to the server), which is what lets several backup hosts
share one catalog without backing up one VM twice.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ovbackup.errors import LockedError


@contextmanager
def hold_lock(path: Path, what: str, *, wait: float = 0.0, poll: float = 0.2) -> Iterator[None]:
    """Hold ``path``'s lock, waiting up to ``wait`` seconds; LockedError (exit 9) names the holder."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    raise LockedError(
                        f"another ovbackup run holds the lock of {what} "
                        f"({path}{', pid ' + holder if holder else ''})",
                        hint="wait for it, or pass --lock-wait SECONDS",
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)

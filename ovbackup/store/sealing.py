"""Sealing downloaded files: fsync, hash and rename, off the critical path.

A downloaded file stays ``*.partial`` until the whole restore point succeeded; its fsync and hash start
as soon as its bytes are down, and the rename waits for the end, so a partial file is never mistaken
for a complete one and the seconds of I/O overlap with the engine's own finalizing.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ovbackup.imageio.images import file_hash
from ovbackup.store.catalog import DiskRecord, RestorePoint, file_stamp, fsync_dir


def fsync_and_hash(path: Path) -> str:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return file_hash(path)


def in_background(fn: Callable[[Path], str], path: Path) -> cf.Future[str]:
    future: cf.Future[str] = cf.Future()

    def run() -> None:
        try:
            future.set_result(fn(path))
        except BaseException as e:  # handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=run, name=f"seal-{path.name[:20]}", daemon=True).start()
    return future


@dataclass(frozen=True)
class Unsealed:
    """A downloaded disk whose transfer is closed but whose file is still ``*.partial``.

    Its fsync and hash started as soon as the bytes were down; only the rename waits for the end.
    """

    record: DiskRecord
    partial: Path
    final: Path
    durable: cf.Future[str]  # the file's hash, once it is fsynced

    def seal(self, on_sealed: Callable[[DiskRecord], None]) -> DiskRecord:
        """Give the (durable) file its final name and record its hash for offline verify."""
        digest = self.durable.result()
        os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)
        size, mtime_ns = file_stamp(self.final)  # a rename keeps the mtime the hash was taken at
        record = replace(self.record, file_hash=digest, file_size=size, file_mtime_ns=mtime_ns)
        on_sealed(record)
        return record


@dataclass(frozen=True)
class PendingPoint:
    """Every disk downloaded and every transfer closed; the files still need sealing.

    Sealing (fsync, rename, hashing: seconds for big disks) needs nothing from the engine, so the
    ``backup`` job runs it while the engine finalizes the backup.
    """

    point: RestorePoint
    disks: tuple[Unsealed, ...]
    on_sealed: Callable[[DiskRecord], None]  # told of each disk once its file has its final name

    def start_sealing(self) -> cf.Future[RestorePoint]:
        future: cf.Future[RestorePoint] = cf.Future()

        def seal_all() -> None:
            try:
                with cf.ThreadPoolExecutor(max_workers=max(1, len(self.disks))) as pool:
                    records = list(pool.map(lambda d: d.seal(self.on_sealed), self.disks))
                future.set_result(replace(self.point, disks=tuple(records)))
            except BaseException as e:  # handed to whoever waits for the result
                future.set_exception(e)

        threading.Thread(target=seal_all, name="sealing", daemon=True).start()
        return future

"""The local catalog of restore points: one directory per VM, one JSON manifest, written atomically.

The engine forgets finished backups after ~15 minutes, so this manifest is the only lasting record of
which files make up which restore point and which checkpoint the next incremental starts from. It is
rewritten whole through a temp file, fsync and rename, so a crash leaves either the old or the new
manifest, never half of one. Disk images are downloaded as ``*.partial`` and renamed only when
complete; a partial file is never a backing file and the next run deletes it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ovbackup.errors import ConfigError, NotFoundError, SpaceError
from ovbackup.store.lock import hold_lock
from ovbackup.store.vmconfig import VmConfig, config_file_name, encode

MANIFEST = "catalog.json"
LOCK = ".lock"
PARTIAL = ".partial"
JOURNAL = ".prune-journal.json"  # a prune's catalog switch in progress (store/journal.py)
RESERVED = (MANIFEST, LOCK, JOURNAL)  # never orphans
SCHEMA = 1


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    block_size: int
    checksum: str


@dataclass(frozen=True)
class DiskRecord:
    id: str
    alias: str | None
    mode: str  # full | incremental: how this disk was taken in this point
    format: str  # qcow2 | raw: the local file's format
    virtual_size: int | None
    file: str  # relative to the VM directory
    backing_file: str | None  # relative to the VM directory (qcow2 incrementals)
    bytes_transferred: int = 0
    seconds: float = 0.0  # the whole disk: transfer set-up, download, checks, finalize
    download_seconds: float = 0.0  # moving the bytes only
    file_hash: str | None = None  # 'sha256:…' of the file as written, for offline `verify`
    # The file's size and mtime (ns) when its hash was taken: while both are unchanged, the file is
    # taken as unchanged without reading it (store/verify.py changed_files). None in older catalogs.
    file_size: int | None = None
    file_mtime_ns: int | None = None
    checksum: Checksum | None = None  # imageio's checksum of the image, when checked with --verify

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DiskRecord:
        d = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        checksum = d.get("checksum")
        return cls(**{**d, "checksum": Checksum(**checksum) if checksum else None})


@dataclass(frozen=True)
class RestorePoint:
    name: str  # UTC timestamp, sorts like the files
    backup_id: str
    mode: str  # full | incremental
    format: str
    started: str
    finished: str | None
    from_checkpoint_id: str | None
    to_checkpoint_id: str | None
    engine_url: str
    vm_id: str
    vm_name: str
    complete: bool = False
    verified: bool | None = None
    fallback: str | None = None
    disks: tuple[DiskRecord, ...] = field(default_factory=tuple)
    # What a restore needs besides the images (store/vmconfig.py); None in points taken before
    # ovbackup recorded it, which restore as disks only.
    config: VmConfig | None = None

    @property
    def config_file(self) -> str:
        return config_file_name(self.name)

    @property
    def bytes_transferred(self) -> int:
        return sum(d.bytes_transferred for d in self.disks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bytes_transferred"] = self.bytes_transferred
        return data

    def disks_matching(self, refs: tuple[str, ...]) -> tuple[DiskRecord, ...]:
        """The disks named by id or alias (all when ``refs`` is empty), in the point's order."""
        if not refs:
            return self.disks
        unknown = [r for r in refs if not any(r in (d.id, d.alias) for d in self.disks)]
        if unknown:
            known = ", ".join(f"{d.alias} ({d.id})" for d in self.disks)
            raise NotFoundError(
                f"restore point {self.name} has no disk {', '.join(map(repr, unknown))}",
                hint=f"its disks: {known}",
            )
        return tuple(d for d in self.disks if d.id in refs or d.alias in refs)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RestorePoint:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        disks = [DiskRecord.from_json(d) for d in data.get("disks", ())]
        config = data.get("config")
        return cls(
            **{**data, "disks": tuple(disks), "config": VmConfig.from_json(config) if config else None}
        )


def _stamped(disk: DiskRecord, stamp: tuple[int, int] | None) -> DiskRecord:
    if stamp is None:
        return disk
    return replace(disk, file_size=stamp[0], file_mtime_ns=stamp[1])


def now() -> datetime:
    """The wall clock that names restore points and dates them; tests replace it to spread points over
    weeks without waiting (as they replace ``polling.clock``)."""
    return datetime.now(UTC)


def utc_stamp(when: datetime | None = None) -> str:
    """A name that sorts by time in ``ls``, to the millisecond: 20261127T153000.123Z."""
    moment = (when or now()).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


def timestamp() -> str:
    """Now, as ISO 8601 with the local offset: when a point started or finished."""
    return now().astimezone().isoformat(timespec="seconds")


def safe_name(text: str) -> str:
    """A file-name-safe version of a VM name or disk alias."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unnamed"


def disk_file_name(point: str, disk_id: str, alias: str | None, mode: str, fmt: str) -> str:
    """``{time}.{alias}.{disk-id}.{mode}.{ext}``: ls shows time order, the disk and the mode."""
    return f"{point}.{safe_name(alias or 'disk')}.{disk_id}.{mode}.{fmt}"


def file_stamp(path: Path) -> tuple[int, int]:
    """(size, mtime in ns): what a file's record keeps to see cheaply that it was not changed."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole or not at all; a failure (a full disk) leaves no temp file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Base:
    """What an incremental builds on: a recorded file, or the reason there is none."""

    record: DiskRecord | None
    reason: str | None


class Catalog:
    """The restore points of one VM under ``root/<vm name>/``."""

    def __init__(self, root: Path, vm_name: str) -> None:
        self.root = root
        self.vm_name = vm_name
        self.dir = root / safe_name(vm_name)
        self.manifest = self.dir / MANIFEST

    def ensure(self, vm_id: str) -> None:
        """Create the directory; refuse one that belongs to another VM of the same name."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create backup directory {self.dir}: {e.strerror}") from None
        for point in self.points():
            if point.vm_id != vm_id:
                raise ConfigError(
                    f"{self.dir} holds backups of another VM named {self.vm_name} (id {point.vm_id})",
                    hint="use another --dir",
                )

    def points(self) -> list[RestorePoint]:
        try:
            raw = json.loads(self.manifest.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read catalog {self.manifest}: {e}") from None
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise ConfigError(f"{self.manifest} is not an ovbackup catalog (schema {SCHEMA})")
        try:
            return [RestorePoint.from_json(p) for p in raw.get("points", [])]
        except (TypeError, KeyError) as e:
            raise ConfigError(f"catalog {self.manifest} is damaged: {e}") from None

    def _save(self, points: list[RestorePoint]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        document = {
            "schema": SCHEMA,
            "vm_name": self.vm_name,
            "points": [p.to_json() for p in sorted(points, key=lambda p: p.name)],
        }
        data = json.dumps(document, indent=2).encode() + b"\n"
        try:
            write_atomically(self.manifest, data)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise SpaceError.needing(
                    f"no space left in {self.dir} to write {self.manifest.name}",
                    needed=len(data),
                    margin=0,
                    free=shutil.disk_usage(self.dir).free,
                ) from None
            raise ConfigError(f"cannot write catalog {self.manifest}: {e.strerror or e}") from None

    def write(self, points: list[RestorePoint]) -> None:
        """Replace every restore point at once (atomically): prune's catalog switch."""
        self._save(points)

    def files(self) -> dict[str, int]:
        """Every regular file in the VM's directory with the bytes it occupies on disk."""
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return {}
        return {e.name: e.stat().st_blocks * 512 for e in entries if e.is_file(follow_symlinks=False)}

    def record(self, point: RestorePoint) -> None:
        """Add or replace (by name) one restore point."""
        points = [p for p in self.points() if p.name != point.name]
        self._save([*points, point])

    def restamp(self, stamps: dict[str, tuple[int, int]]) -> None:
        """Record a new (size, mtime) for files whose content was just proven unchanged by their hash."""
        self._save(
            [replace(p, disks=tuple(_stamped(d, stamps.get(d.file)) for d in p.disks)) for p in self.points()]
        )

    def write_config(self, point: RestorePoint) -> None:
        """The point's restore configuration as a file beside its images (atomically)."""
        if point.config is not None:
            write_atomically(self.dir / point.config_file, encode(point.config))

    def new_point_name(self) -> str:
        """A fresh, unused point name; two runs in the same millisecond must not share files."""
        taken = {p.name for p in self.points()}
        moment = now()
        while (name := utc_stamp(moment)) in taken or any(self.dir.glob(f"{name}.*")):
            moment += timedelta(milliseconds=1)
        return name

    def unfinished(self) -> list[RestorePoint]:
        """Points a run started and never ended (``finished`` unset): it was killed (SIGKILL, OOM, power
        loss). Only meaningful under the VM's lock, which a live run holds."""
        return [p for p in self.points() if p.finished is None and not p.complete]

    def remove(self, name: str) -> None:
        """Forget one point (its files are the caller's business)."""
        self._save([p for p in self.points() if p.name != name])

    def complete_points(self) -> list[RestorePoint]:
        return [p for p in self.points() if p.complete]

    def newest_complete(self) -> RestorePoint | None:
        complete = self.complete_points()
        return complete[-1] if complete else None

    def find(self, name: str | None) -> RestorePoint:
        """A point by name, backup id or unique prefix; the newest complete one when None."""
        points = self.points()
        if name is None:
            newest = self.newest_complete()
            if newest is None:
                raise NotFoundError(f"no complete restore point in {self.dir}")
            return newest
        matches = [p for p in points if name in (p.name, p.backup_id)]
        if not matches:
            matches = [p for p in points if p.name.startswith(name) or p.backup_id.startswith(name)]
        hint = f"`ovbackup catalog {self.vm_name}` lists its points"
        if not matches:  # "not found" (4), like an unknown backup on the engine
            raise NotFoundError(f"no restore point matches {name!r} in {self.dir}", hint=hint)
        if len(matches) > 1:  # an ambiguous prefix is the user's to lengthen (usage, 2)
            raise ConfigError(f"more than one restore point matches {name!r} in {self.dir}", hint=hint)
        return matches[0]

    def restorable(self, name: str | None) -> RestorePoint:
        """The point to restore: by name, backup id or unique prefix; ``latest``/None is the newest
        complete one. An incomplete point (its backup failed or was interrupted) is refused, and so is
        one whose files or backing chain are missing."""
        point = self.find(None if name in (None, "latest") else name)
        if not point.complete:
            raise ConfigError(
                f"restore point {point.name} of {self.vm_name} is incomplete (its backup did not finish)",
                hint=f"choose a complete one from `ovbackup catalog {self.vm_name}`",
            )
        for disk in point.disks:
            if not self.chain_is_whole(disk):
                raise ConfigError(
                    f"restore point {point.name}: disk {disk.alias or disk.id} has files missing from "
                    f"its backing chain in {self.dir}",
                    hint=f"`ovbackup verify {self.vm_name} {point.name}` shows which",
                )
        return point

    def previous_file(self, disk_id: str, checkpoint_id: str | None) -> DiskRecord | None:
        """The file an incremental from ``checkpoint_id`` builds on: ``disk_id`` in the complete point
        that created that checkpoint. Any other file would give an overlay on the wrong base."""
        if not checkpoint_id:
            return None
        for point in reversed(self.complete_points()):
            if point.to_checkpoint_id != checkpoint_id:
                continue
            for disk in point.disks:
                if disk.id == disk_id:
                    return disk
        return None

    def incremental_base(self, disk_id: str, checkpoint_id: str | None, fmt: str) -> Base:
        """The file an incremental of ``disk_id`` from ``checkpoint_id`` in ``fmt`` can build on, or
        why there is none. The one policy for ``--auto``'s plan and for each disk's download: never an
        overlay on a missing parent, a broken chain, or a file of the other format."""
        if not checkpoint_id:
            return Base(None, "no checkpoint to build on")
        previous = self.previous_file(disk_id, checkpoint_id)
        if previous is None or not self.chain_is_whole(previous):
            return Base(None, f"no complete local file from checkpoint {checkpoint_id}")
        if previous.format != fmt:
            return Base(None, f"previous file is {previous.format}")
        return Base(previous, None)

    def chain(self, disk: DiskRecord) -> list[DiskRecord]:
        """``disk`` and its backing files, newest first, as recorded."""
        by_file = {d.file: d for p in self.points() for d in p.disks}
        result = [disk]
        while result[-1].backing_file:
            parent = by_file.get(str(result[-1].backing_file))
            if parent is None:
                break
            result.append(parent)
        return result

    def chain_is_whole(self, disk: DiskRecord) -> bool:
        """Every file of the disk's chain is recorded and on disk, down to a full image."""
        chain = self.chain(disk)
        return not chain[-1].backing_file and all((self.dir / d.file).exists() for d in chain)

    def remove_partials(self) -> list[Path]:
        removed = []
        for path in self.dir.glob(f"*{PARTIAL}"):
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def lock(self, wait: float = 0.0, *, poll: float = 0.2) -> AbstractContextManager[None]:
        """Hold the VM's lock (``DIR/<vm>/.lock``) for a run that changes its catalog or files."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return hold_lock(self.dir / LOCK, f"VM {self.vm_name}", wait=wait, poll=poll)


def existing_root(root: Path) -> Path:
    """``root`` for a command that only reads a backup directory (``catalog``, ``verify``, ``restore``,
    ``export``): one that does not exist, or is not a directory, is a wrong path (exit 2) — said
    loudly, so a cron job with a typo in ``--dir`` notices instead of reporting no restore points —
    and nothing is created in it."""
    hint = "check --dir, OVBACKUP_DIR or the config section's backup_dir"
    if not root.exists():
        raise ConfigError(f"backup directory {root} does not exist", hint=hint)
    if not root.is_dir():
        raise ConfigError(f"backup directory {root} is not a directory", hint=hint)
    return root


def find_catalog(root: Path, ref: str) -> Catalog:
    """The catalog of the VM named ``ref`` — or whose id or recorded name is ``ref`` — under ``root``.
    Needs no engine: the VM may be long gone, which is often why it is being restored."""
    direct = Catalog(root, ref)
    if direct.manifest.exists():
        return direct
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            raw = json.loads(manifest.read_bytes())
        except (OSError, ValueError):
            continue
        points = raw.get("points") if isinstance(raw, dict) else None
        if any(isinstance(p, dict) and ref in (p.get("vm_id"), p.get("vm_name")) for p in points or ()):
            return Catalog(root, str(raw.get("vm_name") or manifest.parent.name))
    raise NotFoundError(
        f"no restore points of VM {ref!r} in {root}",
        hint="`ovbackup catalog VM --dir DIR` lists a VM's points",
    )

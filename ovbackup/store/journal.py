"""A prune's catalog switch, written down first so a crash in the middle is finished by the next run.

Prune writes every new file (merged images) as ``*.partial``, checks it, and renames it before anything
else changes: a crash until then leaves only files no point references (orphans), which the next
``prune`` or ``verify`` removes. What follows changes kept files in place: the children of a merged
image are re-pointed to the new file (``qemu-img rebase -u``, one header field), then the catalog is
rewritten. That part is recorded here first (``DIR/<vm>/.prune-journal.json``, atomically) and every
step of it is idempotent, so the next run under the VM's lock simply applies the journal again — roll
forward, never back: the new files are whole and checked, and the old ones still exist until the
catalog no longer names them. Old files are deleted last; a crash there leaves orphans again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ovbackup.errors import ConfigError
from ovbackup.imageio.images import file_hash, repoint
from ovbackup.store.catalog import (
    JOURNAL,
    RESERVED,
    Catalog,
    DiskRecord,
    RestorePoint,
    file_stamp,
    write_atomically,
)
from ovbackup.store.retention import own_files


@dataclass(frozen=True)
class Switch:
    """The catalog change of one prune: points that leave, disk records that change, children re-pointed."""

    remove: tuple[str, ...]  # point names
    replace: dict[str, tuple[DiskRecord, ...]]  # point name -> its disks after merging
    repoint: tuple[tuple[str, str], ...]  # (child file, its new backing file)

    def to_json(self) -> dict[str, Any]:
        return {
            "remove": list(self.remove),
            "replace": {name: [asdict(d) for d in disks] for name, disks in self.replace.items()},
            "repoint": [list(pair) for pair in self.repoint],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Switch:
        return cls(
            tuple(data["remove"]),
            {name: tuple(DiskRecord.from_json(d) for d in disks) for name, disks in data["replace"].items()},
            tuple((child, backing) for child, backing in data["repoint"]),
        )


def apply_switch(catalog: Catalog, switch: Switch, on_step: Callable[[str], None]) -> list[RestorePoint]:
    """Re-point the children, then rewrite the catalog; safe to run again after a crash at any step."""
    hashes: dict[str, tuple[str, str, tuple[int, int]]] = {}
    for child, backing in switch.repoint:
        path = catalog.dir / child
        repoint(path, backing)  # rewrites the image's header: a new hash and stamp
        on_step("repointed")
        hashes[child] = (backing, file_hash(path), file_stamp(path))
    points = []
    for point in catalog.points():
        if point.name in switch.remove:
            continue
        disks = switch.replace.get(point.name, point.disks)
        disks = tuple(_repointed(d, hashes[d.file]) if d.file in hashes else d for d in disks)
        points.append(replace(point, disks=disks))
    catalog.write(points)
    on_step("switched")
    return points


def _repointed(disk: DiskRecord, new: tuple[str, str, tuple[int, int]]) -> DiskRecord:
    backing, digest, (size, mtime_ns) = new
    return replace(disk, backing_file=backing, file_hash=digest, file_size=size, file_mtime_ns=mtime_ns)


def journal_path(catalog: Catalog) -> Path:
    return catalog.dir / JOURNAL


def write_journal(catalog: Catalog, switch: Switch) -> None:
    write_atomically(journal_path(catalog), json.dumps(switch.to_json(), indent=1).encode() + b"\n")


def finish(catalog: Catalog, switch: Switch, on_step: Callable[[str], None]) -> list[RestorePoint]:
    """Journal, re-point, switch, drop the journal."""
    write_journal(catalog, switch)
    on_step("journal")
    points = apply_switch(catalog, switch, on_step)
    journal_path(catalog).unlink()
    return points


def recover(catalog: Catalog) -> bool:
    """Finish a prune that a crash interrupted after its new files were in place; True if there was one."""
    path = journal_path(catalog)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the prune journal {path}: {e}") from None
    apply_switch(catalog, Switch.from_json(data), lambda _: None)
    path.unlink()
    return True


def sweep_orphans(catalog: Catalog) -> list[str]:
    """Delete the files in the VM's directory that no restore point references (a crash's leftovers)."""
    referenced = {f for p in catalog.points() for f in own_files(p)}
    orphans = sorted(f for f in catalog.files() if f not in referenced and f not in RESERVED)
    for name in orphans:
        (catalog.dir / name).unlink(missing_ok=True)
    return orphans

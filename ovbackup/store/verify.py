"""Offline verification of a restore point: every image of each disk's chain opens, the chain is whole,
and each file still hashes to what was recorded when it was written."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovbackup.errors import TransferError
from ovbackup.imageio.images import file_hash, image_check, image_info
from ovbackup.store.catalog import Catalog, DiskRecord, RestorePoint, file_stamp


@dataclass(frozen=True)
class DiskVerification:
    disk_id: str
    alias: str | None
    files: tuple[str, ...]  # the chain, newest first
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_disk(catalog: Catalog, disk: DiskRecord) -> DiskVerification:
    chain = catalog.chain(disk)
    problems: list[str] = []
    if chain[-1].backing_file:
        problems.append(f"{chain[-1].file}: backing file {chain[-1].backing_file} is not in the catalog")
    for record in chain:
        path = catalog.dir / record.file
        if not path.exists():
            problems.append(f"{record.file}: missing")
            continue
        try:
            image_check(path)
            info = image_info(path)
        except TransferError as e:
            problems.append(f"{record.file}: {e}")
            continue
        backing = info.get("backing-filename")
        if (backing or None) != (record.backing_file or None):
            problems.append(f"{record.file}: backing file is {backing}, catalog says {record.backing_file}")
        if record.file_hash is None:
            problems.append(f"{record.file}: no checksum recorded")
        elif file_hash(path, record.file_hash.partition(":")[0]) != record.file_hash:
            problems.append(f"{record.file}: checksum differs from the one recorded at backup time")
    return DiskVerification(disk.id, disk.alias, tuple(r.file for r in chain), tuple(problems))


def changed_files(catalog: Catalog, point: RestorePoint) -> list[str]:
    """The files of ``point``'s chains whose content is no longer what was written: what an incremental
    must not be built on. Cheap while nothing changed: a file whose size and mtime (ns) are still the
    recorded ones is taken as unchanged without being read (bit rot that keeps both is ``verify``'s to
    find). Only a file whose stamp differs — or was never recorded: catalogs older than the stamps —
    is hashed; when its hash still matches, its new stamp is recorded, so an old catalog is read in
    full once and is cheap from then on. A file without a recorded hash cannot be checked and passes;
    a missing one is the chain check's (``Catalog.chain_is_whole``)."""
    changed: list[str] = []
    restamps: dict[str, tuple[int, int]] = {}
    seen: set[str] = set()
    for disk in point.disks:
        for record in catalog.chain(disk):
            if record.file in seen:
                continue
            seen.add(record.file)
            path = catalog.dir / record.file
            try:
                stamp = file_stamp(path)
            except FileNotFoundError:
                continue
            if record.file_hash is None or stamp == (record.file_size, record.file_mtime_ns):
                continue
            if file_hash(path, record.file_hash.partition(":")[0]) == record.file_hash:
                restamps[record.file] = stamp
            else:
                changed.append(record.file)
    if restamps:
        catalog.restamp(restamps)
    return changed


def verify_point(catalog: Catalog, point: RestorePoint) -> list[DiskVerification]:
    if not point.complete:
        return [DiskVerification("-", None, (), (f"restore point {point.name} is not complete",))]
    return [verify_disk(catalog, disk) for disk in point.disks]

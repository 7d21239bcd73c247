"""``export``: a restore point's disks as standalone images in a local directory, and its OVF.

No engine is involved: each disk's chain (the top file and its qcow2 backing files) is flattened with
``qemu-img convert`` into one sparse image, written as ``*.partial``, fsynced, and then linked to its
final name — a link, not a rename, so a file that appeared meanwhile is never overwritten. A failure or
an interrupt removes every file this run wrote; existing files are never touched.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ovbackup.engine.model import Disk
from ovbackup.errors import ConfigError
from ovbackup.imageio.images import convert, data_bytes, image_info
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.undo import UndoStack, failed_run
from ovbackup.store.catalog import PARTIAL, Catalog, DiskRecord, RestorePoint, fsync_dir, safe_name

OVF_FILE = "vm.ovf"


@dataclass(frozen=True)
class ExportedDisk:
    source_id: str
    alias: str | None
    file: str
    format: str
    bytes: int  # data written (zero areas are holes)
    seconds: float


@dataclass(frozen=True)
class ExportResult:
    vm_id: str
    vm_name: str
    point: str
    dest: Path
    disks: tuple[ExportedDisk, ...]
    ovf: str | None  # the OVF file's name, when the point has one


def _targets(point: RestorePoint, disks: tuple[DiskRecord, ...], fmt: str) -> dict[str, str]:
    """``{disk id: file name}``: ``<alias>.<fmt>``, with the disk id added when aliases repeat."""
    counts = Counter(safe_name(d.alias or d.id) for d in point.disks)
    names = {}
    for d in disks:
        stem = safe_name(d.alias or d.id)
        names[d.id] = f"{stem}.{d.id}.{fmt}" if counts[stem] > 1 else f"{stem}.{fmt}"
    return names


def _publish(partial: Path, final: Path) -> None:
    """fsync the partial file, then give it its final name without ever replacing an existing file."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(partial, final)
    except FileExistsError:
        raise ConfigError(f"{final} appeared while exporting; not overwriting it") from None
    partial.unlink()
    fsync_dir(final.parent)


def _remover(path: Path) -> str:
    path.unlink(missing_ok=True)
    return f"removed {path}"


def run_export(
    catalog: Catalog,
    point_name: str | None,
    dest: Path,
    *,
    fmt: str,
    disk_refs: tuple[str, ...],
    reporter: Reporter,
) -> ExportResult:
    point = catalog.restorable(point_name)
    disks = point.disks_matching(disk_refs)
    names = _targets(point, disks, fmt)
    ovf = point.config.ovf if point.config else None
    wanted = [*names.values(), *([OVF_FILE] if ovf else [])]
    existing = [n for n in wanted if (dest / n).exists() or (dest / (n + PARTIAL)).exists()]
    if existing:
        raise ConfigError(
            f"{dest} already has {', '.join(existing)}; export never overwrites",
            hint="choose another --to or remove those files",
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {dest}: {e.strerror}") from None
    undo = UndoStack(reporter)
    exported = []
    try:
        for record in disks:
            exported.append(_export_disk(catalog, record, dest, names[record.id], fmt, undo, reporter))
        if ovf:
            partial = dest / (OVF_FILE + PARTIAL)
            undo.push(f"file {partial}", lambda: _remover(partial), f"rm {partial}")
            partial.write_text(ovf)
            final = dest / OVF_FILE
            _publish(partial, final)
            undo.push(f"file {final}", lambda: _remover(final), f"rm {final}")
    except BaseException as e:
        raise failed_run("export", e, undo.unwind()) from None
    undo.forget_all()
    config = point.config
    return ExportResult(
        vm_id=config.vm_id if config else point.vm_id,
        vm_name=point.vm_name,
        point=point.name,
        dest=dest,
        disks=tuple(exported),
        ovf=OVF_FILE if ovf else None,
    )


def _export_disk(
    catalog: Catalog,
    record: DiskRecord,
    dest: Path,
    name: str,
    fmt: str,
    undo: UndoStack,
    reporter: Reporter,
) -> ExportedDisk:
    started = time.monotonic()
    top = catalog.dir / record.file
    size = int(image_info(top)["virtual-size"])
    data = data_bytes(top)
    disk = Disk(id=record.id, name=record.alias)
    reporter.disk_started(disk, "export", data, size)
    final, partial = dest / name, dest / (name + PARTIAL)
    undo.push(f"file {partial}", lambda: _remover(partial), f"rm {partial}")
    convert(top, partial, fmt, on_progress=lambda f: reporter.disk_progress(record.id, int(f * size), size))
    _publish(partial, final)  # never replaces a file: only what this run linked is ever undone
    undo.push(f"file {final}", lambda: _remover(final), f"rm {final}")
    seconds = round(time.monotonic() - started, 3)
    reporter.note(f"disk {disk.label}: exported to {final}")
    return ExportedDisk(record.id, record.alias, name, fmt, data, seconds)

"""The ``prune`` job: under the VM's lock, finish a crashed prune, plan, merge chains forward, switch the
catalog, then delete files.

A merge builds each new image as ``*.partial`` (:func:`ovbackup.imageio.images.fold_into_copy`),
checks it (``qemu-img check``), compares imageio's checksum of its guest view with the one of the image
it replaces (recorded at backup time with ``--verify``, else computed now after the chain's file hashes
were checked), fsyncs and renames it. Only then do the children move onto it (``qemu-img rebase -u``:
their own clusters are untouched and what shows through them is, by that checksum, the same) and the
catalog switch (store/journal.py), and only after the switch are old files deleted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ovbackup.errors import ConfigError, TransferError
from ovbackup.imageio.images import fold_into_copy, image_check
from ovbackup.jobs.reporter import Reporter
from ovbackup.store import catalog as catalogs
from ovbackup.store import journal
from ovbackup.store.catalog import (
    PARTIAL,
    RESERVED,
    Catalog,
    Checksum,
    DiskRecord,
    file_stamp,
    fsync_dir,
)
from ovbackup.store.retention import Merge, Policy, PrunePlan, plan_prune
from ovbackup.store.sealing import fsync_and_hash
from ovbackup.store.verify import verify_disk

# ``{point}.{alias}.{disk id}.{mode}[.merged-{time}].qcow2``: what a merged file's name replaces.
_MODE_SUFFIX = re.compile(r"\.(full|incremental)(\.merged-\d{8}T\d{6}\.\d{3}Z)?\.qcow2$")
CHECKSUM_ALGORITHM = "blake2b"  # imageio's default, what backup --verify records
CHECKSUM_BLOCK = 4 * 1024 * 1024


def _no_hook(step: str) -> None:
    return None


# Called at each step of a merge and switch; the crash tests SIGKILL the process from here.
on_step: Callable[[str], None] = _no_hook


@dataclass(frozen=True)
class PruneOptions:
    policy: Policy
    merge: bool = False
    dry_run: bool = False
    lock_wait: float = 0.0


@dataclass(frozen=True)
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    freed_bytes: int  # dry run: what the deletions alone would free (merged files not yet written)
    merged: tuple[DiskRecord, ...] = ()  # the new images
    recovered: bool = False  # an interrupted prune was finished first


def run_prune(
    root: Path,
    vm_name: str,
    opts: PruneOptions,
    reporter: Reporter,
    *,
    confirm: Callable[[PrunePlan], None],
) -> PruneResult:
    """Prune the VM's catalog; ``confirm`` sees the plan before anything is removed and may raise."""
    catalog = Catalog(root, vm_name)
    if not catalog.manifest.exists():
        raise ConfigError(f"no catalog in {catalog.dir}", hint="check --dir and the VM name")
    with catalog.lock(opts.lock_wait):
        recovered = journal.recover(catalog)
        if recovered:
            reporter.note("finished a prune that was interrupted after its merged files were written")
        before = catalog.files()
        plan = plan_prune(
            catalog.points(), before, opts.policy, now=catalogs.now(), merge=opts.merge, reserved=RESERVED
        )
        if opts.dry_run or not (plan.delete or plan.merges):
            freed = sum(before.get(f, 0) for f in plan.delete)
            return PruneResult(plan, opts.dry_run, freed if opts.dry_run else 0, recovered=recovered)
        confirm(plan)
        merged = _apply(catalog, plan, reporter)
        after = catalog.files()
        freed = sum(before.get(f, 0) for f in plan.delete) - sum(after.get(d.file, 0) for d in merged)
        return PruneResult(plan, False, freed, merged, recovered)


def _apply(catalog: Catalog, plan: PrunePlan, reporter: Reporter) -> tuple[DiskRecord, ...]:
    stamp = catalogs.utc_stamp()
    renamed: dict[str, str] = {}  # old file -> merged file
    new_disks: dict[str, list[DiskRecord]] = {}
    repoints: list[tuple[str, str]] = []
    merged = []
    try:
        for m in plan.merges:
            record = _merge(catalog, m, renamed, stamp, reporter)
            renamed[m.disk.file] = record.file
            merged.append(record)
            new_disks.setdefault(m.point, []).append(record)
            repoints += [(child, record.file) for child in m.children]
    except BaseException:
        for name in renamed.values():  # nothing references them yet
            (catalog.dir / name).unlink(missing_ok=True)
        raise
    points = {p.name: p for p in catalog.points()}
    replaced = {
        name: tuple(next((n for n in disks if n.id == d.id), d) for d in points[name].disks)
        for name, disks in new_disks.items()
    }
    removed = tuple(d.point.name for d in plan.removed)
    journal.finish(catalog, journal.Switch(removed, replaced, tuple(repoints)), on_step)
    for i, name in enumerate(plan.delete):
        (catalog.dir / name).unlink(missing_ok=True)
        if i == 0:
            on_step("deleted")
    for d in plan.removed:
        reporter.note(f"removed restore point {d.point.name} ({d.reasons[0]})")
    for name in plan.orphans:
        reporter.note(f"removed orphan file {name}")
    return tuple(merged)


def _guest_checksum(catalog: Catalog, disk: DiskRecord) -> Checksum:
    """The guest view's checksum the merged image must match: recorded at backup time, else computed now
    (after checking the chain's file hashes, so a merge never launders a damaged file into a new one)."""
    if disk.checksum is not None:
        return disk.checksum
    problems = verify_disk(catalog, disk).problems
    if problems:
        raise TransferError(f"cannot merge {disk.file}: {problems[0]}")
    from ovbackup.imageio.client import image_checksum

    value = image_checksum(catalog.dir / disk.file, algorithm=CHECKSUM_ALGORITHM, block_size=CHECKSUM_BLOCK)
    return Checksum(CHECKSUM_ALGORITHM, CHECKSUM_BLOCK, value)


def _merge(catalog: Catalog, m: Merge, renamed: dict[str, str], stamp: str, reporter: Reporter) -> DiskRecord:
    from ovbackup.imageio.client import image_checksum

    backing = renamed.get(m.backing.file, m.backing.file) if m.backing else None
    mode = "incremental" if backing else "full"
    base = _MODE_SUFFIX.sub("", m.disk.file)
    name = f"{base}.{mode}.merged-{stamp}.qcow2"
    final = catalog.dir / name
    partial = final.with_name(name + PARTIAL)
    reporter.note(f"merging {len(m.folded)} file(s) into {name}")
    expected = _guest_checksum(catalog, m.disk)
    on_step("merge-start")
    try:
        fold_into_copy(catalog.dir / m.disk.file, partial, backing)
        on_step("merged")
        image_check(partial)
        on_step("checked")
        got = image_checksum(partial, algorithm=expected.algorithm, block_size=expected.block_size)
        if got != expected.checksum:
            raise TransferError(
                f"merged image of {m.disk.file} shows the guest different data "
                f"(checksum {got[:16]}…, expected {expected.checksum[:16]}…); nothing changed"
            )
        digest = fsync_and_hash(partial)
        os.replace(partial, final)
        fsync_dir(catalog.dir)
    finally:
        partial.unlink(missing_ok=True)
    on_step("renamed")
    size, mtime_ns = file_stamp(final)
    return replace(
        m.disk,
        mode=mode,
        file=name,
        backing_file=backing,
        file_hash=digest,
        file_size=size,
        file_mtime_ns=mtime_ns,
        checksum=Checksum(expected.algorithm, expected.block_size, got),
    )

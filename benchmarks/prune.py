"""prune: the plan for a big catalog, and a merge against a bare ``qemu-img commit`` of the same overlay.

    python benchmarks/prune.py [--points 5000] [--size-gib 2] [--overlay-mib 512] [--workdir DIR]

Prints (figures only, nothing asserted):
- plan: ``plan_prune`` (the pure policy, no engine, no files) over a catalog of N points with two disks
  each, hourly for months, a full every 31 points; with and without --merge. Target: at most 0.5 s.
- merge: a full image (a quarter of the disk data) and one overlay on it, as two restore points; then
  ``prune --keep-last 1 --merge`` (the kept overlay becomes a new full: qemu-img convert of its chain,
  qemu-img check, the guest-view checksum, fsync, rename, catalog switch, delete) against a bare
  ``qemu-img commit`` of the same overlay into (a copy of) the same full. Both as processes, the
  overlay's bytes per second of wall time. Target: at least 0.9 of the bare commit.
  Then each step of the merge alone on the merged image, and the ceiling that the guest-view checksum
  alone sets: a bare commit writes only the overlay, but a verified merge must read and hash the whole
  guest view (all of the disk's data) once more, so it cannot be faster than commit + checksum.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovbackup.store.catalog import Checksum, DiskRecord, RestorePoint, utc_stamp  # noqa: E402
from ovbackup.store.retention import Policy, plan_prune  # noqa: E402
from ovbackup.store.sealing import fsync_and_hash  # noqa: E402

MiB = 1 << 20
KEEP_NEWEST = ("--keep-last", "1", "--merge", "--yes")
BIN = Path(sys.executable).parent


def synthetic_catalog(count: int) -> tuple[list[RestorePoint], dict[str, int]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = []
    previous: dict[str, str] = {}
    for i in range(count):
        name = utc_stamp(start + timedelta(hours=i))
        full = i % 31 == 0
        disks = []
        for disk_id in ("d-os", "d-data"):
            file = f"{name}.disk.{disk_id}.{'full' if full else 'incremental'}.qcow2"
            disks.append(
                DiskRecord(
                    id=disk_id,
                    alias=disk_id,
                    mode="full" if full else "incremental",
                    format="qcow2",
                    virtual_size=1 << 30,
                    file=file,
                    backing_file=None if full else previous[disk_id],
                )
            )
            previous[disk_id] = file
        points.append(
            RestorePoint(
                name=name,
                backup_id=f"b{i}",
                mode="full" if full else "incremental",
                format="qcow2",
                started="",
                finished="",
                from_checkpoint_id=None,
                to_checkpoint_id=f"c{i}",
                engine_url="",
                vm_id="vm",
                vm_name="web01",
                complete=True,
                disks=tuple(disks),
            )
        )
    files = {d.file: 64 * MiB for p in points for d in p.disks}
    return points, files


def bench_plan(count: int) -> None:
    points, files = synthetic_catalog(count)
    policy = Policy(hourly=24, daily=7, weekly=4, monthly=6, yearly=2)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for merge in (False, True):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            plan = plan_prune(points, files, policy, now=now, merge=merge)
            best = min(best, time.perf_counter() - started)
        print(
            f"plan {count} points ({2 * count} files), merge={merge}: {best:.3f} s "
            f"(target <= 0.5 s); keep {len(plan.kept)}, remove {len(plan.removed)}, "
            f"merges {len(plan.merges)}"
        )


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def qemu_io(path: Path, *commands: str) -> None:
    argv = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        argv += ["-c", c]
    subprocess.run([*argv, str(path)], check=True, capture_output=True)


def write_regions(path: Path, size: int, total: int, pattern: int, offset: int = 0) -> None:
    """``total`` bytes of data in 16 regions spread over the image."""
    region = total // 16
    step = size // 16
    commands = [f"write -P {pattern} {offset + i * step} {region}" for i in range(16)]
    qemu_io(path, *commands)


def drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    with contextlib.suppress(OSError):  # as root: start both runs with cold caches
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def bench_merge(size: int, overlay_bytes: int, workdir: Path) -> None:
    from ovirt_imageio import client

    work = Path(tempfile.mkdtemp(prefix="prune-bench-", dir=workdir))
    base, top = work / "base.qcow2", work / "top.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), str(size))
    write_regions(base, size, size // 4, 0x11)
    qemu_img("create", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(top))
    write_regions(top, size, overlay_bytes, 0x22, offset=1 * MiB)

    # bare: commit the overlay into a copy of the full (the copy is not timed; the commit is in place)
    bare_dir = work / "bare"
    bare_dir.mkdir()
    subprocess.run(["cp", "--sparse=always", str(base), str(top), str(bare_dir)], check=True)
    drop_caches()
    started = time.perf_counter()
    qemu_img("commit", "-q", "-d", str(bare_dir / top.name))
    bare = time.perf_counter() - started

    # ovbackup: the same two files as two restore points, then prune --keep-last 1 --merge
    catalog_root = work / "backups"
    vm_dir = catalog_root / "web01"
    vm_dir.mkdir(parents=True)
    names = ["20260101T000000.000Z", "20260102T000000.000Z"]
    files = [f"{names[0]}.os.d1.full.qcow2", f"{names[1]}.os.d1.incremental.qcow2"]
    subprocess.run(["cp", "--sparse=always", str(base), str(vm_dir / files[0])], check=True)
    subprocess.run(["cp", "--sparse=always", str(top), str(vm_dir / files[1])], check=True)
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", files[0], "-F", "qcow2", str(vm_dir / files[1]))
    record_checksum = os.environ.get("BENCH_RECORDED_CHECKSUM", "1") == "1"
    points = []
    for i, (name, file) in enumerate(zip(names, files, strict=True)):
        checksum = None
        if record_checksum:  # what backup --verify records; without it prune computes it first
            value = client.checksum(str(vm_dir / file))
            checksum = Checksum(value["algorithm"], value["block_size"], value["checksum"])
        from ovbackup.imageio.images import file_hash

        disk = DiskRecord(
            id="d1",
            alias="os",
            mode="incremental" if i else "full",
            format="qcow2",
            virtual_size=size,
            file=file,
            backing_file=files[0] if i else None,
            file_hash=file_hash(vm_dir / file),
            checksum=checksum,
        )
        points.append(
            RestorePoint(
                name=name,
                backup_id=f"b{i}",
                mode=disk.mode,
                format="qcow2",
                started="",
                finished="",
                from_checkpoint_id=None,
                to_checkpoint_id=f"c{i}",
                engine_url="",
                vm_id="vm",
                vm_name="web01",
                complete=True,
                disks=(disk,),
            ).to_json()
        )
    (vm_dir / "catalog.json").write_text(json.dumps({"schema": 1, "vm_name": "web01", "points": points}))
    drop_caches()
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "ovbackup"), "-o", "json", "prune", "web01", "--dir", str(catalog_root), *KEEP_NEWEST],
        capture_output=True,
        text=True,
        check=False,
    )
    ours = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"prune failed: {result.stderr}")
    merged = json.loads(result.stdout)["merged"][0]["file"]
    compare = ["qemu-img", "compare", "-q", str(vm_dir / merged), str(bare_dir / base.name)]
    same = subprocess.run(compare, check=False).returncode == 0
    # where a merge's time goes: the same steps alone, on the merged image (warm cache, like the merge)
    from ovbackup.imageio.client import image_checksum
    from ovbackup.imageio.images import fold_into_copy, image_check

    steps: dict[str, float] = {}
    scratch = work / "scratch.qcow2"
    for label, step in (
        ("write the new full (qemu-img convert)", lambda: fold_into_copy(vm_dir / merged, scratch, None)),
        ("qemu-img check", lambda: image_check(scratch)),
        (
            "guest-view checksum (imageio blkhash)",
            lambda: image_checksum(scratch, algorithm="blake2b", block_size=4 * MiB),
        ),
        ("file hash (sha256) + fsync", lambda: fsync_and_hash(scratch)),
    ):
        started = time.perf_counter()
        step()
        steps[label] = time.perf_counter() - started
    mib = overlay_bytes / MiB
    print(
        f"merge of a {mib:.0f} MiB overlay on a {size / MiB / 4:.0f} MiB-data full ({size >> 30} GiB disk), "
        f"checksum {'recorded at backup' if record_checksum else 'computed by prune'}:"
    )
    print(f"  bare qemu-img commit: {bare:.2f} s  ({mib / bare:.0f} MiB/s of overlay)")
    print(f"  ovbackup prune --merge: {ours:.2f} s  ({mib / ours:.0f} MiB/s of overlay)")
    print(f"  ratio {bare / ours:.2f} (target >= 0.9); same guest view as the bare commit: {same}")
    for label, seconds in steps.items():
        print(f"    of which {label}: {seconds:.2f} s")
    floor = steps["guest-view checksum (imageio blkhash)"]
    ceiling = bare / (bare + floor)
    print(f"  ceiling for any merge verified by that checksum (commit + checksum alone): {ceiling:.2f}")
    subprocess.run(["rm", "-rf", str(work)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--overlay-mib", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    bench_plan(args.points)
    bench_merge(int(args.size_gib * (1 << 30)), args.overlay_mib * MiB, args.workdir)


if __name__ == "__main__":
    main()

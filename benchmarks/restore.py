"""A whole restore through the real imageio daemon on loopback: a restore point of a VM with two 2 GiB
qcow2 disks, a quarter of each filled with data, brought back as a new VM.

    python benchmarks/restore.py [--size-gib 2] [--phase-seconds 0.5] [--workdir /dev/shm]

Prints (figures only, nothing asserted):
- `ovbackup restore` wall time (new VM, and --disks-only; best of --rounds) against the upload_disk.py flow
  (benchmarks/reference_upload_disk.py: the SDK creates each disk, then one `ovirt_imageio.client.upload`
  after the other, 1 s polls). Target: at most 0.6 of the reference.
- per-disk upload throughput of ovbackup (one disk at a time) against a bare `client.upload` of the same
  image into a fresh disk's transfer, alternated, best of --rounds each. Target: at least 0.95 of it.
- the number of engine requests one restore makes.
Every client runs as its own process; the fake engine and the imageio daemon run beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovirt_fake_engine import DiskSpec, FakeEngine  # noqa: E402
from ovirt_fake_engine.dataplane import DataPlane  # noqa: E402

from ovbackup.engine.connection import Connection  # noqa: E402
from ovbackup.engine.model import Disk, DiskBackup, DiskFormat, ImageTransferPhase  # noqa: E402
from ovbackup.engine.services import SystemService  # noqa: E402

MiB = 1 << 20
BIN = Path(sys.executable).parent
BARE = """
import sys, time
from ovirt_imageio import client
t = time.perf_counter()
client.upload(sys.argv[1], sys.argv[2], None, max_workers=4, disk_is_zero=True)
print(time.perf_counter() - t)
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {result.stderr[-2000:]}")
    return elapsed, result.stdout


def fill(engine: FakeEngine, disk_id: str, size: int, pattern: int) -> int:
    """Write a quarter of the disk in 8 regions spread over it; returns the bytes written."""
    region = size // 32
    for i in range(8):
        engine.write_disk(disk_id, i * size // 8, region, pattern + i)
    return 8 * region


def bare_throughput(engine: FakeEngine, image: Path, size: int, data: int, env: dict[str, str]) -> float:
    """MiB/s of a bare imageio client upload of ``image`` into a new disk (data bytes / seconds)."""
    with Connection(engine.url, engine.username, engine.password) as connection:
        system = SystemService(connection)
        disks = system.disks_service()
        domain = system.storage_domains_service().find("data")
        disk = disks.add(
            Disk(
                id=str(uuid.uuid4()),
                name=f"bare-{image.name[:20]}",
                format=DiskFormat.COW,
                sparse=True,
                backup=DiskBackup.INCREMENTAL,
                provisioned_size=size,
                storage_domains=(domain,),
            )
        )
        ds = disks.disk_service(disk.id)
        while ds.get().status != "ok":
            time.sleep(0.05)
        transfers = system.image_transfers_service()
        transfer = transfers.add_for_disk(disk_id=disk.id, direction="upload")
        ts = transfers.image_transfer_service(str(transfer.id))
        while (transfer := ts.get()).phase != ImageTransferPhase.TRANSFERRING:
            time.sleep(0.05)
        _, out = run([sys.executable, "-c", BARE, str(image), str(transfer.transfer_url)], env)
        ts.finalize()
        while ts.get().phase != ImageTransferPhase.FINISHED_SUCCESS:
            time.sleep(0.05)
    return data / MiB / float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--phase-seconds", type=float, default=0.5, help="the fake engine's phase step")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs of each client (best kept)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="where disks and backups live (default: the temp dir; /dev/shm takes the disk out of it)",
    )
    args = parser.parse_args()
    size = int(args.size_gib * 1024) * MiB

    with tempfile.TemporaryDirectory(prefix="ovbackup-bench-", dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        dp = DataPlane(tmp / "dp")
        dp.start()
        try:
            engine = FakeEngine(phase_seconds=args.phase_seconds, dataplane=dp, disk_dir=tmp / "disks")
            engine.start()
            vm = engine.add_vm(
                "bench01",
                disks=[
                    DiskSpec(
                        alias=f"bench01_disk{i}", format="cow", backup="incremental", provisioned_size=size
                    )
                    for i in (1, 2)
                ],
            )
            data = sum(fill(engine, d.id, size, 0x10 * (n + 1)) for n, d in enumerate(vm.disks))
            password = tmp / "password"
            password.write_text(engine.password + "\n")
            env = {**os.environ, "OVIRT_URL": engine.url, "OVIRT_USERNAME": engine.username}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            ovbackup = [str(BIN / "ovbackup"), "--password-file", str(password), "-o", "json"]
            backups = tmp / "backups"
            _, out = run([*ovbackup, "backup", "bench01", "--dir", str(backups), "--full"], env)
            point = json.loads(out)
            tops = [backups / "bench01" / d["file"] for d in point["disks"]]

            reference = [
                sys.executable,
                str(ROOT / "benchmarks" / "reference_upload_disk.py"),
                engine.url,
                engine.username,
                engine.password,
                "data",
                *map(str, tops),
            ]
            restore = [*ovbackup, "restore", "bench01", "--dir", str(backups)]
            # Wall times: the reference and ovbackup alternated, best of --rounds each.
            ref_seconds = vm_seconds = disks_seconds = float("inf")
            for n in range(args.rounds):
                ref_seconds = min(ref_seconds, run(reference, env)[0])
                engine.reset_log()
                seconds, out = run([*restore, "--name", f"bench01-restored-{n}"], env)
                if seconds < vm_seconds:
                    vm_seconds, restored = seconds, json.loads(out)
                    requests = engine.requests
                disks_seconds = min(disks_seconds, run([*restore, "--disks-only"], env)[0])
            api = [r for r in requests if r.path.startswith("/ovirt-engine/api")]
            # Per-disk throughput: ovbackup one disk at a time and the bare client, alternated and
            # repeated, best of each (this machine is shared: a single run is noisy).
            ours_mibs = [0.0, 0.0]
            bare_mibs = [0.0, 0.0]
            for _ in range(args.rounds):
                _, out = run([*restore, "--disks-only", "--parallel-disks", "1"], env)
                for i, d in enumerate(json.loads(out)["disks"]):
                    ours_mibs[i] = max(ours_mibs[i], d["bytes"] / MiB / d["upload_seconds"])
                for i, top in enumerate(tops):
                    bare_mibs[i] = max(bare_mibs[i], bare_throughput(engine, top, size, data // 2, env))
            engine.stop()
        finally:
            dp.stop()

    print(
        f"restore point of a VM with 2 x {size / 2**30:g} GiB qcow2 disks, {data / MiB:.0f} MiB of data "
        f"in all; engine phase step {args.phase_seconds:g} s; "
        f"files in {args.workdir or tempfile.gettempdir()}"
    )
    print(f"{'run':<52}{'seconds':>9}")
    print(f"{'reference (upload_disk.py flow, sequential)':<52}{ref_seconds:>9.2f}")
    print(f"{'ovbackup restore (new VM, disks attached)':<52}{vm_seconds:>9.2f}")
    print(f"{'ovbackup restore --disks-only':<52}{disks_seconds:>9.2f}")
    print(
        f"restore vs reference: {vm_seconds / ref_seconds:.2f} (target <= 0.6); "
        f"--disks-only vs reference: {disks_seconds / ref_seconds:.2f}"
    )
    for n, (ours, bare) in enumerate(zip(ours_mibs, bare_mibs, strict=True), 1):
        print(
            f"disk {n} upload throughput: ovbackup {ours:.0f} MiB/s, bare client.upload {bare:.0f} MiB/s, "
            f"ratio {ours / bare:.2f} (target >= 0.95)"
        )
    for d in restored["disks"]:
        print(
            f"  restore, {d['alias'][:24]}: {d['seconds']:.2f} s for the disk, {d['upload_seconds']:.2f} s "
            "moving bytes (both disks at once)"
        )
    print(
        f"engine requests for one restore (new VM, {len(restored['disks'])} disks): "
        f"{len(api)} API + {len(requests) - len(api)} SSO"
    )


if __name__ == "__main__":
    main()

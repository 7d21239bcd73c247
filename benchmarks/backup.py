"""A whole backup through the real imageio daemon on loopback: a VM with two 2 GiB qcow2 disks, a
quarter of each filled with data.

    python benchmarks/backup.py [--size-gib 2] [--phase-seconds 0.5] [--workdir /dev/shm]

Prints (figures only, nothing asserted):
- `ovbackup backup --full` wall time against the SDK's backup_vm.py flow (benchmarks/reference_backup_vm.py:
  one disk after the other, 1 s polls). Target: at most 0.6 of the reference.
- per-disk throughput of ovbackup (download phase, one disk at a time) against a bare
  `ovirt_imageio.client.download` of the same data. Target: at least 0.95 of it.
- an incremental after 64 MiB of guest writes: wall time (target: at most 0.2 of the full) and bytes
  transferred (target: within 10 % of the bytes written).
- the number of engine requests one whole backup makes.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovirt_fake_engine import DiskSpec, FakeEngine  # noqa: E402
from ovirt_fake_engine.dataplane import DataPlane  # noqa: E402

from ovbackup.engine.connection import Connection  # noqa: E402
from ovbackup.engine.model import Backup, BackupPhase, Disk, ImageTransferPhase  # noqa: E402
from ovbackup.engine.services import SystemService  # noqa: E402

MiB = 1 << 20
BIN = Path(sys.executable).parent
BARE = """
import sys, time
from ovirt_imageio import client
t = time.perf_counter()
client.download(sys.argv[1], sys.argv[2], None, incremental=False, max_workers=4)
print(time.perf_counter() - t)
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {result.stderr[-2000:]}")
    return elapsed, result.stdout


def fill(engine: FakeEngine, disk_id: str, size: int, pattern: int) -> int:
    """Write a quarter of the disk in 8 regions spread over it; returns the bytes written."""
    region = size // 32
    for i in range(8):
        engine.write_disk(disk_id, i * size // 8, region, pattern + i)
    return 8 * region


def bare_throughput(engine: FakeEngine, vm_id: str, disk_id: str, dest: Path, env: dict[str, str]) -> float:
    """MiB/s of a bare imageio client download of one disk of a fresh backup (data bytes / seconds)."""
    with Connection(engine.url, engine.username, engine.password) as connection:
        system = SystemService(connection)
        backups = system.vms_service().vm_service(vm_id).backups_service()
        backup = backups.add(Backup(disks=(Disk(id=disk_id),)))
        service = backups.backup_service(str(backup.id))
        while service.get().phase != BackupPhase.READY:
            time.sleep(0.1)
        transfers = system.image_transfers_service()
        transfer = transfers.add_backup_download(disk_id=disk_id, backup_id=str(backup.id))
        ts = transfers.image_transfer_service(str(transfer.id))
        while (transfer := ts.get()).phase != ImageTransferPhase.TRANSFERRING:
            time.sleep(0.1)
        _, out = run([sys.executable, "-c", BARE, str(transfer.transfer_url), str(dest)], env)
        ts.finalize()
        while ts.get().phase != ImageTransferPhase.FINISHED_SUCCESS:
            time.sleep(0.1)
        service.finalize()
        while service.get().phase != BackupPhase.SUCCEEDED:
            time.sleep(0.1)
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--phase-seconds", type=float, default=0.5, help="the fake engine's phase step")
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
            ovbackup = [
                str(BIN / "ovbackup"),
                "--password-file",
                str(password),
                "-o",
                "json",
                "backup",
                "bench01",
            ]

            (tmp / "ref").mkdir()
            ref_seconds, _ = run(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "reference_backup_vm.py"),
                    engine.url,
                    engine.username,
                    engine.password,
                    vm.id,
                    str(tmp / "ref"),
                ],
                env,
            )
            # backup_vm.py never fsyncs; ovbackup makes every file durable before recording it.
            started = time.perf_counter()
            for path in (tmp / "ref").iterdir():
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())
            ref_synced = ref_seconds + time.perf_counter() - started

            engine.reset_log()
            full_seconds, out = run([*ovbackup, "--dir", str(tmp / "ours"), "--full"], env)
            requests = engine.requests
            api = [r for r in requests if r.path.startswith("/ovirt-engine/api")]
            full = json.loads(out)

            one_at_a_time_s, out = run(
                [*ovbackup, "--dir", str(tmp / "seq"), "--full", "--parallel-disks", "1"], env
            )
            seq = json.loads(out)
            ours_mibs = [d["bytes_transferred"] / MiB / d["download_seconds"] for d in seq["disks"]]
            bare_mibs = [
                (data / 2 / MiB) / bare_throughput(engine, vm.id, d.id, tmp / f"bare-{d.id}.qcow2", env)
                for d in vm.disks
            ]

            written = 0
            for i in range(16):  # 64 MiB of guest writes, 4 MiB at a time, over both disks
                disk = vm.disks[i % 2]
                engine.write_disk(disk.id, (i * 97 % 128) * (size // 128), 4 * MiB, 0xE0 + i)
                written += 4 * MiB
            inc_seconds, out = run([*ovbackup, "--dir", str(tmp / "ours")], env)
            inc = json.loads(out)
            engine.stop()
        finally:
            dp.stop()

    print(
        f"VM with 2 x {size / 2**30:g} GiB qcow2 disks, {data / MiB:.0f} MiB of data in all; "
        f"engine phase step {args.phase_seconds:g} s; files in {args.workdir or tempfile.gettempdir()}"
    )
    print(f"{'run':<46}{'seconds':>9}")
    print(f"{'reference (backup_vm.py flow, sequential)':<46}{ref_seconds:>9.2f}")
    print(f"{'reference, then its files fsynced':<46}{ref_synced:>9.2f}")
    print(f"{'ovbackup backup --full':<46}{full_seconds:>9.2f}")
    print(f"{'ovbackup backup --full --parallel-disks 1':<46}{one_at_a_time_s:>9.2f}")
    print(f"{'ovbackup backup (incremental, 64 MiB written)':<46}{inc_seconds:>9.2f}")
    print(
        f"full vs reference: {full_seconds / ref_seconds:.2f} (target <= 0.6); "
        f"vs reference with its files fsynced: {full_seconds / ref_synced:.2f}"
    )
    for n, (ours, bare) in enumerate(zip(ours_mibs, bare_mibs, strict=True), 1):
        print(
            f"disk {n} throughput: ovbackup {ours:.0f} MiB/s, bare client {bare:.0f} MiB/s, "
            f"ratio {ours / bare:.2f} (target >= 0.95)"
        )
    print(
        f"incremental vs full wall time: {inc_seconds / full_seconds:.2f} (target <= 0.2); mode {inc['mode']}"
    )
    sent = sum(d["bytes_transferred"] for d in inc["disks"])
    print(
        f"incremental bytes transferred {sent / MiB:.1f} MiB for {written / MiB:.0f} MiB written "
        f"({(sent - written) / written:+.1%}, target within 10 %)"
    )
    print(
        f"engine requests for one full backup: {len(api)} API + {len(requests) - len(api)} SSO "
        f"({full['mode']}, {len(full['disks'])} disks)"
    )


if __name__ == "__main__":
    main()

"""The fake engine serving 10,000 backups of one VM: ``ovbackup list VM -o json`` against the official
SDK's ``backups_service().list()`` on the same server — wall time and peak RSS of each client process.

    python benchmarks/scale.py [--backups 10000] [--runs 5] [--flow legacy|hybrid]

The backups look like a real engine's list (the fake's scale mode, ``add_backups``): the finalize
action, the disks link, both dates, a description, from/to checkpoint ids, the VM, and in the legacy
flow (the default here: the larger reply) the host.

Targets (issue 2): ovbackup at most 0.8 times the SDK's wall time, peak RSS at most the SDK's. Figures only.
The engine runs in this process; each client is a fresh process, measured with os.wait4.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovirt_fake_engine import DiskSpec, FakeEngine  # noqa: E402

BIN = Path(sys.executable).parent

SDK_SCRIPT = """
import sys, ovirtsdk4 as sdk
c = sdk.Connection(url=sys.argv[1], username=sys.argv[2], password=sys.argv[3])
backups = c.system_service().vms_service().vm_service(sys.argv[4]).backups_service().list()
print(len(backups))
c.close()
"""


# Linux charges a child's peak RSS with its parent's size at fork/exec time (exec records the old
# mm's high-water mark), and this process holds the engine's 10,000 backups. So each client is
# started by a small launcher process, which times it and reads its rusage.
LAUNCHER = """
import os, sys, time
t = time.perf_counter()
report_fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - t
os.write(report_fd, f"{elapsed} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}".encode())
"""


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS (KiB) and stdout of one process."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(write_fd), *argv],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        _, err = proc.communicate()
        report = os.read(read_fd, 200).decode().split()
        os.close(read_fd)
        if proc.returncode != 0 or not report or report[2] != "0":
            raise SystemExit(f"{argv[:3]} failed: {err.decode()[-500:]}")
        out.seek(0)
        return float(report[0]), int(report[1]), out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--flow", choices=("legacy", "hybrid"), default="legacy")
    args = parser.parse_args()

    legacy = args.flow == "legacy"
    with FakeEngine(phase_seconds=0, legacy=legacy) as engine, tempfile.TemporaryDirectory() as tmp:
        vm = engine.add_vm("web01", disks=[DiskSpec(alias="web01_os")])
        engine.add_backups(vm.id, args.backups)
        password = Path(tmp) / "password"
        password.write_text(engine.password + "\n")
        env = {**os.environ, "OVIRT_URL": engine.url, "OVIRT_USERNAME": engine.username}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        ours = [str(BIN / "ovbackup"), "--password-file", str(password), "-o", "json", "list", "web01"]
        sdk = [sys.executable, "-c", SDK_SCRIPT, engine.url, engine.username, engine.password, vm.id]

        # Warm up both (and check they see every backup).
        _, _, out = measure(ours, env)
        assert len(json.loads(out)) == args.backups
        _, _, out = measure(sdk, env)
        assert int(out) == args.backups

        results: dict[str, list[tuple[float, int]]] = {"ovbackup list -o json": [], "SDK list()": []}
        for _ in range(args.runs):  # interleaved, so a busy moment hits both alike
            for label, argv in (("ovbackup list -o json", ours), ("SDK list()", sdk)):
                seconds, rss, _ = measure(argv, env)
                results[label].append((seconds, rss))

    python = sys.version.split()[0]
    print(f"{args.backups} backups ({args.flow} flow), {args.runs} runs each, Python {python}")
    print(f"{'client':<24}{'median s':>10}{'min s':>10}{'peak RSS MiB':>14}")
    medians = {}
    for label, rows in results.items():
        times = [t for t, _ in rows]
        rss = max(r for _, r in rows) / 1024
        medians[label] = (statistics.median(times), rss)
        print(f"{label:<24}{statistics.median(times):>10.3f}{min(times):>10.3f}{rss:>14.1f}")
    (ours_t, ours_rss), (sdk_t, sdk_rss) = medians.values()
    print(f"wall time ratio ovbackup/SDK: {ours_t / sdk_t:.2f} (target <= 0.8)")
    print(f"peak RSS ratio ovbackup/SDK:  {ours_rss / sdk_rss:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()

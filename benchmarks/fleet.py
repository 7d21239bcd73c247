"""A fleet of 40 small VMs through the real imageio daemon, and listing 5,000 VMs with their disks.

    python benchmarks/fleet.py [--vms 40] [--phase-seconds 0.5] [--parallel 4] [--list-vms 5000]
                               [--repeat 3] [--only fleet|listing]

Prints (figures only, nothing asserted):
- `ovbackup backup --all --parallel 4` wall time against a shell loop of one `ovbackup backup VM` per
  VM (one after the other, as a cron script would). Target: at most 0.35 of the loop.
- engine requests per VM in the fleet run and in a one-VM run. Target: the fleet makes no more.
- `ovbackup vms -o json` over 5,000 VMs with 2 disks each (one request, follow=disk_attachments.disk)
  against the SDK listing them with the same follow. Target: at most 0.5 of the SDK's time. The fake
  engine sends each VM and disk as a real one does (actions, links, settings: about 12 KB per VM).
Every client runs as its own process; the fake engine and the imageio daemon run beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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

MiB = 1 << 20
BIN = Path(sys.executable).parent
SDK_SCRIPT = """
import sys, time, ovirtsdk4 as sdk
c = sdk.Connection(url=sys.argv[1], username=sys.argv[2], password=sys.argv[3])
t = time.perf_counter()
vms = c.system_service().vms_service().list(follow="disk_attachments.disk")
n = sum(len(v.disk_attachments) for v in vms)
print(time.perf_counter() - t, len(vms), n)
c.close()
"""


def run(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok:
        raise SystemExit(f"{argv[:6]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed, result.stdout


def api_requests(engine: FakeEngine) -> int:
    return sum(1 for r in engine.requests if r.path.startswith("/ovirt-engine/api"))


def fleet_figures(args: argparse.Namespace, tmp: Path) -> None:
    dp = DataPlane(tmp / "dp")
    dp.start()
    try:
        engine = FakeEngine(phase_seconds=args.phase_seconds, dataplane=dp, disk_dir=tmp / "disks")
        engine.start()
        names = []
        for i in range(args.vms):
            name = f"vm{i:03}"
            vm = engine.add_vm(
                name,
                disks=[
                    DiskSpec(alias=f"{name}_os", format="cow", backup="incremental", provisioned_size=8 * MiB)
                ],
            )
            engine.write_disk(vm.disks[0].id, 0, 2 * MiB, 0x20 + i % 200)
            names.append(name)
        password = tmp / "password"
        password.write_text(engine.password + "\n")
        env = {**os.environ, "OVIRT_URL": engine.url, "OVIRT_USERNAME": engine.username}
        ovbackup = [str(BIN / "ovbackup"), "--password-file", str(password), "-o", "json", "backup"]

        engine.reset_log()
        loop = "\n".join(
            f'"$OVBACKUP" --password-file "$PW" -o json backup {n} --full --dir "$DIR" >/dev/null || exit 1'
            for n in names
        )
        loop_env = {**env, "OVBACKUP": str(BIN / "ovbackup"), "PW": str(password), "DIR": str(tmp / "loop")}
        loop_seconds, _ = run(["sh", "-c", loop], loop_env)
        loop_requests = api_requests(engine)

        engine.reset_log()
        fleet_seconds, out = run(
            [*ovbackup, "--all", "--full", "--parallel", str(args.parallel), "--dir", str(tmp / "fleet")], env
        )
        fleet_requests = api_requests(engine)
        doc = json.loads(out)
        engine.stop()
    finally:
        dp.stop()
    print(
        f"{args.vms} VMs, one 8 MiB qcow2 disk each (2 MiB of data); engine phase step "
        f"{args.phase_seconds:g} s"
    )
    print(f"{'run':<52}{'seconds':>9}{'API requests/VM':>17}")
    loop_label = "shell loop of single-VM `backup VM --full`"
    print(f"{loop_label:<52}{loop_seconds:>9.2f}{loop_requests / args.vms:>17.1f}")
    label = f"backup --all --full --parallel {args.parallel}"
    print(f"{label:<52}{fleet_seconds:>9.2f}{fleet_requests / args.vms:>17.1f}")
    ratio = fleet_seconds / loop_seconds
    print(f"fleet vs loop wall time: {ratio:.2f} (target <= 0.35); ok {doc['ok']}/{args.vms}")
    print(
        f"engine requests per VM: fleet {fleet_requests / args.vms:.1f}, single-VM run "
        f"{loop_requests / args.vms:.1f} (target: fleet <= single)"
    )


def listing_figures(args: argparse.Namespace, tmp: Path) -> None:
    with FakeEngine(phase_seconds=1.0) as engine:
        for i in range(args.list_vms):
            engine.add_vm(
                f"list{i:05}",
                disks=[
                    DiskSpec(alias=f"l{i:05}_os"),
                    DiskSpec(alias=f"l{i:05}_d", format="raw", backup="none"),
                ],
            )
        password = tmp / "password"
        password.write_text(engine.password + "\n")
        env = {**os.environ, "OVIRT_URL": engine.url, "OVIRT_USERNAME": engine.username}
        ours = [str(BIN / "ovbackup"), "--password-file", str(password), "-o", "json", "vms"]
        sdk = [sys.executable, "-c", SDK_SCRIPT, engine.url, engine.username, engine.password]
        run(ours, env)  # warm up (page cache, .pyc)
        with Connection(engine.url, engine.username, engine.password) as connection:
            reply = connection.request("GET", "vms", query={"follow": "disk_attachments.disk"}).content
        ours_t, sdk_t, sdk_inner = [], [], []
        for _ in range(args.repeat):
            engine.reset_log()
            seconds, out = run(ours, env)
            requests = api_requests(engine)
            rows = json.loads(out)
            ours_t.append(seconds)
            seconds, out = run(sdk, env)
            sdk_t.append(seconds)
            sdk_inner.append(float(out.split()[0]))
    assert len(rows) == args.list_vms and all(r["disks"] == 2 for r in rows)
    o, s = statistics.median(ours_t), statistics.median(sdk_t)
    print(
        f"\n`vms` over {args.list_vms} VMs with 2 disks each (median of {args.repeat}, whole process; "
        f"reply {len(reply) / 2**20:.1f} MiB, {len(reply) / args.list_vms / 1024:.1f} KiB per VM)"
    )
    print(f"{'ovbackup -o json vms':<52}{o:>9.2f}  ({requests} API request)")
    inner = statistics.median(sdk_inner)
    sdk_label = "SDK vms_service().list(follow=disk_attachments.disk)"
    print(f"{sdk_label:<52}{s:>9.2f}  (list call alone {inner:.2f})")
    print(f"ovbackup vs SDK: {o / s:.2f} (target <= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=40)
    parser.add_argument("--phase-seconds", type=float, default=0.5, help="the fake engine's phase step")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--list-vms", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where disks and backups live (default: temp dir)")
    parser.add_argument("--only", choices=("fleet", "listing"), default=None, help="run one of the two")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ovbackup-fleet-", dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        if args.only != "listing":
            fleet_figures(args, tmp)
        if args.only != "fleet":
            listing_figures(args, tmp)


if __name__ == "__main__":
    main()

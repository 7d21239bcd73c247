"""Print how long ovbackup takes to start, next to a bare interpreter and to ``ovirt-img --help``.

Every case runs as a fresh process (that is what a person or a shell completion waits for), N times after
one untimed warm-up, the cases taking turns so that a busy moment of the machine hits them all alike; the
table shows the median and the fastest wall time and the largest peak RSS. ``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment: an installed package has its ``.pyc`` files, so the warm-up
writes them. That is how an installed tool runs; measured with ``PYTHONDONTWRITEBYTECODE=1`` (as these
machines set it) and an editable install, every run compiles every module and start-up is 0.77-1.0x
``ovirt-img --help`` instead.

    python benchmarks/startup.py [--runs 15]

Figures only: nothing here asserts a time (tests/test_startup_imports.py checks what start-up imports).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET_RATIO = 0.6


@dataclass(frozen=True)
class Case:
    label: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Result:
    case: Case
    seconds: list[float]
    max_rss_kib: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def cases() -> list[Case]:
    python = sys.executable
    ovbackup = str(BIN / "ovbackup")
    complete = {"_OVBACKUP_COMPLETE": "complete_bash", "COMP_WORDS": "ovbackup l", "COMP_CWORD": "1"}
    return [
        Case("python -c pass", [python, "-c", "pass"], {}),
        Case("ovbackup --version", [ovbackup, "--version"], {}),
        Case("ovbackup --help", [ovbackup, "--help"], {}),
        Case("ovbackup list --help", [ovbackup, "list", "--help"], {}),
        Case("complete `ovbackup l` (bash)", [ovbackup], complete),
        Case("ovirt-img --help", [str(BIN / "ovirt-img"), "--help"], {}),
    ]


def run_once(case: Case, env: dict[str, str]) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS (KiB) and stdout of one run; os.wait4 gives this child's own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        case.argv, env={**env, **case.env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; stop Popen from waiting again
    if proc.returncode != 0:
        raise SystemExit(f"{case.label}: exit status {proc.returncode}")
    return elapsed, usage.ru_maxrss, out  # ru_maxrss is in KiB on Linux


def measure(all_cases: list[Case], runs: int, env: dict[str, str]) -> list[Result]:
    for case in all_cases:
        _, _, out = run_once(case, env)  # warm-up: page cache, .pyc files
        if case.label.startswith("complete") and b"list" not in out.split():
            raise SystemExit(f"{case.label}: `list` not offered, got {out!r}")
    seconds: dict[str, list[float]] = {case.label: [] for case in all_cases}
    rss = dict.fromkeys(seconds, 0)
    for _ in range(runs):
        for case in all_cases:
            elapsed, max_rss, _ = run_once(case, env)
            seconds[case.label].append(elapsed)
            rss[case.label] = max(rss[case.label], max_rss)
    return [Result(case, seconds[case.label], rss[case.label]) for case in all_cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case (default 15)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    results = measure(cases(), args.runs, env)
    width = max(len(r.case.label) for r in results)
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}, executables in {BIN}")
    print(f"{'case':<{width}}  {'median ms':>9}  {'min ms':>7}  {'peak RSS MiB':>12}")
    for r in results:
        print(
            f"{r.case.label:<{width}}  {r.median * 1000:9.1f}  {min(r.seconds) * 1000:7.1f}  "
            f"{r.max_rss_kib / 1024:12.1f}"
        )
    by_label = {r.case.label: r for r in results}
    reference = by_label["ovirt-img --help"].median
    for label in ("ovbackup --help", "complete `ovbackup l` (bash)"):
        ratio = by_label[label].median / reference
        verdict = "ok" if ratio <= TARGET_RATIO else "over target"
        print(f"{label} / ovirt-img --help (medians): {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")


if __name__ == "__main__":
    main()

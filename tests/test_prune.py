"""``prune``, ``--merge``, ``backup --max-chain/--keep-checkpoints/--prune`` with real data: backups through
the real imageio daemon, points spread over weeks by the catalog's injectable clock, every kept point
compared with ``qemu-img compare`` against a copy of the guest disk taken when it was backed up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ovirt_fake_engine.demo import DataEngine

from ovbackup.store import catalog as catalogs
from ovbackup.store.catalog import Catalog
from ovbackup.store.verify import verify_point
from tests.harness import Cli, Result
from tests.test_cli_backup_job import files_by_disk, same_image, snapshot

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
MONDAY = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)  # 2026-11-02 is a Monday (ISO week 45)


@dataclass
class Wall:
    """The catalog's clock: each backup happens when the test says."""

    moment: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.moment


@dataclass
class Run:
    """Backups taken so far: each point's JSON and the guest disks as they were at that time."""

    cli: Cli
    engine: DataEngine
    tmp_path: Path
    wall: Wall
    points: list[dict[str, Any]] = field(default_factory=list)
    snaps: dict[str, dict[str, Path]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.tmp_path / "backups" / "web01"

    def backup(self, when: datetime, *args: str) -> dict[str, Any]:
        n = len(self.points)
        os_disk, raw_disk = self.engine.web01.disks
        if n:  # the guest writes something new before each backup
            self.engine.write_disk(os_disk.id, (n * 3) * MiB, 1 * MiB, 0x10 + n)
            self.engine.write_disk(raw_disk.id, (n * 2) * MiB, 512 * 1024, 0x60 + n)
        self.wall.moment = when
        r = self.cli("-o", "json", "backup", "web01", *args)
        assert r.code == 0, r.stderr
        point = r.json()
        self.points.append(point)
        self.snaps[point["name"]] = snapshot(self.engine, self.tmp_path, point["name"])
        return point

    def catalog(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.cli("-o", "json", "catalog", "web01").json()
        return result

    def restorable(self, directory: Path | None = None) -> list[str]:
        """Every point in the catalog verifies and shows the guest exactly what it saw then."""
        directory = directory or self.dir
        names = []
        first = self.cli("verify", "web01", "--dir", str(directory.parent))  # finishes what a crash left
        assert first.code == 0, first.stderr
        listing = self.cli("-o", "json", "catalog", "web01", "--dir", str(directory.parent)).json()
        catalog = Catalog(directory.parent, "web01")
        for point in listing:
            names.append(point["name"])
            # what `verify POINT` checks (images open, chains whole, file hashes), without its catalog write
            problems = [p for r in verify_point(catalog, catalog.find(point["name"])) for p in r.problems]
            assert problems == [], problems
            for disk_id, rec in files_by_disk(point).items():
                assert same_image(directory / rec["file"], self.snaps[point["name"]][disk_id]), rec["file"]
        return names


@pytest.fixture
def run(
    data_engine: DataEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Run]:
    cli = Cli(data_engine, tmp_path, monkeypatch, capsys)
    monkeypatch.setenv("OVBACKUP_DIR", str(tmp_path / "backups"))
    wall = Wall()
    monkeypatch.setattr(catalogs, "now", wall)
    yield Run(cli, data_engine, tmp_path, wall)


def day(n: int, hour: int = 2, minute: int = 30) -> datetime:
    return MONDAY.replace(hour=hour, minute=minute) + timedelta(days=n)


def names(points: list[dict[str, Any]], *indexes: int) -> set[str]:
    return {points[i]["name"] for i in indexes}


def expected_files(catalog: list[dict[str, Any]]) -> set[str]:
    """What a VM directory holds for these points: images, each point's configuration, the manifest, lock."""
    files = {d["file"] for p in catalog for d in p["disks"]}
    files |= {f"{p['name']}.config.json" for p in catalog if p.get("config")}
    return files | {"catalog.json", ".lock"}


def dir_state(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file with its size and time, but the lock (each run writes its pid into it)."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.name != ".lock"
    }


def nine_backups_over_four_weeks(run: Run) -> list[dict[str, Any]]:
    # Mon 2, Tue 3, Wed 4, Mon 9, Tue 10, Mon 16, Mon 23, Tue 24 02:30 and 14:00; at most 2 incrementals
    for n, when in enumerate(
        [day(0), day(1), day(2), day(7), day(8), day(14), day(21), day(22), day(22, 14)]
    ):
        point = run.backup(when, "--max-chain", "2")
        assert point["mode"] == ("full" if n % 3 == 0 else "incremental"), n
    return run.points


def test_prune_follows_the_policy_keeps_chains_and_every_kept_point_restores(run: Run) -> None:
    points = nine_backups_over_four_weeks(run)
    policy = ("--keep-daily", "2", "--keep-weekly", "2")
    before = dir_state(run.dir)

    dry = run.cli("-o", "json", "prune", "web01", *policy, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert dir_state(run.dir) == before  # --dry-run changes nothing on disk
    plan = dry.json()
    kept = {k["name"]: k["reasons"] for k in plan["keep"]}
    # by hand: Tue 24 14:00 is the newest day and week, Mon 23 (a full) the day before, Mon 16 the week
    # before; each keeps the chain under it
    assert kept == {
        points[8]["name"]: ["daily", "weekly"],
        points[7]["name"]: [f"needed by {points[8]['name']}"],
        points[6]["name"]: ["daily", f"needed by {points[8]['name']}"],
        points[5]["name"]: ["weekly"],
        points[4]["name"]: [f"needed by {points[5]['name']}"],
        points[3]["name"]: [f"needed by {points[5]['name']}"],
    }
    assert {r["name"] for r in plan["remove"]} == names(points, 0, 1, 2)
    assert plan["freed_bytes"] > 0 and plan["dry_run"] is True

    refused = run.cli("prune", "web01", *policy)  # not a terminal, no --yes
    assert refused.code == 2 and "--yes" in refused.stderr
    assert dir_state(run.dir) == before

    done = run.cli("-o", "json", "prune", "web01", *policy, "--yes")
    assert done.code == 0, done.stderr
    result = done.json()
    assert result["keep"] == plan["keep"] and result["remove"] == plan["remove"]
    assert result["freed_bytes"] == plan["freed_bytes"]
    catalog = run.catalog()
    assert [p["name"] for p in catalog] == [p["name"] for p in points[3:]]
    assert set(os.listdir(run.dir)) == expected_files(catalog)  # the files match the plan exactly
    assert run.restorable() == [p["name"] for p in points[3:]]

    table = run.cli("catalog", "web01")
    assert "Depth" in table.stdout and "Holds alone" in table.stdout
    assert [p["chain_depth"] for p in catalog] == [0, 1, 2, 0, 1, 2]
    # a raw disk is a full image in every point, held alone; a qcow2 file only at the tip of its chain
    on_disk = lambda rec: (run.dir / rec["file"]).stat().st_blocks * 512  # noqa: E731
    for i, p in enumerate(catalog):
        alone = [d for d in p["disks"] if ".web01_raw." in d["file"] or i in (2, 5)]
        alone.append({"file": f"{p['name']}.config.json"})  # what a restore needs, the point's alone too
        assert p["bytes_alone"] == sum(on_disk(d) for d in alone), p["name"]


def test_incomplete_points_and_orphans_go_and_the_table_shows_every_point(run: Run) -> None:
    run.backup(day(0))
    run.backup(day(1))
    listing = run.catalog()
    incomplete = {**listing[-1], "name": "20261104T023000.000Z", "complete": False}
    incomplete["disks"] = [
        {**d, "file": d["file"].replace(listing[-1]["name"], incomplete["name"])} for d in incomplete["disks"]
    ]
    for d in incomplete["disks"]:
        (run.dir / d["file"]).write_bytes(b"half a download")
    manifest = json.loads((run.dir / "catalog.json").read_text())
    manifest["points"].append(incomplete)
    (run.dir / "catalog.json").write_text(json.dumps(manifest))
    (run.dir / "stray.qcow2.partial").write_bytes(b"x" * 4096)
    (run.dir / "left-behind.qcow2").write_bytes(b"y" * 4096)

    r = run.cli("prune", "web01", "--keep-last", "5", "--yes")
    assert r.code == 0, r.stderr
    assert incomplete["name"] in r.stdout and "REMOVE" in r.stdout and "incomplete" in r.stdout
    assert "orphan" in r.stderr and "left-behind.qcow2" in r.stderr
    assert [p["name"] for p in run.catalog()] == [p["name"] for p in run.points]
    assert set(os.listdir(run.dir)) == expected_files(run.catalog())
    run.restorable()


def test_an_empty_policy_is_refused_and_config_keys_are_the_policy(run: Run, tmp_path: Path) -> None:
    for n in range(3):
        run.backup(day(n))
    r = run.cli("prune", "web01", "--yes")
    assert r.code == 2 and "empty policy" in r.stderr
    config = tmp_path / "ovbackup.conf"
    config.write_text("[prod]\nkeep_last = 1\nmerge = yes\n")
    r = run.cli("--config-file", str(config), "-c", "prod", "-o", "json", "prune", "web01", "--dry-run")
    assert r.code == 0, r.stderr
    assert [k["name"] for k in r.json()["keep"]] == [run.points[-1]["name"]]  # merge: nothing needed
    # a flag overrides the section
    r = run.cli("--config-file", str(config), "-c", "prod", "-o", "json", "prune", "web01", "--dry-run",
                "--keep-last", "2", "--no-merge")  # fmt: skip
    assert [k["name"] for k in r.json()["keep"]] == [p["name"] for p in run.points]
    assert run.cli("prune", "web01", "--keep-daily", "x", "--yes").code == 2
    assert len(run.catalog()) == 3


def every_other_day(run: Run, count: int, *args: str) -> list[dict[str, Any]]:
    for n in range(count):
        run.backup(day(n * 2), *args)
    return run.points


def test_merge_lets_an_old_full_go_and_keeps_the_rest_byte_exact(run: Run) -> None:
    points = every_other_day(run, 5)
    full_file = next(
        d["file"] for d in points[0]["disks"] if d["mode"] == "full" and ".web01_os." in d["file"]
    )
    plain = run.cli("-o", "json", "prune", "web01", "--keep-last", "2", "--dry-run").json()
    assert len(plain["keep"]) == 5  # without --merge the chain keeps the full and everything on it

    r = run.cli("-o", "json", "prune", "web01", "--keep-last", "2", "--merge", "--yes")
    assert r.code == 0, r.stderr
    result = r.json()
    assert [k["name"] for k in result["keep"]] == [p["name"] for p in points[3:]]
    (merged,) = result["merged"]
    assert merged["backing_file"] is None and ".full.merged-" in merged["file"]
    assert not (run.dir / full_file).exists()
    catalog = run.catalog()
    assert [p["name"] for p in catalog] == [p["name"] for p in points[3:]]
    assert [p["chain_depth"] for p in catalog] == [0, 1]
    assert set(os.listdir(run.dir)) == expected_files(catalog)
    assert run.restorable() == [p["name"] for p in points[3:]]
    # the chain goes on: the next incremental builds on the re-pointed newest point
    nxt = run.backup(day(10))
    assert nxt["mode"] == "incremental" and nxt["from_checkpoint_id"] == points[4]["to_checkpoint_id"]
    run.restorable()


def test_merge_between_two_kept_points_folds_the_middle_onto_the_older(run: Run) -> None:
    # a full at the end of October, three incrementals in November; keep the newest of each month
    for when in (day(-3), day(0), day(1), day(2)):
        run.backup(when)
    points = run.points
    r = run.cli("-o", "json", "prune", "web01", "--keep-last", "1", "--keep-monthly", "2", "--merge", "--yes")
    assert r.code == 0, r.stderr
    result = r.json()
    assert {k["name"] for k in result["keep"]} == names(points, 0, 3)
    (merged,) = result["merged"]
    os_full = next(d["file"] for d in points[0]["disks"] if ".web01_os." in d["file"])
    assert merged["backing_file"] == os_full and ".incremental.merged-" in merged["file"]
    assert [p["chain_depth"] for p in run.catalog()] == [0, 1]
    assert run.restorable() == [points[0]["name"], points[3]["name"]]


def test_a_merge_that_would_change_the_guest_view_changes_nothing(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ovbackup.imageio import images
    from ovbackup.jobs import prune

    points = every_other_day(run, 3)
    before = dir_state(run.dir)

    def lossy(image: Path, dest: Path, backing: str | None, backing_fmt: str = "qcow2") -> None:
        images.fold_into_copy(image, dest, backing, backing_fmt)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(dest)], check=True)

    monkeypatch.setattr(prune, "fold_into_copy", lossy)
    r = run.cli("prune", "web01", "--keep-last", "2", "--merge", "--yes")
    assert r.code == 8 and "shows the guest different data" in r.stderr and "nothing changed" in r.stderr
    assert dir_state(run.dir) == before  # no partial left, no file changed, the catalog as it was
    assert [p["name"] for p in run.catalog()] == [p["name"] for p in points]


KILL = """
import os, signal, sys
from ovbackup.jobs import prune
target = sys.argv[1]
def step(name: str) -> None:
    if name == target:
        os.kill(os.getpid(), signal.SIGKILL)
prune.on_step = step
from ovbackup.cli import main
sys.exit(main(sys.argv[2:]))
"""
STEPS = ["merge-start", "merged", "checked", "renamed", "journal", "repointed", "switched", "deleted"]


def test_sigkill_at_every_step_of_a_merge_loses_no_point(run: Run, tmp_path: Path) -> None:
    # full, incremental, incremental; keep 2: the full goes, the middle point becomes a full, the newest
    # moves onto it. Checksums recorded at backup time (--verify): the merge compares with those.
    points = every_other_day(run, 3, "--verify")
    expected = [p["name"] for p in points[1:]]
    for step in STEPS:
        root = tmp_path / f"killed-{step}"
        shutil.copytree(run.dir.parent, root)
        directory = root / "web01"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OVBACKUP_")}
        args = ["--dir", str(root), "--keep-last", "2", "--merge", "--yes"]
        proc = subprocess.run(
            [sys.executable, "-c", KILL, step, "prune", "web01", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == -signal.SIGKILL, (step, proc.stderr)
        # the next verify finishes or discards what the crash left, and every point in the catalog is whole
        survivors = run.restorable(directory)
        assert set(expected) <= set(survivors), step
        again = run.cli("-o", "json", "prune", "web01", *args)
        assert again.code == 0, (step, again.stderr)
        assert run.restorable(directory) == expected, step
        catalog = run.cli("-o", "json", "catalog", "web01", "--dir", str(root)).json()
        assert set(os.listdir(directory)) == expected_files(catalog), step


def test_max_chain_forces_a_full_on_the_fourth_run(run: Run) -> None:
    modes = [run.backup(day(n), "--max-chain", "2")["mode"] for n in range(4)]
    assert modes == ["full", "incremental", "incremental", "full"]
    assert "--max-chain 2" in (run.points[3]["fallback"] or "")


def test_max_chain_from_the_config_section(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "ovbackup.conf"
    config.write_text(f"[prod]\nbackup_dir = {tmp_path / 'backups'}\nmax_chain = 1\n")
    run.backup(day(0))
    run.backup(day(1))
    r: Result = run.cli("--config-file", str(config), "-c", "prod", "-o", "json", "backup", "web01")
    assert r.code == 0, r.stderr
    assert r.json()["mode"] == "full"


def test_keep_checkpoints_leaves_one_and_the_next_incremental_works(run: Run) -> None:
    vm_id = run.engine.web01.id
    run.backup(day(0))
    run.backup(day(1))
    assert len(run.engine.checkpoints(vm_id)) == 2
    third = run.backup(day(2), "--keep-checkpoints", "1")
    assert [c.id for c in run.engine.checkpoints(vm_id)] == [third["to_checkpoint_id"]]
    fourth = run.backup(day(3))
    assert fourth["mode"] == "incremental" and fourth["from_checkpoint_id"] == third["to_checkpoint_id"]
    run.restorable()


def test_backup_prune_applies_the_config_policy_after_a_success_only(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "ovbackup.conf"
    config.write_text(f"[prod]\nbackup_dir = {tmp_path / 'backups'}\nkeep_last = 2\nmerge = yes\n")
    for n in range(3):
        run.backup(day(n))
    run.wall.moment = day(3)
    run.engine.write_disk(run.engine.web01.disks[0].id, 40 * MiB, MiB, 0x33)
    r = run.cli("--config-file", str(config), "-c", "prod", "-o", "json", "backup", "web01", "--prune")
    assert r.code == 0, r.stderr
    doc = r.json()
    run.points.append({k: v for k, v in doc.items() if k != "prune"})
    run.snaps[doc["name"]] = snapshot(run.engine, run.tmp_path, doc["name"])
    assert [k["name"] for k in doc["prune"]["keep"]] == [run.points[2]["name"], doc["name"]]
    assert [p["name"] for p in run.catalog()] == [run.points[2]["name"], doc["name"]]
    run.restorable()
    # a failed backup prunes nothing
    run.engine.dataplane.kill_daemon()  # type: ignore[union-attr]
    failed = run.cli("--config-file", str(config), "-c", "prod", "backup", "web01", "--prune")
    assert failed.code == 8 and "pruned" not in failed.stderr
    assert [p["name"] for p in run.catalog() if p["complete"]] == [run.points[2]["name"], doc["name"]]


def test_on_a_terminal_prune_shows_the_plan_and_asks(tmp_path: Path) -> None:
    from tests.test_retention import point as hand_made
    from tests.test_terminal import run_on_pty

    directory = tmp_path / "web01"
    directory.mkdir()
    points = [hand_made(n) for n in (1, 2, 3)]  # three fulls, a day apart
    for p in points:
        for d in p.disks:
            (directory / d.file).write_bytes(b"image" * 1000)
    doc = {"schema": 1, "vm_name": "web01", "points": [p.to_json() for p in points]}
    (directory / "catalog.json").write_text(json.dumps(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVBACKUP_", "OVIRT_"))}
    args = ["prune", "web01", "--dir", str(tmp_path), "--keep-last", "1"]

    code, out = run_on_pty(args, env, answer=b"n\n", prompt=b"[y/N]")
    assert code == 1 and "cancelled, nothing changed" in out
    assert "REMOVE" in out and out.index("REMOVE") < out.index("[y/N]")  # the plan, then the question
    assert sorted(f.name for f in directory.iterdir()) == sorted(
        [*(p.disks[0].file for p in points), "catalog.json", ".lock"]
    )

    code, out = run_on_pty(args, env, answer=b"y\n", prompt=b"[y/N]")
    assert code == 0, out
    assert sorted(f.name for f in directory.iterdir()) == sorted(
        [points[2].disks[0].file, "catalog.json", ".lock"]
    )

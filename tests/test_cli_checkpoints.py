"""checkpoints list / show / remove / purge, and incremental backups from them, end to end through the CLI."""

from __future__ import annotations

import io
import re
import sys
import uuid
from datetime import timedelta, timezone

import pytest
from ovirt_fake_engine import Checkpoint, FakeEngine, Vm

from tests.harness import Cli, Result

DAY = 86400.0

CHECKPOINT_KEYS = {"id", "parent_id", "creation_date", "state", "description", "vm_id", "disks"}


def deleted(engine: FakeEngine) -> list[str]:
    """Ids of the checkpoints the CLI asked the engine to delete, in request order."""
    return [
        r.path.rsplit("/", 1)[-1]
        for r in engine.requests
        if r.method == "DELETE" and "/checkpoints/" in r.path
    ]


def chain(engine: FakeEngine, vm: Vm) -> list[tuple[str, str | None]]:
    """The engine's checkpoint chain as (id, parent_id), root first."""
    return [(c.id, c.parent_id) for c in engine.checkpoints(vm.id)]


def backup_round(cli: Cli, from_checkpoint: str | None = None) -> dict:
    """``add web01`` (waits for ready), then ``finalize``; returns the backup as ``add`` printed it."""
    args = ["--from-checkpoint", from_checkpoint] if from_checkpoint else []
    added = cli("-o", "json", "add", "web01", *args)
    assert added.code == 0, added.stderr
    backup = added.json()
    assert backup["phase"] == "ready" and backup["to_checkpoint_id"]
    assert backup["from_checkpoint_id"] == from_checkpoint
    finalized = cli("-o", "json", "finalize", "web01", backup["id"])
    assert finalized.code == 0, finalized.stderr
    assert finalized.json()["phase"] == "succeeded"
    return backup


def listed(cli: Cli) -> list[dict]:
    r = cli("-o", "json", "checkpoints", "list", "web01")
    assert r.code == 0, r.stderr
    return r.json()


def one_error(r: Result) -> str:
    """The single ``ovbackup: error:`` line, after checking there is exactly one and no traceback."""
    assert "Traceback" not in r.stderr
    (line,) = r.error_lines
    return line


def aged_checkpoint(engine: FakeEngine, vm: Vm, days: float) -> Checkpoint:
    """A checkpoint the engine dates ``days`` ago: it dates checkpoints from its clock, so step it back."""
    engine.advance(-days * DAY)
    try:
        return engine.add_checkpoint(vm.id)
    finally:
        engine.advance(days * DAY)


@pytest.fixture
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is not a terminal (as under cron): confirmations must not be asked."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())


# -- 1. the whole chain ---------------------------------------------------------------------------


def test_full_then_incrementals_build_the_chain_and_purge_keep_1_removes_oldest_first(
    cli: Cli, engine: FakeEngine, web01: Vm
) -> None:
    b1 = backup_round(cli)
    c1 = b1["to_checkpoint_id"]
    (root,) = listed(cli)
    assert set(root) == CHECKPOINT_KEYS
    assert root["id"] == c1 and root["parent_id"] is None
    assert root["state"] == "created" and root["vm_id"] == web01.id
    assert root["creation_date"].startswith("20") and "T" in root["creation_date"]

    b2 = backup_round(cli, from_checkpoint=c1)
    c2 = b2["to_checkpoint_id"]
    assert c2 != c1
    disks = cli("-o", "json", "disks", "web01", b2["id"])
    assert disks.code == 0
    assert [(d["name"], d["format"], d["backup_mode"]) for d in disks.json()] == [
        ("web01_os", "cow", "incremental")
    ]
    assert [(c["id"], c["parent_id"]) for c in listed(cli)] == [(c1, None), (c2, c1)]

    b3 = backup_round(cli, from_checkpoint=c2)
    c3 = b3["to_checkpoint_id"]
    assert [(c["id"], c["parent_id"]) for c in listed(cli)] == [(c1, None), (c2, c1), (c3, c2)]

    engine.reset_log()
    r = cli("-o", "json", "checkpoints", "purge", "web01", "--keep", "1", "--yes")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert set(doc) == {"dry_run", "removed", "candidates"}
    assert doc["dry_run"] is False
    assert doc["removed"] == [c1, c2]
    assert [c["id"] for c in doc["candidates"]] == [c1, c2]
    assert all(set(c) == CHECKPOINT_KEYS for c in doc["candidates"])
    assert deleted(engine) == [c1, c2]  # oldest first: the chain is cut from its root
    assert f"removed checkpoint {c1}" in r.stderr and f"removed checkpoint {c2}" in r.stderr
    assert chain(engine, web01) == [(c3, None)]
    assert [(c["id"], c["parent_id"]) for c in listed(cli)] == [(c3, None)]

    # The kept newest checkpoint still starts an incremental backup.
    b4 = backup_round(cli, from_checkpoint=c3)
    assert [(c["id"], c["parent_id"]) for c in listed(cli)] == [(c3, None), (b4["to_checkpoint_id"], c3)]


def test_list_table_shows_the_chain_root_first(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    c1 = engine.add_checkpoint(web01.id, description="nightly-1")
    c2 = engine.add_checkpoint(web01.id, description="nightly-2")
    r = cli("checkpoints", "list", "web01")
    assert r.code == 0 and r.stderr == ""
    assert "Checkpoints of web01" in r.stdout
    assert r.stdout.index(f"| {c1.id}") < r.stdout.index(f"| {c2.id}")  # rows in chain order
    (row2,) = [line for line in r.stdout.splitlines() if line.startswith(f"| {c2.id}")]
    assert c1.id in row2 and "nightly-2" in row2 and "created" in row2  # c2's parent is c1


# -- 2. show ---------------------------------------------------------------------------------------


def test_show_prints_the_checkpoint_and_its_disks(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    parent = engine.add_checkpoint(web01.id)
    cp = engine.add_checkpoint(web01.id, description="nightly")
    os_disk = next(d for d in web01.disks if d.alias == "web01_os")

    r = cli("-o", "json", "checkpoints", "show", "web01", cp.id)
    assert r.code == 0, r.stderr
    shown = r.json()
    assert set(shown) == CHECKPOINT_KEYS
    assert shown["id"] == cp.id and shown["parent_id"] == parent.id
    assert shown["description"] == "nightly" and shown["state"] == "created"
    assert shown["vm_id"] == web01.id
    # A checkpoint records only the qcow2 disks; the raw one is not part of it.
    assert [(d["id"], d["name"], d["format"]) for d in shown["disks"]] == [(os_disk.id, "web01_os", "cow")]

    table = cli("checkpoints", "show", "web01", cp.id)
    assert table.code == 0, table.stderr
    assert f"Checkpoint {cp.id}" in table.stdout
    assert parent.id in table.stdout and "nightly" in table.stdout
    assert os_disk.id in table.stdout and "web01_os" in table.stdout
    assert "web01_raw" not in table.stdout


def test_show_unknown_checkpoint_exits_4(cli: Cli, web01: Vm) -> None:
    missing = str(uuid.uuid4())
    r = cli("checkpoints", "show", "web01", missing)
    assert r.code == 4
    assert missing in one_error(r)
    assert r.stdout == ""


# -- 3. remove -------------------------------------------------------------------------------------


def test_remove_without_yes_off_a_terminal_exits_2_and_removes_nothing(
    cli: Cli, engine: FakeEngine, web01: Vm, no_tty: None
) -> None:
    c1 = engine.add_checkpoint(web01.id)
    c2 = engine.add_checkpoint(web01.id)
    r = cli("checkpoints", "remove", "web01", c1.id)
    assert r.code == 2
    assert "--yes" in one_error(r)
    assert deleted(engine) == []
    assert chain(engine, web01) == [(c1.id, None), (c2.id, c1.id)]


def test_remove_relinks_the_child_and_warns_the_next_backup_must_be_full(
    cli: Cli, engine: FakeEngine, web01: Vm
) -> None:
    c1 = backup_round(cli)["to_checkpoint_id"]
    c2 = backup_round(cli, from_checkpoint=c1)["to_checkpoint_id"]
    c3 = backup_round(cli, from_checkpoint=c2)["to_checkpoint_id"]

    r = cli("-o", "json", "checkpoints", "remove", "web01", c2, "--yes")
    assert r.code == 0, r.stderr
    assert r.json() == {"removed": [c2]}
    assert deleted(engine) == [c2]
    assert chain(engine, web01) == [(c1, None), (c3, c1)]  # the child now hangs off c2's parent
    assert [(c["id"], c["parent_id"]) for c in listed(cli)] == [(c1, None), (c3, c1)]
    assert c2 in r.stderr and "must be full" in r.stderr
    assert r.error_lines == []


def test_remove_while_a_backup_runs_is_refused_with_the_engines_reason(
    cli: Cli, engine: FakeEngine, web01: Vm
) -> None:
    c1 = backup_round(cli)["to_checkpoint_id"]
    running = cli("-o", "json", "add", "web01", "--from-checkpoint", c1)  # ready, not finalized
    assert running.code == 0
    c2 = running.json()["to_checkpoint_id"]

    r = cli("checkpoints", "remove", "web01", c1, "--yes")
    assert r.code == 5
    assert "The VM is during a backup operation" in one_error(r)
    assert chain(engine, web01) == [(c1, None), (c2, c1)]

    assert cli("finalize", "web01", running.json()["id"]).code == 0
    assert cli("checkpoints", "remove", "web01", c1, "--yes").code == 0
    assert chain(engine, web01) == [(c2, None)]


def test_remove_unknown_checkpoint_exits_4(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    cp = engine.add_checkpoint(web01.id)
    missing = str(uuid.uuid4())
    r = cli("checkpoints", "remove", "web01", missing, "--yes")
    assert r.code == 4
    assert missing in one_error(r)
    assert chain(engine, web01) == [(cp.id, None)]


# -- 4. purge --------------------------------------------------------------------------------------


def test_purge_older_than_dry_run_then_for_real(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.configure(tz=timezone(timedelta(hours=-4)))  # dates carry an offset; the age must still be right
    old1 = aged_checkpoint(engine, web01, 30)
    old2 = aged_checkpoint(engine, web01, 20)
    new1 = aged_checkpoint(engine, web01, 3)
    new2 = aged_checkpoint(engine, web01, 1)
    before = chain(engine, web01)

    # --dry-run needs no --yes and changes nothing.
    dry = cli("-o", "json", "checkpoints", "purge", "web01", "--older-than", "10", "--dry-run")
    assert dry.code == 0, dry.stderr
    doc = dry.json()
    assert doc["dry_run"] is True and doc["removed"] == []
    assert [c["id"] for c in doc["candidates"]] == [old1.id, old2.id]
    dry_table = cli("checkpoints", "purge", "web01", "--older-than", "10", "--dry-run")
    assert dry_table.code == 0, dry_table.stderr
    assert "Would remove" in dry_table.stdout
    assert old1.id in dry_table.stdout and old2.id in dry_table.stdout
    assert new1.id not in dry_table.stdout and new2.id not in dry_table.stdout
    assert deleted(engine) == []
    assert chain(engine, web01) == before

    r = cli("-o", "json", "checkpoints", "purge", "web01", "--older-than", "10", "--yes")
    assert r.code == 0, r.stderr
    assert r.json()["dry_run"] is False and r.json()["removed"] == [old1.id, old2.id]
    assert deleted(engine) == [old1.id, old2.id]
    assert chain(engine, web01) == [(new1.id, None), (new2.id, new1.id)]


def test_purge_never_removes_the_newest(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    only = aged_checkpoint(engine, web01, 40)
    for args in (["--keep", "1"], ["--older-than", "0"], ["--keep", "1", "--older-than", "0"]):
        r = cli("-o", "json", "checkpoints", "purge", "web01", *args, "--yes")
        assert r.code == 0, r.stderr
        assert r.json()["removed"] == [] and r.json()["candidates"] == []
    assert "nothing to remove" in cli("checkpoints", "purge", "web01", "--older-than", "0").stderr
    assert deleted(engine) == []

    # Every checkpoint is older than 0 days; all go but the newest.
    c2 = aged_checkpoint(engine, web01, 30)
    c3 = aged_checkpoint(engine, web01, 20)
    r = cli("-o", "json", "checkpoints", "purge", "web01", "--older-than", "0", "--yes")
    assert r.code == 0, r.stderr
    assert r.json()["removed"] == [only.id, c2.id]
    assert deleted(engine) == [only.id, c2.id]
    assert chain(engine, web01) == [(c3.id, None)]


def test_purge_needs_keep_or_older_than(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.add_checkpoint(web01.id)
    engine.add_checkpoint(web01.id)
    r = cli("checkpoints", "purge", "web01", "--yes")
    assert r.code == 2
    line = one_error(r)
    assert "--keep" in line and "--older-than" in line
    assert cli("checkpoints", "purge", "web01", "--keep", "0", "--yes").code == 2
    assert deleted(engine) == []
    assert len(engine.checkpoints(web01.id)) == 2


def test_purge_without_yes_off_a_terminal_exits_2(
    cli: Cli, engine: FakeEngine, web01: Vm, no_tty: None
) -> None:
    engine.add_checkpoint(web01.id)
    engine.add_checkpoint(web01.id)
    r = cli("checkpoints", "purge", "web01", "--keep", "1")
    assert r.code == 2
    assert "--yes" in one_error(r)
    assert deleted(engine) == []


# -- 5. invalid and unknown checkpoints -------------------------------------------------------------


def test_invalid_checkpoint_is_shown_with_a_hint_to_remove_it(
    cli: Cli, engine: FakeEngine, web01: Vm
) -> None:
    good = engine.add_checkpoint(web01.id)
    bad = engine.add_checkpoint(web01.id)
    engine.set_checkpoint_state(bad.id, "invalid")
    r = cli("checkpoints", "list", "web01")
    assert r.code == 0
    (bad_row,) = [line for line in r.stdout.splitlines() if line.startswith(f"| {bad.id}")]
    (good_row,) = [line for line in r.stdout.splitlines() if line.startswith(f"| {good.id}")]
    assert "invalid" in bad_row and "created" in good_row
    assert r.error_lines == []
    (hint,) = [line for line in r.stderr.splitlines() if "invalid" in line]
    assert bad.id in hint and good.id not in hint
    assert "checkpoints remove" in hint
    assert cli("-o", "json", "checkpoints", "list", "web01").json()[1]["state"] == "invalid"


def test_invalid_checkpoint_is_highlighted_on_a_terminal(
    cli: Cli, engine: FakeEngine, web01: Vm, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.add_checkpoint(web01.id)
    bad = engine.add_checkpoint(web01.id)
    engine.set_checkpoint_state(bad.id, "invalid")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "300")  # ids are not folded
    for var in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    r = cli("checkpoints", "list", "web01")
    assert r.code == 0
    assert re.search(r"\x1b\[[\d;]+minvalid\x1b\[0m", r.stdout), r.stdout
    assert not re.search(r"\x1b\[[\d;]+mcreated", r.stdout)


def test_incremental_from_an_invalid_checkpoint_is_refused(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    c1 = backup_round(cli)["to_checkpoint_id"]
    engine.set_checkpoint_state(c1, "invalid")
    r = cli("add", "web01", "--from-checkpoint", c1)
    assert r.code == 5
    assert f"Checkpoint ID {c1} is invalid and should be removed" in one_error(r)
    assert len(engine.backups(web01.id)) == 1  # only the full one; nothing started


def test_incremental_from_an_unknown_checkpoint_is_refused(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    missing = str(uuid.uuid4())
    r = cli("add", "web01", "--from-checkpoint", missing)
    assert r.code == 5
    assert f"Checkpoint ID {missing} doesn't exist" in one_error(r)
    assert engine.backups(web01.id) == []


# -- 6. after a removal ----------------------------------------------------------------------------


def test_incremental_from_a_removed_checkpoint_is_refused_and_a_full_one_works(
    cli: Cli, engine: FakeEngine, web01: Vm
) -> None:
    c1 = backup_round(cli)["to_checkpoint_id"]
    c2 = backup_round(cli, from_checkpoint=c1)["to_checkpoint_id"]
    removed = cli("checkpoints", "remove", "web01", c2, "--yes")
    assert removed.code == 0, removed.stderr

    r = cli("add", "web01", "--from-checkpoint", c2)
    assert r.code == 5
    assert f"Checkpoint ID {c2} doesn't exist" in one_error(r)
    assert all(b.phase == "succeeded" for b in engine.backups(web01.id))  # nothing new started

    full = backup_round(cli)  # what the warning said to do
    assert chain(engine, web01) == [(c1, None), (full["to_checkpoint_id"], c1)]

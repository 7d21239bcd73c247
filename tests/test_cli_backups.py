"""add / list / show / wait / finalize / disks / cleanup, end to end through the CLI and the fake engine."""

from __future__ import annotations

import uuid

import pytest
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS
from ovirtsdk4.reader import Reader

from ovbackup.engine.connection import Connection
from tests.harness import Cli

BACKUP_KEYS = {
    "id",
    "phase",
    "from_checkpoint_id",
    "to_checkpoint_id",
    "creation_date",
    "modification_date",
    "description",
    "vm_id",
    "host_id",
    "snapshot_id",
    "disks",
}


def posts(engine: FakeEngine, suffix: str) -> list:
    return [r for r in engine.requests if r.method == "POST" and r.path.endswith(suffix)]


@BOTH_FLOWS
def test_add_waits_until_ready_and_prints_the_backup_as_json(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    r = cli("-o", "json", "add", "web01", "--wait", "--description", "nightly")
    assert r.code == 0, r.stderr
    backup = r.json()
    assert set(backup) == BACKUP_KEYS
    assert backup["phase"] == "ready" and backup["vm_id"] == web01.id
    assert backup["to_checkpoint_id"] and backup["from_checkpoint_id"] is None
    assert backup["creation_date"].startswith("20") and "T" in backup["creation_date"]
    assert "started full backup" in r.stderr and backup["id"] in r.stderr
    (post,) = posts(engine, "/backups")
    sent = Reader.read(post.body)  # the body we sent, read by the official SDK
    assert sent.id == backup["id"] and sent.description == "nightly"
    assert sorted(d.id for d in sent.disks) == sorted(d.id for d in web01.disks)
    assert engine.backups(web01.id)[0].phase == "ready"
    # the backup's disks as the engine reports them once ready: how each is taken, never null
    assert sorted((d["id"], d["backup_mode"]) for d in backup["disks"]) == sorted(
        (d.id, "full") for d in web01.disks
    )


def test_add_sends_booleans_only_when_given(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    assert cli("add", "web01", "--no-wait").code == 0
    assert cli("cleanup", "web01", "--yes").code == 0
    assert cli("add", "web01", "--no-wait", "--require-consistency", "--no-use-active").code == 0
    first, second = posts(engine, "/backups")
    assert "require_consistency" not in first.query and "use_active" not in first.query
    assert second.query["require_consistency"] == ["true"] and second.query["use_active"] == ["false"]


def test_add_uses_the_given_backup_id_and_disks(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = str(uuid.uuid4())
    os_disk = web01.disks[0]
    r = cli("-o", "json", "add", "web01", "--no-wait", "--backup-id", bid, "--disk", os_disk.id)
    assert r.code == 0 and r.json()["id"] == bid
    assert [(d["id"], d["name"]) for d in r.json()["disks"]] == [(os_disk.id, "web01_os")]  # those asked for
    (post,) = posts(engine, "/backups")
    assert [d.id for d in Reader.read(post.body).disks] == [os_disk.id]


def test_incremental_add_leaves_raw_disks_out_and_says_so(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    full = cli("-o", "json", "add", "web01").json()
    assert cli("finalize", "web01", full["id"]).code == 0
    r = cli("-o", "json", "add", "web01", "--from-checkpoint", full["to_checkpoint_id"])
    assert r.code == 0, r.stderr
    assert "left out of the incremental backup" in r.stderr and "web01_raw" in r.stderr
    backup = r.json()
    assert backup["from_checkpoint_id"] == full["to_checkpoint_id"]
    assert [(d["name"], d["backup_mode"]) for d in backup["disks"]] == [("web01_os", "incremental")]
    disks = cli("-o", "json", "disks", "web01", backup["id"]).json()
    assert [(d["name"], d["backup_mode"]) for d in disks] == [("web01_os", "incremental")]


def test_list_makes_one_request_and_prints_null_disks(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.add_backups(web01.id, 5)
    engine.reset_log()
    r = cli("-o", "json", "list", "web01")
    assert r.code == 0
    assert len(r.json()) == 5 and all(b["disks"] is None for b in r.json())
    listing = [q for q in engine.requests if q.path.endswith("/backups")]
    assert len(listing) == 1
    assert not [q for q in engine.requests if "/backups/" in q.path]  # never one request per backup


def test_list_follow_disks_and_max(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.add_backups(web01.id, 5)
    r = cli("-o", "json", "list", "web01", "--follow", "disks", "--max", "2")
    assert r.code == 0
    assert len(r.json()) == 2
    assert all(isinstance(b["disks"], list) for b in r.json())


def test_list_table_keeps_ids_whole_when_piped(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    (backup,) = engine.add_backups(web01.id, 1)
    r = cli("list", "web01")
    assert r.code == 0
    assert backup.id in r.stdout  # not wrapped or truncated
    assert "\x1b[" not in r.stdout  # no colour when not a terminal
    assert r.stderr == ""


def test_show_prints_every_field_and_the_disks(cli: Cli, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    r = cli("-o", "json", "show", "web01", bid)
    assert r.code == 0
    shown = r.json()
    assert set(shown) == BACKUP_KEYS
    assert sorted(d["name"] for d in shown["disks"]) == ["web01_os", "web01_raw"]
    assert all(d["backup_mode"] == "full" for d in shown["disks"])
    table = cli("show", "web01", bid)
    assert bid in table.stdout and "web01_os" in table.stdout and "Host ID" in table.stdout


def test_vm_can_be_given_by_id(cli: Cli, web01: Vm) -> None:
    r = cli("-o", "json", "add", web01.id)
    assert r.code == 0 and r.json()["vm_id"] == web01.id


def test_a_vm_whose_name_has_a_space_is_found_by_name(cli: Cli, engine: FakeEngine) -> None:
    """VmsService.find quotes the name (``name="my vm"``), as the engine's search needs."""
    engine.add_vm("my", disks=[DiskSpec(alias="decoy")])
    vm = engine.add_vm("my vm", disks=[DiskSpec(alias="my_os")])
    engine.add_vm("my vm2", disks=[DiskSpec(alias="other")])
    r = cli("-o", "json", "add", "my vm")
    assert r.code == 0, r.stderr
    assert r.json()["vm_id"] == vm.id
    searches = [q.query["search"] for q in engine.requests if q.path.endswith("/vms") and "search" in q.query]
    assert searches == [['name="my vm"']]
    assert cli("-o", "json", "list", "my vm").json()[0]["id"] == r.json()["id"]


@BOTH_FLOWS
def test_down_vm_gets_a_cold_backup(cli: Cli, engine: FakeEngine) -> None:
    engine.add_vm("db01", status="down", disks=[DiskSpec(alias="db01_os")])
    r = cli("-o", "json", "add", "db01")
    assert r.code == 0 and r.json()["phase"] == "ready"


@BOTH_FLOWS
def test_failed_backup_exits_8(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.configure(fail_next_backup=True)
    r = cli("add", "web01")
    assert r.code == 8
    assert r.error_lines and "failed" in r.error_lines[0]


def test_wait_timeout_exits_6_and_says_how_to_finalize(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.configure(phase_seconds=1000)
    r = cli("add", "web01", "--wait-timeout", "30")
    assert r.code == 6
    (line,) = r.error_lines
    bid = engine.backups(web01.id)[0].id
    assert bid in line and f"ovbackup finalize web01 {bid}" in line
    assert sum(cli.time.slept) == pytest.approx(30)


def test_ctrl_c_during_wait_exits_130_and_names_the_backup(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    cli.time.on_sleep = interrupt
    r = cli("add", "web01")
    assert r.code == 130
    bid = engine.backups(web01.id)[0].id
    assert f"ovbackup finalize web01 {bid}" in r.stderr
    assert "Traceback" not in r.stderr


@BOTH_FLOWS
def test_wait_command_reaches_ready_and_succeeded(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01", "--no-wait").json()["id"]
    r = cli("-o", "json", "wait", "web01", bid, "--phase", "ready")
    assert r.code == 0 and r.json()["phase"] == "ready"
    assert cli("finalize", "web01", bid, "--no-wait").code == 0
    r = cli("-o", "json", "wait", "web01", bid, "--phase", "succeeded")
    assert r.code == 0 and r.json()["phase"] == "succeeded"


@BOTH_FLOWS
def test_wait_exit_codes(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01", "--no-wait").json()["id"]
    engine.configure(phase_seconds=1000)
    assert cli("wait", "web01", bid, "--wait-timeout", "5").code == 6
    engine.fail_backup(bid)
    engine.advance(1000)  # legacy: through finalizing (FINALIZING_FAILURE) for a step
    failed = cli("-o", "json", "wait", "web01", bid)
    assert failed.code == 8
    assert cli("wait", "web01", bid, "--phase", "bogus").code == 2


@BOTH_FLOWS
def test_wait_for_a_phase_already_passed_returns_at_once(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    assert cli("finalize", "web01", bid).code == 0
    cli.time.slept.clear()
    r = cli("-o", "json", "wait", "web01", bid, "--phase", "ready")
    assert r.code == 0, r.stderr
    assert r.json()["phase"] == "succeeded" and "already succeeded" in r.stderr
    assert cli.time.slept == []  # not one poll's sleep: the answer was in the first reply
    again = cli("wait", "web01", bid, "--phase", "succeeded")
    assert again.code == 0 and cli.time.slept == []

    failed = cli("-o", "json", "add", "web01").json()["id"]
    engine.fail_backup(failed)
    engine.advance(1000)  # legacy: through finalizing to failed
    cli.time.slept.clear()
    r = cli("wait", "web01", failed, "--phase", "ready")
    assert r.code == 8 and cli.time.slept == []
    assert len(r.error_lines) == 1 and "failed" in r.error_lines[0]


@BOTH_FLOWS
def test_finalize_waits_for_succeeded_and_twice_is_a_noop(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    r = cli("-o", "json", "finalize", "web01", bid)
    assert r.code == 0 and r.json()["phase"] == "succeeded"
    assert posts(engine, "/finalize")[0].body.strip() in (b"<action/>", b"<action />")
    again = cli("-o", "json", "finalize", "web01", bid)
    assert again.code == 0, again.stderr
    assert "already finished" in again.stderr
    assert again.json()["phase"] == "succeeded"


def test_finalize_of_a_forgotten_backup_is_not_found(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    assert cli("finalize", "web01", bid).code == 0
    engine.advance(engine.state.succeeded_retention + 1)
    r = cli("finalize", "web01", bid)
    assert r.code == 4 and bid in r.error_lines[0]


def test_disks_table_and_json(cli: Cli, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    disks = cli("-o", "json", "disks", "web01", bid).json()
    assert {d["name"]: d["format"] for d in disks} == {"web01_os": "cow", "web01_raw": "raw"}
    assert all(isinstance(d["provisioned_size"], int) for d in disks)
    table = cli("disks", "web01", bid)
    assert "GiB" in table.stdout or "MiB" in table.stdout


@BOTH_FLOWS
def test_cleanup_finalizes_unfinished_backups(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    bid = cli("-o", "json", "add", "web01").json()["id"]
    assert cli("add", "web01").code == 5  # the VM is in backup mode
    no_tty = cli("cleanup", "web01")
    assert no_tty.code == 2 and "--yes" in no_tty.error_lines[0]
    r = cli("-o", "json", "cleanup", "web01", "--yes")
    assert r.code == 0 and [b["id"] for b in r.json()] == [bid]
    assert engine.backups(web01.id)[0].phase == "succeeded"
    assert cli("add", "web01").code == 0  # a new backup can start


def test_vms_lists_incremental_disk_counts(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.add_vm("db01", status="down", disks=[DiskSpec(alias="db01_os")])
    r = cli("-o", "json", "vms")
    assert r.code == 0
    rows = {v["name"]: v for v in r.json()}
    assert rows["web01"]["disks"] == 2 and rows["web01"]["incremental_disks"] == 1
    assert rows["db01"]["status"] == "down"
    only = cli("-o", "json", "vms", "--search", "name=web*").json()
    assert [v["name"] for v in only] == ["web01"]


def test_vms_reads_every_vm_with_its_disks_in_one_request(cli: Cli, engine: FakeEngine) -> None:
    for i in range(30):
        engine.add_vm(f"app{i:02}", disks=[DiskSpec(alias=f"app{i:02}_os"), DiskSpec(alias=f"app{i:02}_d")])
    engine.reset_log()
    r = cli("-o", "json", "vms")
    assert r.code == 0, r.stderr
    assert len(r.json()) == 30 and all(v["disks"] == 2 for v in r.json())
    api = [q for q in engine.requests if q.path.startswith("/ovirt-engine/api")]
    assert [(q.method, q.path) for q in api] == [("GET", "/ovirt-engine/api/vms")]
    assert api[0].query["follow"] == ["disk_attachments.disk"]


def test_vms_shows_what_the_sdk_reads_from_the_same_listing(cli: Cli, engine: FakeEngine) -> None:
    """The engine-sized reply (actions, links, settings per VM and disk), read by ovbackup's parser,
    gives per VM what the SDK reads from it: name, status, disks, incremental disks."""
    for i in range(40):
        disks = [DiskSpec(alias=f"s{i}_os"), DiskSpec(alias=f"s{i}_d", format="raw", backup="none")]
        engine.add_vm(f"srv{i:02}", status="down" if i % 3 else "up", disks=disks[: 1 + i % 2])
    with Connection(engine.url, engine.username, engine.password) as connection:
        body = connection.request("GET", "vms", query={"follow": "disk_attachments.disk"}).content
    sdk = {
        vm.name: (
            vm.status.value,
            len(vm.disk_attachments),
            sum(
                a.disk.backup is not None and a.disk.backup.value == "incremental"
                for a in vm.disk_attachments
            ),
        )
        for vm in Reader.read(body)
    }
    rows = cli("-o", "json", "vms").json()
    assert {v["name"]: (v["status"], v["disks"], v["incremental_disks"]) for v in rows} == sdk
    assert len(sdk) == 40 and {n for _, n, _ in sdk.values()} == {1, 2}


@pytest.mark.parametrize("kind", ["billion_laughs", "external_entity", "malformed"])
def test_vms_refuses_a_hostile_listing(cli: Cli, engine: FakeEngine, web01: Vm, kind: str) -> None:
    engine.hostile_next(kind, method="GET", path="/vms")
    r = cli("vms")
    assert r.code == 1 and len(r.error_lines) == 1
    assert ("malformed" if kind == "malformed" else "hostile XML") in r.error_lines[0]
    assert "root:" not in r.stdout + r.stderr and "Traceback" not in r.stderr  # /etc/passwd never read

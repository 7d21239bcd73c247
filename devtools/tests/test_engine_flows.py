"""The two backup flows of engine 4.5 (flows.py), every reply read with the SDK's reader.

hybrid (the default on cluster levels 4.7/4.8): ``starting`` at POST, a ``<snapshot>``, no
``<host>``, the checkpoint at ``ready``, ``ready`` for a moment after finalize. legacy (``?legacy=true``
or an engine without UseHybridBackup): ``initializing``, a ``<host>`` for a running VM, the checkpoint
from the POST, a failure through ``finalizing``. ovirt-api.md §1.3, §5.3; HybridBackupCommand,
StartVmBackupCommand, StopVmBackupCommand.
"""

from __future__ import annotations

import ovirtsdk4.types as types
import pytest
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS
from ovirtsdk4.reader import Reader

from conftest import Client, backup_ready, fault_of

GIB = 1024**3
Phase = types.BackupPhase


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    return engine.add_vm(
        "web01",
        disks=[
            DiskSpec(alias="web01_os", provisioned_size=GIB),
            DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=GIB // 2),
        ],
    )


@pytest.fixture
def db01(engine: FakeEngine) -> Vm:
    return engine.add_vm("db01", status="down", disks=[DiskSpec(alias="db01_os")])


def phases_until(engine: FakeEngine, client: Client, vm: Vm, backup_id: str, last: Phase) -> list[str]:
    """Every phase a poller sees, one engine step apart, until ``last`` (included)."""
    seen: list[str] = []
    for _ in range(10):
        b = client.read(f"/vms/{vm.id}/backups/{backup_id}")
        seen.append(str(b.phase))
        if b.phase == last:
            return seen
        engine.advance(1.0)
    raise AssertionError(f"never reached {last}: {seen}")


@pytest.mark.parametrize(
    ("backup_flow", "vm_name", "phases", "host"),
    [
        ("hybrid", "web01", ["starting", "ready"], False),
        ("hybrid", "db01", ["starting", "ready"], False),
        ("legacy", "web01", ["initializing", "starting", "ready"], True),
        ("legacy", "db01", ["initializing", "ready"], False),
    ],
)
def test_backup_phases(
    engine: FakeEngine,
    client: Client,
    web01: Vm,
    db01: Vm,
    backup_flow: str,
    vm_name: str,
    phases: list[str],
    host: bool,
) -> None:
    vm = web01 if vm_name == "web01" else db01
    r = client.start(vm, extra="<description>nightly</description>", require_consistency="true")
    assert r.status_code == 201
    created = Reader.read(r.content)
    assert isinstance(created, types.Backup)
    assert r.headers["Location"] == f"{engine.base_url}/ovirt-engine/api/vms/{vm.id}/backups/{created.id}"
    assert str(created.phase) == phases[0]
    assert created.to_checkpoint_id is None and created.from_checkpoint_id is None
    assert created.description == "nightly" and created.vm.id == vm.id
    assert created.creation_date.tzinfo is not None and created.modification_date is not None
    assert created.disks.href == f"/ovirt-engine/api/vms/{vm.id}/backups/{created.id}/disks"
    assert (created.host is not None) == host
    if host:
        assert created.host.id == engine.state.host_id
    assert (created.snapshot is not None) == (backup_flow == "hybrid")
    # legacy: the checkpoint row exists from the POST; hybrid: only from ready
    cps = client.read(f"/vms/{vm.id}/checkpoints")
    if backup_flow == "legacy":
        assert [c.state for c in cps] == [types.CheckpointState.CREATED]
    else:
        assert cps == []

    assert phases_until(engine, client, vm, created.id, Phase.READY) == phases
    b = client.read(f"/vms/{vm.id}/backups/{created.id}")
    assert b.to_checkpoint_id is not None
    assert b.modification_date > b.creation_date
    assert [c.id for c in client.read(f"/vms/{vm.id}/checkpoints")] == [b.to_checkpoint_id]

    r = client.post(f"/vms/{vm.id}/backups/{b.id}/finalize", "<action/>")
    assert r.status_code == 200
    action = Reader.read(r.content)
    assert isinstance(action, types.Action) and action.status == "complete"
    after = phases_until(engine, client, vm, b.id, Phase.SUCCEEDED)
    expected = ["finalizing", "succeeded"]
    if backup_flow == "hybrid":
        expected.insert(0, "ready")  # finalize only marked it stopped
    assert after == expected
    done = client.read(f"/vms/{vm.id}/backups/{b.id}")
    assert done.snapshot is None  # removed with the backup's snapshot
    assert engine.state.all_backups[b.id].require_consistency == "true"


def test_legacy_is_also_a_query_parameter(engine: FakeEngine, client: Client, web01: Vm) -> None:
    """BackendVmBackupsResource.add reads ``legacy`` from the query: the old flow for one backup."""
    b = Reader.read(client.start(web01, legacy="true").content)
    assert b.phase == Phase.INITIALIZING and b.host.id == engine.state.host_id and b.snapshot is None


@BOTH_FLOWS
def test_a_failed_backup_leaves_no_checkpoint(
    engine: FakeEngine, client: Client, web01: Vm, backup_flow: str
) -> None:
    engine.configure(fail_next_backup=True)
    bid = Reader.read(client.start(web01).content).id
    seen = phases_until(engine, client, web01, bid, Phase.FAILED)
    if backup_flow == "hybrid":  # the snapshot failed: endWithFailure goes straight to FAILED
        assert seen == ["starting", "failed"]
    else:  # FINALIZING_FAILURE first; the checkpoint row existed until then
        assert seen == ["initializing", "starting", "finalizing", "failed"]
    assert engine.state.fail_next_backup is False
    failed = client.read(f"/vms/{web01.id}/backups/{bid}")
    assert failed.to_checkpoint_id is None and failed.snapshot is None
    assert client.read(f"/vms/{web01.id}/checkpoints") == []

    b = backup_ready(engine, client, web01)
    engine.fail_backup(b.id)
    seen = phases_until(engine, client, web01, b.id, Phase.FAILED)
    assert seen == (["failed"] if backup_flow == "hybrid" else ["finalizing", "failed"])
    assert client.read(f"/vms/{web01.id}/checkpoints") == []  # its checkpoint is gone


@BOTH_FLOWS
def test_finalize_refusals(engine: FakeEngine, client: Client, web01: Vm, backup_flow: str) -> None:
    hybrid = backup_flow == "hybrid"
    b = backup_ready(engine, client, web01)
    path = f"/vms/{web01.id}/backups/{b.id}/finalize"
    assert client.post(path, "<action/>").status_code == 200
    again = client.post(path, "<action/>")
    assert again.status_code == 400
    f = fault_of(again)
    assert f.reason == "Operation Failed"
    if hybrid:  # still ready, already stopped
        assert f.detail == (
            f"VM '{web01.id}' backup '{b.id}' is already stopped, no need to stop the backup again"
        )
        engine.advance(1.0)
    assert fault_of(client.post(path, "<action/>")).detail == (
        f"VM '{web01.id}' backup '{b.id}' is already in "
        f"'{'REMOVING_SNAPSHOT' if hybrid else 'FINALIZING'}' phase, no need to stop the backup again"
    )
    engine.advance(5)
    assert "'SUCCEEDED' phase" in fault_of(client.post(path, "<action/>")).detail

    early = Reader.read(client.start(web01).content)
    premature = client.post(f"/vms/{web01.id}/backups/{early.id}/finalize", "<action/>")
    if hybrid:  # StopVmBackupCommand only marks it stopped; it still gets its checkpoint
        assert premature.status_code == 200
        seen = phases_until(engine, client, web01, early.id, Phase.SUCCEEDED)
        assert seen == ["starting", "ready", "finalizing", "succeeded"]
        assert client.read(f"/vms/{web01.id}/backups/{early.id}").to_checkpoint_id is not None
    else:
        assert premature.status_code == 400
        assert fault_of(premature).detail == (
            f"Backup '{early.id}' is in 'CREATING_SCRATCH_DISKS' phase, premature backup stop was initiated."
        )
        seen = phases_until(engine, client, web01, early.id, Phase.FAILED)
        assert seen == ["finalizing", "failed"]
    missing = client.post(f"/vms/{web01.id}/backups/{engine.state.host_id}/finalize", "<action/>")
    assert (missing.status_code, missing.content) == (404, b"")


@BOTH_FLOWS
def test_events_tell_what_happened_to_a_backup(
    engine: FakeEngine, client: Client, web01: Vm, backup_flow: str
) -> None:
    """What backup_vm.py shows when a backup failed: ``/events?search=<backup id>``, newest first."""
    ok = backup_ready(engine, client, web01)
    client.post(f"/vms/{web01.id}/backups/{ok.id}/finalize", "<action/>")
    engine.advance(5)
    engine.configure(fail_next_backup=True)
    bad = Reader.read(client.start(web01).content)
    engine.advance(5)
    (last, first) = client.read("/events", search=str(bad.id))
    assert isinstance(last, types.Event)
    assert (last.code, last.severity) == (10792, types.LogSeverity.ERROR)
    assert last.description == f"Backup {bad.id} for VM web01 failed (User: admin@internal-authz)."
    assert (first.code, first.severity) == (10790, types.LogSeverity.NORMAL)
    assert last.vm.id == web01.id and last.vm.name == "web01" and last.time >= first.time
    assert int(last.id) > int(first.id) and last.index == int(last.id)
    codes = [e.code for e in client.read("/events", search=str(ok.id))]
    # VM_BACKUP_SUCCEEDED after FINALIZED (legacy) or STOPPED (hybrid), after STARTED
    assert codes == [10793, 10796 if backup_flow == "hybrid" else 10794, 10790]
    assert [e.code for e in client.read("/events", search="type=10792")] == [10792]
    assert len(client.read("/events", max=2)) == 2
    assert [e.id for e in client.read("/events", **{"from": last.id})] == []

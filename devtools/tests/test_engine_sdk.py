"""Drive the fake engine with the official SDK (pycurl + libxml2): the strictest client we have.

If ovirtsdk4 can log in, start, poll, finalize and clean up against the fake exactly as
examples/backup_vm.py does against a real engine, our own client can be tested against it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS

GIB = 1024**3


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    return engine.add_vm(
        "web01",
        status="up",
        disks=[
            DiskSpec(alias="web01_os", provisioned_size=GIB),
            DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=GIB // 2),
        ],
    )


@pytest.fixture
def conn(engine: FakeEngine) -> Iterator[sdk.Connection]:
    c = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    yield c
    c.close()


def start(conn: sdk.Connection, vm: Vm, **kw: object) -> types.Backup:
    backups = conn.system_service().vms_service().vm_service(vm.id).backups_service()
    disks = [types.Disk(id=d.id) for d in vm.disks]
    return backups.add(types.Backup(disks=disks, **kw), require_consistency=True)


@BOTH_FLOWS
def test_full_then_incremental_backup(
    engine: FakeEngine, conn: sdk.Connection, web01: Vm, backup_flow: str
) -> None:
    system = conn.system_service()
    (vm,) = system.vms_service().list(search="name=web01")
    assert vm.id == web01.id and vm.status == types.VmStatus.UP
    vm_service = system.vms_service().vm_service(vm.id)
    attachments = vm_service.disk_attachments_service().list(follow="disk")
    assert [a.disk.alias for a in attachments] == ["web01_os", "web01_raw"]
    backups = vm_service.backups_service()

    b = start(conn, web01, description="full")
    svc = backups.backup_service(b.id)
    phases = []
    while (cur := svc.get()).phase != types.BackupPhase.READY:
        phases.append(cur.phase)
        engine.advance(1.0)
    if backup_flow == "hybrid":
        assert phases == [types.BackupPhase.STARTING] and cur.host is None and cur.snapshot.id
    else:
        assert phases == [types.BackupPhase.INITIALIZING, types.BackupPhase.STARTING]
        assert cur.host.id == engine.state.host_id and cur.snapshot is None
    assert cur.to_checkpoint_id
    modes = [(d.alias, d.backup_mode) for d in svc.disks_service().list()]
    assert modes == [("web01_os", types.DiskBackupMode.FULL), ("web01_raw", types.DiskBackupMode.FULL)]
    assert [x.id for x in backups.list()] == [b.id]
    assert [d.alias for d in backups.list(follow="disks")[0].disks] == ["web01_os", "web01_raw"]
    svc.finalize()
    engine.advance(2.0)
    assert svc.get().phase == types.BackupPhase.SUCCEEDED

    inc = start(conn, web01, from_checkpoint_id=cur.to_checkpoint_id)
    engine.advance(5)
    inc_svc = backups.backup_service(inc.id)
    modes = [(d.alias, d.backup_mode) for d in inc_svc.disks_service().list()]
    assert modes == [
        ("web01_os", types.DiskBackupMode.INCREMENTAL),
        ("web01_raw", types.DiskBackupMode.FULL),
    ]
    inc_svc.finalize()
    engine.advance(5)

    cps_service = vm_service.checkpoints_service()
    cps = cps_service.list()
    assert [c.parent_id for c in cps] == [None, cur.to_checkpoint_id]
    assert cps[0].id == cur.to_checkpoint_id and cps[0].description == "full"
    assert [d.alias for d in cps_service.checkpoint_service(cps[1].id).disks_service().list()] == ["web01_os"]
    cps_service.checkpoint_service(cps[0].id).remove()
    (left,) = cps_service.list()
    assert left.id == cps[1].id and left.parent_id is None


def test_sdk_errors(engine: FakeEngine, conn: sdk.Connection, web01: Vm) -> None:
    backups = conn.system_service().vms_service().vm_service(web01.id).backups_service()
    with pytest.raises(sdk.NotFoundError):
        backups.backup_service("11111111-2222-3333-4444-555555555555").get()
    first = start(conn, web01)
    with pytest.raises(sdk.Error) as err:
        start(conn, web01)
    assert err.value.code == 409
    assert "The VM is during a backup operation." in str(err.value)
    cps = conn.system_service().vms_service().vm_service(web01.id).checkpoints_service()
    engine.advance(5)
    (cp,) = cps.list()
    with pytest.raises(sdk.Error) as err:
        cps.checkpoint_service(cp.id).remove()
    assert err.value.code == 409
    backups.backup_service(first.id).finalize()
    with pytest.raises(sdk.Error) as err:
        backups.backup_service(first.id).finalize()
    assert err.value.code == 400 and "no need to stop the backup again" in str(err.value)


def test_wrong_password_is_auth_error(engine: FakeEngine) -> None:
    c = sdk.Connection(url=engine.url, username=engine.username, password="nope")
    with pytest.raises(sdk.AuthError, match="access_denied"):
        c.system_service().vms_service().list()
    c.close(logout=False)


def test_token_expiry_is_retried_once(engine: FakeEngine, conn: sdk.Connection) -> None:
    assert conn.system_service().get().product_info.version.major == 4
    engine.expire_tokens()
    assert conn.system_service().vms_service().list() == []
    assert engine.logins == 2
    headers = engine.requests[-1].headers
    assert headers["Version"] == "4" and headers["Accept"] == "application/xml"
    conn.close()
    assert engine.logouts == 1


def test_sdk_over_tls(tls_engine: FakeEngine, untrusted_tls_engine: FakeEngine) -> None:
    tls_engine.add_vm("web01")
    c = sdk.Connection(
        url=tls_engine.url, username="admin@internal", password="secret-pw", ca_file=tls_engine.ca_path
    )
    assert [v.name for v in c.system_service().vms_service().list()] == ["web01"]
    c.close()
    bad = sdk.Connection(
        url=untrusted_tls_engine.url,
        username="admin@internal",
        password="secret-pw",
        ca_file=untrusted_tls_engine.ca_path,
    )
    with pytest.raises(sdk.Error):
        bad.system_service().vms_service().list()
    bad.close(logout=False)


@BOTH_FLOWS
def test_last_event_of_a_failed_backup_as_backup_vm_reads_it(
    engine: FakeEngine, conn: sdk.Connection, web01: Vm, backup_flow: str
) -> None:
    """backup_vm.py's get_backup: on failure, ``events_service().list(search=<backup id>)[0]``."""
    engine.configure(fail_next_backup=True)
    b = start(conn, web01)
    engine.advance(5)
    svc = conn.system_service().vms_service().vm_service(web01.id).backups_service().backup_service(b.id)
    assert svc.get().phase == types.BackupPhase.FAILED
    last = conn.system_service().events_service().list(search=str(b.id))[0]
    assert last.code == 10792 and last.description == (
        f"Backup {b.id} for VM web01 failed (User: admin@internal-authz)."
    )

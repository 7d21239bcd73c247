"""Every kind of reply the fake engine sends, read back with the SDK's XML reader as the oracle.

If ``ovirtsdk4.reader.Reader`` (generated from the engine's API model) sees the right values, the
wire format matches what a real engine sends closely enough for a client to be tested against it.
"""

from __future__ import annotations

import http.client
import threading
import time
from datetime import UTC, timedelta, timezone
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as DET
import ovirtsdk4.types as types
import pytest
import requests
from defusedxml import DTDForbidden, EntitiesForbidden
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS
from ovirtsdk4.reader import Reader

from conftest import Client, backup_ready, fault_of

GIB = 1024**3


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    return engine.add_vm(
        "web01",
        status="up",
        disks=[
            DiskSpec(alias="web01_os", provisioned_size=GIB, actual_size=GIB // 3),
            DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=GIB // 2),
        ],
    )


@pytest.fixture
def db01(engine: FakeEngine) -> Vm:
    return engine.add_vm("db01", status="down", disks=[DiskSpec(alias="db01_os")])


# -- inventory ---------------------------------------------------------------------------------------
def test_vm_and_vms(engine: FakeEngine, client: Client, web01: Vm, db01: Vm) -> None:
    vm = client.read(f"/vms/{web01.id}")
    assert isinstance(vm, types.Vm)
    assert (vm.id, vm.name, vm.status) == (web01.id, "web01", types.VmStatus.UP)
    assert vm.href == f"/ovirt-engine/api/vms/{web01.id}"
    assert vm.host is not None and vm.host.id == engine.state.host_id
    assert client.read(f"/vms/{db01.id}").host is None
    engine.add_vm("paused01", status="paused")
    assert client.read(f"/vms/{engine.state.vms[list(engine.state.vms)[-1]].id}").status == (
        types.VmStatus.PAUSED
    )
    assert [v.name for v in client.read("/vms")] == ["web01", "db01", "paused01"]
    assert [v.name for v in client.read("/vms", search="name=web01")] == ["web01"]
    assert [v.name for v in client.read("/vms", search="name=WEB0*")] == ["web01"]
    assert [v.name for v in client.read("/vms", search="name=*01")] == ["web01", "db01", "paused01"]
    assert [v.name for v in client.read("/vms", search="name=web", max=1)] == []
    assert len(client.read("/vms", max=2)) == 2
    empty = client.get("/vms", search="name=nope")
    assert empty.content.endswith(b"<vms/>\n")
    assert Reader.read(empty.content) == []


def test_vms_follow_disk_attachments_inlines_every_disk(
    engine: FakeEngine, client: Client, web01: Vm, db01: Vm
) -> None:
    vms = client.read("/vms", follow="disk_attachments.disk")
    assert [v.name for v in vms] == ["web01", "db01"]
    web = vms[0]
    assert [a.disk.alias for a in web.disk_attachments] == ["web01_os", "web01_raw"]
    assert web.disk_attachments[0].disk.format == types.DiskFormat.COW
    assert web.disk_attachments[0].disk.backup == types.DiskBackup.INCREMENTAL
    assert web.disk_attachments[1].disk.backup == types.DiskBackup.NONE
    assert web.host is not None and web.host.id == engine.state.host_id
    refs = client.read(f"/vms/{web01.id}", follow="disk_attachments")
    assert [a.disk.id for a in refs.disk_attachments] == [d.id for d in web01.disks]
    assert refs.disk_attachments[0].disk.alias is None  # a reference only
    plain = client.read(f"/vms/{web01.id}")
    assert plain.disk_attachments.href == f"/ovirt-engine/api/vms/{web01.id}/diskattachments"


def test_vms_on_several_hosts(engine: FakeEngine, client: Client) -> None:
    second = engine.add_host("fake-host-2")
    vm = engine.add_vm("app01", disks=[DiskSpec(alias="app01_os")], host_id=second)
    assert client.read(f"/vms/{vm.id}").host.id == second
    host = client.read(f"/hosts/{second}")
    assert (host.id, host.name) == (second, "fake-host-2")
    assert client.get("/hosts/00000000-0000-4000-8000-000000000000").status_code == 404


def test_disk_attachments_and_disks(client: Client, web01: Vm) -> None:
    os_disk, raw_disk = web01.disks
    plain = client.read(f"/vms/{web01.id}/diskattachments")
    assert [a.id for a in plain] == [os_disk.id, raw_disk.id]
    assert plain[0].bootable is True and plain[1].bootable is False
    assert plain[0].disk.id == os_disk.id and plain[0].disk.alias is None
    assert plain[0].vm.id == web01.id
    followed = client.read(f"/vms/{web01.id}/diskattachments", follow="disk")
    d = followed[0].disk
    assert (d.alias, d.name, d.format, d.backup) == (
        "web01_os",
        "web01_os",
        types.DiskFormat.COW,
        types.DiskBackup.INCREMENTAL,
    )
    assert (d.provisioned_size, d.actual_size) == (GIB, GIB // 3)
    assert d.status == types.DiskStatus.OK
    assert d.storage_type == types.DiskStorageType.IMAGE
    assert d.backup_mode is None  # only inside a backup
    raw = client.read(f"/disks/{raw_disk.id}")
    assert (raw.id, raw.format, raw.backup) == (
        raw_disk.id,
        types.DiskFormat.RAW,
        types.DiskBackup.NONE,
    )
    assert raw.provisioned_size == raw.actual_size == GIB // 2


def test_api_root(client: Client) -> None:
    api = client.read("")
    assert api.product_info.version.major == 4
    assert api.time.tzinfo is not None


# -- backups -----------------------------------------------------------------------------------------
def test_phase_seconds_zero_is_ready_at_once(engine: FakeEngine, client: Client, web01: Vm) -> None:
    engine.configure(phase_seconds=0)
    r = client.start(web01)
    b = Reader.read(r.content)
    assert b.phase == types.BackupPhase.READY and b.to_checkpoint_id
    client.post(f"/vms/{web01.id}/backups/{b.id}/finalize", "<action/>")
    assert client.read(f"/vms/{web01.id}/backups/{b.id}").phase == types.BackupPhase.SUCCEEDED


def test_retention(engine: FakeEngine, client: Client, web01: Vm) -> None:
    engine.configure(phase_seconds=0)
    ok = Reader.read(client.start(web01).content)
    client.post(f"/vms/{web01.id}/backups/{ok.id}/finalize", "<action/>")
    bad = Reader.read(client.start(web01).content)
    engine.fail_backup(bad.id)
    engine.advance(899)
    assert client.get(f"/vms/{web01.id}/backups/{ok.id}").status_code == 200
    engine.advance(2)
    gone = client.get(f"/vms/{web01.id}/backups/{ok.id}")
    assert (gone.status_code, gone.content) == (404, b"")
    assert [b.id for b in client.read(f"/vms/{web01.id}/backups")] == [bad.id]
    engine.advance(900)
    assert client.get(f"/vms/{web01.id}/backups/{bad.id}").status_code == 404


def test_backups_list_empty_max_follow(engine: FakeEngine, client: Client, web01: Vm) -> None:
    r = client.get(f"/vms/{web01.id}/backups")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/xml"
    assert r.content.rstrip().endswith(b"<backups/>")
    assert Reader.read(r.content) == []
    engine.add_backups(web01.id, 3)
    assert len(client.read(f"/vms/{web01.id}/backups", max=2)) == 2
    plain = client.read(f"/vms/{web01.id}/backups")
    assert all(b.disks.href.endswith(f"/backups/{b.id}/disks") and len(b.disks) == 0 for b in plain)
    followed = client.read(f"/vms/{web01.id}/backups", follow="disks")
    assert [d.alias for d in followed[0].disks] == ["web01_os", "web01_raw"]
    assert followed[0].disks[0].backup_mode == types.DiskBackupMode.FULL
    assert all(b.phase == types.BackupPhase.SUCCEEDED for b in followed)


@BOTH_FLOWS
def test_scale_mode_backups_carry_what_an_engine_lists(
    engine: FakeEngine, client: Client, web01: Vm, backup_flow: str
) -> None:
    """add_backups (benchmarks/scale.py) must look like a real list: every element the engine sends."""
    made = engine.add_backups(web01.id, 3)
    r = client.get(f"/vms/{web01.id}/backups")
    listed = Reader.read(r.content)
    assert [b.id for b in listed] == [b.id for b in made]
    for i, b in enumerate(listed):
        assert b.description == "nightly" and b.vm.id == web01.id
        assert b.creation_date.tzinfo is not None and b.modification_date.tzinfo is not None
        assert b.to_checkpoint_id and b.from_checkpoint_id == (listed[i - 1].to_checkpoint_id if i else None)
        assert b.disks.href == f"/ovirt-engine/api/vms/{web01.id}/backups/{b.id}/disks"
        assert (b.host is not None) == (backup_flow == "legacy") and b.snapshot is None
    for el in DET.fromstring(r.content):
        actions = el.find("actions")
        assert actions is not None
        (finalize,) = list(actions)
        assert finalize.get("rel") == "finalize" and finalize.get("href").endswith("/finalize")


def test_backup_disks_modes(engine: FakeEngine, client: Client, web01: Vm) -> None:
    full = backup_ready(engine, client, web01)
    disks = client.read(f"/vms/{web01.id}/backups/{full.id}/disks")
    assert [(d.alias, d.backup_mode) for d in disks] == [
        ("web01_os", types.DiskBackupMode.FULL),
        ("web01_raw", types.DiskBackupMode.FULL),
    ]
    client.post(f"/vms/{web01.id}/backups/{full.id}/finalize", "<action/>")
    engine.advance(5)
    new_disk = engine.add_disk(web01.id, DiskSpec(alias="web01_data"))
    extra = f"<from_checkpoint_id>{full.to_checkpoint_id}</from_checkpoint_id>"
    inc = backup_ready(engine, client, web01, extra=extra)
    assert inc.from_checkpoint_id == full.to_checkpoint_id
    modes = {d.alias: d.backup_mode for d in client.read(f"/vms/{web01.id}/backups/{inc.id}/disks")}
    assert modes == {
        "web01_os": types.DiskBackupMode.INCREMENTAL,
        "web01_raw": types.DiskBackupMode.FULL,
        "web01_data": types.DiskBackupMode.FULL,
    }
    one = client.read(f"/vms/{web01.id}/backups/{inc.id}/disks/{new_disk.id}")
    assert one.id == new_disk.id and one.backup_mode == types.DiskBackupMode.FULL


def test_raw_only_backup_has_no_checkpoint(engine: FakeEngine, client: Client, web01: Vm) -> None:
    b = backup_ready(engine, client, web01, disks=[web01.disks[1].id])
    assert b.to_checkpoint_id is None
    assert engine.checkpoints(web01.id) == []


# -- checkpoints -------------------------------------------------------------------------------------
def test_checkpoints_chain(engine: FakeEngine, client: Client, web01: Vm) -> None:
    engine.configure(phase_seconds=0)
    ids = []
    for i in range(3):
        b = Reader.read(client.start(web01, extra=f"<description>run {i}</description>").content)
        client.post(f"/vms/{web01.id}/backups/{b.id}/finalize", "<action/>")
        ids.append(b.to_checkpoint_id)
    cps = client.read(f"/vms/{web01.id}/checkpoints")
    assert [c.id for c in cps] == ids
    assert [c.parent_id for c in cps] == [None, ids[0], ids[1]]
    assert [c.description for c in cps] == ["run 0", "run 1", "run 2"]
    assert all(c.state == types.CheckpointState.CREATED for c in cps)
    assert all(c.vm.id == web01.id and c.creation_date.tzinfo is not None for c in cps)
    assert cps[0].disks.href == f"/ovirt-engine/api/vms/{web01.id}/checkpoints/{ids[0]}/disks"
    cdisks = client.read(f"/vms/{web01.id}/checkpoints/{ids[1]}/disks")
    assert [d.alias for d in cdisks] == ["web01_os"]  # raw disks are not in checkpoints
    assert client.read(f"/vms/{web01.id}/checkpoints/{ids[1]}").parent_id == ids[0]

    r = client.delete(f"/vms/{web01.id}/checkpoints/{ids[1]}")
    assert r.status_code == 200 and Reader.read(r.content).status == "complete"
    cps = client.read(f"/vms/{web01.id}/checkpoints")
    assert [(c.id, c.parent_id) for c in cps] == [(ids[0], None), (ids[2], ids[0])]
    engine.set_checkpoint_state(ids[2], "invalid")
    assert client.read(f"/vms/{web01.id}/checkpoints/{ids[2]}").state == types.CheckpointState.INVALID
    for path in (f"/checkpoints/{ids[1]}", f"/checkpoints/{ids[1]}/disks"):
        gone = client.get(f"/vms/{web01.id}{path}")
        assert (gone.status_code, gone.content) == (404, b"")
    assert client.delete(f"/vms/{web01.id}/checkpoints/{ids[1]}").status_code == 404
    assert client.get(f"/vms/{web01.id}/checkpoints", max=1).content.count(b"<checkpoint ") == 1


# -- refusals ----------------------------------------------------------------------------------------
def test_start_refusals(engine: FakeEngine, client: Client, web01: Vm) -> None:
    def refused(r: requests.Response, status: int, detail: str) -> None:
        assert r.status_code == status, r.text
        f = fault_of(r)
        assert (f.reason, f.detail) == ("Operation Failed", f"[{detail}]")

    bogus = "11111111-2222-3333-4444-555555555555"
    refused(
        client.start(web01, disks=[bogus]),
        400,
        f"Cannot backup VM. The following disk(s) ID(s) does not exist: {bogus}.",
    )
    refused(
        client.start(web01, extra=f"<from_checkpoint_id>{bogus}</from_checkpoint_id>"),
        400,
        f"Cannot backup VM. Checkpoint ID {bogus} doesn't exist.",
    )
    cp = engine.add_checkpoint(web01.id, state="invalid")
    refused(
        client.start(web01, extra=f"<from_checkpoint_id>{cp.id}</from_checkpoint_id>"),
        400,
        f"Cannot backup VM. Checkpoint ID {cp.id} is invalid and should be removed.",
    )
    refused(
        client.start(web01, extra=f"<description>{'x' * 1025}</description>"),
        400,
        "Cannot backup VM. The VM backup description shouldn't contain more than 1024 characters.",
    )
    first = client.start(web01)
    assert first.status_code == 201
    refused(client.start(web01), 409, "Cannot backup VM. The VM is during a backup operation.")
    refused(
        client.delete(f"/vms/{web01.id}/checkpoints/{cp.id}"),
        409,
        "Cannot remove checkpoint. The VM is during a backup operation.",
    )
    engine.configure(phase_seconds=0)
    fid = Reader.read(first.content).id
    client.post(f"/vms/{web01.id}/backups/{fid}/finalize", "<action/>")
    dup = client.post(
        f"/vms/{web01.id}/backups",
        f'<backup id="{fid}"><disks><disk id="{web01.disks[0].id}"/></disks></backup>',
    )
    refused(dup, 400, f"Cannot backup VM. The specified VM backup ID {fid} already exists.")
    paused = engine.add_vm("p", status="paused", disks=[DiskSpec(alias="p_os")])
    refused(
        client.start(paused),
        409,
        "Cannot backup VM. The Virtual Machine should be in Up or Down status.",
    )
    no_disks = client.post(f"/vms/{web01.id}/backups", "<backup><disks/></backup>")
    assert no_disks.status_code == 400
    assert fault_of(no_disks).reason == "Incomplete parameters"
    bad_id = client.post(
        f"/vms/{web01.id}/backups", '<backup id="nope"><disks><disk id="x"/></disks></backup>'
    )
    assert bad_id.status_code == 400 and fault_of(bad_id).reason == "Operation failed"


@pytest.mark.parametrize("body", [b"", b"<backup><disks>", b"not xml at all", b"<vm><name>x</name></vm>"])
def test_body_the_sdk_cannot_read_is_rejected(
    engine: FakeEngine, client: Client, web01: Vm, body: bytes
) -> None:
    r = client.session.post(f"{engine.url}/vms/{web01.id}/backups", data=body)
    assert r.status_code == 400
    assert DET.fromstring(r.content).tag == "usage_message"
    assert engine.backups(web01.id) == []
    bad_action = client.post(f"/vms/{web01.id}/backups/x/finalize", "<action/>")
    assert bad_action.status_code == 404


def test_not_found_has_empty_body(client: Client, web01: Vm) -> None:
    bogus = "11111111-2222-3333-4444-555555555555"
    for path in (
        f"/vms/{bogus}",
        f"/vms/{web01.id}/backups/{bogus}",
        f"/vms/{web01.id}/backups/{bogus}/disks",
        f"/vms/{web01.id}/checkpoints/{bogus}",
        f"/disks/{bogus}",
        "/nothing/here",
    ):
        r = client.get(path)
        assert (r.status_code, r.content, r.headers["Content-Length"]) == (404, b"", "0"), path
    assert client.start(Vm(bogus, "x", "up", "h")).status_code == 404


# -- authentication ----------------------------------------------------------------------------------
def test_unauthenticated_and_expired(engine: FakeEngine, client: Client, web01: Vm) -> None:
    r = requests.get(f"{engine.url}/vms", timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="RESTAPI"'
    assert r.headers["Content-Type"].startswith("text/html") and b"<html>" in r.content
    assert requests.get(f"{engine.url}/vms", auth=("admin@internal", "secret-pw"), timeout=5).ok
    assert requests.get(f"{engine.url}/vms", auth=("admin@internal", "bad"), timeout=5).status_code == 401
    assert client.get("/vms").status_code == 200
    engine.expire_tokens()
    assert client.get("/vms").status_code == 401
    fresh = Client(engine)
    assert fresh.get("/vms").status_code == 200
    bad_version = fresh.session.get(f"{engine.url}/vms", headers={"Version": "3"}, timeout=5)
    assert bad_version.status_code == 400
    assert bad_version.headers["Content-Type"].startswith("text/plain")
    assert fresh.get("/v4/vms").ok and engine.logins == 2


def test_sso_errors_and_logout(engine: FakeEngine) -> None:
    url = engine.base_url + "/ovirt-engine/sso/oauth/token"
    form = {"grant_type": "password", "scope": "ovirt-app-api", "username": "admin@internal"}
    bad = requests.post(url, data={**form, "password": "x"}, headers={"Accept": "application/json"})
    assert bad.status_code == 400
    assert bad.json() == {
        "error_code": "access_denied",
        "error": "Cannot authenticate user 'admin@internal': The username or password is incorrect..",
    }
    no_accept = requests.post(url, data={**form, "password": "secret-pw"})
    assert no_accept.json()["error_code"] == "invalid_request"
    ok = requests.post(url, data={**form, "password": "secret-pw"}, headers={"Accept": "application/json"})
    body = ok.json()
    assert body["token_type"] == "bearer" and body["scope"] == "ovirt-app-api" and body["exp"]
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert requests.get(engine.url + "/vms", headers=auth, timeout=5).ok
    out = requests.post(
        engine.base_url + "/ovirt-engine/services/sso-logout",
        data={"scope": "ovirt-app-api", "token": body["access_token"]},
        headers={"Accept": "application/json"},
    )
    assert out.json() == {}
    assert requests.get(engine.url + "/vms", headers=auth, timeout=5).status_code == 401
    assert (engine.logins, engine.logouts) == (1, 1)


# -- fault switches ----------------------------------------------------------------------------------
def test_fail_drop_delay_unauthorized(engine: FakeEngine, client: Client, web01: Vm) -> None:
    engine.fail_next(2, status=502)
    for _ in range(2):
        r = client.get("/vms")
        assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    assert client.get("/vms").status_code == 200
    engine.drop_next()
    with pytest.raises(requests.ConnectionError):
        client.start(web01)
    assert engine.backups(web01.id) == []
    engine.drop_next(after_body=True)
    with pytest.raises(requests.ConnectionError):
        client.start(web01)
    assert len(engine.backups(web01.id)) == 1  # the POST took effect, only its reply was lost
    engine.delay_next(seconds=0.3)
    t0 = time.monotonic()
    assert client.get("/vms").status_code == 200
    assert time.monotonic() - t0 >= 0.3
    engine.unauthorized_next()
    r = client.get("/vms")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="RESTAPI"'
    assert client.get("/vms").status_code == 200
    logins = engine.logins
    engine.fail_next(sso=True)
    with pytest.raises(requests.HTTPError):
        Client(engine)
    assert engine.logins == logins and client.get("/vms").ok  # the API was not affected


def test_hostile_replies(engine: FakeEngine, client: Client, web01: Vm) -> None:
    path = f"/vms/{web01.id}/backups/{web01.id}"
    engine.hostile_next("malformed")
    r = client.get(path)
    assert r.status_code == 200 and r.content.lstrip().startswith(b"<?xml")
    with pytest.raises(ParseError):
        DET.fromstring(r.content)
    with pytest.raises(Exception):  # noqa: B017  (the SDK's libxml2 reader gives up too)
        Reader.read(r.content)
    engine.hostile_next("billion_laughs")
    r = client.get(path)
    assert b"<!ENTITY lol9" in r.content and b"<backup>" in r.content
    with pytest.raises(EntitiesForbidden):
        DET.fromstring(r.content)
    engine.hostile_next("external_entity")
    r = client.get(f"/vms/{web01.id}")
    assert b'SYSTEM "file:///etc/passwd"' in r.content and b"<vm>" in r.content
    with pytest.raises((EntitiesForbidden, DTDForbidden)):
        DET.fromstring(r.content, forbid_dtd=True)
    engine.hostile_next("html", n=2)
    for _ in range(2):
        r = client.get("/vms")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert Reader.read(client.get("/vms").content)[0].name == "web01"


# -- HTTP behaviour ----------------------------------------------------------------------------------
def test_keep_alive_and_recording(engine: FakeEngine, client: Client, web01: Vm) -> None:
    conn = http.client.HTTPConnection(engine.host, engine.port, timeout=5)
    headers = dict(client.session.headers)
    for _ in range(3):
        conn.request("GET", f"/ovirt-engine/api/vms/{web01.id}", headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == str(len(resp.read()))
        assert not resp.will_close
    conn.close()
    engine.reset_log()
    client.start(web01, require_consistency="true", use_active="false")
    (req,) = engine.requests
    assert (req.method, req.path) == ("POST", f"/ovirt-engine/api/vms/{web01.id}/backups")
    assert req.query == {"require_consistency": ["true"], "use_active": ["false"]}
    assert req.headers["authorization"].startswith("Bearer ")
    assert req.body.startswith(b"<backup>")
    assert engine.backups(web01.id)[0].use_active == "false"


def test_dates_follow_engine_timezone(engine: FakeEngine, client: Client, web01: Vm) -> None:
    engine.configure(tz=timezone(timedelta(hours=-4)))
    r = client.start(web01)
    assert b"-04:00</creation_date>" in r.content
    assert Reader.read(r.content).creation_date.utcoffset() == timedelta(hours=-4)
    engine.configure(tz=UTC)
    text = client.get(f"/vms/{web01.id}/backups").text
    assert "Z</creation_date>" in text


def test_concurrent_starts_admit_exactly_one(engine: FakeEngine, web01: Vm) -> None:
    codes: list[int] = []
    clients = [Client(engine) for _ in range(8)]

    def go(c: Client) -> None:
        codes.append(c.start(web01).status_code)

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * 7


def test_ten_thousand_backups_are_listed(engine: FakeEngine, client: Client, web01: Vm) -> None:
    # Timing is measured in benchmarks/scale.py, not asserted here.
    engine.add_backups(web01.id, 10_000)
    r = client.get(f"/vms/{web01.id}/backups")
    assert r.status_code == 200 and r.content.count(b"<backup ") == 10_000


def test_tls(tls_engine: FakeEngine, untrusted_tls_engine: FakeEngine) -> None:
    assert tls_engine.url.startswith("https://127.0.0.1:")
    r = requests.get(tls_engine.url + "/vms", auth=("admin@internal", "secret-pw"), verify=tls_engine.ca_path)
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(untrusted_tls_engine.url, verify=untrusted_tls_engine.ca_path, timeout=5)
    # The server survives a failed handshake and still serves a trusting client.
    with untrusted_tls_engine.ca.cert_pem.tempfile() as good:
        assert requests.get(
            untrusted_tls_engine.url + "/vms", auth=("admin@internal", "secret-pw"), verify=good
        ).ok

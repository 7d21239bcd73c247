"""Image transfers on the fake engine: the engine's rules and phases (ovirt-api.md §5.3, §6.1), every
reply read back with the SDK's reader, and checkpoints kept as real qcow2 bitmaps.

Phases are stepped with ``advance()`` (``phase_seconds`` = STEP), never by sleeping, so nothing here
depends on timing. The downloads with the real imageio client are in test_engine_transfers_data.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import defusedxml.ElementTree as DET
import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine import DiskLockedError, FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS
from ovirtsdk4.reader import Reader

STEP = 100.0  # engine-clock seconds per phase step in these tests
NO_TIMEOUT = 10**7  # inactivity_timeout for transfers that must survive any advance()
P = types.ImageTransferPhase


class Api:
    """Raw XML over HTTP (Basic auth) so every reply can be checked with the SDK's reader."""

    def __init__(self, eng: FakeEngine) -> None:
        self.eng = eng
        self.s = requests.Session()
        self.s.auth = (eng.username, eng.password)
        self.s.headers.update(
            {"Version": "4", "Accept": "application/xml", "Content-Type": "application/xml"}
        )

    def get(self, path: str) -> requests.Response:
        return self.s.get(self.eng.url + path, timeout=60)

    def post(self, path: str, body: str = "<action/>") -> requests.Response:
        return self.s.post(self.eng.url + path, data=body, timeout=60)

    def read(self, r: requests.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"] == "application/xml"
        return Reader.read(r.content)

    def start_backup(self, vm: Vm, disks: list[str] | None = None, from_cp: str | None = None) -> str:
        ids = disks if disks is not None else [d.id for d in vm.disks]
        extra = f"<from_checkpoint_id>{from_cp}</from_checkpoint_id>" if from_cp else ""
        body = "".join(f'<disk id="{i}"/>' for i in ids)
        b = self.read(
            self.post(f"/vms/{vm.id}/backups", f"<backup>{extra}<disks>{body}</disks></backup>"), 201
        )
        return str(b.id)

    def backup(self, vm: Vm, backup_id: str) -> types.Backup:
        b = self.read(self.get(f"/vms/{vm.id}/backups/{backup_id}"))
        assert isinstance(b, types.Backup)
        return b

    def add_transfer(self, backup_id: str, disk_id: str, extra: str = "") -> requests.Response:
        body = (
            f"<image_transfer><backup id='{backup_id}'/><disk id='{disk_id}'/>"
            f"<direction>download</direction>{extra}</image_transfer>"
        )
        return self.post("/imagetransfers", body)

    def transfer(self, transfer_id: str) -> types.ImageTransfer:
        t = self.read(self.get(f"/imagetransfers/{transfer_id}"))
        assert isinstance(t, types.ImageTransfer)
        return t

    def open_transfer(self, backup_id: str, disk_id: str, timeout: int = NO_TIMEOUT) -> types.ImageTransfer:
        """Create a transfer and step it to transferring."""
        extra = f"<format>raw</format><inactivity_timeout>{timeout}</inactivity_timeout>"
        t = self.read(self.add_transfer(backup_id, disk_id, extra), 201)
        self.eng.advance(STEP)
        t = self.transfer(t.id)
        assert t.phase == P.TRANSFERRING, t.phase
        return t


def fault(r: requests.Response, status: int) -> str:
    assert r.status_code == status, r.text
    f = Reader.read(r.content)
    assert isinstance(f, types.Fault) and f.reason == "Operation Failed"
    return str(f.detail)


@pytest.fixture
def eng(data_engine: DataEngine) -> DataEngine:
    data_engine.configure(phase_seconds=STEP)
    return data_engine


@pytest.fixture
def api(eng: DataEngine) -> Api:
    return Api(eng)


def ready_backup(api: Api, vm: Vm, **kw: Any) -> str:
    backup_id = api.start_backup(vm, **kw)
    api.eng.advance(2 * STEP)  # hybrid: starting → ready; legacy live: initializing → starting → ready
    assert api.backup(vm, backup_id).phase == types.BackupPhase.READY
    return backup_id


def test_transfer_lifecycle(eng: DataEngine, api: Api) -> None:
    os_disk = eng.web01.disks[0]
    backup_id = ready_backup(api, eng.web01)
    extra = "<format>raw</format><inactivity_timeout>120</inactivity_timeout>"
    extra += "<timeout_policy>cancel</timeout_policy>"
    r = api.add_transfer(backup_id, os_disk.id, extra)
    t = api.read(r, 201)
    assert isinstance(t, types.ImageTransfer)
    assert r.headers["Location"] == f"{eng.url}/imagetransfers/{t.id}"
    assert (t.phase, t.direction, t.format) == (
        P.INITIALIZING,
        types.ImageTransferDirection.DOWNLOAD,
        types.DiskFormat.RAW,
    )
    assert (t.inactivity_timeout, t.timeout_policy) == (120, types.ImageTransferTimeoutPolicy.CANCEL)
    assert (t.image.id, t.host.id, t.transferred, t.active) == (os_disk.id, eng.state.host_id, 0, False)
    assert t.disk is None and t.backup is None  # the engine sends <image>, never <disk> or <backup>
    assert t.transfer_url is None and t.proxy_url is None  # only once transferring (§4)
    (rec,) = eng.open_transfers()
    assert (rec.id, rec.disk_id, rec.backup_id, rec.ticket_id, rec.url) == (
        t.id,
        os_disk.id,
        backup_id,
        None,
        None,
    )
    assert api.transfer(t.id).phase == P.INITIALIZING  # the step is not due yet

    eng.advance(STEP)
    t = api.transfer(t.id)
    assert eng.dataplane is not None
    assert rec.ticket_id is not None and rec.ticket_id != t.id
    assert t.phase == P.TRANSFERRING
    assert t.transfer_url == t.proxy_url == rec.url == f"{eng.dataplane.data_url}/images/{rec.ticket_id}"
    assert [x.ticket_id for x in eng.dataplane.transfers()] == [rec.ticket_id]
    assert [x.id for x in api.read(api.get("/imagetransfers"))] == [t.id]

    done = api.read(api.post(f"/imagetransfers/{t.id}/finalize"))
    assert isinstance(done, types.Action) and done.status == "complete"
    t = api.transfer(t.id)
    assert t.phase == P.FINALIZING_SUCCESS and t.transfer_url is None and t.proxy_url is None
    assert eng.dataplane.transfers() == []  # ticket removed, qemu-nbd stopped at once
    eng.advance(STEP)
    assert api.transfer(t.id).phase == P.FINISHED_SUCCESS
    assert eng.open_transfers() == [] and eng.transfers == [rec]
    assert api.post(f"/imagetransfers/{t.id}/finalize").status_code == 200  # finalize twice: no-op

    eng.advance(eng.state.transfer_retention)
    r = api.get(f"/imagetransfers/{t.id}")
    assert (r.status_code, r.content) == (404, b"")
    assert eng.transfers == []


def test_cancel_runs_the_cleanup_phases(eng: DataEngine, api: Api) -> None:
    backup_id = ready_backup(api, eng.web01)
    t = api.open_transfer(backup_id, eng.web01.disks[1].id)
    api.read(api.post(f"/imagetransfers/{t.id}/cancel"))
    assert eng.dataplane is not None and eng.dataplane.transfers() == []
    seen = []
    while (cur := api.transfer(t.id)).phase != P.FINISHED_CLEANUP:
        seen.append(cur.phase)
        eng.advance(STEP)
    assert seen == [P.CANCELLED_USER, P.FINALIZING_CLEANUP]
    eng.advance(eng.state.transfer_retention)
    assert api.get(f"/imagetransfers/{t.id}").status_code == 200  # failures are kept longer
    eng.advance(eng.state.failed_transfer_retention)
    assert api.get(f"/imagetransfers/{t.id}").status_code == 404


@BOTH_FLOWS
def test_refusals(eng: DataEngine, api: Api, backup_flow: str) -> None:
    os_disk, raw_disk = eng.web01.disks
    backup_id = api.start_backup(eng.web01, disks=[os_disk.id])
    cannot = "[Cannot transfer Virtual Disk. "
    if backup_flow == "legacy":
        detail = fault(api.add_transfer(backup_id, os_disk.id), 409)
        not_ready = "The VM backup is not in READY phase, backup phase is CREATING_SCRATCH_DISKS.]"
        assert detail == cannot + not_ready
        eng.advance(STEP)
    detail = fault(api.add_transfer(backup_id, os_disk.id, "<format>cow</format>"), 409)  # 409 checked first
    assert detail == cannot + "The VM backup is not in READY phase, backup phase is STARTING.]"
    eng.advance(STEP)

    detail = fault(api.add_transfer(backup_id, os_disk.id, "<format>cow</format>"), 400)
    assert detail == cannot + "The specified format is not applicable for VM backup.]"
    detail = fault(api.add_transfer(str(uuid.uuid4()), os_disk.id), 400)
    assert detail == cannot + "The specified VM backup does not exist.]"
    assert fault(api.add_transfer(backup_id, raw_disk.id), 400).startswith(
        cannot + f"The disk {raw_disk.id} is not"
    )
    assert fault(api.add_transfer(backup_id, str(uuid.uuid4())), 400).startswith(cannot)
    upload = f"<image_transfer><backup id='{backup_id}'/><disk id='{os_disk.id}'/></image_transfer>"
    assert "download" in fault(api.post("/imagetransfers", upload), 400)  # direction defaults to upload
    assert api.post("/imagetransfers", "<backup/>").status_code == 400  # not an <image_transfer>
    assert api.post("/imagetransfers", "<image_transfer/>").status_code == 400
    assert eng.transfers == []

    for r in (
        api.get(f"/imagetransfers/{uuid.uuid4()}"),
        api.post(f"/imagetransfers/{uuid.uuid4()}/finalize"),
    ):
        assert (r.status_code, r.content) == (404, b"")


@BOTH_FLOWS
def test_backup_finalize_waits_for_transfers(eng: DataEngine, api: Api, backup_flow: str) -> None:
    vm = eng.web01
    backup_id = ready_backup(api, vm)
    t = api.open_transfer(backup_id, vm.disks[0].id)
    blocked = "[Cannot stop VM backup. There is an active image transfer for VM backup]"
    assert fault(api.post(f"/vms/{vm.id}/backups/{backup_id}/finalize"), 409) == blocked
    api.read(api.post(f"/imagetransfers/{t.id}/finalize"))
    # finalizing_success is still an open transfer: the client must wait for finished_success
    assert fault(api.post(f"/vms/{vm.id}/backups/{backup_id}/finalize"), 409) == blocked
    eng.advance(STEP)
    assert api.transfer(t.id).phase == P.FINISHED_SUCCESS
    assert [b.id for b in eng.open_backups(vm.id)] == [backup_id]
    api.read(api.post(f"/vms/{vm.id}/backups/{backup_id}/finalize"))
    eng.advance(2 * STEP)  # hybrid: ready, then finalizing (removing the snapshot)
    assert api.backup(vm, backup_id).phase == types.BackupPhase.SUCCEEDED
    assert eng.open_backups(vm.id) == [] and eng.open_transfers() == []


def test_open_transfer_locks_the_disk(eng: DataEngine, api: Api) -> None:
    os_disk = eng.web01.disks[0]
    backup_id = ready_backup(api, eng.web01)
    eng.write_disk(os_disk.id, 0, 65536, 0x99)  # during a backup, without a transfer: allowed
    t = api.read(api.add_transfer(backup_id, os_disk.id), 201)
    assert t.format == types.DiskFormat.COW  # format omitted: the engine records the disk's own
    with pytest.raises(DiskLockedError):
        eng.write_disk(os_disk.id, 0, 65536, 0x98)  # initializing already holds the disk
    eng.advance(STEP)
    api.read(api.post(f"/imagetransfers/{t.id}/finalize"))
    with pytest.raises(DiskLockedError):
        eng.write_disk(os_disk.id, 0, 65536, 0x98)
    eng.advance(STEP)
    eng.write_disk(os_disk.id, 0, 65536, 0x98)


@BOTH_FLOWS
def test_checkpoints_are_bitmaps(eng: DataEngine, api: Api, backup_flow: str) -> None:
    vm = eng.web01
    os_disk, raw_disk = vm.disks
    assert eng.dataplane is not None
    assert eng.bitmaps(os_disk.id) == [] and eng.dataplane.bitmaps(eng.disk_path(raw_disk.id)) == []
    cps: list[str] = []
    for _ in range(2):  # a full, then an incremental backup
        backup_id = ready_backup(api, vm, from_cp=cps[-1] if cps else None)
        cps.append(str(api.backup(vm, backup_id).to_checkpoint_id))
        assert eng.bitmaps(os_disk.id) == cps
        assert eng.dataplane.bitmaps(eng.disk_path(raw_disk.id)) == []  # raw disks hold no bitmaps
        api.read(api.post(f"/vms/{vm.id}/backups/{backup_id}/finalize"))
        eng.advance(2 * STEP)

    r = api.s.delete(f"{eng.url}/vms/{vm.id}/checkpoints/{cps[0]}", timeout=60)
    assert r.status_code == 200, r.text
    assert eng.bitmaps(os_disk.id) == [cps[1]]

    # A backup that fails takes its checkpoint, bitmaps and transfer sessions with it.
    backup_id = ready_backup(api, vm, from_cp=cps[1])
    new_cp = str(api.backup(vm, backup_id).to_checkpoint_id)
    assert eng.bitmaps(os_disk.id) == [cps[1], new_cp]
    t = api.open_transfer(backup_id, os_disk.id)
    eng.fail_backup(backup_id)  # legacy: finalizing for a step, then failed
    assert eng.dataplane.transfers() == []
    phases = []
    while (cur := api.transfer(t.id)).phase != P.FINISHED_FAILURE:
        phases.append(cur.phase)
        eng.advance(STEP)
    assert phases == [P.CANCELLED_SYSTEM, P.FINALIZING_FAILURE]
    assert api.backup(vm, backup_id).phase == types.BackupPhase.FAILED
    assert eng.bitmaps(os_disk.id) == [cps[1]]
    assert [c.id for c in eng.checkpoints(vm.id)] == [cps[1]]


def test_raw_only_backup_adds_no_bitmap(eng: DataEngine, api: Api) -> None:
    raw_disk = eng.web01.disks[1]
    backup_id = ready_backup(api, eng.web01, disks=[raw_disk.id])
    assert api.backup(eng.web01, backup_id).to_checkpoint_id is None
    assert eng.bitmaps(eng.web01.disks[0].id) == []


def test_inactivity_timeout(eng: DataEngine, api: Api) -> None:
    os_disk, raw_disk = eng.web01.disks
    backup_id = ready_backup(api, eng.web01)
    # Margins of many engine seconds: the real time a slow machine spends in between cannot matter.
    t = api.open_transfer(backup_id, os_disk.id, timeout=1000)
    eng.advance(900)
    assert api.transfer(t.id).phase == P.TRANSFERRING
    r = requests.get(str(t.transfer_url), headers={"Range": "bytes=0-65535"}, timeout=60)
    assert r.status_code == 206  # activity: bytes served since the last poll
    eng.advance(200)
    assert api.transfer(t.id).phase == P.TRANSFERRING
    eng.advance(1001)
    cur = api.transfer(t.id)
    assert cur.phase == P.CANCELLED_SYSTEM and cur.transferred == 65536 and cur.transfer_url is None
    assert requests.get(str(t.transfer_url), timeout=60).status_code == 403  # ticket gone

    extra = "<inactivity_timeout>400</inactivity_timeout><timeout_policy>pause</timeout_policy>"
    paused = api.read(api.add_transfer(backup_id, raw_disk.id, extra), 201)
    eng.advance(STEP + 500)  # transferring after one step, paused 400 s later, keeping its session
    cur = api.transfer(paused.id)
    assert cur.phase == P.PAUSED_SYSTEM and cur.transfer_url is not None
    api.read(api.post(f"/imagetransfers/{paused.id}/cancel"))
    assert api.transfer(paused.id).phase == P.CANCELLED_USER


def test_pause_resume_extend(eng: DataEngine, api: Api) -> None:
    """TransferImageStatusCommand: a download cannot be paused, only a paused transfer resumes."""
    os_disk, raw_disk = eng.web01.disks
    backup_id = ready_backup(api, eng.web01)
    t = api.open_transfer(backup_id, os_disk.id)
    advertised = DET.fromstring(api.get(f"/imagetransfers/{t.id}").content).find("actions")
    assert advertised is not None
    assert sorted(str(link.get("rel")) for link in advertised) == [
        "cancel",
        "extend",
        "finalize",
        "pause",
        "resume",
    ]
    assert fault(api.post(f"/imagetransfers/{t.id}/pause"), 400) == (
        "[Cannot pause image download as it's handled by the client. "
        "Note that it can be canceled if you wish to stop it.]"
    )
    assert fault(api.post(f"/imagetransfers/{t.id}/resume"), 409) == (
        "[Cannot resume image transfer as it's not in a paused state.]"
    )
    assert api.read(api.post(f"/imagetransfers/{t.id}/extend")).status == "complete"
    assert api.transfer(t.id).phase == P.TRANSFERRING

    extra = "<inactivity_timeout>400</inactivity_timeout><timeout_policy>pause</timeout_policy>"
    paused = api.read(api.add_transfer(backup_id, raw_disk.id, extra), 201)
    eng.advance(STEP + 500)
    assert api.transfer(paused.id).phase == P.PAUSED_SYSTEM
    assert api.read(api.post(f"/imagetransfers/{paused.id}/resume")).status == "complete"
    assert api.transfer(paused.id).phase == P.RESUMING
    eng.advance(STEP)
    cur = api.transfer(paused.id)
    assert cur.phase == P.TRANSFERRING and cur.transfer_url is not None
    eng.advance(300)  # the inactivity clock restarted at resume
    assert api.transfer(paused.id).phase == P.TRANSFERRING


def test_session_failures_end_in_finished_failure(eng: DataEngine, api: Api) -> None:
    os_disk, raw_disk = eng.web01.disks
    backup_id = ready_backup(api, eng.web01)
    eng.configure(fail_next_transfer=True)
    doomed = api.read(api.add_transfer(backup_id, os_disk.id), 201)
    eng.advance(STEP)
    assert api.transfer(doomed.id).phase == P.CANCELLED_SYSTEM
    eng.advance(2 * STEP)
    assert api.transfer(doomed.id).phase == P.FINISHED_FAILURE

    t = api.open_transfer(backup_id, raw_disk.id)
    assert eng.dataplane is not None
    eng.dataplane.kill_daemon()  # the host's imageio died: the engine notices on its next poll
    cur = api.transfer(t.id)
    assert cur.phase == P.CANCELLED_SYSTEM and cur.transfer_url is None
    assert eng.dataplane.transfers() == []  # qemu-nbd stopped too
    late = api.read(api.add_transfer(backup_id, os_disk.id), 201)
    eng.advance(STEP)
    assert api.transfer(late.id).phase == P.CANCELLED_SYSTEM  # no daemon, no session


@BOTH_FLOWS
def test_sdk_drives_transfers(eng: DataEngine, backup_flow: str) -> None:
    import ovirtsdk4 as sdk

    conn = sdk.Connection(url=eng.url, username=eng.username, password=eng.password)
    try:
        system = conn.system_service()
        backups = system.vms_service().vm_service(eng.web01.id).backups_service()
        b = backups.add(types.Backup(disks=[types.Disk(id=d.id) for d in eng.web01.disks]))
        eng.advance(2 * STEP)
        assert backups.backup_service(b.id).get().phase == types.BackupPhase.READY
        transfers = system.image_transfers_service()
        added = []
        for disk in eng.web01.disks:
            t = transfers.add(
                types.ImageTransfer(
                    disk=types.Disk(id=disk.id),
                    backup=types.Backup(id=b.id),
                    direction=types.ImageTransferDirection.DOWNLOAD,
                    format=types.DiskFormat.RAW,
                    inactivity_timeout=NO_TIMEOUT,
                )
            )
            assert t.phase == P.INITIALIZING and t.transfer_url is None
            added.append(t)
        eng.advance(STEP)
        for t in added:
            got = transfers.image_transfer_service(t.id).get()
            assert got.phase == P.TRANSFERRING and got.transfer_url.startswith("http://127.0.0.1:")
        transfers.image_transfer_service(added[0].id).finalize()
        transfers.image_transfer_service(added[1].id).cancel()
        eng.advance(2 * STEP)
        phases = [transfers.image_transfer_service(t.id).get().phase for t in added]
        assert phases == [P.FINISHED_SUCCESS, P.FINISHED_CLEANUP]
        backups.backup_service(b.id).finalize()
        eng.advance(2 * STEP)
        assert backups.backup_service(b.id).get().phase == types.BackupPhase.SUCCEEDED
        with pytest.raises(sdk.NotFoundError):
            transfers.image_transfer_service(str(uuid.uuid4())).get()
    finally:
        conn.close()


def test_without_a_data_plane_phases_still_work(engine: FakeEngine, web01: Vm) -> None:
    api = Api(engine)
    backup_id = ready_backup(api, web01)
    t = api.read(api.add_transfer(backup_id, web01.disks[0].id, "<format>raw</format>"), 201)
    engine.advance(1.0)
    cur = api.transfer(t.id)
    assert cur.phase == P.TRANSFERRING and str(cur.transfer_url).startswith("https://127.0.0.1:9/images/")
    api.read(api.post(f"/imagetransfers/{t.id}/finalize"))
    engine.advance(1.0)
    assert api.transfer(t.id).phase == P.FINISHED_SUCCESS
    with pytest.raises(RuntimeError, match="no data plane"):
        engine.write_disk(web01.disks[0].id, 0, 512, 1)

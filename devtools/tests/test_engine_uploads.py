"""Creating disks and uploading into them on the fake engine (ovirt-api.md §11.2, §11.3).

Request bodies are written with the SDK's writer (what the SDK or ovirt-img would send), replies read
with its reader. The data goes through the real imageio daemon into a writable qemu-nbd export, and
``ovirt-img upload-disk`` / ``download-disk`` prove it with a client nobody here wrote.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine.dataplane import image_info
from ovirt_fake_engine.demo import DataEngine
from ovirt_imageio import client
from ovirtsdk4.reader import Reader
from ovirtsdk4.writer import Writer
from test_engine_storage import ovirt_img, same_content

MiB = 1 << 20
STEP = 100.0
P = types.ImageTransferPhase
DS = types.DiskStatus


class Api:
    """Bodies from the SDK's writer, replies through its reader."""

    def __init__(self, eng: DataEngine) -> None:
        self.eng = eng
        self.s = requests.Session()
        self.s.auth = (eng.username, eng.password)
        self.s.headers.update(
            {"Version": "4", "Accept": "application/xml", "Content-Type": "application/xml"}
        )

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        data = Writer.write(body) if body is not None and not isinstance(body, str) else body
        return self.s.request(method, self.eng.url + path, data=data, timeout=60)

    def ok(self, r: requests.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"] == "application/xml"
        return Reader.read(r.content)

    def fault(self, r: requests.Response, status: int) -> str:
        f = self.ok(r, status)
        assert isinstance(f, types.Fault)
        return str(f.detail)

    def disk(self, disk_id: str) -> types.Disk:
        d = self.ok(self.call("GET", f"/disks/{disk_id}"))
        assert isinstance(d, types.Disk)
        return d

    def add_disk(self, status: int = 201, **kw: Any) -> requests.Response:
        sd = kw.pop("sd", "data")
        kw.setdefault("storage_domains", [types.StorageDomain(name=sd)])
        return self.call("POST", "/disks", types.Disk(**kw))

    def new_disk(self, **kw: Any) -> types.Disk:
        """A disk created and stepped to ok."""
        d = self.ok(self.add_disk(**kw), 201)
        self.eng.advance(STEP)
        assert self.disk(d.id).status == DS.OK
        return self.disk(d.id)

    def upload(self, disk_id: str) -> types.ImageTransfer:
        """An upload transfer of the disk, stepped to transferring."""
        body = types.ImageTransfer(
            disk=types.Disk(id=disk_id),
            direction=types.ImageTransferDirection.UPLOAD,
            format=types.DiskFormat.RAW,
            inactivity_timeout=10**7,
            timeout_policy=types.ImageTransferTimeoutPolicy.CANCEL,
        )
        t = self.ok(self.call("POST", "/imagetransfers", body), 201)
        assert (t.phase, t.direction) == (P.INITIALIZING, types.ImageTransferDirection.UPLOAD)
        self.eng.advance(STEP)
        t = self.transfer(t.id)
        assert t.phase == P.TRANSFERRING, t.phase
        return t

    def transfer(self, transfer_id: str) -> types.ImageTransfer:
        t = self.ok(self.call("GET", f"/imagetransfers/{transfer_id}"))
        assert isinstance(t, types.ImageTransfer)
        return t

    def phases_until(
        self, transfer_id: str, last: types.ImageTransferPhase
    ) -> list[types.ImageTransferPhase]:
        seen = []
        while (cur := self.transfer(transfer_id).phase) != last:
            seen.append(cur)
            assert len(seen) < 10, seen
            self.eng.advance(STEP)
        return seen


@pytest.fixture
def eng(data_engine: DataEngine) -> DataEngine:
    data_engine.configure(phase_seconds=STEP)
    return data_engine


@pytest.fixture
def api(eng: DataEngine) -> Api:
    return Api(eng)


def image(tmp_path: Path, name: str, fmt: str, size: int, writes: list[tuple[int, int, int]]) -> Path:
    path = tmp_path / name
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), str(size)], check=True)
    for offset, length, pattern in writes:
        cmd = f"write -P {pattern:#04x} {offset} {length}"
        subprocess.run(["qemu-io", "-f", fmt, "-c", cmd, str(path)], check=True, capture_output=True)
    return path


def test_add_disk_locked_then_ok(eng: DataEngine, api: Api) -> None:
    sds = {sd.name: sd.id for sd in api.ok(api.call("GET", "/storagedomains"))}
    r = api.add_disk(
        name="restored_os",
        format=types.DiskFormat.COW,
        sparse=True,
        backup=types.DiskBackup.INCREMENTAL,
        provisioned_size=64 * MiB,
        initial_size=8 * MiB,
        content_type=types.DiskContentType.DATA,
        description="from ovbackup",
    )
    d = api.ok(r, 201)
    assert isinstance(d, types.Disk) and r.headers["Location"] == f"{eng.url}/disks/{d.id}"
    assert (d.status, d.alias, d.format, d.sparse) == (DS.LOCKED, "restored_os", types.DiskFormat.COW, True)
    assert (d.backup, d.provisioned_size, d.description) == (
        types.DiskBackup.INCREMENTAL,
        64 * MiB,
        "from ovbackup",
    )
    assert [s.id for s in d.storage_domains] == [sds["data"]] and d.initial_size is None  # not echoed
    assert api.disk(d.id).status == DS.LOCKED
    eng.advance(STEP)
    assert api.disk(d.id).status == DS.OK
    info = image_info(eng.disk_path(d.id))
    assert (info["format"], info["virtual-size"]) == ("qcow2", 64 * MiB)
    assert d.id in {x.id for x in api.ok(api.call("GET", f"/storagedomains/{sds['data']}/disks"))}

    given = str(uuid.uuid4())
    raw = api.new_disk(
        id=given, name="raw", format=types.DiskFormat.RAW, sparse=False, provisioned_size=8 * MiB
    )
    assert (raw.id, raw.sparse, raw.actual_size) == (given, False, 8 * MiB)
    info = image_info(eng.disk_path(given))
    assert (info["format"], info["actual-size"] >= 8 * MiB) == ("raw", True)  # fallocated

    block = api.new_disk(
        name="b",
        format=types.DiskFormat.COW,
        sparse=True,
        provisioned_size=64 * MiB,
        initial_size=4 * MiB,
        sd="data2",
    )
    assert block.actual_size == 4 * MiB and eng.disk_path(block.id).stat().st_size == 4 * MiB  # the "LV"
    by_id = api.new_disk(
        format=types.DiskFormat.RAW,
        sparse=False,
        provisioned_size=MiB,
        storage_domains=[types.StorageDomain(id=sds["data2"])],
    )
    assert by_id.storage_domains[0].id == sds["data2"]


def test_add_disk_refusals(eng: DataEngine, api: Api) -> None:
    cow, raw = types.DiskFormat.COW, types.DiskFormat.RAW
    inc = types.DiskBackup.INCREMENTAL
    cannot = "[Cannot add Virtual Disk. "
    r = api.add_disk(name="x", sparse=True, provisioned_size=MiB)
    f = api.ok(r, 400)
    assert (f.reason, f.detail) == ("Incomplete parameters", "Disk [format] required for add")
    detail = api.fault(api.add_disk(format=raw, sparse=True, provisioned_size=MiB, sd="data2"), 409)
    assert (
        detail
        == cannot
        + "Disk configuration (RAW Sparse backup-None) is incompatible with the storage domain type.]"
    )
    detail = api.fault(api.add_disk(format=raw, sparse=True, backup=inc, provisioned_size=MiB), 409)
    assert "(RAW Sparse backup-Incremental)" in detail
    detail = api.fault(api.add_disk(format=cow, sparse=False, provisioned_size=MiB), 409)
    assert "(COW Preallocated backup-None)" in detail
    missing = api.add_disk(format=cow, sparse=True, provisioned_size=MiB, sd="nope")
    f = api.ok(missing, 404)
    assert (f.reason, f.detail) == ("Operation Failed", "Entity not found: nope")
    bogus = [types.StorageDomain(id=str(uuid.uuid4()))]
    detail = api.fault(
        api.add_disk(format=cow, sparse=True, provisioned_size=MiB, storage_domains=bogus), 400
    )
    assert detail == cannot + "Storage Domain doesn't exist.]"
    detail = api.fault(api.add_disk(format=cow, sparse=True, provisioned_size=MiB, storage_domains=[]), 400)
    assert detail == cannot + "Storage Domain hasn't been specified.]"
    taken = eng.web01.disks[0].id
    detail = api.fault(api.add_disk(id=taken, format=cow, sparse=True, provisioned_size=MiB), 409)
    assert (
        detail
        == cannot
        + f"The selected disk ID: {taken} is already used by the following existing disk: web01_os.]"
    )
    assert api.call("POST", "/disks", "<vm/>").status_code == 400
    assert len(eng.state.disks) == 2  # nothing was created


def test_delete_disk(eng: DataEngine, api: Api) -> None:
    d = api.ok(api.add_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=MiB), 201)
    busy = "[Cannot remove Virtual Disk. Related operation is currently in progress. Please try again later.]"
    assert api.fault(api.call("DELETE", f"/disks/{d.id}"), 409) == busy  # still being created
    eng.advance(STEP)
    path = eng.disk_path(d.id)
    done = api.ok(api.call("DELETE", f"/disks/{d.id}"))
    assert isinstance(done, types.Action) and done.status == "complete"
    gone = api.call("GET", f"/disks/{d.id}")
    assert (gone.status_code, gone.content) == (404, b"") and not path.exists()
    assert api.call("DELETE", f"/disks/{d.id}").status_code == 404
    up = api.call("DELETE", f"/disks/{eng.web01.disks[0].id}")
    assert api.fault(up, 409) == "[Cannot remove Virtual Disk. At least one of the VMs is not down.]"


def test_upload_finalize(eng: DataEngine, api: Api, tmp_path: Path) -> None:
    src = image(tmp_path, "src.qcow2", "qcow2", 32 * MiB, [(0, MiB, 0x21), (20 * MiB, 2 * MiB, 0x22)])
    d = api.new_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=32 * MiB)
    t = api.upload(d.id)
    assert api.disk(d.id).status == DS.LOCKED
    assert eng.dataplane is not None and [s.fmt for s in eng.dataplane.transfers()] == ["qcow2"]
    options = requests.options(str(t.transfer_url), timeout=60)
    assert "PUT" in options.headers["Allow"] and "zero" in options.json()["features"]  # writable
    client.upload(str(src), str(t.transfer_url), None)
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/finalize", "<action/>"))
    assert api.phases_until(t.id, P.FINISHED_SUCCESS) == [P.FINALIZING_SUCCESS]
    after = api.disk(d.id)
    assert after.status == DS.OK and after.actual_size > 3 * MiB
    assert same_content(src, eng.disk_path(d.id))
    assert image_info(eng.disk_path(d.id))["format"] == "qcow2" and eng.dataplane.transfers() == []


def test_cancelled_upload_removes_the_disk(eng: DataEngine, api: Api, tmp_path: Path) -> None:
    d = api.new_disk(format=types.DiskFormat.RAW, sparse=True, provisioned_size=8 * MiB)
    path = eng.disk_path(d.id)
    t = api.upload(d.id)
    r = requests.put(
        str(t.transfer_url), data=b"\x01" * 65536, headers={"Range": "bytes 0-65535/*"}, timeout=60
    )
    assert r.ok, r.text
    assert api.fault(api.call("DELETE", f"/disks/{d.id}"), 409).startswith("[Cannot remove Virtual Disk.")
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/cancel", "<action/>"))
    seen = api.phases_until(t.id, P.FINISHED_FAILURE)
    assert seen == [P.CANCELLED_USER, P.FINALIZING_CLEANUP, P.FINISHED_CLEANUP]
    assert api.call("GET", f"/disks/{d.id}").status_code == 404 and not path.exists()
    assert eng.open_transfers() == []


def test_upload_survives_nothing_when_the_daemon_dies(eng: DataEngine, api: Api) -> None:
    d = api.new_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=8 * MiB)
    t = api.upload(d.id)
    assert eng.dataplane is not None
    eng.dataplane.kill_daemon()  # the host's imageio died mid-upload
    cur = api.transfer(t.id)
    assert cur.phase == P.PAUSED_SYSTEM  # an upload is paused by the system, not cancelled
    assert api.disk(d.id).status == DS.LOCKED
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/cancel", "<action/>"))
    api.phases_until(t.id, P.FINISHED_FAILURE)
    assert api.call("GET", f"/disks/{d.id}").status_code == 404

    eng.configure(fail_next_transfer=True)  # a session that cannot start: paused_system too (§11.3)
    eng.dataplane.start()
    d2 = api.new_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=8 * MiB)
    body = types.ImageTransfer(disk=types.Disk(id=d2.id), direction=types.ImageTransferDirection.UPLOAD)
    doomed = api.ok(api.call("POST", "/imagetransfers", body), 201)
    eng.advance(STEP)
    assert api.transfer(doomed.id).phase == P.PAUSED_SYSTEM


def test_block_domain_honours_initial_size(eng: DataEngine, api: Api, tmp_path: Path) -> None:
    src = image(tmp_path, "big.qcow2", "qcow2", 64 * MiB, [(0, 16 * MiB, 0x31)])
    small = api.new_disk(
        format=types.DiskFormat.COW, sparse=True, provisioned_size=64 * MiB, initial_size=2 * MiB, sd="data2"
    )
    t = api.upload(small.id)
    with pytest.raises(Exception) as err:  # ENOSPC on the "LV": a 500 from imageio
        client.upload(str(src), str(t.transfer_url), None)
    assert err.value.args[0] == 500, err.value  # ovirt_imageio's HTTP error: (status, message)
    assert eng.dataplane is not None and "No space left on device" in eng.dataplane.daemon_log.read_text()
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/cancel", "<action/>"))
    api.phases_until(t.id, P.FINISHED_FAILURE)

    measured = subprocess.run(
        ["qemu-img", "measure", "-O", "qcow2", "--output", "json", str(src)],
        capture_output=True,
        text=True,
        check=True,
    )
    required = int(__import__("json").loads(measured.stdout)["required"])
    enough = api.new_disk(
        format=types.DiskFormat.COW, sparse=True, provisioned_size=64 * MiB, initial_size=required, sd="data2"
    )
    t = api.upload(enough.id)
    client.upload(str(src), str(t.transfer_url), None)
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/finalize", "<action/>"))
    api.phases_until(t.id, P.FINISHED_SUCCESS)
    assert same_content(src, eng.disk_path(enough.id))


def test_ovirt_img_upload_then_download(data_engine: DataEngine, tmp_path: Path) -> None:
    """ovirt-img upload-disk (qcow2 to the file domain, preallocated raw to the block domain), then
    download-disk of each, byte-exact with the source."""
    eng = data_engine
    api = Api(eng)
    qcow = image(tmp_path, "guest.qcow2", "qcow2", 48 * MiB, [(0, 4 * MiB, 0x41), (40 * MiB, MiB, 0x42)])
    raw = image(tmp_path, "data.raw", "raw", 16 * MiB, [(MiB, 2 * MiB, 0x43)])
    cases = [(qcow, ["-s", "data"]), (raw, ["-s", "data2", "-f", "raw", "--preallocated"])]
    for src, opts in cases:
        done = ovirt_img(eng, tmp_path, "upload-disk", *opts, "--name", src.stem, str(src))
        assert done.returncode == 0, done.stderr
    by_alias = {d.alias: d for d in api.ok(api.call("GET", "/disks"))}
    up_qcow, up_raw = by_alias["guest"], by_alias["data"]
    assert (up_qcow.format, up_qcow.backup, up_qcow.status) == (
        types.DiskFormat.COW,
        types.DiskBackup.INCREMENTAL,
        DS.OK,
    )
    assert (up_raw.format, up_raw.sparse, up_raw.status) == (types.DiskFormat.RAW, False, DS.OK)
    assert all(t.phase == "finished_success" for t in eng.transfers)
    for src, d in ((qcow, up_qcow), (raw, up_raw)):
        assert same_content(src, eng.disk_path(str(d.id)))
        back = tmp_path / f"back-{d.alias}.qcow2"
        done = ovirt_img(eng, tmp_path, "download-disk", str(d.id), str(back))
        assert done.returncode == 0, done.stderr
        assert same_content(src, back)
    assert eng.open_transfers() == []

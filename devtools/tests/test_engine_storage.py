"""Data centres, clusters and storage domains on the fake engine, read back with the SDK's reader, and
``ovirt-img download-disk`` (a client nobody here wrote) downloading a disk byte-exact through them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine
from ovirtsdk4.reader import Reader

GIB = 1024**3


class Api:
    """Raw XML over HTTP (Basic auth): every reply goes through the SDK's reader."""

    def __init__(self, eng: FakeEngine) -> None:
        self.eng = eng
        self.s = requests.Session()
        self.s.auth = (eng.username, eng.password)
        self.s.headers.update(
            {"Version": "4", "Accept": "application/xml", "Content-Type": "application/xml"}
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.s.get(self.eng.url + path, params=params, timeout=60)

    def read(self, path: str, **params: Any) -> Any:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/xml"
        return Reader.read(r.content)


@pytest.fixture
def api(engine: FakeEngine) -> Api:
    return Api(engine)


@pytest.fixture
def vm(engine: FakeEngine) -> Vm:
    return engine.add_vm(
        "web01",
        disks=[
            DiskSpec(alias="web01_os", provisioned_size=GIB),
            DiskSpec(alias="web01_db", format="cow", storage_domain="data2", provisioned_size=2 * GIB),
            DiskSpec(alias="web01_raw", format="raw", backup="none", storage_domain="data2"),
        ],
    )


def test_data_center_and_cluster(engine: FakeEngine, api: Api, vm: Vm) -> None:
    (dc,) = api.read("/datacenters")
    assert isinstance(dc, types.DataCenter)
    assert (dc.name, dc.local, dc.status) == ("Default", False, types.DataCenterStatus.UP)
    assert dc.storage_format == types.StorageFormat.V5 and dc.version.major == 4
    assert api.read(f"/datacenters/{dc.id}").id == dc.id
    assert [d.id for d in api.read("/datacenters", search="storage.name=data2")] == [dc.id]
    assert api.read("/datacenters", search="storage.name=nope") == []
    assert [d.name for d in api.read("/datacenters", search="name=default")] == ["Default"]

    (cluster,) = api.read("/clusters")
    assert isinstance(cluster, types.Cluster)
    assert (cluster.name, cluster.data_center.id) == ("Default", dc.id)
    assert cluster.cpu.architecture == types.Architecture.X86_64
    assert (cluster.version.major, cluster.version.minor) == (4, 7)
    assert api.read(f"/clusters/{cluster.id}").name == "Default"
    assert api.read("/clusters", search="name=Def*")[0].id == cluster.id
    assert api.read(f"/vms/{vm.id}").cluster.id == cluster.id  # the VM runs in it


def test_storage_domains(engine: FakeEngine, api: Api, vm: Vm) -> None:
    sds = {sd.name: sd for sd in api.read("/storagedomains")}
    assert set(sds) == {"data", "data2"}
    data, data2 = sds["data"], sds["data2"]
    assert all(isinstance(sd, types.StorageDomain) for sd in sds.values())
    assert (data.type, data.storage.type) == (types.StorageDomainType.DATA, types.StorageType.NFS)
    assert (data2.type, data2.storage.type) == (types.StorageDomainType.DATA, types.StorageType.ISCSI)
    assert data.storage.path == "/exports/data" and data2.storage.volume_group is not None
    (dc,) = api.read("/datacenters")
    assert [d.id for d in data.data_centers] == [dc.id] and data.master is True
    assert data.external_status == types.ExternalStatus.OK and data.status is None
    assert data2.used == sum(d.actual_size for d in vm.disks[1:])
    assert data2.committed == 2 * GIB + GIB and data2.available == 512 * GIB - data2.used
    assert api.read(f"/storagedomains/{data2.id}").name == "data2"
    assert [sd.name for sd in api.read("/storagedomains", search="name=data2")] == ["data2"]

    on_data2 = api.read(f"/storagedomains/{data2.id}/disks")
    assert [d.alias for d in on_data2] == ["web01_db", "web01_raw"]
    assert on_data2[0].href == f"/ovirt-engine/api/storagedomains/{data2.id}/disks/{on_data2[0].id}"
    one = api.read(f"/storagedomains/{data2.id}/disks/{vm.disks[2].id}")
    assert (one.alias, one.format, one.sparse) == ("web01_raw", types.DiskFormat.RAW, False)
    assert [d.alias for d in api.read(f"/storagedomains/{data.id}/disks")] == ["web01_os"]

    # Every disk says where it lives, wherever it is read from.
    for d in api.read("/disks"):
        assert [s.id for s in d.storage_domains] == [data.id if d.alias == "web01_os" else data2.id]
    attachments = api.read(f"/vms/{vm.id}/diskattachments", follow="disk")
    assert [a.disk.storage_domains[0].id for a in attachments] == [data.id, data2.id, data2.id]
    assert attachments[0].disk.storage_domains[0].name is None  # a reference only
    inlined = api.read(f"/vms/{vm.id}/diskattachments", follow="disk,disk.storage_domains")
    assert [(a.disk.alias, a.disk.storage_domains[0].name) for a in inlined] == [
        ("web01_os", "data"),
        ("web01_db", "data2"),
        ("web01_raw", "data2"),
    ]
    assert inlined[1].disk.storage_domains[0].storage.type == types.StorageType.ISCSI
    for path in (
        f"/storagedomains/{vm.id}",
        f"/storagedomains/{vm.id}/disks",
        f"/storagedomains/{data.id}/disks/{vm.disks[2].id}",  # not on that domain
        f"/clusters/{vm.id}",
        f"/datacenters/{vm.id}",
    ):
        r = api.get(path)
        assert (r.status_code, r.content) == (404, b""), path
    assert api.get("/storagedomains", search="status=up").status_code == 400  # not a search we know


def test_sdk_reads_storage(engine: FakeEngine, vm: Vm) -> None:
    conn = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    try:
        system = conn.system_service()
        (sd,) = system.storage_domains_service().list(search="name=data2")
        disk = system.disks_service().disk_service(vm.disks[1].id).get()
        assert disk.storage_domains[0].id == sd.id
        got = system.storage_domains_service().storage_domain_service(sd.id).get()
        assert got.storage.type == types.StorageType.ISCSI
        disks = system.storage_domains_service().storage_domain_service(sd.id).disks_service().list()
        assert {d.id for d in disks} == {d.id for d in vm.disks[1:]}
        (cluster,) = system.clusters_service().list()
        assert system.clusters_service().cluster_service(cluster.id).get().name == "Default"
    finally:
        conn.close()


# -- a plain download (no backup), as ovirt-img does it ----------------------------------------------
def ovirt_img(eng: FakeEngine, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ovirt-img console script of this venv against the fake engine."""
    password = tmp_path / "password"
    password.write_text(eng.password)
    tool = Path(sys.executable).with_name("ovirt-img")
    cmd = [str(tool), args[0], "--engine-url", eng.base_url, "--username", eng.username]
    cmd += ["--password-file", str(password), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def same_content(a: Path, b: Path) -> bool:
    """``qemu-img compare``: guest-visible content equal (rc 0), whatever the formats."""
    proc = subprocess.run(["qemu-img", "compare", "-U", str(a), str(b)], capture_output=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def test_ovirt_img_download_disk(data_engine: DataEngine, tmp_path: Path) -> None:
    eng = data_engine
    os_disk, raw_disk = eng.web01.disks
    refused = ovirt_img(eng, tmp_path, "download-disk", os_disk.id, str(tmp_path / "up.qcow2"))
    assert refused.returncode != 0
    assert "The disk web01_os is plugged to non-Down VMs: web01" in refused.stderr
    assert not (tmp_path / "up.qcow2").exists() and eng.open_transfers() == []

    eng.set_vm_status(eng.web01.id, "down")  # a plain download needs the VM down
    for disk, fmt in ((os_disk, "qcow2"), (raw_disk, "raw")):
        out = tmp_path / f"{disk.alias}.{fmt}"
        done = ovirt_img(eng, tmp_path, "download-disk", "-f", fmt, disk.id, str(out))
        assert done.returncode == 0, done.stderr
        assert same_content(out, eng.disk_path(disk.id))
    (_, t) = eng.transfers
    assert (t.direction, t.backup_id, t.phase) == ("download", None, "finished_success")
    assert eng.open_transfers() == [] and eng.dataplane is not None and eng.dataplane.transfers() == []
    assert Api(eng).read(f"/disks/{os_disk.id}").status == types.DiskStatus.OK  # unlocked again


def test_plain_download_locks_the_disk(data_engine: DataEngine) -> None:
    eng = data_engine
    eng.configure(phase_seconds=100.0)
    api = Api(eng)
    raw_disk = eng.web01.disks[1]
    eng.set_vm_status(eng.web01.id, "down")
    body = f"<image_transfer><disk id='{raw_disk.id}'/><direction>download</direction></image_transfer>"
    r = api.s.post(eng.url + "/imagetransfers", data=body, timeout=60)
    assert r.status_code == 201, r.text
    t = Reader.read(r.content)
    assert (t.phase, t.format) == (types.ImageTransferPhase.INITIALIZING, types.DiskFormat.RAW)
    assert api.read(f"/disks/{raw_disk.id}").status == types.DiskStatus.LOCKED
    again = api.s.post(eng.url + "/imagetransfers", data=body, timeout=60)
    assert again.status_code == 409
    assert "The following disks are locked: web01_raw" in Reader.read(again.content).detail
    eng.advance(100)
    cur = api.read(f"/imagetransfers/{t.id}")
    assert cur.phase == types.ImageTransferPhase.TRANSFERRING
    ranged = requests.get(str(cur.transfer_url), headers={"Range": "bytes=0-4095"}, timeout=60)
    assert ranged.status_code == 206 and ranged.content == b"\x55" * 4096  # demo.raw_regions
    assert requests.put(str(cur.transfer_url), data=b"x", timeout=60).status_code == 403  # read-only
    api.s.post(eng.url + f"/imagetransfers/{t.id}/cancel", data="<action/>", timeout=60)
    eng.advance(300)
    assert api.read(f"/imagetransfers/{t.id}").phase == types.ImageTransferPhase.FINISHED_CLEANUP
    assert api.read(f"/disks/{raw_disk.id}").status == types.DiskStatus.OK  # a download leaves it ok

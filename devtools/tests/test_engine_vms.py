"""A VM's configuration and making a VM from it on the fake engine (ovirt-api.md §11.1, §11.4): the OVF
in ``all_content=true``, NICs, ``POST /vms`` from the OVF, disk attachments, ``DELETE`` with and
without ``detach_only``, start/stop — bodies from the SDK's writer, replies through its reader — and a
backup of a restored VM on real data.
"""

from __future__ import annotations

import uuid
from typing import Any

import defusedxml.ElementTree as DET
import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine
from ovirt_imageio import client
from test_engine_storage import same_content
from test_engine_uploads import STEP, Api

GIB = 1024**3
MiB = 1 << 20
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"


@pytest.fixture
def api(engine: FakeEngine) -> Api:
    return Api(engine)  # type: ignore[arg-type]  (Api only needs url, credentials and advance)


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    engine.configure(phase_seconds=STEP)
    return engine.add_vm(
        "web01",
        status="down",
        disks=[
            DiskSpec(alias="web01_os", provisioned_size=GIB),
            DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=GIB // 2),
        ],
    )


def config_of(api: Api, vm_id: str) -> str:
    vm = api.ok(api.call("GET", f"/vms/{vm_id}?all_content=true"))
    conf = vm.initialization.configuration
    assert conf.type == types.ConfigurationType.OVF
    return str(conf.data)


def from_config(name: str | None, data: str, regenerate: bool | None = None, **kw: Any) -> types.Vm:
    init = types.Initialization(
        configuration=types.Configuration(type=types.ConfigurationType.OVF, data=data),
        regenerate_ids=regenerate,
    )
    return types.Vm(name=name, cluster=types.Cluster(name="Default"), initialization=init, **kw)


def test_configuration_and_nics(engine: FakeEngine, api: Api, web01: Vm) -> None:
    plain = api.ok(api.call("GET", f"/vms/{web01.id}"))
    assert plain.initialization is None and plain.cluster.id == engine.state.cluster_id
    assert plain.cluster.name is None  # a reference; follow=cluster inlines the cluster itself
    followed = api.ok(api.call("GET", f"/vms/{web01.id}?all_content=true&follow=cluster"))
    cluster = engine.state.inventory.clusters[engine.state.cluster_id]
    assert (followed.cluster.id, followed.cluster.name) == (cluster.id, cluster.name)
    assert followed.cluster.version.major == 4 and followed.initialization.configuration.data
    assert (plain.memory, plain.cpu.topology.sockets) == (4 * GIB, 2)
    data = config_of(api, web01.id)
    root = DET.fromstring(data.encode())
    assert root.tag == f"{{{OVF_NS}}}Envelope"
    content = root.find("Content")
    assert content.find("Name").text == "web01"
    assert f'ovf:id="{web01.id}"' in data  # the VM id, on the OperatingSystemSection
    refs = [f.get(f"{{{OVF_NS}}}href") for f in root.find("References")]
    assert [r.split("/")[0] for r in refs] == [d.id for d in web01.disks]
    disks = root.find("Section").findall("Disk")
    assert [(d.get(f"{{{OVF_NS}}}disk-alias"), d.get(f"{{{OVF_NS}}}boot")) for d in disks] == [
        ("web01_os", "true"),
        ("web01_raw", "false"),
    ]
    assert disks[0].get(f"{{{OVF_NS}}}volume-format") == "COW"

    (nic,) = api.ok(api.call("GET", f"/vms/{web01.id}/nics"))
    assert isinstance(nic, types.Nic)
    assert (nic.name, nic.interface, nic.plugged) == ("nic1", types.NicInterface.VIRTIO, True)
    assert nic.mac.address.startswith("56:6f:") and nic.mac.address in data
    profile = api.ok(api.call("GET", f"/vnicprofiles/{nic.vnic_profile.id}"))
    assert profile.name == "ovirtmgmt" and profile.network.id == engine.state.inventory.network_id
    assert api.ok(api.call("GET", f"/vms/{web01.id}/nics/{nic.id}")).id == nic.id
    assert api.call("GET", f"/vms/{web01.id}/nics/{uuid.uuid4()}").status_code == 404


def test_create_from_configuration(engine: FakeEngine, api: Api, web01: Vm) -> None:
    data = config_of(api, web01.id)
    (src_nic,) = api.ok(api.call("GET", f"/vms/{web01.id}/nics"))
    detail = api.fault(api.call("POST", "/vms", from_config(None, data)), 409)
    assert (
        detail
        == "[Cannot import VM. The VM name is already in use, please choose a unique name and try again.]"
    )
    detail = api.fault(api.call("POST", "/vms", from_config("copy", data)), 409)
    assert detail == (
        "[Import VM failed - VM ID already exists in the system. "
        "Please remove the VM (web01) from the system first]"
    )
    other_id = data.replace(web01.id, str(uuid.uuid4()))
    detail = api.fault(api.call("POST", "/vms", from_config("copy", other_id)), 409)
    assert detail == f"[MAC Address {src_nic.mac.address} is already in use by VM or snapshot: web01.]"
    bad = types.Vm(name="x", initialization=from_config("x", data).initialization)
    assert api.ok(api.call("POST", "/vms", bad), 400).reason == "Incomplete parameters"  # no cluster
    assert api.call("POST", "/vms", from_config("x", "<not an ovf")).status_code == 400
    assert len(engine.state.vms) == 1

    r = api.call("POST", "/vms", from_config("web01-restore", data, regenerate=True))
    new = api.ok(r, 201)
    assert r.headers["Location"] == f"{engine.url}/vms/{new.id}"
    assert (new.name, new.status, new.cluster.id) == (
        "web01-restore",
        types.VmStatus.DOWN,
        engine.state.cluster_id,
    )
    assert new.id != web01.id
    (nic,) = api.ok(api.call("GET", f"/vms/{new.id}/nics"))
    assert (nic.name, nic.interface) == ("nic1", types.NicInterface.VIRTIO)
    assert nic.id != src_nic.id and nic.mac.address != src_nic.mac.address
    # The source disks are still web01's: nothing to attach from the OVF.
    assert api.ok(api.call("GET", f"/vms/{new.id}/diskattachments")) == []

    d = api.new_disk(
        format=types.DiskFormat.COW, sparse=True, provisioned_size=GIB, backup=types.DiskBackup.INCREMENTAL
    )
    att = types.DiskAttachment(
        disk=types.Disk(id=d.id),
        interface=types.DiskInterface.VIRTIO_SCSI,
        bootable=True,
        active=True,
        pass_discard=True,
    )
    r = api.call("POST", f"/vms/{new.id}/diskattachments", att)
    made = api.ok(r, 201)
    assert r.headers["Location"] == f"{engine.url}/vms/{new.id}/diskattachments/{d.id}"
    assert (made.id, made.bootable, made.pass_discard, made.interface) == (
        d.id,
        True,
        True,
        types.DiskInterface.VIRTIO_SCSI,
    )
    (listed,) = api.ok(api.call("GET", f"/vms/{new.id}/diskattachments?follow=disk"))
    assert (listed.disk.alias, listed.bootable, listed.active, listed.pass_discard) == (
        d.alias,
        True,
        True,
        True,
    )
    assert listed.vm.id == new.id
    assert f"{d.id}/" in config_of(api, new.id)  # the new VM's own OVF has its disk


def test_attach_refusals(engine: FakeEngine, api: Api, web01: Vm) -> None:
    os_disk = web01.disks[0]
    cannot = "[Cannot attach Virtual Disk. "
    other = api.ok(api.call("POST", "/vms", from_config("b", config_of(api, web01.id), regenerate=True)), 201)

    def attach(disk_id: str, **kw: Any) -> Any:
        kw.setdefault("interface", types.DiskInterface.VIRTIO)
        return api.call(
            "POST",
            f"/vms/{other.id}/diskattachments",
            types.DiskAttachment(disk=types.Disk(id=disk_id), **kw),
        )

    assert api.fault(attach(os_disk.id), 409) == cannot + "The disk is already attached to VM.]"
    assert api.fault(attach(str(uuid.uuid4())), 400) == cannot + "The specified disk does not exist.]"
    locked = api.ok(api.add_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=MiB), 201)
    assert "The following disks are locked" in api.fault(attach(locked.id), 409)
    engine.advance(STEP)
    f = api.ok(
        api.call(
            "POST", f"/vms/{other.id}/diskattachments", types.DiskAttachment(disk=types.Disk(id=locked.id))
        ),
        400,
    )
    assert f.reason == "Incomplete parameters"  # no interface
    api.ok(attach(locked.id, bootable=True), 201)
    second = api.new_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=MiB)
    detail = api.fault(attach(second.id, bootable=True), 409)
    assert detail == cannot + f"Disk {locked.alias} in VM b is already marked as boot.]"
    assert api.call("POST", f"/vms/{uuid.uuid4()}/diskattachments", "<disk_attachment/>").status_code == 404


def test_delete_detach_only_keeps_the_disks(engine: FakeEngine, api: Api, web01: Vm) -> None:
    data = config_of(api, web01.id)
    engine.set_vm_status(web01.id, "up")
    assert (
        api.fault(api.call("DELETE", f"/vms/{web01.id}?detach_only=true"), 409)
        == "[Cannot remove VM. VM is running.]"
    )
    engine.set_vm_status(web01.id, "down")
    done = api.ok(api.call("DELETE", f"/vms/{web01.id}?detach_only=true"))
    assert isinstance(done, types.Action)
    assert api.call("GET", f"/vms/{web01.id}").status_code == 404
    floating = {d.id: d for d in api.ok(api.call("GET", "/disks"))}
    assert set(floating) == {d.id for d in web01.disks}

    # The saved OVF brings the VM back as it was: same id and MAC (nothing clashes now), its disks
    # re-attached by id with the OVF's interface and boot flags.
    back = api.ok(api.call("POST", "/vms", from_config(None, data)), 201)
    assert (back.id, back.name) == (web01.id, "web01")
    atts = api.ok(api.call("GET", f"/vms/{back.id}/diskattachments"))
    assert [(a.id, a.bootable, a.interface) for a in atts] == [
        (web01.disks[0].id, True, types.DiskInterface.VIRTIO_SCSI),
        (web01.disks[1].id, False, types.DiskInterface.VIRTIO_SCSI),
    ]

    api.ok(api.call("DELETE", f"/vms/{back.id}"))  # without detach_only the disks go too
    assert api.ok(api.call("GET", "/disks")) == []
    assert api.call("DELETE", f"/vms/{back.id}").status_code == 404


def test_start_and_stop(engine: FakeEngine, api: Api, web01: Vm) -> None:
    empty = api.ok(
        api.call(
            "POST",
            "/vms",
            types.Vm(name="e", cluster=types.Cluster(name="Default"), template=types.Template(name="Blank")),
        ),
        201,
    )
    assert empty.status == types.VmStatus.DOWN and api.ok(api.call("GET", f"/vms/{empty.id}/nics")) == []
    assert "without at least one bootable disk" in api.fault(
        api.call("POST", f"/vms/{empty.id}/start", "<action/>"), 409
    )
    api.ok(api.call("POST", f"/vms/{web01.id}/start", "<action/>"))
    assert api.ok(api.call("GET", f"/vms/{web01.id}")).status == types.VmStatus.POWERING_UP
    engine.advance(STEP)
    up = api.ok(api.call("GET", f"/vms/{web01.id}"))
    assert up.status == types.VmStatus.UP and up.host.id == engine.state.host_id
    assert (
        api.fault(api.call("POST", f"/vms/{web01.id}/start", "<action/>"), 409)
        == "[Cannot run VM. VM is running.]"
    )
    api.ok(api.call("POST", f"/vms/{web01.id}/stop", "<action/>"))
    assert api.ok(api.call("GET", f"/vms/{web01.id}")).status == types.VmStatus.DOWN


def test_sdk_creates_a_vm_from_configuration(engine: FakeEngine, web01: Vm) -> None:
    conn = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    try:
        vms = conn.system_service().vms_service()
        got = vms.vm_service(web01.id).get(all_content=True)
        new = vms.add(from_config("web01-restore", got.initialization.configuration.data, regenerate=True))
        assert new.name == "web01-restore" and new.status == types.VmStatus.DOWN
        nics = vms.vm_service(new.id).nics_service().list()
        assert [n.name for n in nics] == ["nic1"]
        vms.vm_service(new.id).remove(detach_only=True)
        with pytest.raises(sdk.NotFoundError):
            vms.vm_service(new.id).get()
    finally:
        conn.close()


def test_backup_of_a_restored_vm(data_engine: DataEngine, tmp_path: Any) -> None:
    """Upload a disk, make a VM from web01's OVF around it, start it, back it up: full, then incremental."""
    eng = data_engine
    eng.configure(phase_seconds=STEP)
    api = Api(eng)
    src = eng.disk_path(eng.web01.disks[0].id)
    size = eng.web01.disks[0].provisioned_size
    d = api.new_disk(
        format=types.DiskFormat.COW, sparse=True, provisioned_size=size, backup=types.DiskBackup.INCREMENTAL
    )
    t = api.upload(d.id)
    client.upload(str(src), str(t.transfer_url), None)
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/finalize", "<action/>"))
    api.phases_until(t.id, types.ImageTransferPhase.FINISHED_SUCCESS)
    vm = api.ok(
        api.call("POST", "/vms", from_config("web01-restore", config_of(api, eng.web01.id), regenerate=True)),
        201,
    )
    att = types.DiskAttachment(
        disk=types.Disk(id=d.id), interface=types.DiskInterface.VIRTIO_SCSI, bootable=True, active=True
    )
    api.ok(api.call("POST", f"/vms/{vm.id}/diskattachments", att), 201)
    api.ok(api.call("POST", f"/vms/{vm.id}/start", "<action/>"))
    eng.advance(STEP)

    backup = types.Backup(disks=[types.Disk(id=d.id)])
    b = api.ok(api.call("POST", f"/vms/{vm.id}/backups", backup), 201)
    eng.advance(2 * STEP)
    b = api.ok(api.call("GET", f"/vms/{vm.id}/backups/{b.id}"))
    assert b.phase == types.BackupPhase.READY and eng.bitmaps(d.id) == [b.to_checkpoint_id]
    body = types.ImageTransfer(
        disk=types.Disk(id=d.id),
        backup=types.Backup(id=b.id),
        direction=types.ImageTransferDirection.DOWNLOAD,
        format=types.DiskFormat.RAW,
        inactivity_timeout=10**7,
    )
    bt = api.ok(api.call("POST", "/imagetransfers", body), 201)
    eng.advance(STEP)
    bt = api.transfer(bt.id)
    full = tmp_path / "full.qcow2"
    client.download(str(bt.transfer_url), str(full), None)
    assert same_content(full, src)
    api.ok(api.call("POST", f"/imagetransfers/{bt.id}/finalize", "<action/>"))
    eng.advance(STEP)
    api.ok(api.call("POST", f"/vms/{vm.id}/backups/{b.id}/finalize", "<action/>"))
    eng.advance(2 * STEP)  # hybrid (the default): ready for a step after finalize, then finalizing

    eng.write_disk(d.id, 0, MiB, 0x7A)
    inc = types.Backup(disks=[types.Disk(id=d.id)], from_checkpoint_id=b.to_checkpoint_id)
    b2 = api.ok(api.call("POST", f"/vms/{vm.id}/backups", inc), 201)
    eng.advance(2 * STEP)
    (bd,) = api.ok(api.call("GET", f"/vms/{vm.id}/backups/{b2.id}/disks"))
    assert bd.backup_mode == types.DiskBackupMode.INCREMENTAL

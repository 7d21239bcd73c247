"""What a restore reads and writes: each reader fed the SDK's own Writer output, each body read back by the
SDK's Reader (the engine's model), and the OVF losing its disks and nothing else."""

from __future__ import annotations

import ovirtsdk4.types as types
from ovirtsdk4.reader import Reader
from ovirtsdk4.writer import Writer

from ovbackup.engine import bodies, ovf, xml
from ovbackup.engine.model import Disk, DiskAttachment, DiskBackup, DiskFormat, StorageDomain

OVF_TEXT = """<?xml version='1.0' encoding='UTF-8'?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" \
xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" \
xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ovf:version="4.5.0.0">
<References><File ovf:href="D1/I1" ovf:id="I1" ovf:size="1073741824" ovf:description="web01_os"/></References>
<NetworkSection><Info>networks</Info><Network ovf:name="ovirtmgmt"/></NetworkSection>
<Section xsi:type="ovf:DiskSection_Type"><Info>List of Virtual Disks</Info>
<Disk ovf:diskId="I1" ovf:fileRef="D1/I1" ovf:volume-format="COW" ovf:disk-interface="VirtIO_SCSI" \
ovf:boot="true" ovf:disk-alias="web01_os"/></Section>
<Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type"><Name>web01</Name>
<Section xsi:type="ovf:VirtualHardwareSection_Type"><Info>2 CPU, 2048 Memory</Info>
<Item><rasd:Caption>2 virtual cpu</rasd:Caption><rasd:ResourceType>3</rasd:ResourceType></Item>
<Item><rasd:Caption>web01_os</rasd:Caption><rasd:InstanceId>I1</rasd:InstanceId>\
<rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>D1/I1</rasd:HostResource></Item>
<Item><rasd:Caption>Ethernet adapter on ovirtmgmt</rasd:Caption><rasd:ResourceType>10</rasd:ResourceType>\
<rasd:MACAddress>56:6f:00:00:00:01</rasd:MACAddress><rasd:Name>nic1</rasd:Name></Item>
<Item><rasd:ResourceType>15</rasd:ResourceType><type>disk</type><device>cdrom</device></Item>
</Section></Content></ovf:Envelope>"""


def test_vm_with_its_configuration_and_cluster_is_read() -> None:
    sdk_vm = types.Vm(
        id="v1",
        name="web01",
        cluster=types.Cluster(id="c1", name="Default"),
        initialization=types.Initialization(
            configuration=types.Configuration(type=types.ConfigurationType.OVF, data=OVF_TEXT)
        ),
    )
    vm = xml.parse_one(Writer.write(sdk_vm).encode(), "vm", xml.vm_from)
    assert (vm.id, vm.name, vm.cluster_id, vm.cluster_name) == ("v1", "web01", "c1", "Default")
    assert vm.configuration == OVF_TEXT  # byte for byte: whitespace inside the OVF is kept
    plain = xml.parse_one(b'<vm id="v"><cluster id="c"/></vm>', "vm", xml.vm_from)
    assert (plain.configuration, plain.cluster_id, plain.cluster_name) == (None, "c", None)


def test_nic_storage_domain_cluster_and_disk_details_are_read() -> None:
    nic = types.Nic(
        id="n1",
        name="nic1",
        interface=types.NicInterface.VIRTIO,
        mac=types.Mac(address="56:6f:00:00:00:01"),
        vnic_profile=types.VnicProfile(id="p1"),
    )
    (ours,) = xml.parse_many(Writer.write([nic], root="nics").encode(), "nic", xml.nic_from)
    assert (ours.name, ours.interface, ours.mac, ours.vnic_profile_id) == (
        "nic1",
        "virtio",
        "56:6f:00:00:00:01",
        "p1",
    )
    sd = types.StorageDomain(
        id="s2",
        name="data2",
        type=types.StorageDomainType.DATA,
        storage=types.HostStorage(type=types.StorageType.ISCSI),
        available=1 << 40,
    )
    (dom,) = xml.parse_many(
        Writer.write([sd], root="storage_domains").encode(), "storage_domain", xml.storage_domain_from
    )
    assert (dom.name, dom.type, dom.storage_type, dom.available, dom.is_block) == (
        "data2",
        "data",
        "iscsi",
        1 << 40,
        True,
    )
    nfs = xml.storage_domain_from(
        xml.parse_document(b'<storage_domain id="s1"><storage><type>nfs</type></storage></storage_domain>')
    )
    assert nfs.is_block is False
    cluster = xml.parse_one(
        Writer.write(types.Cluster(id="c1", name="Default")).encode(), "cluster", xml.cluster_from
    )
    assert (cluster.id, cluster.label) == ("c1", "Default")
    attachment = types.DiskAttachment(
        id="d1",
        active=True,
        bootable=True,
        interface=types.DiskInterface.VIRTIO_SCSI,
        logical_name="/dev/sda",
        pass_discard=False,
        disk=types.Disk(
            id="d1",
            alias="web01_os",
            format=types.DiskFormat.COW,
            sparse=True,
            backup=types.DiskBackup.INCREMENTAL,
            content_type=types.DiskContentType.DATA,
            provisioned_size=1 << 30,
            storage_domains=[types.StorageDomain(id="s1", name="data")],
        ),
    )
    (att,) = xml.parse_many(
        Writer.write([attachment], root="disk_attachments").encode(),
        "disk_attachment",
        xml.disk_attachment_from,
    )
    assert (att.active, att.bootable, att.interface, att.logical_name, att.pass_discard) == (
        True,
        True,
        "virtio_scsi",
        "/dev/sda",
        False,
    )
    assert (att.disk.sparse, att.disk.content_type) == (True, "data")
    assert [(sd.id, sd.name) for sd in att.disk.storage_domains] == [("s1", "data")]


def test_new_disk_body_is_what_the_sdk_reads() -> None:
    body = bodies.build_disk(
        Disk(
            id="",
            name="web01_os-restore",
            format=DiskFormat.COW,
            sparse=True,
            backup=DiskBackup.INCREMENTAL,
            provisioned_size=1 << 30,
            initial_size=300 << 20,
            content_type="data",
            storage_domains=(StorageDomain(id="s2", name="data2"),),
        )
    )
    sdk = Reader.read(body)
    assert isinstance(sdk, types.Disk) and sdk.id is None
    assert (sdk.alias, sdk.name) == ("web01_os-restore", "web01_os-restore")
    assert sdk.format == types.DiskFormat.COW and sdk.sparse is True
    assert sdk.backup == types.DiskBackup.INCREMENTAL
    assert (sdk.provisioned_size, sdk.initial_size) == (1 << 30, 300 << 20)
    assert sdk.content_type == types.DiskContentType.DATA
    assert [sd.id for sd in sdk.storage_domains] == ["s2"]
    raw = Reader.read(bodies.build_disk(Disk(id="", format=DiskFormat.RAW, sparse=False)))
    assert raw.format == types.DiskFormat.RAW and raw.sparse is False and raw.initial_size is None


def test_vm_from_configuration_body_carries_the_ovf_intact() -> None:
    text = ovf.without_disks(OVF_TEXT)
    sdk = Reader.read(
        bodies.build_vm_from_configuration(name="web01-restore", cluster_id="c1", configuration=text)
    )
    assert isinstance(sdk, types.Vm)
    assert sdk.name == "web01-restore" and sdk.cluster.id == "c1"
    assert sdk.initialization.configuration.type == types.ConfigurationType.OVF
    assert sdk.initialization.configuration.data == text
    assert sdk.initialization.regenerate_ids is True


def test_disk_attachment_and_upload_transfer_bodies() -> None:
    sdk = Reader.read(
        bodies.build_disk_attachment(
            DiskAttachment(
                disk=Disk(id="d9"), active=True, bootable=False, interface="virtio", pass_discard=True
            )
        )
    )
    assert isinstance(sdk, types.DiskAttachment)
    assert (sdk.disk.id, sdk.active, sdk.bootable, sdk.pass_discard) == ("d9", True, False, True)
    assert sdk.interface == types.DiskInterface.VIRTIO
    upload = Reader.read(
        xml.build_image_transfer(disk_id="d9", backup_id=None, inactivity_timeout=60, direction="upload")
    )
    assert upload.direction == types.ImageTransferDirection.UPLOAD
    assert upload.backup is None and upload.disk.id == "d9" and upload.format == types.DiskFormat.RAW


def test_ovf_loses_its_disks_and_keeps_everything_else() -> None:
    assert ovf.disk_ids(OVF_TEXT) == ["D1"]
    stripped = ovf.without_disks(OVF_TEXT)
    assert ovf.disk_ids(stripped) == []
    assert "D1/I1" not in stripped and "<rasd:ResourceType>17<" not in stripped
    # CPU, the NIC (with its MAC for the engine to regenerate) and the CD-ROM stay; prefixes survive,
    # since the engine finds sections by xsi:type values that name them.
    for kept in (
        "2 virtual cpu",
        "56:6f:00:00:00:01",
        "<device>cdrom</device>",
        'Network ovf:name="ovirtmgmt"',
    ):
        assert kept in stripped
    assert 'xsi:type="ovf:VirtualHardwareSection_Type"' in stripped
    assert stripped.startswith("<ovf:Envelope") and 'ovf:version="4.5.0.0"' in stripped

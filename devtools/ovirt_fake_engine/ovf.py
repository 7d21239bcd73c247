"""The VM's configuration as the engine's own OVF (``type=ovf``), written and read back.

Written in the layout of the engine's OvfOvirtWriter/OvfWriter (ovirt-api.md §11.1): ``References``
with one ``File`` per disk volume (``href`` = ``DISK_ID/IMAGE_ID``), a ``DiskSection`` whose ``Disk``
entries carry the volume format/type, interface, boot, pass-discard and alias, and a ``Content`` of
type ``VirtualSystem_Type`` with the name, the VM id (on the OperatingSystemSection), and a
``VirtualHardwareSection`` of ``Item``s: CPU, memory, one per disk (ResourceType 17) and one per NIC
(ResourceType 10: name, MAC, vNIC profile, ``ResourceSubType`` the engine's VmInterfaceType number).

Reading takes what ImportVmFromConfigurationCommand uses: name, id, each disk's id (the first part
of ``fileRef``) with its attachment fields, and the NICs. Guessed: VmInterfaceType numbers other
than virtio=3/e1000=2/rtl8139=1; dates and most Content fields are fixed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET

from ovirt_fake_engine.model import GIB, Attachment, Disk, Nic, Vm

OVF = "http://schemas.dmtf.org/ovf/envelope/1/"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
BLANK = "00000000-0000-0000-0000-000000000000"
_INTERFACES = {"virtio_scsi": "VirtIO_SCSI", "virtio": "VirtIO", "ide": "IDE", "sata": "SATA"}
_NIC_TYPES = {"rtl8139": "1", "e1000": "2", "virtio": "3", "e1000e": "6"}


class OvfError(ValueError):
    """The configuration is not an OVF the engine could import."""


@dataclass
class OvfDisk:
    """A disk the OVF references, with how it was attached."""

    disk_id: str
    alias: str
    attachment: Attachment


@dataclass
class OvfVm:
    """What an import reads from the OVF."""

    id: str
    name: str
    disks: list[OvfDisk] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    memory: int = 4 * GIB
    cpus: int = 2


def _t(value: object) -> str:
    return escape(str(value))


def _disk(d: Disk, att: Attachment) -> tuple[str, str, str]:
    """(References/File, DiskSection/Disk, hardware Item) for one disk."""
    ref = f"{d.id}/{d.image_id}"
    fmt = (
        "http://www.gnome.org/~markmc/qcow-image-format.html"
        if d.format == "cow"
        else ("http://www.vmware.com/specifications/vmdk.html#sparse")
    )
    file = (
        f'<File ovf:href="{ref}" ovf:id="{d.image_id}" ovf:size="{d.actual_size}" ovf:description="" '
        f'ovf:disk_storage_type="IMAGE" ovf:cinder_volume_type=""/>'
    )
    size_gb = -(-d.provisioned_size // GIB)
    disk = (
        f'<Disk ovf:diskId="{d.image_id}" ovf:size="{size_gb}" ovf:actual_size="{-(-d.actual_size // GIB)}" '
        f'ovf:vm_snapshot_id="{BLANK}" ovf:parentRef="" ovf:fileRef="{ref}" ovf:format="{fmt}" '
        f'ovf:volume-format="{d.format.upper()}" '
        f'ovf:volume-type="{"Sparse" if d.sparse else "Preallocated"}" '
        f'ovf:disk-interface="{_INTERFACES.get(att.interface, "VirtIO_SCSI")}" '
        f'ovf:read-only="{str(att.read_only).lower()}" ovf:shareable="false" '
        f'ovf:boot="{str(att.bootable).lower()}" ovf:pass-discard="{str(att.pass_discard).lower()}" '
        f'ovf:incremental-backup="{str(d.backup == "incremental").lower()}" '
        f'ovf:disk-alias={quoteattr(d.alias)} ovf:disk-description="" ovf:wipe-after-delete="false"/>'
    )
    item = (
        f"<Item><rasd:Caption>{_t(d.alias)}</rasd:Caption><rasd:InstanceId>{d.image_id}</rasd:InstanceId>"
        f"<rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>{ref}</rasd:HostResource>"
        f"<rasd:Parent>{BLANK}</rasd:Parent><rasd:Template>{BLANK}</rasd:Template>"
        f"<rasd:ApplicationList/><rasd:StorageId>{d.storage_domain_id}</rasd:StorageId>"
        f"<Type>disk</Type><Device>disk</Device><Address/><BootOrder>{1 if att.bootable else 0}</BootOrder>"
        f"<IsPlugged>{str(att.active).lower()}</IsPlugged><IsReadOnly>{str(att.read_only).lower()}</IsReadOnly>"
        f"<Alias/></Item>"
    )
    return file, disk, item


def _nic(n: Nic, profile: str) -> str:
    return (
        f"<Item><rasd:Caption>Ethernet adapter on {_t(profile)}</rasd:Caption>"
        f"<rasd:InstanceId>{n.id}</rasd:InstanceId><rasd:ResourceType>10</rasd:ResourceType>"
        f"<rasd:OtherResourceType>{_t(profile)}</rasd:OtherResourceType>"
        f"<rasd:ResourceSubType>{_NIC_TYPES.get(n.interface, '3')}</rasd:ResourceSubType>"
        f"<rasd:Connection>{_t(profile)}</rasd:Connection><rasd:Linked>{str(n.linked).lower()}</rasd:Linked>"
        f"<rasd:Name>{_t(n.name)}</rasd:Name><rasd:ElementName>{_t(n.name)}</rasd:ElementName>"
        f"<rasd:MACAddress>{_t(n.mac)}</rasd:MACAddress><rasd:speed>10000</rasd:speed>"
        f"<Type>interface</Type><Device>bridge</Device><Address/><BootOrder>0</BootOrder>"
        f"<IsPlugged>{str(n.plugged).lower()}</IsPlugged><IsReadOnly>false</IsReadOnly><Alias/></Item>"
    )


def write(vm: Vm, cluster_name: str, profile: str = "ovirtmgmt") -> str:
    """The OVF text of a VM, as ``GET /vms/{id}?all_content=true`` carries it."""
    parts = [_disk(d, vm.attachment(d)) for d in vm.disks]
    mem_mb = vm.memory // (1 << 20)
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f'<ovf:Envelope xmlns:ovf="{OVF}" xmlns:rasd="{RASD}" xmlns:vssd="{VSSD}" xmlns:xsi="{XSI}" '
        'ovf:version="4.5.6.0">'
        f"<References>{''.join(p[0] for p in parts)}</References>"
        f'<NetworkSection><Info>List of networks</Info><Network ovf:name="{_t(profile)}"/></NetworkSection>'
        f'<Section xsi:type="ovf:DiskSection_Type"><Info>List of Virtual Disks</Info>'
        f"{''.join(p[1] for p in parts)}</Section>"
        '<Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type">'
        f"<Name>{_t(vm.name)}</Name><Description></Description><Comment></Comment>"
        f"<CreationDate>2026/01/01 00:00:00</CreationDate><ExportDate>2026/01/01 00:00:00</ExportDate>"
        f"<DeleteProtected>false</DeleteProtected><IsSmartcardEnabled>false</IsSmartcardEnabled>"
        f"<TimeZone>Etc/GMT</TimeZone><default_boot_sequence>0</default_boot_sequence>"
        f"<Generation>1</Generation><ClusterCompatibilityVersion>4.7</ClusterCompatibilityVersion>"
        f"<VmType>1</VmType><MinAllocatedMem>{mem_mb}</MinAllocatedMem><IsStateless>false</IsStateless>"
        f"<AutoStartup>false</AutoStartup><Priority>1</Priority>"
        f"<MaxMemorySizeMb>{4 * mem_mb}</MaxMemorySizeMb>"
        f"<TemplateId>{BLANK}</TemplateId><TemplateName>Blank</TemplateName>"
        f"<OriginalTemplateId>{BLANK}</OriginalTemplateId><OriginalTemplateName>Blank</OriginalTemplateName>"
        f"<ClusterName>{_t(cluster_name)}</ClusterName><BiosType>2</BiosType>"
        f'<Section ovf:id="{vm.id}" ovf:required="false" xsi:type="ovf:OperatingSystemSection_Type">'
        f"<Info>Guest Operating System</Info><Description>other_linux</Description></Section>"
        f'<Section xsi:type="ovf:VirtualHardwareSection_Type">'
        f"<Info>{vm.cpus} CPU, {mem_mb} Memory</Info>"
        f"<System><vssd:VirtualSystemType>ENGINE 4.5.6.0</vssd:VirtualSystemType></System>"
        f"<Item><rasd:Caption>{vm.cpus} virtual cpu</rasd:Caption><rasd:Description>Number of virtual CPU"
        f"</rasd:Description><rasd:InstanceId>1</rasd:InstanceId><rasd:ResourceType>3</rasd:ResourceType>"
        f"<rasd:num_of_sockets>{vm.cpus}</rasd:num_of_sockets><rasd:cpu_per_socket>1</rasd:cpu_per_socket>"
        f"<rasd:threads_per_cpu>1</rasd:threads_per_cpu><rasd:VirtualQuantity>{vm.cpus}</rasd:VirtualQuantity>"
        f"</Item><Item><rasd:Caption>{mem_mb} MB of memory</rasd:Caption><rasd:Description>Memory Size"
        f"</rasd:Description><rasd:InstanceId>2</rasd:InstanceId><rasd:ResourceType>4</rasd:ResourceType>"
        f"<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>{mem_mb}"
        f"</rasd:VirtualQuantity></Item>"
        f"{''.join(p[2] for p in parts)}{''.join(_nic(n, profile) for n in vm.nics)}"
        "</Section></Content></ovf:Envelope>"
    )


def _text(el: Any, path: str) -> str | None:
    found = el.find(path, _NS)
    return None if found is None or found.text is None else str(found.text).strip()


_NS = {"ovf": OVF, "rasd": RASD, "vssd": VSSD, "xsi": XSI}


def read(text: str) -> OvfVm:
    """Parse an OVF sent back in ``POST /vms`` (the engine's own flavour, ``type=ovf``)."""
    try:
        root = DET.fromstring(text.encode())
    except Exception as e:  # ParseError, or defusedxml refusing entities/DTDs
        raise OvfError(f"not an OVF document: {e}") from None
    content = root.find("Content")
    if content is None:
        raise OvfError("no Content section")
    xsi_type = f"{{{XSI}}}type"
    os_section = next(
        (
            s
            for s in content.findall("Section")
            if s.get(xsi_type, "").endswith("OperatingSystemSection_Type")
        ),
        None,
    )
    vm_id = os_section.get(f"{{{OVF}}}id") if os_section is not None else None
    name = _text(content, "Name")
    if not vm_id or not name:
        raise OvfError("no VM id or name")
    out = OvfVm(id=vm_id, name=name)
    hardware = next(
        (
            s
            for s in content.findall("Section")
            if s.get(xsi_type, "").endswith("VirtualHardwareSection_Type")
        ),
        None,
    )
    items = hardware.findall("Item") if hardware is not None else []
    plugged = {_text(i, "rasd:InstanceId"): _text(i, "IsPlugged") != "false" for i in items}
    interfaces = {v: k for k, v in _INTERFACES.items()}
    for section in root.findall("Section"):
        if not section.get(xsi_type, "").endswith("DiskSection_Type"):
            continue
        for d in section.findall("Disk"):
            ref = d.get(f"{{{OVF}}}fileRef", "")
            disk_id, _, image_id = ref.partition("/")

            def flag(name: str, d: Any = d) -> bool:
                return bool(d.get(f"{{{OVF}}}{name}", "false") == "true")

            att = Attachment(
                interface=interfaces.get(d.get(f"{{{OVF}}}disk-interface", ""), "virtio_scsi"),
                bootable=flag("boot"),
                active=plugged.get(image_id, True),
                pass_discard=flag("pass-discard"),
                read_only=flag("read-only"),
            )
            out.disks.append(OvfDisk(disk_id, d.get(f"{{{OVF}}}disk-alias", ""), att))
    types_by_number = {v: k for k, v in _NIC_TYPES.items()}
    for item in items:
        if _text(item, "rasd:ResourceType") != "10":
            continue
        out.nics.append(
            Nic(
                id=_text(item, "rasd:InstanceId") or "",
                name=_text(item, "rasd:Name") or "nic",
                interface=types_by_number.get(_text(item, "rasd:ResourceSubType") or "3", "virtio"),
                mac=_text(item, "rasd:MACAddress") or "",
                vnic_profile_id=_text(item, "rasd:OtherResourceType") or "",
                linked=_text(item, "rasd:Linked") != "false",
                plugged=_text(item, "IsPlugged") != "false",
            )
        )
    return out

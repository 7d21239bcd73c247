"""The engine's OVF (``initialization/configuration/data``): read what a restore needs, drop the disks.

``POST /vms`` from a configuration attaches every OVF disk that still exists **by id** (ovirt-api.md
§11.4): restoring a VM whose original disks are still on the engine would attach the originals to the
new VM. So the disks are taken out of the OVF before it is sent, and the new disks are attached
afterwards with their saved interface, bootable and active flags.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ovbackup.engine import xml

OVF = "http://schemas.dmtf.org/ovf/envelope/1/"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# The engine's OvfReader looks sections up by xsi:type *values* such as "ovf:DiskSection_Type", which
# name the prefix: the prefixes must survive a rewrite, so they are registered for serialisation.
PREFIXES = {"ovf": OVF, "rasd": RASD, "vssd": VSSD, "xsi": XSI}
DISK_RESOURCE_TYPE = "17"  # CIM ResourceType of a disk drive (15 is a CD-ROM)


def _register() -> None:
    for prefix, uri in PREFIXES.items():
        ET.register_namespace(prefix, uri)


def _is_section(el: ET.Element, kind: str) -> bool:
    return el.tag in ("Section", f"{{{OVF}}}Section") and (el.get(f"{{{XSI}}}type") or "").endswith(kind)


def without_disks(ovf: str) -> str:
    """The OVF with its disks removed: file references, the disk section's disks, and the disk items
    of the virtual hardware section. Everything else (CPU, memory, NICs, devices) is kept as it was."""
    root = xml.parse_document(ovf.encode())
    for section in root.iter():
        if section.tag in ("References", f"{{{OVF}}}References"):
            for f in list(section):
                section.remove(f)
        elif _is_section(section, "DiskSection_Type"):
            for disk in [c for c in section if c.tag in ("Disk", f"{{{OVF}}}Disk")]:
                section.remove(disk)
        elif _is_section(section, "VirtualHardwareSection_Type"):
            for item in [c for c in section if c.tag in ("Item", f"{{{OVF}}}Item")]:
                if (item.findtext(f"{{{RASD}}}ResourceType") or "").strip() == DISK_RESOURCE_TYPE:
                    section.remove(item)
    _register()
    return ET.tostring(root, encoding="unicode")


def disk_ids(ovf: str) -> list[str]:
    """The disk ids (image groups) an OVF refers to, in its order."""
    root = xml.parse_document(ovf.encode())
    ids = []
    for section in root.iter():
        if _is_section(section, "DiskSection_Type"):
            for disk in section:
                ref = disk.get(f"{{{OVF}}}fileRef") or ""
                if ref:
                    ids.append(ref.split("/", 1)[0])
    return ids

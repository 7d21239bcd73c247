"""Request bodies that create things on the engine: disks, a VM from its configuration, attachments.

Written with ElementTree (writing needs no defusing; parsing stays in xml.py) in the shapes of
ovirt-api.md §11.2 to §11.4, and checked by the tests against the SDK's reader, which is what the engine's
own JAXB model accepts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ovbackup.engine.model import Disk, DiskAttachment


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = text
    return child


def _flag(value: bool) -> str:
    return "true" if value else "false"


def build_disk(disk: Disk) -> bytes:
    """``POST /disks``: a new, empty disk on one storage domain (§11.2). Fields left None are not sent,
    so the engine applies its defaults."""
    root = ET.Element("disk", {"id": disk.id} if disk.id else {})
    if disk.name is not None:
        _sub(root, "alias", disk.name)
        _sub(root, "name", disk.name)
    if disk.backup is not None:
        _sub(root, "backup", disk.backup.value)
    if disk.content_type is not None:
        _sub(root, "content_type", disk.content_type)
    if disk.format is not None:
        _sub(root, "format", disk.format.value)
    if disk.initial_size is not None:
        _sub(root, "initial_size", str(disk.initial_size))
    if disk.provisioned_size is not None:
        _sub(root, "provisioned_size", str(disk.provisioned_size))
    if disk.sparse is not None:
        _sub(root, "sparse", _flag(disk.sparse))
    if disk.storage_domains:
        domains = _sub(root, "storage_domains")
        for sd in disk.storage_domains:
            _sub(domains, "storage_domain", id=sd.id)
    return ET.tostring(root)


def build_vm_from_configuration(
    *, name: str, cluster_id: str, configuration: str, regenerate_ids: bool = True
) -> bytes:
    """``POST /vms`` from a saved OVF (§11.4): the name and cluster given here override the OVF's;
    ``regenerate_ids`` gives the VM, its NICs and MACs new identities."""
    root = ET.Element("vm")
    _sub(root, "name", name)
    _sub(root, "cluster", id=cluster_id)
    init = _sub(root, "initialization")
    config = _sub(init, "configuration")
    _sub(config, "data", configuration)  # escaped as text, as the SDK writes it
    _sub(config, "type", "ovf")
    _sub(init, "regenerate_ids", _flag(regenerate_ids))
    return ET.tostring(root)


def build_disk_attachment(attachment: DiskAttachment) -> bytes:
    """``POST /vms/{id}/diskattachments``: attach an existing disk as it was attached before."""
    root = ET.Element("disk_attachment")
    if attachment.active is not None:
        _sub(root, "active", _flag(attachment.active))
    if attachment.bootable is not None:
        _sub(root, "bootable", _flag(attachment.bootable))
    _sub(root, "disk", id=attachment.disk.id)
    if attachment.interface is not None:
        _sub(root, "interface", attachment.interface)
    if attachment.pass_discard is not None:
        _sub(root, "pass_discard", _flag(attachment.pass_discard))
    if attachment.read_only is not None:
        _sub(root, "read_only", _flag(attachment.read_only))
    return ET.tostring(root)

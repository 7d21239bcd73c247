"""Bytes ⇄ model for the engine's XML; the only module that parses XML (with xmlstream.py).

No DTD is ever accepted: the engine never sends one, so any DOCTYPE (entity bombs, external entities)
is refused at once, before it can cost memory or open files. Single documents go through defusedxml
with DTDs forbidden; collections through xmlstream.children (the C parser only for a body whose prolog
holds no DOCTYPE, defusedxml otherwise).
"""

from __future__ import annotations

import gc
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from typing import IO, TypeVar

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ovbackup.engine import xmlstream
from ovbackup.engine.model import (
    ActionResult,
    Backup,
    BackupPhase,
    Checkpoint,
    CheckpointState,
    Cluster,
    Disk,
    DiskAttachment,
    DiskBackup,
    DiskBackupMode,
    DiskFormat,
    Fault,
    ImageTransfer,
    ImageTransferPhase,
    Nic,
    StorageDomain,
    Vm,
)
from ovbackup.errors import ResponseError

E = TypeVar("E", bound=Enum)
T = TypeVar("T")
Element = ET.Element

_DATE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")


def parse_datetime(text: str) -> datetime:
    """Parse the engine's xs:dateTime (e.g. ``2022-03-21T06:29:02.650-04:00``) into an aware datetime.

    The pattern says what is accepted (any fraction, cut to microseconds; ``Z``, ``±HH:MM`` or ``±HHMM``);
    Python 3.11's ``fromisoformat`` reads all of that in C. A missing offset is taken as UTC, so every
    date we hand out is timezone-aware.
    """
    stripped = text.strip()
    if _DATE_RE.fullmatch(stripped) is None:
        raise ResponseError(f"engine sent an invalid date: {text[:40]!r}")
    try:
        value = datetime.fromisoformat(stripped)
    except ValueError as e:
        raise ResponseError(f"engine sent an invalid date: {text[:40]!r}") from e
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@contextmanager
def _collecting_later() -> Iterator[None]:
    """Pause the cyclic garbage collector while a collection is read.

    Parsing allocates an element per XML element, and every 700 allocations start a collection that
    walks the young objects (and, as the list of results grows, the older ones): 5,000 VMs with their
    disks parse in about half the time without it. Elements and model objects form no cycles, so
    nothing is left for the collector to find. The previous state comes back afterwards, whatever
    happens; with threads (the fleet), a parse that ends first may switch it back on under another
    one still running, which then only runs at the usual speed.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _parsing() -> Iterator[None]:
    """Turn the parser's refusals into ResponseError: hostile (a DTD) or malformed."""
    try:
        yield
    except DefusedXmlException as e:
        raise ResponseError(f"refused a hostile XML response from the engine ({type(e).__name__})") from None
    except ET.ParseError as e:
        raise ResponseError(f"engine sent malformed XML ({e})") from None


def parse_document(data: bytes, *roots: str) -> Element:
    """Parse one response body and check its root element is one of ``roots``."""
    with _parsing():
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    if roots and root.tag not in roots:
        raise ResponseError(f"engine sent <{root.tag}> where <{'> or <'.join(roots)}> was expected")
    return root


def _child(el: Element | None, *tags: str) -> Element | None:
    """``el.find("a/b/c")`` as one ``find`` per step: a plain tag is looked up in C, a path goes
    through ElementPath's Python generators (a third of the time of 5,000 VMs' conversion)."""
    for tag in tags:
        if el is None:
            return None
        el = el.find(tag)
    return el


def _text(el: Element | None, tag: str) -> str | None:
    child = None if el is None else el.find(tag)
    if child is None:
        return None
    text = child.text
    return None if text is None else text.strip()


def _int(el: Element, tag: str) -> int | None:
    value = _text(el, tag)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ResponseError(f"engine sent a non-integer <{tag}>: {value[:40]!r}") from None


def _bool(el: Element, tag: str) -> bool | None:
    value = _text(el, tag)
    return None if value is None else value.lower() == "true"


def _date(el: Element, tag: str) -> datetime | None:
    value = _text(el, tag)
    return parse_datetime(value) if value else None


def _enum(el: Element, tag: str, enum: type[E]) -> E | None:
    """Map an enum element; an unknown value becomes None, as the SDK does, so a newer engine still works."""
    value = _text(el, tag)
    if value is None:
        return None
    try:
        return enum(value.lower())
    except ValueError:
        return None


def _ref(el: Element, tag: str) -> str | None:
    child = el.find(tag)
    return None if child is None else child.get("id")


def _ids(el: Element, tag: str) -> str:
    ident = el.get("id")
    if not ident:
        raise ResponseError(f"engine sent a <{tag}> without an id")
    return ident


def disk_from(el: Element) -> Disk:
    domains = el.find("storage_domains")
    return Disk(
        id=_ids(el, "disk"),
        name=_text(el, "alias") or _text(el, "name"),
        format=_enum(el, "format", DiskFormat),
        backup=_enum(el, "backup", DiskBackup),
        backup_mode=_enum(el, "backup_mode", DiskBackupMode),
        provisioned_size=_int(el, "provisioned_size"),
        actual_size=_int(el, "actual_size"),
        status=_text(el, "status"),
        sparse=_bool(el, "sparse"),
        content_type=_text(el, "content_type"),
        storage_domains=()
        if domains is None
        else tuple(storage_domain_from(sd) for sd in domains.findall("storage_domain") if sd.get("id")),
    )


def _inline_disks(el: Element) -> tuple[Disk, ...] | None:
    disks = el.find("disks")
    if disks is None:
        return None  # the engine sends only <link rel="disks">: not inlined
    return tuple(disk_from(d) for d in disks.findall("disk"))


def backup_from(el: Element) -> Backup:
    phase = _enum(el, "phase", BackupPhase)
    if phase is None and el.find("phase") is None:
        # The model's documentation examples use <status>; the wire uses <phase> (ovirt-api.md §1.2).
        phase = _enum(el, "status", BackupPhase)
    return Backup(
        id=_ids(el, "backup"),
        phase=phase,
        from_checkpoint_id=_text(el, "from_checkpoint_id") or None,
        to_checkpoint_id=_text(el, "to_checkpoint_id") or None,
        creation_date=_date(el, "creation_date"),
        modification_date=_date(el, "modification_date"),
        description=_text(el, "description"),
        vm_id=_ref(el, "vm"),
        host_id=_ref(el, "host"),
        snapshot_id=_ref(el, "snapshot"),
        disks=_inline_disks(el),
    )


def checkpoint_from(el: Element) -> Checkpoint:
    return Checkpoint(
        id=_ids(el, "checkpoint"),
        parent_id=_text(el, "parent_id") or None,
        creation_date=_date(el, "creation_date"),
        state=_enum(el, "state", CheckpointState),
        description=_text(el, "description"),
        vm_id=_ref(el, "vm"),
        disks=_inline_disks(el),
    )


def vm_from(el: Element) -> Vm:
    attachments = el.find("disk_attachments")  # inlined by follow=disk_attachments.disk, else a link
    cluster = el.find("cluster")
    return Vm(
        id=_ids(el, "vm"),
        name=_text(el, "name"),
        status=_text(el, "status"),
        host_id=_ref(el, "host"),
        disks=None
        if attachments is None
        else tuple(disk_attachment_from(a) for a in attachments.findall("disk_attachment")),
        cluster_id=None if cluster is None else cluster.get("id"),
        cluster_name=None if cluster is None else _text(cluster, "name"),
        # The OVF arrives as text (escaped XML) inside <data>: kept as the engine wrote it.
        configuration=_raw_text(_child(el, "initialization", "configuration", "data")),
    )


def _raw_text(child: Element | None) -> str | None:
    return None if child is None else child.text


def disk_attachment_from(el: Element) -> DiskAttachment:
    disk = el.find("disk")
    if disk is None:
        raise ResponseError("engine sent a <disk_attachment> without a <disk>")
    return DiskAttachment(
        disk=disk_from(disk),
        active=_bool(el, "active"),
        interface=_text(el, "interface"),
        bootable=_bool(el, "bootable"),
        pass_discard=_bool(el, "pass_discard"),
        read_only=_bool(el, "read_only"),
        logical_name=_text(el, "logical_name"),
    )


def nic_from(el: Element) -> Nic:
    return Nic(
        id=_ids(el, "nic"),
        name=_text(el, "name"),
        interface=_text(el, "interface"),
        mac=_text(el.find("mac"), "address"),
        vnic_profile_id=_ref(el, "vnic_profile"),
    )


def storage_domain_from(el: Element) -> StorageDomain:
    return StorageDomain(
        id=_ids(el, "storage_domain"),
        name=_text(el, "name"),
        type=_text(el, "type"),
        storage_type=_text(el.find("storage"), "type"),
        status=_text(el, "status") or _text(el, "external_status"),
        available=_int(el, "available"),
    )


def cluster_from(el: Element) -> Cluster:
    return Cluster(id=_ids(el, "cluster"), name=_text(el, "name"))


def image_transfer_from(el: Element) -> ImageTransfer:
    """The engine names the disk ``<image id=DISK/>`` and sends neither ``<disk>`` nor ``<backup>``
    (ImageTransferMapper), whatever the request said."""
    return ImageTransfer(
        id=_ids(el, "image_transfer"),
        phase=_enum(el, "phase", ImageTransferPhase),
        transfer_url=_text(el, "transfer_url") or None,
        proxy_url=_text(el, "proxy_url") or None,
        transferred=_int(el, "transferred"),
        inactivity_timeout=_int(el, "inactivity_timeout"),
        disk_id=_ref(el, "image"),
        host_id=_ref(el, "host"),
        direction=_text(el, "direction"),
    )


def parse_one(data: bytes, tag: str, convert: Callable[[Element], T]) -> T:
    return convert(parse_document(data, tag))


def parse_many(data: bytes | IO[bytes], tag: str, convert: Callable[[Element], T]) -> list[T]:
    """A collection, converted item by item while parsing; each item's elements are then dropped,
    so 10,000 backups never exist as one element tree."""
    plural = tag + "s"
    items: list[T] = []
    with _parsing(), _collecting_later():
        elements = xmlstream.children(data)
        root = next(elements, None)
        if root is None:
            raise ResponseError(f"engine sent an empty reply where <{plural}> was expected")
        if root.tag != plural:
            raise ResponseError(f"engine sent <{root.tag}> where <{plural}> was expected")
        items.extend(convert(el) for el in elements if el.tag == tag)
    return items


def parse_fault(data: bytes) -> Fault | None:
    """Read a ``<fault>`` (or an ``<action>`` carrying one); None when the body is not such XML.

    Never raises: error bodies are often empty (404) or HTML (401), and the caller falls back to the status.
    """
    if not data or not data.lstrip().startswith(b"<"):
        return None
    try:
        root = parse_document(data)
    except ResponseError:
        return None
    if root.tag == "action":
        inner = root.find("fault")
        if inner is None:
            return None
        root = inner
    if root.tag != "fault":
        return None
    return Fault(reason=_text(root, "reason"), detail=_text(root, "detail"))


def parse_action(data: bytes) -> ActionResult:
    if not data.strip():
        return ActionResult(status=None)  # async actions answer 202 with no body
    root = parse_document(data, "action")
    fault = root.find("fault")
    return ActionResult(
        status=_text(root, "status"),
        fault=None if fault is None else Fault(_text(fault, "reason"), _text(fault, "detail")),
    )


# ---- request bodies ---------------------------------------------------------------------------


def _sub(parent: Element, tag: str, text: str | None = None, **attrib: str) -> Element:
    child = ET.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = text
    return child


def _disks_element(parent: Element, disk_ids: Iterable[str]) -> None:
    disks = _sub(parent, "disks")
    for disk_id in disk_ids:
        _sub(disks, "disk", id=disk_id)


def build_backup(backup: Backup) -> bytes:
    """The POST body for a new backup: id, from-checkpoint, description and the disks (mandatory)."""
    root = ET.Element("backup", {"id": backup.id} if backup.id else {})
    if backup.description is not None:
        _sub(root, "description", backup.description)
    if backup.from_checkpoint_id:
        _sub(root, "from_checkpoint_id", backup.from_checkpoint_id)
    _disks_element(root, (d.id for d in backup.disks or ()))
    return ET.tostring(root)


def build_action() -> bytes:
    return b"<action/>"


def build_image_transfer(
    *,
    disk_id: str,
    backup_id: str | None,
    inactivity_timeout: int,
    timeout_policy: str = "cancel",
    direction: str = "download",
) -> bytes:
    """A transfer of one disk: a backup's download (ovirt-api.md §6.1), or an upload / plain download
    of a disk (§11.3). The format is always raw: the host's NBD backend converts to the disk's format."""
    root = ET.Element("image_transfer")
    if backup_id is not None:
        _sub(root, "backup", id=backup_id)
    _sub(root, "direction", direction)
    _sub(root, "disk", id=disk_id)
    _sub(root, "format", "raw")
    _sub(root, "inactivity_timeout", str(inactivity_timeout))
    _sub(root, "timeout_policy", timeout_policy)
    return ET.tostring(root)

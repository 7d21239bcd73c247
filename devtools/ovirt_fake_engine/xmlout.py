"""Render engine replies as XML text, the way the real engine lays them out.

Built with string templates plus ``xml.sax.saxutils`` escaping rather than a DOM: listing 10,000
backups must render in well under a second. Shapes follow ovirt-api.md §1.1 (backup), §2
(checkpoint), §5 (fault, action) and the SDK readers (ovirtsdk4/readers.py), which are the oracle in
tests/test_engine_conformance.py. Element order is not significant on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from xml.sax.saxutils import escape

from ovirt_fake_engine.model import Backup, Checkpoint, Disk, Event, ImageTransfer, Vm

API = "/ovirt-engine/api"
DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_ATTR = {'"': "&quot;"}
DateText = Callable[[float], str]


_SPECIAL = re.compile(r'[&<>"]')


def _a(value: str) -> str:
    """Escape for a double-quoted attribute (fast path: ids rarely need it)."""
    return escape(value, _ATTR) if _SPECIAL.search(value) else value


def _el(tag: str, value: object) -> str:
    text = str(value)
    return f"<{tag}>{escape(text) if _SPECIAL.search(text) else text}</{tag}>"


def _ref(tag: str, href: str, ident: str) -> str:
    return f'<{tag} href="{_a(href)}" id="{_a(ident)}"/>'


def document(body: str) -> bytes:
    """Prefix the XML declaration the engine's JAXB marshaller writes and encode."""
    return (DECL + body + "\n").encode()


def collection(tag: str, items: Iterable[str]) -> str:
    """``<tag>items</tag>``; an empty collection is ``<tag/>`` (ovirt-api.md §1.1)."""
    body = "\n".join(items)
    return f"<{tag}>\n{body}\n</{tag}>" if body else f"<{tag}/>"


def fault(reason: str | None, detail: str | None) -> str:
    """``<fault>``: the SDK reads only reason and detail."""
    parts = [_el("reason", reason) if reason is not None else ""]
    parts.append(_el("detail", detail) if detail is not None else "")
    return f"<fault>{''.join(parts)}</fault>"


def action(status: str = "complete") -> str:
    """Reply to a successful action (finalize, checkpoint DELETE): ovirt-api.md §5.2."""
    return f"<action>{_el('status', status)}</action>"


def usage_message() -> str:
    """What the engine's JaxbExceptionMapper sends (400) for a body JAXB cannot unmarshal.

    The real reply also carries a ``<detailed_link>`` describing the expected input; omitted here.
    """
    text = "Request syntactically incorrect. See the description below for the correct usage:"
    return f"<usage_message>{_el('message', text)}</usage_message>"


def api_root(date: str, vms_count: int) -> str:
    """``GET /ovirt-engine/api``: what ``connection.test()`` / system_service().get() read."""
    return (
        f"<api>"
        f'<link href="{API}/vms" rel="vms"/><link href="{API}/disks" rel="disks"/>'
        f'<link href="{API}/imagetransfers" rel="imagetransfers"/>'
        f"<product_info><name>oVirt Engine</name><vendor>ovirt.org</vendor>"
        f"<version><build>6</build><full_version>4.5.6-1.el9</full_version>"
        f"<major>4</major><minor>5</minor><revision>0</revision></version></product_info>"
        f"<summary><vms><active>{vms_count}</active><total>{vms_count}</total></vms></summary>"
        f"{_el('time', date)}</api>"
    )


def host(host_id: str, name: str = "fake-host-1") -> str:
    """A fake host (every one at 127.0.0.1: they share the one imageio daemon)."""
    return (
        f'<host href="{API}/hosts/{_a(host_id)}" id="{_a(host_id)}">'
        f"{_el('name', name)}<address>127.0.0.1</address><status>up</status></host>"
    )


# What the engine's link helper adds to every VM and disk it sends, in a list as in a single GET: the
# actions of the entity's service and the links to its sub-collections (VmService / DiskService of
# the API model 4.5). A real VM in ``GET /vms`` carries all of this and the fields below, so the fake
# sends a reply of the real size (about 12 KB per VM with two disks followed).
VM_ACTIONS = (
    "cancelmigration", "clone", "commitsnapshot", "detach", "export", "exporttoexportdomain",
    "exporttopathonhost", "freezefilesystems", "logon", "maintenance", "migrate", "previewsnapshot",
    "reboot", "reordermacaddresses", "shutdown", "start", "stop", "suspend", "thawfilesystems",
    "ticket", "undosnapshot",
)  # fmt: skip
VM_LINKS = (
    "affinitylabels", "applications", "backups", "cdroms", "checkpoints", "graphicsconsoles",
    "hostdevices", "katelloerrata", "mediateddevices", "nics", "numanodes", "permissions",
    "reporteddevices", "sessions", "snapshots", "statistics", "tags", "watchdogs",
)  # fmt: skip
DISK_ACTIONS = ("copy", "export", "move", "reduce", "refreshlun", "sparsify")
DISK_LINKS = ("disksnapshots", "permissions", "statistics")
_BLANK = "00000000-0000-0000-0000-000000000000"
_ICONS = ("9a1f6f27-8b3a-4d0b-a52e-3c04fe0c5b1e", "4e2b0c8d-7f3e-4a59-9d8c-0b6f1a2e3d4c")
_PROFILES = ("58ca604e-01a7-003f-01de-000000000250", "58ca604e-01a7-003f-01de-000000000252")
_QUOTA = '<quota id="58ca604e-01a7-003f-01de-000000000251"/>'
_VM_SETTINGS = (
    "<bios><boot_menu><enabled>false</enabled></boot_menu><type>q35_sea_bios</type></bios>"
    "<cpu_shares>0</cpu_shares><creation_time>2024-01-15T09:30:00.000+00:00</creation_time>"
    "<delete_protected>false</delete_protected><display><allow_override>false</allow_override>"
    "<copy_paste_enabled>true</copy_paste_enabled><disconnect_action>LOCK_SCREEN</disconnect_action>"
    "<file_transfer_enabled>true</file_transfer_enabled><monitors>1</monitors>"
    "<single_qxl_pci>false</single_qxl_pci><smartcard_enabled>false</smartcard_enabled>"
    "<type>vnc</type></display><high_availability><enabled>false</enabled><priority>0</priority>"
    "</high_availability><io><threads>1</threads></io>"
) + _ref("large_icon", f"{API}/icons/{_ICONS[0]}", _ICONS[0])
_VM_TAIL = (
    "<migration><auto_converge>inherit</auto_converge><compressed>inherit</compressed>"
    "<encrypted>inherit</encrypted></migration><migration_downtime>-1</migration_downtime>"
    "<multi_queues_enabled>true</multi_queues_enabled><origin>ovirt</origin>"
    "<placement_policy><affinity>migratable</affinity></placement_policy>"
    + _ref("small_icon", f"{API}/icons/{_ICONS[1]}", _ICONS[1])
    + '<sso><methods><method id="guest_agent"/></methods></sso><start_paused>false</start_paused>'
    "<stateless>false</stateless><storage_error_resume_behaviour>auto_resume</storage_error_resume_behaviour>"
    "<time_zone><name>Etc/GMT</name></time_zone>"
)
_VM_REFS = (
    _ref("cpu_profile", f"{API}/cpuprofiles/{_PROFILES[0]}", _PROFILES[0])
    + _QUOTA
    + "<next_run_configuration_exists>false</next_run_configuration_exists>"
    "<numa_tune_mode>interleave</numa_tune_mode>"
)
_DISK_SETTINGS = "<propagate_errors>false</propagate_errors>{qcow}<shareable>false</shareable>"
_DISK_REFS = (
    "<wipe_after_delete>false</wipe_after_delete>"
    + _ref("disk_profile", f"{API}/diskprofiles/{_PROFILES[1]}", _PROFILES[1])
    + _QUOTA
)


def _links(base: str, actions: Iterable[str], rels: Iterable[str]) -> str:
    acts = "".join(f'<link href="{base}/{rel}" rel="{rel}"/>' for rel in actions)
    return f"<actions>{acts}</actions>" + "".join(f'<link href="{base}/{rel}" rel="{rel}"/>' for rel in rels)


def vm(v: Vm, cluster_id: str, inline: str | None = None, extra: str = "", cluster: str | None = None) -> str:
    """``<vm>`` with its actions, the sub-collection links a client may follow and the settings a
    real engine sends (bios, display, memory policy, ...; most fixed here, the sizes from the VM).

    ``inline`` ("attachments" or "disk", from ``follow=disk_attachments[.disk]``) puts the VM's
    ``<disk_attachments>`` in place of their link, each with a disk reference or the full disk.
    ``extra`` goes inside (``<initialization>`` for ``all_content=true``); ``cluster``, the whole
    ``<cluster>`` element (``follow=cluster``), replaces the reference to it.
    """
    base = f"{API}/vms/{_a(v.id)}"
    rels = VM_LINKS if inline else ("diskattachments", *VM_LINKS)
    links = _links(base, VM_ACTIONS, rels)
    if inline:
        items = [disk_attachment(v, d, inline == "disk") for d in v.disks]
        links += collection("disk_attachments", items)
    running = v.status in ("up", "powering_up")
    host_ref = _ref("host", f"{API}/hosts/{v.host_id}", v.host_id) if running else ""
    cluster_id = v.cluster_id or cluster_id
    return (
        f'<vm href="{base}" id="{_a(v.id)}">{links}{_el("name", v.name)}{_VM_SETTINGS}'
        f"<cpu><architecture>x86_64</architecture><topology><cores>1</cores>"
        f"{_el('sockets', v.cpus)}<threads>1</threads></topology></cpu>{_el('memory', v.memory)}"
        f"<memory_policy><ballooning>true</ballooning>{_el('guaranteed', v.memory)}"
        f"{_el('max', 4 * v.memory)}</memory_policy>{_VM_TAIL}"
        f"<os><boot><devices><device>hd</device></devices></boot><type>other_linux</type></os>"
        f"<type>server</type><usb><enabled>false</enabled></usb>{_el('status', v.status)}"
        f"{'<start_time>2024-01-15T09:31:00.000+00:00</start_time>' if running else ''}{host_ref}"
        f"{cluster or _ref('cluster', f'{API}/clusters/{cluster_id}', cluster_id)}{_VM_REFS}"
        f"{_ref('original_template', f'{API}/templates/{_BLANK}', _BLANK)}"
        f"{_ref('template', f'{API}/templates/{_BLANK}', _BLANK)}{extra}</vm>"
    )


def disk(d: Disk, href: str | None = None, mode: str | None = None, domain: str | None = None) -> str:
    """A full ``<disk>``; ``mode`` (backup_mode) only inside a backup (ovirt-api.md §1.4).

    ``<storage_domains>`` names the one domain the image lives on (ovirt-img reads
    ``storage_domains[0].id``); ``domain`` is the full ``<storage_domain>`` that
    ``follow=disk.storage_domains`` inlines instead of the reference. ``initial_size`` is an input
    only, the engine never echoes it.
    """
    href = href or f"{API}/disks/{d.id}"
    sd = domain or _ref("storage_domain", f"{API}/storagedomains/{d.storage_domain_id}", d.storage_domain_id)
    qcow = "<qcow_version>qcow2_v3</qcow_version>" if d.format == "cow" else ""
    return (
        f'<disk href="{_a(href)}" id="{_a(d.id)}">{_links(_a(href), DISK_ACTIONS, DISK_LINKS)}'
        f"{_el('actual_size', d.actual_size)}{_el('alias', d.alias)}{_el('backup', d.backup)}"
        f"{_el('backup_mode', mode) if mode else ''}{_el('content_type', d.content_type)}"
        f"{_el('description', d.description) if d.description is not None else ''}"
        f"{_el('format', d.format)}{_el('image_id', d.image_id)}{_el('name', d.alias)}"
        f"{_DISK_SETTINGS.format(qcow=qcow)}{_el('provisioned_size', d.provisioned_size)}"
        f"{_el('sparse', str(d.sparse).lower())}{_el('status', d.status)}"
        f"<storage_type>image</storage_type>{_el('total_size', d.actual_size)}{_DISK_REFS}"
        f"<storage_domains>{sd}</storage_domains></disk>"
    )


def disk_attachment(v: Vm, d: Disk, follow_disk: bool, domain: str | None = None) -> str:
    """``<disk_attachment>`` (id = disk id) with the VM's attachment fields; ``follow=disk``
    inlines the full disk (``domain``: and its storage domain, see :func:`disk`)."""
    att = v.attachment(d)
    inner = disk(d, domain=domain) if follow_disk or domain else _ref("disk", f"{API}/disks/{d.id}", d.id)
    logical = _el("logical_name", att.logical_name) if att.logical_name else ""
    return (
        f'<disk_attachment href="{API}/vms/{_a(v.id)}/diskattachments/{_a(d.id)}" id="{_a(d.id)}">'
        f"{_el('active', str(att.active).lower())}{_el('bootable', str(att.bootable).lower())}"
        f"{_el('interface', att.interface)}{logical}{_el('pass_discard', str(att.pass_discard).lower())}"
        f"{_el('read_only', str(att.read_only).lower())}<uses_scsi_reservation>false</uses_scsi_reservation>"
        f"{inner}{_ref('vm', f'{API}/vms/{v.id}', v.id)}</disk_attachment>"
    )


def backup_disks(b: Backup) -> list[str]:
    """The backup's disks, each with its ``backup_mode``."""
    base = f"{API}/vms/{b.vm_id}/backups/{b.id}/disks"
    return [disk(d, f"{base}/{d.id}", b.modes[d.id]) for d in b.disks]


def backup(b: Backup, date: DateText, follow_disks: bool = False) -> str:
    """``<backup>`` as in ovirt-api.md §1.1: ``<phase>``, never ``<status>``.

    ``<host>`` only for a live legacy backup, ``<snapshot>`` (without ``href``: the engine lost the
    parent it would build one from, commit 27a8d1c) only while a hybrid backup holds its snapshot.
    """
    base = f"{API}/vms/{b.vm_id}/backups/{b.id}"
    if follow_disks:
        disks = collection("disks", backup_disks(b))
    else:
        disks = f'<link href="{_a(base)}/disks" rel="disks"/>'
    return "".join(
        (
            f'<backup href="{_a(base)}" id="{_a(b.id)}">',
            f'<actions><link href="{_a(base)}/finalize" rel="finalize"/></actions>',
            disks,
            f"<creation_date>{date(b.created)}</creation_date>",
            _el("description", b.description) if b.description is not None else "",
            _el("from_checkpoint_id", b.from_checkpoint_id) if b.from_checkpoint_id else "",
            f"<modification_date>{date(b.phase_since)}</modification_date>",
            f"<phase>{b.phase}</phase>",
            _el("to_checkpoint_id", b.to_checkpoint_id) if b.to_checkpoint_id else "",
            _ref("host", f"{API}/hosts/{b.host_id}", b.host_id) if b.host_id else "",
            f'<snapshot id="{_a(b.snapshot_id)}"/>' if b.snapshot_id else "",
            _ref("vm", f"{API}/vms/{b.vm_id}", b.vm_id),
            "</backup>",
        )
    )


def checkpoint_disks(cp: Checkpoint, disks: dict[str, Disk]) -> list[str]:
    """The checkpoint's disks that still exist."""
    base = f"{API}/vms/{cp.vm_id}/checkpoints/{cp.id}/disks"
    return [disk(disks[i], f"{base}/{i}") for i in cp.disk_ids if i in disks]


def checkpoint(
    cp: Checkpoint, date: DateText, disks: dict[str, Disk] | None = None, follow: bool = False
) -> str:
    """``<checkpoint>``: ``parent_id`` absent for the root (ovirt-api.md §2)."""
    base = f"{API}/vms/{cp.vm_id}/checkpoints/{cp.id}"
    if follow and disks is not None:
        inner = collection("disks", checkpoint_disks(cp, disks))
    else:
        inner = f'<link href="{_a(base)}/disks" rel="disks"/>'
    return "".join(
        (
            f'<checkpoint href="{_a(base)}" id="{_a(cp.id)}">',
            inner,
            f"<creation_date>{date(cp.created)}</creation_date>",
            _el("description", cp.description) if cp.description is not None else "",
            _el("parent_id", cp.parent_id) if cp.parent_id else "",
            _el("state", cp.state),
            _ref("vm", f"{API}/vms/{cp.vm_id}", cp.vm_id),
            "</checkpoint>",
        )
    )


def image_transfer(t: ImageTransfer) -> str:
    """``<image_transfer>`` as ImageTransferMapper writes it (ovirt-api.md §6.1).

    The URLs appear only while the session (ticket) exists; ``proxy_url`` equals ``transfer_url``
    because there is no separate imageio proxy. The disk is ``<image id=DISK/>`` without links
    (BackendImageTransferResource.addLinks unsets them); there is no ``<disk>`` and no ``<backup>``.
    """
    base = f"{API}/imagetransfers/{t.id}"
    actions = "".join(
        f'<link href="{_a(base)}/{rel}" rel="{rel}"/>'
        for rel in ("cancel", "extend", "finalize", "pause", "resume")
    )
    urls = ""
    if t.session and t.url:
        urls = _el("proxy_url", t.url) + _el("transfer_url", t.url)
    return "".join(
        (
            f'<image_transfer href="{_a(base)}" id="{_a(t.id)}">',
            f"<actions>{actions}</actions>",
            _el("active", str(t.active).lower()),
            _el("direction", t.direction),
            _el("format", t.format),
            _el("inactivity_timeout", t.inactivity_timeout),
            _el("phase", t.phase),
            urls,
            "<shallow>false</shallow>",
            _el("timeout_policy", t.timeout_policy),
            _el("transferred", t.transferred),
            _ref("host", f"{API}/hosts/{t.host_id}", t.host_id),
            f'<image id="{_a(t.disk_id)}"/>',
            "</image_transfer>",
        )
    )


def event(e: Event, date: DateText) -> str:
    """``<event>`` as EventMapper writes an audit log entry (``index`` = id, origin ``oVirt``)."""
    vm = ""
    if e.vm_id:
        name = _el("name", e.vm_name) if e.vm_name else ""
        vm = f'<vm href="{API}/vms/{_a(e.vm_id)}" id="{_a(e.vm_id)}">{name}</vm>'
    user = f"<user>{_el('name', e.user_name)}</user>" if e.user_name else ""
    return (
        f'<event href="{API}/events/{e.id}" id="{e.id}">{_el("description", e.description)}'
        f"{_el('code', e.code)}<custom_id>-1</custom_id><flood_rate>30</flood_rate>"
        f"{_el('index', e.id)}<origin>oVirt</origin>{_el('severity', e.severity)}"
        f"{_el('time', date(e.time))}{user}{vm}</event>"
    )


# -- hostile replies (fault switches) ---------------------------------------------------------------
_LOL = "".join(f'  <!ENTITY lol{i} "{"".join(f"&lol{i - 1};" for _ in range(10))}">\n' for i in range(1, 10))


def hostile(kind: str, root: str) -> tuple[str, bytes]:
    """A (content type, body) pair that attacks or confuses an XML client expecting ``<root>``."""
    if kind == "html":
        page = (
            "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
            "<body><h1>Proxy authentication required</h1><form>...</form></body></html>\n"
        )
        return "text/html;charset=UTF-8", page.encode()
    if kind == "malformed":
        text = f'{DECL}<{root} href="{API}/x" id="00000000-0000-0000-0000-000000000000">\n  <na'
        return "application/xml", text.encode()
    if kind == "billion_laughs":
        dtd = f'<!DOCTYPE {root} [\n  <!ENTITY lol0 "lol">\n{_LOL}]>\n'
        payload = "&lol9;"
    elif kind == "external_entity":
        dtd = f'<!DOCTYPE {root} [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
        payload = "&xxe;"
    else:
        raise ValueError(f"unknown hostile kind {kind!r}")
    text = f"{DECL}{dtd}<{root}><description>{payload}</description><name>{payload}</name></{root}>"
    return "application/xml", text.encode()

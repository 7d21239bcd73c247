"""Route authenticated ``/ovirt-engine/api/...`` requests to the engine state and render replies.

Kept apart from server.py so the HTTP plumbing (auth, SSO, fault switches, TLS) and the REST
resources can each be read on their own. This module holds the VM, backup, checkpoint and transfer
resources; storage_api.py (data centres, clusters, storage domains, disks) and vm_api.py (making,
changing and removing VMs, NICs) take what is left.
"""

from __future__ import annotations

import ovirtsdk4.types as types

from ovirt_fake_engine import disks as disk_rules
from ovirt_fake_engine import events, storage_api, transfers, vm_api, xmlout
from ovirt_fake_engine.dataplane import DataPlaneError
from ovirt_fake_engine.model import ApiError, Event, Vm
from ovirt_fake_engine.search import Field, search
from ovirt_fake_engine.state import EngineState
from ovirt_fake_engine.wire import BadBody as _BadBody
from ovirt_fake_engine.wire import Reply, xml_reply
from ovirt_fake_engine.wire import cut as _cut
from ovirt_fake_engine.wire import follow as _follow
from ovirt_fake_engine.wire import max_items as _max
from ovirt_fake_engine.wire import q as _q
from ovirt_fake_engine.wire import read as _read

__all__ = ["Reply", "expected_root", "handle"]  # Reply: server.py and engine.py use api.Reply

# Collection segment → (collection root tag, entity root tag); used to craft hostile replies.
_ROOTS = {
    "vms": ("vms", "vm"),
    "disks": ("disks", "disk"),
    "diskattachments": ("disk_attachments", "disk_attachment"),
    "backups": ("backups", "backup"),
    "checkpoints": ("checkpoints", "checkpoint"),
    "hosts": ("hosts", "host"),
    "events": ("events", "event"),
    "imagetransfers": ("image_transfers", "image_transfer"),
    "datacenters": ("data_centers", "data_center"),
    "clusters": ("clusters", "cluster"),
    "storagedomains": ("storage_domains", "storage_domain"),
    "nics": ("nics", "nic"),
}


def expected_root(method: str, parts: list[str]) -> str:
    """The root element a client expects from this request (for ``hostile_next``)."""
    if method == "DELETE" or (method == "POST" and parts and parts[-1] not in _ROOTS):
        return "action"
    if not parts:
        return "api"
    if parts[-1] in _ROOTS:
        return _ROOTS[parts[-1]][1 if method == "POST" else 0]
    return _ROOTS.get(parts[-2] if len(parts) > 1 else "", ("", "vm"))[1]


def handle(
    state: EngineState,
    method: str,
    parts: list[str],
    query: dict[str, list[str]],
    body: bytes,
    base_url: str,
) -> Reply:
    """Serve one API request; engine refusals become a ``<fault>`` or an empty 404."""
    try:
        with state.lock:
            return _route(state, method, parts, query, body, base_url)
    except ApiError as err:
        if err.reason is None:
            return Reply(err.status)
        return xml_reply(err.status, xmlout.fault(err.reason, err.detail))
    except _BadBody:
        return xml_reply(400, xmlout.usage_message())
    except DataPlaneError as err:  # a broken test setup (qemu, imageio) must be loud, not a hang-up
        return xml_reply(500, xmlout.fault("Operation Failed", f"[fake engine data plane: {err}]"))


def _vm_follow(follow: set[str]) -> str | None:
    """What ``follow`` inlines into a VM: ``disk_attachments`` (references to the disks) or
    ``disk_attachments.disk`` (the full disks), as the engine's LinkFollower does (4.3+); None: links."""
    if "disk_attachments.disk" in follow:
        return "disk"
    if "disk_attachments" in follow:
        return "attachments"
    return None


# What ``search=`` can name per collection (VmConditionFieldAutoCompleter and friends), see search.py.
_VM_FIELDS = {
    "name": Field(lambda v: v.name),
    "status": Field(lambda v: v.status, "enum"),
    "id": Field(lambda v: v.id, "id"),
}
_HOST_FIELDS = {
    "name": Field(lambda h: h[1]),
    "status": Field(lambda h: "up", "enum"),
    "id": Field(lambda h: h[0], "id"),
}
_EVENT_FIELDS = {
    "type": Field(lambda e: str(e.code), "int"),
    "severity": Field(lambda e: e.severity, "enum"),
    "message": Field(lambda e: e.description),
}


def _vm_text(v: Vm) -> list[str]:
    return [v.name]


def _host_text(h: tuple[str, str]) -> list[str]:
    return [h[1]]


def _search(query: dict[str, list[str]]) -> tuple[str | None, bool]:
    """The ``search`` text and ``case_sensitive`` (default false, as the engine's collections)."""
    return _q(query, "search"), (_q(query, "case_sensitive") or "false").lower() == "true"


def _events(state: EngineState, query: dict[str, list[str]]) -> list[Event]:
    """Newest first (ORDER BY audit_log_id DESC); ``from=N`` keeps the entries after id N."""
    text, case = _search(query)
    start = _q(query, "from")
    items = state.events[::-1]
    if start is not None:
        try:
            items = [e for e in items if e.id > int(start)]
        except ValueError:
            raise ApiError(400, "Invalid value", f"'{start}' is not a valid value for 'from'") from None
    return search(items, text, _EVENT_FIELDS, events.text_columns, case_sensitive=case)


def _route(
    state: EngineState,
    method: str,
    parts: list[str],
    query: dict[str, list[str]],
    body: bytes,
    base_url: str,
) -> Reply:
    date = state.date_text
    limit = _max(query)
    follow = _follow(query)
    match (method, parts):
        case ("GET", []):
            return xml_reply(200, xmlout.api_root(date(state.now()), len(state.vms)))
        case ("GET", ["vms"]):
            state.settle()
            text, case = _search(query)
            found = search(list(state.vms.values()), text, _VM_FIELDS, _vm_text, case_sensitive=case)
            inline = _vm_follow(follow)
            items = [xmlout.vm(v, state.cluster_id, inline) for v in _cut(found, limit)]
            return xml_reply(200, xmlout.collection("vms", items))
        case ("GET", ["vms", vm_id]):
            state.settle()
            return xml_reply(200, vm_api.vm_xml(state, state.vm(vm_id), query, _vm_follow(follow)))
        case ("GET", ["vms", vm_id, "diskattachments"]):
            vm = state.vm(vm_id)
            sds = storage_api.domains_xml(state) if "disk.storage_domains" in follow else {}
            items = [
                xmlout.disk_attachment(vm, d, "disk" in follow, sds.get(d.storage_domain_id))
                for d in vm.disks
            ]
            return xml_reply(200, xmlout.collection("disk_attachments", _cut(items, limit)))
        case ("GET", ["vms", vm_id, "diskattachments", disk_id]):
            vm = state.vm(vm_id)
            for d in vm.disks:
                if d.id == disk_id:
                    return xml_reply(200, xmlout.disk_attachment(vm, d, "disk" in follow))
            raise ApiError(404)
        case ("GET", ["vms", vm_id, "backups"]):
            backups = state.backups(vm_id)[:limit] if limit is not None else state.backups(vm_id)
            items = [xmlout.backup(b, date, "disks" in follow) for b in backups]
            return xml_reply(200, xmlout.collection("backups", items))
        case ("POST", ["vms", vm_id, "backups"]):
            state.vm(vm_id)  # unknown VM: 404 before the body is looked at
            new = _read(body, types.Backup)
            assert isinstance(new, types.Backup)
            disk_ids = [d.id for d in (new.disks or [])]
            if None in disk_ids:
                raise ApiError(400, "Incomplete parameters", "Disk [id] required for add")
            b = state.start_backup(
                vm_id,
                disk_ids,
                backup_id=new.id,
                from_checkpoint_id=new.from_checkpoint_id,
                description=new.description,
                query=query,
            )
            location = f"{base_url}{xmlout.API}/vms/{vm_id}/backups/{b.id}"
            return xml_reply(201, xmlout.backup(b, date), {"Location": location})
        case ("GET", ["vms", vm_id, "backups", backup_id]):
            b = state.backup(vm_id, backup_id)
            return xml_reply(200, xmlout.backup(b, date, "disks" in follow))
        case ("POST", ["vms", vm_id, "backups", backup_id, "finalize"]):
            state.backup(vm_id, backup_id)  # 404 first (the handler calls get())
            _read(body, types.Action)
            state.finalize(vm_id, backup_id)
            if _q(query, "async") == "true":
                return Reply(202)  # non-blocking action: no body (ovirt-api.md §4)
            return xml_reply(200, xmlout.action())
        case ("GET", ["vms", vm_id, "backups", backup_id, "disks"]):
            items = xmlout.backup_disks(state.backup(vm_id, backup_id))
            return xml_reply(200, xmlout.collection("disks", _cut(items, limit)))
        case ("GET", ["vms", vm_id, "backups", backup_id, "disks", disk_id]):
            b = state.backup(vm_id, backup_id)
            for d, text in zip(b.disks, xmlout.backup_disks(b), strict=True):
                if d.id == disk_id:
                    return xml_reply(200, text)
            raise ApiError(404)
        case ("GET", ["vms", vm_id, "checkpoints"]):
            cps = state.checkpoints(vm_id)
            items = [xmlout.checkpoint(c, date, state.disks, "disks" in follow) for c in cps]
            return xml_reply(200, xmlout.collection("checkpoints", _cut(items, limit)))
        case ("GET", ["vms", vm_id, "checkpoints", cp_id]):
            cp = state.checkpoint(vm_id, cp_id)
            return xml_reply(200, xmlout.checkpoint(cp, date, state.disks, "disks" in follow))
        case ("DELETE", ["vms", vm_id, "checkpoints", cp_id]):
            state.remove_checkpoint(vm_id, cp_id)
            return xml_reply(200, xmlout.action())
        case ("GET", ["vms", vm_id, "checkpoints", cp_id, "disks"]):
            items = xmlout.checkpoint_disks(state.checkpoint(vm_id, cp_id), state.disks)
            return xml_reply(200, xmlout.collection("disks", _cut(items, limit)))
        case ("GET", ["vms", vm_id, "checkpoints", cp_id, "disks", disk_id]):
            cp = state.checkpoint(vm_id, cp_id)
            if disk_id not in cp.disk_ids or disk_id not in state.disks:
                raise ApiError(404)
            return xml_reply(200, xmlout.checkpoint_disks(cp, {disk_id: state.disks[disk_id]})[0])
        case ("GET", ["disks"]):
            state.settle()
            items = [xmlout.disk(d) for d in state.disks.values()]
            return xml_reply(200, xmlout.collection("disks", _cut(items, limit)))
        case ("GET", ["disks", disk_id]):
            return xml_reply(200, xmlout.disk(disk_rules.get(state, disk_id)))
        case ("GET", ["hosts"]):
            text, case = _search(query)
            hosts = search(list(state.hosts.items()), text, _HOST_FIELDS, _host_text, case_sensitive=case)
            return xml_reply(200, xmlout.collection("hosts", [xmlout.host(*h) for h in _cut(hosts, limit)]))
        case ("GET", ["events"]):
            state.settle()
            items = [xmlout.event(e, date) for e in _cut(_events(state, query), limit)]
            return xml_reply(200, xmlout.collection("events", items))
        case ("GET", ["hosts", host_id]):
            if host_id not in state.hosts:
                raise ApiError(404)
            return xml_reply(200, xmlout.host(host_id, state.hosts[host_id]))
        case ("GET", ["imagetransfers"]):
            state.settle()
            items = [xmlout.image_transfer(t) for t in state.transfers.values()]
            return xml_reply(200, xmlout.collection("image_transfers", _cut(items, limit)))
        case ("POST", ["imagetransfers"]):
            req = _read(body, types.ImageTransfer)
            assert isinstance(req, types.ImageTransfer)
            t = transfers.create(state, req)
            location = f"{base_url}{xmlout.API}/imagetransfers/{t.id}"
            return xml_reply(201, xmlout.image_transfer(t), {"Location": location})
        case ("GET", ["imagetransfers", transfer_id]):
            return xml_reply(200, xmlout.image_transfer(transfers.get(state, transfer_id)))
        case ("POST", ["imagetransfers", transfer_id, verb]) if verb in transfers.ACTIONS:
            transfers.get(state, transfer_id)  # 404 before the body is looked at
            _read(body, types.Action)
            transfers.ACTIONS[verb](state, transfer_id)
            return xml_reply(200, xmlout.action())
        case _:
            for router in (storage_api.route, vm_api.route):
                reply = router(state, method, parts, query, body, base_url)
                if reply is not None:
                    return reply
            return Reply(404)

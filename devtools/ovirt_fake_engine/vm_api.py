"""REST resources that make and change VMs: ``POST /vms``, ``DELETE /vms/{id}``, ``start``/``stop``,
``POST /vms/{id}/diskattachments``, NICs, vNIC profiles, and the VM with ``all_content=true``.

The rules are in vms.py; api.py keeps the read-only VM resources and calls :func:`vm_xml` for one VM.
"""

from __future__ import annotations

import ovirtsdk4.types as types

from ovirt_fake_engine import ovf, vms, xml_inventory, xml_vms, xmlout
from ovirt_fake_engine.model import Vm, not_found
from ovirt_fake_engine.state import EngineState
from ovirt_fake_engine.wire import Reply, cut, flag, follow, max_items, read, xml_reply


def vm_xml(state: EngineState, vm: Vm, query: dict[str, list[str]], inline: str | None = None) -> str:
    """``GET /vms/{id}``; ``all_content=true`` adds the OVF configuration, ``follow=cluster`` the whole
    cluster in place of its reference, as the engine's LinkFollower does (``inline``: xmlout.vm)."""
    extra = ""
    cluster = state.inventory.clusters.get(vm.cluster_id or state.cluster_id)
    if flag(query, "all_content"):
        extra = xml_vms.initialization(ovf.write(vm, cluster.name if cluster else "Default"))
    followed = xml_inventory.cluster(cluster) if cluster and "cluster" in follow(query) else None
    return xmlout.vm(vm, state.cluster_id, inline, extra, followed)


def route(
    state: EngineState,
    method: str,
    parts: list[str],
    query: dict[str, list[str]],
    body: bytes,
    base_url: str,
) -> Reply | None:
    """Serve one request under the engine lock, or None when the path is not ours."""
    limit = max_items(query)
    inv = state.inventory
    match (method, parts):
        case ("POST", ["vms"]):
            vm = vms.create(state, read(body, types.Vm))
            location = f"{base_url}{xmlout.API}/vms/{vm.id}"
            return xml_reply(201, xmlout.vm(vm, state.cluster_id), {"Location": location})
        case ("DELETE", ["vms", vm_id]):
            vms.remove(state, vm_id, flag(query, "detach_only"))
            return xml_reply(200, xmlout.action())
        case ("POST", ["vms", vm_id, ("start" | "stop") as verb]):
            state.vm(vm_id)  # 404 before the body is looked at
            read(body, types.Action)
            (vms.start if verb == "start" else vms.stop)(state, vm_id)
            return xml_reply(200, xmlout.action())
        case ("POST", ["vms", vm_id, "diskattachments"]):
            state.vm(vm_id)
            disk, _ = vms.attach(state, vm_id, read(body, types.DiskAttachment))
            vm = state.vm(vm_id)
            location = f"{base_url}{xmlout.API}/vms/{vm.id}/diskattachments/{disk.id}"
            return xml_reply(201, xmlout.disk_attachment(vm, disk, False), {"Location": location})
        case ("GET", ["vms", vm_id, "nics"]):
            vm = state.vm(vm_id)
            items = [xml_vms.nic(vm, n) for n in vm.nics]
            return xml_reply(200, xmlout.collection("nics", cut(items, limit)))
        case ("GET", ["vms", vm_id, "nics", nic_id]):
            return xml_reply(200, xml_vms.nic(state.vm(vm_id), vms.nic(state, vm_id, nic_id)))
        case ("GET", ["vnicprofiles"]):
            items = [xml_vms.vnic_profile(inv.vnic_profile_id, inv.network_id)]
            return xml_reply(200, xmlout.collection("vnic_profiles", cut(items, limit)))
        case ("GET", ["vnicprofiles", profile_id]):
            if profile_id != inv.vnic_profile_id:
                raise not_found()
            return xml_reply(200, xml_vms.vnic_profile(inv.vnic_profile_id, inv.network_id))
        case _:
            return None

"""REST resources for disks and where they live: data centres, clusters, storage domains.

``POST /disks`` and ``DELETE /disks/{id}`` follow disks.py; ``GET /disks[/{id}]`` is in api.py.

api.py hands over every request it has no route for; when neither this module nor vm_api.py has
one, the answer is a 404 with an empty body (the engine's answer to an unknown path or id).
Searches accept ``name=X`` (with ``*``), and data centres also ``storage.name=X`` (what
ovirt-img's ``find_host`` sends).
"""

from __future__ import annotations

import ovirtsdk4.types as types

from ovirt_fake_engine import disks, xml_inventory, xmlout
from ovirt_fake_engine.inventory import name_matcher
from ovirt_fake_engine.model import Disk, StorageDomain
from ovirt_fake_engine.state import EngineState
from ovirt_fake_engine.wire import Reply, cut, max_items, q, read, xml_reply


def route(
    state: EngineState,
    method: str,
    parts: list[str],
    query: dict[str, list[str]],
    body: bytes,
    base_url: str,
) -> Reply | None:
    """Serve one request under the engine lock (api.handle holds it and maps faults), or None
    when the path is not ours."""
    inv = state.inventory
    limit = max_items(query)
    match (method, parts):
        case ("GET", ["datacenters"]):
            dcs = list(inv.data_centers.values())
            m = name_matcher(q(query, "search"), ("name", "storage.name"))
            if m is not None:
                field, rx = m
                if field == "name":
                    dcs = [dc for dc in dcs if rx.fullmatch(dc.name)]
                else:
                    homes = {
                        sd.data_center_id for sd in inv.storage_domains.values() if rx.fullmatch(sd.name)
                    }
                    dcs = [dc for dc in dcs if dc.id in homes]
            items = [xml_inventory.data_center(dc) for dc in dcs]
            return xml_reply(200, xmlout.collection("data_centers", cut(items, limit)))
        case ("GET", ["datacenters", dc_id]):
            return xml_reply(200, xml_inventory.data_center(inv.data_center(dc_id)))
        case ("GET", ["clusters"]):
            m = name_matcher(q(query, "search"))
            clusters = [c for c in inv.clusters.values() if m is None or m[1].fullmatch(c.name)]
            items = [xml_inventory.cluster(c) for c in clusters]
            return xml_reply(200, xmlout.collection("clusters", cut(items, limit)))
        case ("GET", ["clusters", cluster_id]):
            return xml_reply(200, xml_inventory.cluster(inv.cluster(cluster_id)))
        case ("GET", ["storagedomains"]):
            m = name_matcher(q(query, "search"))
            sds = [sd for sd in inv.storage_domains.values() if m is None or m[1].fullmatch(sd.name)]
            items = [_storage_domain(state, sd) for sd in sds]
            return xml_reply(200, xmlout.collection("storage_domains", cut(items, limit)))
        case ("GET", ["storagedomains", sd_id]):
            return xml_reply(200, _storage_domain(state, inv.storage_domain(sd_id)))
        case ("GET", ["storagedomains", sd_id, "disks"]):
            sd = inv.storage_domain(sd_id)
            base = f"{xmlout.API}/storagedomains/{sd.id}/disks"
            items = [xmlout.disk(d, f"{base}/{d.id}") for d in _disks_on(state, sd)]
            return xml_reply(200, xmlout.collection("disks", cut(items, limit)))
        case ("GET", ["storagedomains", sd_id, "disks", disk_id]):
            sd = inv.storage_domain(sd_id)
            for d in _disks_on(state, sd):
                if d.id == disk_id:
                    return xml_reply(200, xmlout.disk(d, f"{xmlout.API}/storagedomains/{sd.id}/disks/{d.id}"))
            return Reply(404)
        case ("POST", ["disks"]):
            d = disks.add(state, read(body, types.Disk))
            location = f"{base_url}{xmlout.API}/disks/{d.id}"
            return xml_reply(201, xmlout.disk(d), {"Location": location})
        case ("DELETE", ["disks", disk_id]):
            disks.remove(state, disk_id)
            return xml_reply(200, xmlout.action())
        case _:
            return None


def _disks_on(state: EngineState, sd: StorageDomain) -> list[Disk]:
    return [d for d in state.disks.values() if d.storage_domain_id == sd.id]


def domains_xml(state: EngineState) -> dict[str, str]:
    """Every storage domain's full XML by id (for ``follow=disk.storage_domains``)."""
    return {sd.id: _storage_domain(state, sd) for sd in state.inventory.storage_domains.values()}


def _storage_domain(state: EngineState, sd: StorageDomain) -> str:
    disks = _disks_on(state, sd)
    used = sum(d.actual_size for d in disks)
    committed = sum(d.provisioned_size for d in disks)
    return xml_inventory.storage_domain(sd, used, committed)

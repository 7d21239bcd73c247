"""Where things live: the data centre, its cluster and its storage domains.

One data centre ``Default`` with one cluster ``Default`` (the one every VM runs in), the management
network ``ovirtmgmt`` with its vNIC profile and the Default MAC pool, and two data
domains: ``data`` on NFS (a file domain) and ``data2`` on iSCSI (a block domain, with the block
rules of ovirt-api.md §11.2: sparse raw refused, qcow2 allocated at ``initial_size``). The images of
both live in the same directory on the data plane; only the rules differ.
"""

from __future__ import annotations

import re
import uuid

from ovirt_fake_engine.model import GIB, ApiError, Cluster, DataCenter, StorageDomain, not_found


class Inventory:
    """Data centres, clusters and storage domains by id, with the engine's name lookups."""

    def __init__(self, cluster_id: str) -> None:
        dc = DataCenter(id=str(uuid.uuid4()), name="Default")
        self.data_centers: dict[str, DataCenter] = {dc.id: dc}
        cluster = Cluster(id=cluster_id, name="Default", data_center_id=dc.id)
        self.clusters: dict[str, Cluster] = {cluster.id: cluster}
        self.storage_domains: dict[str, StorageDomain] = {}
        self.network_id = str(uuid.uuid4())  # the management network, ovirtmgmt
        self.vnic_profile_id = str(uuid.uuid4())  # its vNIC profile, also ovirtmgmt
        self._mac_counter = 0
        for name, kind, size in (("data", "nfs", 1024 * GIB), ("data2", "iscsi", 512 * GIB)):
            sd = StorageDomain(
                id=str(uuid.uuid4()), name=name, storage_type=kind, data_center_id=dc.id, size=size
            )
            self.storage_domains[sd.id] = sd

    @property
    def default_storage_domain(self) -> StorageDomain:
        """``data``: where a disk goes when a test does not say."""
        return self.storage_domain_named("data")

    def storage_domain(self, sd_id: str) -> StorageDomain:
        """By id, or a 404 with an empty body."""
        sd = self.storage_domains.get(sd_id)
        if sd is None:
            raise not_found()
        return sd

    def storage_domain_named(self, name: str) -> StorageDomain:
        """By exact name (the engine compares ``getStorageName().equals``), else KeyError."""
        for sd in self.storage_domains.values():
            if sd.name == name:
                return sd
        raise KeyError(name)

    def resolve_storage_domain(self, name_or_id: str) -> StorageDomain:
        """A test's ``DiskSpec.storage_domain``: an id or a name."""
        sd = self.storage_domains.get(name_or_id)
        return sd if sd is not None else self.storage_domain_named(name_or_id)

    def new_mac(self, in_use: set[str]) -> str:
        """The next free address of the Default MAC pool (56:6f:xx:xx:xx:xx, the engine's range)."""
        while True:
            self._mac_counter += 1
            n = self._mac_counter
            mac = "56:6f:" + ":".join(f"{(n >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))
            if mac not in in_use:
                return mac

    def cluster(self, cluster_id: str) -> Cluster:
        """By id, or a 404 with an empty body."""
        c = self.clusters.get(cluster_id)
        if c is None:
            raise not_found()
        return c

    def data_center(self, dc_id: str) -> DataCenter:
        """By id, or a 404 with an empty body."""
        dc = self.data_centers.get(dc_id)
        if dc is None:
            raise not_found()
        return dc


def name_matcher(
    search: str | None, fields: tuple[str, ...] = ("name",)
) -> tuple[str, re.Pattern[str]] | None:
    """Parse ``FIELD=VALUE`` (``*`` wildcards, case-insensitive like the engine's ILIKE).

    None for an empty search; a 400 fault for anything else (the fake knows no other syntax).
    """
    if search is None or not search.strip():
        return None
    alternatives = "|".join(re.escape(f) for f in fields)
    m = re.fullmatch(rf"\s*({alternatives})\s*=\s*(\S+)\s*", search)
    if m is None:
        raise ApiError(
            400, "Operation Failed", f"[fake engine: unsupported search {search!r}, use {fields[0]}=X]"
        )
    rx = re.compile(".*".join(re.escape(p) for p in m.group(2).split("*")), re.IGNORECASE)
    return m.group(1), rx

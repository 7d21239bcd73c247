"""``/storagedomains`` and ``/clusters``: where restored disks and VMs go, looked up before anything is
created so a wrong name fails with nothing to undo."""

from __future__ import annotations

from typing import TypeVar

from ovbackup.engine import xml
from ovbackup.engine.model import Cluster, StorageDomain
from ovbackup.engine.services.base import UUID_RE, Service
from ovbackup.errors import NotFoundError

T = TypeVar("T", StorageDomain, Cluster)


def _pick(items: list[T], ref: str, what: str, listing: str) -> T:
    """By id, else by exact name (names are unique per engine for both)."""
    if UUID_RE.match(ref):
        for item in items:
            if item.id == ref:
                return item
    for item in items:
        if item.name == ref:
            return item
    known = ", ".join(sorted(i.label for i in items)) or "none"
    raise NotFoundError(f"{what} {ref!r} not found", hint=f"{listing}: {known}")


class StorageDomainsService(Service):
    def list(self, *, timeout: float | None = None) -> list[StorageDomain]:
        return self._get_many(self.path, "storage_domain", xml.storage_domain_from, timeout=timeout)

    def find(self, ref: str, *, timeout: float | None = None) -> StorageDomain:
        return _pick(self.list(timeout=timeout), ref, "storage domain", "storage domains")


class ClustersService(Service):
    def list(self, *, timeout: float | None = None) -> list[Cluster]:
        return self._get_many(self.path, "cluster", xml.cluster_from, timeout=timeout)

    def find(self, ref: str, *, timeout: float | None = None) -> Cluster:
        return _pick(self.list(timeout=timeout), ref, "cluster", "clusters")


def pick(items: list[T], ref: str, what: str) -> T:
    """Choose from a list already fetched (one GET for many lookups)."""
    listing = {"storage domain": "storage domains", "cluster": "clusters"}.get(what, what)
    return _pick(items, ref, what, listing)


__all__ = ["ClustersService", "StorageDomainsService", "pick"]

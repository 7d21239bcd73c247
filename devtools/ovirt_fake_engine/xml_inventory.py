"""XML of the data centre, clusters and storage domains, laid out as the engine's mappers write them.

Shapes follow the SDK readers (ovirtsdk4/readers.py: DataCenterReader, ClusterReader,
StorageDomainReader) and the engine's StorageDomainMapper: ``type`` is the domain's role (data),
``storage/type`` the technology (nfs, iscsi), sizes in bytes. A domain listed at the top level
carries no ``status`` (the engine shows that per data centre attachment) but ``external_status``.
"""

from __future__ import annotations

from ovirt_fake_engine.model import Cluster, DataCenter, StorageDomain
from ovirt_fake_engine.xmlout import API, _a, _el, _ref

_VERSION = "<version><major>4</major><minor>7</minor></version>"


def data_center(dc: DataCenter) -> str:
    """``<data_center>``: a shared (not local) pool, up, storage format v5."""
    base = f"{API}/datacenters/{dc.id}"
    links = "".join(f'<link href="{_a(base)}/{rel}" rel="{rel}"/>' for rel in ("clusters", "storagedomains"))
    return (
        f'<data_center href="{_a(base)}" id="{_a(dc.id)}">{links}{_el("name", dc.name)}'
        f"<local>false</local><quota_mode>disabled</quota_mode><status>up</status>"
        f"<storage_format>v5</storage_format>{_VERSION}</data_center>"
    )


def cluster(c: Cluster) -> str:
    """``<cluster>`` with its CPU and compatibility version, in its data centre."""
    base = f"{API}/clusters/{c.id}"
    dc = _ref("data_center", f"{API}/datacenters/{c.data_center_id}", c.data_center_id)
    return (
        f'<cluster href="{_a(base)}" id="{_a(c.id)}">{_el("name", c.name)}'
        f"<cpu><architecture>x86_64</architecture><type>Intel Cascadelake Server Family</type></cpu>"
        f"<firewall_type>firewalld</firewall_type><switch_type>legacy</switch_type>"
        f"{_VERSION}{dc}</cluster>"
    )


def storage_domain(sd: StorageDomain, used: int, committed: int) -> str:
    """``<storage_domain>``; ``used``/``committed`` are what the disks on it take and promise."""
    base = f"{API}/storagedomains/{sd.id}"
    links = "".join(f'<link href="{_a(base)}/{rel}" rel="{rel}"/>' for rel in ("disks", "diskprofiles"))
    if sd.block:
        storage = (
            f'<storage><type>{sd.storage_type}</type><volume_group id="vg-{_a(sd.id[:8])}">'
            f"</volume_group></storage>"
        )
    else:
        storage = (
            f"<storage><type>{sd.storage_type}</type><address>127.0.0.1</address>"
            f"<nfs_version>auto</nfs_version><path>/exports/{_a(sd.name)}</path></storage>"
        )
    dc = _ref("data_center", f"{API}/datacenters/{sd.data_center_id}", sd.data_center_id)
    return (
        f'<storage_domain href="{_a(base)}" id="{_a(sd.id)}">{links}{_el("name", sd.name)}'
        f"{_el('available', max(sd.size - used, 0))}<backup>false</backup>"
        f"<block_size>512</block_size>{_el('committed', committed)}"
        f"<critical_space_action_blocker>5</critical_space_action_blocker>"
        f"<discard_after_delete>false</discard_after_delete><external_status>ok</external_status>"
        f"{_el('master', str(sd.name == 'data').lower())}{storage}"
        f"<storage_format>v5</storage_format>"
        f"{_el('supports_discard', str(sd.block).lower())}"
        f"<supports_discard_zeroes_data>false</supports_discard_zeroes_data>"
        f"<type>data</type>{_el('used', used)}<warning_low_space_indicator>10"
        f"</warning_low_space_indicator><wipe_after_delete>false</wipe_after_delete>"
        f"<data_centers>{dc}</data_centers></storage_domain>"
    )

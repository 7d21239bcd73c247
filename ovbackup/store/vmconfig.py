"""What a restore needs besides the images, recorded at backup time (ovirt-api.md §11.1).

The engine's OVF alone is hard to read and drops nothing a new VM needs; beside it we keep the cluster,
each disk's storage domain, format, sparseness, backup flag, content type, size and attachment
(interface, bootable, active, logical name), and the NICs. It lives in the catalog's restore point and,
whole, in ``<point>.config.json`` beside the images, so a catalog lost or damaged still leaves each
point restorable from its own directory listing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_SUFFIX = ".config.json"


@dataclass(frozen=True)
class SavedDisk:
    id: str
    alias: str | None
    format: str | None  # the engine's: cow | raw
    sparse: bool | None
    backup: str | None  # incremental | none
    content_type: str | None
    provisioned_size: int | None
    storage_domain_id: str | None
    storage_domain_name: str | None
    interface: str | None
    bootable: bool | None
    active: bool | None
    pass_discard: bool | None = None
    read_only: bool | None = None
    logical_name: str | None = None


@dataclass(frozen=True)
class SavedNic:
    name: str | None
    interface: str | None
    mac: str | None
    vnic_profile_id: str | None


@dataclass(frozen=True)
class VmConfig:
    vm_id: str
    vm_name: str
    cluster_id: str | None
    cluster_name: str | None
    ovf: str | None  # the engine's OVF text, as it sent it
    disks: tuple[SavedDisk, ...] = field(default_factory=tuple)
    nics: tuple[SavedNic, ...] = field(default_factory=tuple)

    def disk(self, disk_id: str) -> SavedDisk | None:
        return next((d for d in self.disks if d.id == disk_id), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VmConfig:
        def only(kind: type[Any], raw: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in raw.items() if k in kind.__dataclass_fields__}

        base = only(cls, data)
        return cls(
            **{
                **base,
                "disks": tuple(SavedDisk(**only(SavedDisk, d)) for d in data.get("disks", ())),
                "nics": tuple(SavedNic(**only(SavedNic, n)) for n in data.get("nics", ())),
            }
        )


def config_file_name(point: str) -> str:
    return f"{point}{CONFIG_SUFFIX}"


def encode(config: VmConfig) -> bytes:
    return json.dumps(config.to_json(), indent=2).encode() + b"\n"


def read_config_file(path: Path) -> VmConfig:
    return VmConfig.from_json(json.loads(path.read_bytes()))

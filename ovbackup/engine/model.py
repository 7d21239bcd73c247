"""The engine's resources as frozen dataclasses, with the engine's own spellings; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class BackupPhase(str, Enum):
    """``<phase>`` of a backup (ovirt-api.md §1.3), in the engine's declaration order."""

    INITIALIZING = "initializing"
    STARTING = "starting"
    READY = "ready"
    FINALIZING = "finalizing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (BackupPhase.SUCCEEDED, BackupPhase.FAILED)


class DiskFormat(str, Enum):
    COW = "cow"
    RAW = "raw"


class DiskBackup(str, Enum):
    """Whether a disk is enabled for incremental backup (``<backup>``)."""

    NONE = "none"
    INCREMENTAL = "incremental"


class DiskBackupMode(str, Enum):
    """How a disk is taken in the current backup (``<backup_mode>``)."""

    FULL = "full"
    INCREMENTAL = "incremental"


class CheckpointState(str, Enum):
    CREATED = "created"
    INVALID = "invalid"


class ImageTransferPhase(str, Enum):
    UNKNOWN = "unknown"
    INITIALIZING = "initializing"
    TRANSFERRING = "transferring"
    RESUMING = "resuming"
    PAUSED_SYSTEM = "paused_system"
    PAUSED_USER = "paused_user"
    CANCELLED = "cancelled"
    FINALIZING_SUCCESS = "finalizing_success"
    FINALIZING_FAILURE = "finalizing_failure"
    FINISHED_SUCCESS = "finished_success"
    FINISHED_FAILURE = "finished_failure"
    CANCELLED_SYSTEM = "cancelled_system"
    CANCELLED_USER = "cancelled_user"
    FINALIZING_CLEANUP = "finalizing_cleanup"
    FINISHED_CLEANUP = "finished_cleanup"


@dataclass(frozen=True)
class Fault:
    reason: str | None
    detail: str | None


@dataclass(frozen=True)
class Disk:
    id: str
    name: str | None = None
    format: DiskFormat | None = None
    backup: DiskBackup | None = None
    backup_mode: DiskBackupMode | None = None
    provisioned_size: int | None = None
    actual_size: int | None = None
    status: str | None = None
    sparse: bool | None = None
    content_type: str | None = None
    storage_domains: tuple[StorageDomain, ...] = ()  # ids; names when the engine inlined them
    initial_size: int | None = None  # only sent when creating a disk (block domains)

    @property
    def label(self) -> str:
        """What messages call it: its alias, else its id."""
        return self.name or self.id


@dataclass(frozen=True)
class DiskAttachment:
    disk: Disk
    active: bool | None = None
    interface: str | None = None  # virtio, virtio_scsi, ide, sata, spapr_vscsi
    bootable: bool | None = None
    pass_discard: bool | None = None
    read_only: bool | None = None
    logical_name: str | None = None  # what the guest agent reports, e.g. /dev/sda


@dataclass(frozen=True)
class Nic:
    id: str
    name: str | None = None
    interface: str | None = None
    mac: str | None = None
    vnic_profile_id: str | None = None


# Storage types whose domains hold volumes as LVs: no sparse raw, qcow2 allocated at initial_size
# (ovirt-api.md §11.2).
BLOCK_STORAGE_TYPES = frozenset({"iscsi", "fcp"})


@dataclass(frozen=True)
class StorageDomain:
    id: str
    name: str | None = None
    type: str | None = None  # data, iso, export, image, ...
    storage_type: str | None = None  # nfs, iscsi, fcp, glusterfs, localfs, posixfs, ...
    status: str | None = None
    available: int | None = None

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def is_block(self) -> bool:
        return self.storage_type in BLOCK_STORAGE_TYPES


@dataclass(frozen=True)
class Cluster:
    id: str
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class Vm:
    """A VM. ``disks`` is None unless the engine inlined them (``follow=disk_attachments.disk``);
    ``host_id`` is the host it runs on (only while it runs)."""

    id: str
    name: str | None = None
    status: str | None = None
    host_id: str | None = None
    disks: tuple[DiskAttachment, ...] | None = None
    cluster_id: str | None = None
    cluster_name: str | None = None  # only when the engine inlined the cluster (follow=cluster)
    configuration: str | None = None  # the OVF (GET ?all_content=true), ovirt-api.md §11.1

    @property
    def label(self) -> str:
        """What messages call it: its name, else its id."""
        return self.name or self.id


@dataclass(frozen=True)
class VmSummary:
    """A VM with its disk counts, for finding names and incremental-ready disks."""

    vm: Vm
    disks: int
    incremental_disks: int


@dataclass(frozen=True)
class Backup:
    """A VM backup. ``disks`` is None when the engine did not inline them (it only sends a link)."""

    id: str | None = None
    phase: BackupPhase | None = None
    from_checkpoint_id: str | None = None
    to_checkpoint_id: str | None = None
    creation_date: datetime | None = None
    modification_date: datetime | None = None
    description: str | None = None
    vm_id: str | None = None
    host_id: str | None = None
    snapshot_id: str | None = None
    disks: tuple[Disk, ...] | None = None


@dataclass(frozen=True)
class Checkpoint:
    id: str
    parent_id: str | None = None
    creation_date: datetime | None = None
    state: CheckpointState | None = None
    description: str | None = None
    vm_id: str | None = None
    disks: tuple[Disk, ...] | None = None


@dataclass(frozen=True)
class ImageTransfer:
    """``disk_id`` is the engine's ``<image id>``; the reply never names the backup."""

    id: str | None = None
    phase: ImageTransferPhase | None = None
    transfer_url: str | None = None
    proxy_url: str | None = None
    transferred: int | None = None
    inactivity_timeout: int | None = None
    disk_id: str | None = None
    host_id: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class ActionResult:
    status: str | None
    fault: Fault | None = None

"""The engine's entities and refusals: plain data, no rules (those are in state.py).

Ids are uuid4 strings, phases and states the lower-case wire values (``"ready"``, ``"invalid"``),
so tests can compare them with what a client printed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

GIB = 1024**3
TERMINAL = frozenset({"succeeded", "failed"})


class ApiError(Exception):
    """An engine refusal: an HTTP status and a ``<fault>``, or an empty body when ``reason`` is None."""

    def __init__(self, status: int, reason: str | None = None, detail: str | None = None) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


def not_found() -> ApiError:
    """GET/finalize/DELETE of a missing entity: 404 with an EMPTY body (ovirt-api.md §5.1)."""
    return ApiError(404)


def failed(status: int, message: str) -> ApiError:
    """A validation failure: reason ``Operation Failed``, detail printed as a Java list ``[...]``."""
    return ApiError(status, "Operation Failed", f"[{message}]")


def check_guid(value: str) -> str:
    """Ids in request bodies must be UUIDs, else the engine's MalformedIdExceptionMapper answers 400."""
    try:
        uuid.UUID(value)
    except ValueError:
        raise ApiError(400, "Operation failed", f"Invalid UUID string: {value}") from None
    return value


@dataclass
class DiskSpec:
    """What a test asks for when it creates a VM disk; ``id`` defaults to a fresh uuid4."""

    alias: str
    format: str = "cow"
    backup: str = "incremental"
    provisioned_size: int = GIB
    actual_size: int | None = None
    id: str | None = None
    storage_domain: str | None = None  # a name or id; None: the file domain "data"
    sparse: bool | None = None  # None: qcow2 sparse, raw preallocated


@dataclass(eq=False)
class Disk:
    """A disk image on one storage domain, attached to one VM (``vm_id``) or floating (None)."""

    id: str
    alias: str
    format: str
    backup: str
    provisioned_size: int
    actual_size: int
    vm_id: str | None
    storage_domain_id: str = ""
    sparse: bool = True
    status: str = "ok"  # locked while being created or transferred, illegal after a failed upload
    content_type: str = "data"
    description: str | None = None
    initial_size: int | None = None
    ready_at: float | None = None  # engine-clock time a disk being created becomes ok
    image_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the volume (OVF diskId)


@dataclass
class Attachment:
    """How a disk is attached to its VM (DiskVmElement): the disk attachment's fields."""

    interface: str = "virtio_scsi"
    bootable: bool = False
    active: bool = True
    pass_discard: bool = False
    read_only: bool = False
    logical_name: str | None = None


@dataclass(eq=False)
class Nic:
    """A VM's network interface on the one vNIC profile (``ovirtmgmt``)."""

    id: str
    name: str
    interface: str
    mac: str
    vnic_profile_id: str
    linked: bool = True
    plugged: bool = True


@dataclass(eq=False)
class DataCenter:
    """A data centre (storage pool); the fake has one, ``Default``."""

    id: str
    name: str


@dataclass(eq=False)
class Cluster:
    """A cluster of hosts in a data centre; VMs run in one."""

    id: str
    name: str
    data_center_id: str


@dataclass(eq=False)
class StorageDomain:
    """A data storage domain; ``storage_type`` nfs (file) or iscsi/fcp (block, ovirt-api.md §11.2)."""

    id: str
    name: str
    storage_type: str
    data_center_id: str
    size: int = 1024 * GIB

    @property
    def block(self) -> bool:
        """Block domains (iSCSI, FC) allocate qcow2 at ``initial_size`` and refuse sparse raw."""
        return self.storage_type in ("iscsi", "fcp")


@dataclass(eq=False)
class Vm:
    """A VM; ``status`` decides live (up) vs cold (down) backup or a 409 refusal (anything else)."""

    id: str
    name: str
    status: str
    host_id: str
    disks: list[Disk] = field(default_factory=list)
    cluster_id: str = ""
    nics: list[Nic] = field(default_factory=list)
    # disk id → attachment; a disk without an entry is attached the old way (first disk bootable)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    memory: int = 4 * GIB
    cpus: int = 2
    status_since: float = 0.0  # engine-clock time of the last status change (powering_up → up)

    def attachment(self, disk: Disk) -> Attachment:
        """The disk's attachment fields (seeded VMs: virtio-scsi, the first disk bootable)."""
        att = self.attachments.get(disk.id)
        if att is None:
            att = Attachment(bootable=bool(self.disks) and self.disks[0] is disk)
        return att


@dataclass(eq=False)
class Backup:
    """One backup; ``phase`` is the API phase after the last ``settle()``.

    ``hybrid``: the snapshot-based flow (HybridBackupCommand), else the live/cold one
    (StartVmBackupCommand). ``checkpoint_id`` is the checkpoint the engine made (or will make) for
    it; ``to_checkpoint_id`` is what the backup shows, set once the host created it (``ready``).
    ``stopped``: a hybrid backup was finalized but still reads ``ready``. ``failing``: the legacy
    FINALIZING_FAILURE phase (``finalizing`` on the wire, then ``failed``).
    """

    id: str
    vm_id: str
    disks: list[Disk]
    modes: dict[str, str]
    live: bool
    created: float
    phase: str
    phase_since: float
    hybrid: bool = False
    from_checkpoint_id: str | None = None
    to_checkpoint_id: str | None = None
    checkpoint_id: str | None = None
    snapshot_id: str | None = None
    description: str | None = None
    host_id: str | None = None
    query: dict[str, list[str]] = field(default_factory=dict)
    doomed: bool = False
    failing: bool = False
    stopped: bool = False

    @property
    def internal_phase(self) -> str:
        """The engine's VmBackupPhase name, shown in refusals (ovirt-api.md §1.3, §5.3)."""
        if self.phase == "initializing" and not self.hybrid:
            return "CREATING_SCRATCH_DISKS" if self.live else "ADDING_BITMAPS"
        if self.phase == "finalizing":
            if self.hybrid:
                return "REMOVING_SNAPSHOT"
            return "FINALIZING_FAILURE" if self.failing else "FINALIZING"
        return self.phase.upper()

    @property
    def require_consistency(self) -> str | None:
        """The raw ``require_consistency`` query value the client sent (recorded, not acted on)."""
        values = self.query.get("require_consistency")
        return values[0] if values else None

    @property
    def use_active(self) -> str | None:
        """The raw ``use_active`` query value (the engine ignores it, ovirt-api.md §3)."""
        values = self.query.get("use_active")
        return values[0] if values else None


@dataclass(eq=False)
class Checkpoint:
    """A checkpoint in the VM's chain; ``disk_ids`` are the qcow2 disks it covers."""

    id: str
    vm_id: str
    parent_id: str | None
    created: float
    state: str = "created"
    description: str | None = None
    disk_ids: list[str] = field(default_factory=list)


# Image transfer phases (ovirt-api.md §6.1). "Open" means the engine's transfer command has not ended:
# the disk stays locked and the backup cannot be finalized (StopVmBackupCommand.validate, ≥ 4.5.1).
TRANSFER_FINISHED = frozenset({"finished_success", "finished_failure", "finished_cleanup"})


@dataclass(eq=False)
class ImageTransfer:
    """One ``/imagetransfers`` entity; ``phase`` is the API phase after the last ``settle()``.

    ``ticket_id``/``url`` stay set after the session stopped (for tests); ``session`` says whether
    the imageio ticket and its qemu-nbd still exist, which is when the engine shows the URLs.
    """

    id: str
    disk_id: str
    backup_id: str | None
    direction: str
    format: str
    inactivity_timeout: int
    timeout_policy: str
    host_id: str
    created: float
    phase: str
    phase_since: float
    ticket_id: str | None = None
    url: str | None = None
    session: bool = False
    transferred: int = 0
    active: bool = False
    last_activity: float = 0.0
    error: str | None = None
    doomed: bool = False

    @property
    def upload(self) -> bool:
        """An upload into a disk (a backup transfer is always a download)."""
        return self.direction == "upload" and self.backup_id is None

    @property
    def finished(self) -> bool:
        """True once the transfer command ended (success, failure or cleanup after cancel).

        An upload's cleanup is not the end: the engine then removes the disk and reports
        ``finished_failure`` (TransferDiskImageCommand.endWithFailure).
        """
        if self.upload and self.phase == "finished_cleanup":
            return False
        return self.phase in TRANSFER_FINISHED


@dataclass(eq=False)
class Event:
    """One audit log entry (``GET /events``): AuditLogType code, severity, the formatted message."""

    id: int
    code: int
    severity: str
    description: str
    time: float
    vm_id: str | None = None
    vm_name: str | None = None
    user_name: str | None = None

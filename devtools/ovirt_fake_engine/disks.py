"""Creating and removing disks (``POST /disks``, ``DELETE /disks/{id}``): the engine's rules.

Facts from BackendDisksResource.add, AddDiskCommand.validate, ImagesHandler.checkImageConfiguration
and RemoveDiskCommand.validate (ovirt-api.md §11.2):

* ``provisioned_size`` and ``format`` are required (400 Incomplete parameters). The storage domain
  is given by id (unknown: 400 "Storage Domain doesn't exist.") or by name (unknown: 404 "Entity not
  found: NAME"); none: 400 "Storage Domain hasn't been specified.". A given ``id`` must be free (409).
* The configuration check (409): preallocated qcow2 only with ``backup=incremental``; raw never with
  ``backup=incremental``; sparse raw never on a block domain; ``sparse`` must be given.
* The reply is 201 with the disk ``locked``; one phase step later it is ``ok``. The image is created
  at once: qcow2 or raw, sparse or (raw) preallocated with fallocate. On a block domain a qcow2 disk
  lives in an "LV" of ``initial_size`` bytes (vdsm's 1 GiB first chunk without it): an upload that
  needs more space fails with ENOSPC, as on a real host (the engine sizes the LV of an upload by
  ``initial_size`` and does not extend it while the upload runs).
* DELETE: 404 (empty) for an unknown disk; 409 while locked ("Related operation is currently in
  progress") or plugged to a VM that is not down; else the disk and its image go at once (the real
  engine removes them asynchronously, the disk ``locked`` meanwhile).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import ovirtsdk4.types as types

from ovirt_fake_engine.model import ApiError, Disk, StorageDomain, check_guid, failed, not_found

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState

GIB = 1024**3
BLOCK_FIRST_CHUNK = GIB  # vdsm's volume_utilization_chunk_mb: a thin LV's first size


def _value(enum: object | None) -> str | None:
    value = getattr(enum, "value", None)
    return value if isinstance(value, str) else None


def check_configuration(action: str, sd: StorageDomain, fmt: str, sparse: bool | None, backup: str) -> None:
    """ImagesHandler.checkImageConfiguration, with the engine's enum spellings in the message."""
    volume_type = "Unassigned" if sparse is None else ("Sparse" if sparse else "Preallocated")
    bad = (
        (sparse is False and fmt == "cow" and backup != "incremental")
        or (fmt == "raw" and backup == "incremental")
        or (sd.block and sparse is True and fmt == "raw")
        or sparse is None
    )
    if bad:
        raise failed(
            409,
            f"Cannot {action} Virtual Disk. Disk configuration ({fmt.upper()} {volume_type} "
            f"backup-{backup.capitalize()}) is incompatible with the storage domain type.",
        )


def _storage_domain(state: EngineState, req: types.Disk) -> StorageDomain:
    inv = state.inventory
    ref = (req.storage_domains or [None])[0]
    if ref is not None and ref.id is not None:
        check_guid(ref.id)
        sd = inv.storage_domains.get(ref.id)
        if sd is None:
            raise failed(400, "Cannot add Virtual Disk. Storage Domain doesn't exist.")
        return sd
    if ref is not None and ref.name is not None:
        try:
            return inv.storage_domain_named(ref.name)
        except KeyError:
            raise ApiError(404, "Operation Failed", f"Entity not found: {ref.name}") from None
    raise failed(400, "Cannot add Virtual Disk. Storage Domain hasn't been specified.")


def add(state: EngineState, req: types.Disk) -> Disk:
    """POST /disks: a floating disk, ``locked`` until one phase step has passed."""
    missing = [
        name for name, v in (("provisionedSize", req.provisioned_size), ("format", req.format)) if v is None
    ]
    if missing:
        raise ApiError(400, "Incomplete parameters", f"Disk [{', '.join(missing)}] required for add")
    sd = _storage_domain(state, req)
    fmt = _value(req.format) or "cow"
    backup = _value(req.backup) or "none"
    check_configuration("add", sd, fmt, req.sparse, backup)
    if req.id is not None:
        check_guid(req.id)
        old = state.disks.get(req.id)
        if old is not None:
            raise failed(
                409,
                f"Cannot add Virtual Disk. The selected disk ID: {req.id} is already used by the "
                f"following existing disk: {old.alias}.",
            )
    size = int(req.provisioned_size or 0)
    initial = int(req.initial_size) if req.initial_size is not None else None
    sparse = bool(req.sparse)
    if not sparse:
        actual = size
    elif sd.block and fmt == "cow":
        actual = initial if initial is not None else min(size, BLOCK_FIRST_CHUNK)
    else:
        actual = 0
    alias = req.alias or req.name or f"disk-{uuid.uuid4().hex[:8]}"
    disk = Disk(
        id=req.id or str(uuid.uuid4()),
        alias=alias,
        format=fmt,
        backup=backup,
        provisioned_size=size,
        actual_size=actual,
        vm_id=None,
        storage_domain_id=sd.id,
        sparse=sparse,
        status="locked",
        content_type=_value(req.content_type) or "data",
        description=req.description,
        initial_size=initial,
    )
    disk.ready_at = state.now() + state.phase_seconds
    if state.storage is not None:
        state.storage.create(disk, capacity=actual if sd.block and fmt == "cow" else None)
    state.disks[disk.id] = disk
    settle(state, state.now())  # phase_seconds == 0: ok at once
    return disk


def settle(state: EngineState, now: float) -> None:
    """Disks whose creation is due become ``ok``."""
    for d in state.disks.values():
        if d.ready_at is not None and now >= d.ready_at:
            d.ready_at = None
            if d.status == "locked":
                d.status = "ok"


def get(state: EngineState, disk_id: str) -> Disk:
    """GET /disks/{id}: the disk or a 404 with an empty body."""
    state.settle()
    disk = state.disks.get(disk_id)
    if disk is None:
        raise not_found()
    return disk


def remove(state: EngineState, disk_id: str) -> None:
    """DELETE /disks/{id} (RemoveDiskCommand.validate)."""
    disk = get(state, disk_id)
    if disk.status == "locked":
        raise failed(
            409,
            "Cannot remove Virtual Disk. Related operation is currently in progress. Please try again later.",
        )
    vm = state.vms.get(disk.vm_id or "")
    if vm is not None and vm.status != "down":
        raise failed(409, "Cannot remove Virtual Disk. At least one of the VMs is not down.")
    drop(state, disk)


def drop(state: EngineState, disk: Disk) -> None:
    """Forget a disk and delete its image (RemoveDisk after a failed upload, or DELETE)."""
    state.disks.pop(disk.id, None)
    vm = state.vms.get(disk.vm_id or "")
    if vm is not None:
        vm.disks = [d for d in vm.disks if d.id != disk.id]
    if state.storage is not None:
        state.storage.remove(disk.id)

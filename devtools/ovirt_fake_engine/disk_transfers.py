"""What a transfer outside a backup does to its disk (ovirt-img download-disk / upload-disk).

TransferDiskImageCommand, as read: the image is locked from the start until the command ends. A
download leaves it ``ok`` whatever happens. An upload's finalize verifies the image
(VerifyUntrustedVolume: the format the disk claims, no backing file) and the disk becomes ``ok``;
a failed verification, a cancel or a system stop ends in ``finished_failure`` after the disk went
``illegal`` and was removed (endWithFailure runs RemoveDisk for every failed upload; a cancelled one
passes ``finished_cleanup`` first). When the host's ticket cannot be read, or the inactivity
timeout hits with the ``legacy`` policy, an upload is paused by the system (``paused_system``)
where a download is cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ovirt_fake_engine import disks
from ovirt_fake_engine.dataplane import DataPlaneError, image_info
from ovirt_fake_engine.model import ImageTransfer

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState

# An upload does not end at finished_cleanup: endWithFailure still removes the disk.
UPLOAD_NEXT = {"finished_cleanup": "finished_failure"}


def plain(t: ImageTransfer) -> bool:
    """A transfer of a disk's own image, not of a backup's view of it."""
    return t.backup_id is None


def stopped_by_system(t: ImageTransfer) -> str:
    """updateEntityPhaseToStoppedBySystem: uploads pause, downloads are cancelled."""
    return "paused_system" if t.upload else "cancelled_system"


def verified(state: EngineState, t: ImageTransfer) -> bool:
    """VerifyUntrustedVolume on finalize of an upload: the image is what the disk says it is."""
    disk, storage = state.disks.get(t.disk_id), state.storage
    if disk is None or storage is None:
        return disk is not None
    try:
        info = image_info(storage.path(t.disk_id))
    except (DataPlaneError, KeyError) as e:
        t.error = f"verify: {e}"
        return False
    want = "qcow2" if disk.format == "cow" else "raw"
    if info.get("format") != want or info.get("backing-filename"):
        t.error = f"verify: image is {info.get('format')}, backing {info.get('backing-filename')}"
        return False
    if disk.sparse:  # the engine re-reads the volume's size after an upload
        disk.actual_size = max(int(info.get("actual-size") or 0), storage.capacity(disk.id) or 0)
    return True


def entered(state: EngineState, t: ImageTransfer) -> None:
    """The disk side of the phase ``t`` just entered."""
    if not plain(t):
        return
    disk = state.disks.get(t.disk_id)
    if disk is None:
        return
    if t.phase == "finished_cleanup" and t.upload:
        disk.status = "illegal"
    elif t.phase == "finished_failure" and t.upload:
        disk.status = "illegal"
        disks.drop(state, disk)
    elif t.finished and disk.status == "locked":
        disk.status = "ok"  # the image lock ends with the transfer command

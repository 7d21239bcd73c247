"""Lifecycle rules that the fake engine does not exercise on its own: the snapshot-based flow's
``ready`` after finalize, and the disk selection for incremental backups."""

from __future__ import annotations

from typing import Any

import pytest

from ovbackup.engine import polling
from ovbackup.engine.model import ActionResult, Backup, BackupPhase, Disk, DiskAttachment, DiskBackup
from ovbackup.engine.services import VmBackupService
from ovbackup.errors import BackupFailedError, NotFoundError
from ovbackup.jobs.lifecycle import finalize_backup, select_disks


class ScriptedBackup(VmBackupService):
    """A backup service whose GETs return the given phases in turn (the last one repeats)."""

    def __init__(self, phases: list[BackupPhase]) -> None:
        self.path = "vms/v/backups/b1"
        self.phases = phases
        self.gets = 0
        self.finalized = False

    def get(self, **_: Any) -> Backup:
        phase = self.phases[min(self.gets, len(self.phases) - 1)]
        self.gets += 1
        return Backup(id="b1", phase=phase)

    def finalize(self, **_: Any) -> ActionResult:
        self.finalized = True
        return ActionResult(status="complete")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling, "sleep", lambda _: None)


def test_finalize_keeps_waiting_while_a_snapshot_backup_still_reads_ready() -> None:
    service = ScriptedBackup(
        [BackupPhase.READY, BackupPhase.READY, BackupPhase.FINALIZING, BackupPhase.SUCCEEDED]
    )
    result = finalize_backup(service, wait=True, wait_timeout=60, vm_name="web01")
    assert service.finalized and result.backup is not None
    assert result.backup.phase == BackupPhase.SUCCEEDED and service.gets == 4


def test_finalize_that_ends_failed_is_a_failure_unless_allowed() -> None:
    with pytest.raises(BackupFailedError):
        finalize_backup(
            ScriptedBackup([BackupPhase.FINALIZING, BackupPhase.FAILED]),
            wait=True,
            wait_timeout=60,
            vm_name="web01",
        )
    result = finalize_backup(
        ScriptedBackup([BackupPhase.FINALIZING, BackupPhase.FAILED]),
        wait=True,
        wait_timeout=60,
        vm_name="web01",
        allow_failed=True,
    )
    assert result.backup is not None and result.backup.phase == BackupPhase.FAILED


def attachments() -> list[DiskAttachment]:
    return [
        DiskAttachment(Disk(id="os", name="os", backup=DiskBackup.INCREMENTAL)),
        DiskAttachment(Disk(id="raw", name="raw", backup=DiskBackup.NONE)),
    ]


def test_full_takes_every_disk_incremental_only_enabled_ones() -> None:
    full = select_disks(attachments(), [], incremental=False, vm_name="web01")
    assert [d.id for d in full.disks] == ["os", "raw"] and full.left_out == ()
    inc = select_disks(attachments(), [], incremental=True, vm_name="web01")
    assert [d.id for d in inc.disks] == ["os"] and [d.id for d in inc.left_out] == ["raw"]


def test_requested_disks_must_be_attached() -> None:
    chosen = select_disks(attachments(), ["raw", "raw"], incremental=True, vm_name="web01")
    assert [d.id for d in chosen.disks] == ["raw"]  # asked for explicitly: taken, once
    with pytest.raises(NotFoundError, match="not attached to VM web01"):
        select_disks(attachments(), ["nope"], incremental=False, vm_name="web01")
    with pytest.raises(NotFoundError, match="no disks enabled for incremental"):
        select_disks(attachments()[1:], [], incremental=True, vm_name="web01")

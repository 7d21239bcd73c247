"""Lifecycle rules against the fake engine in both backup flows (hybrid, the engine 4.5 default, and
legacy): waiting through ``ready`` after finalize, failures, what a transfer names; and the disk
selection for incremental backups. The poller's sleep moves the engine clock, so nothing waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ovirt_fake_engine import FakeEngine, Vm
from ovirt_fake_engine.pytest_plugin import BOTH_FLOWS

from ovbackup.engine import polling
from ovbackup.engine.connection import Connection
from ovbackup.engine.model import Backup, BackupPhase, Disk, DiskAttachment, DiskBackup
from ovbackup.engine.services import SystemService, VmBackupService, VmService
from ovbackup.errors import BackupFailedError, NotFoundError, StateError
from ovbackup.jobs.lifecycle import finalize_backup, select_disks, wait_for_phase


@pytest.fixture
def seen(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each poll's sleep advances the engine clock instead; returns the phases the engine had then."""
    phases: list[str] = []

    def sleep(seconds: float) -> None:
        phases.extend(b.phase for vm in engine.state.vms.values() for b in engine.backups(vm.id))
        engine.advance(seconds)

    monkeypatch.setattr(polling, "sleep", sleep)
    return phases


@pytest.fixture
def vm_service(engine: FakeEngine, web01: Vm) -> Iterator[VmService]:
    with Connection(engine.url, engine.username, engine.password) as c:
        yield SystemService(c).vms_service().vm_service(web01.id)


def ready_backup(vm_service: VmService, web01: Vm) -> VmBackupService:
    backups = vm_service.backups_service()
    started = backups.add(Backup(disks=tuple(Disk(id=d.id) for d in web01.disks)))
    service = backups.backup_service(str(started.id))
    wait_for_phase(service, BackupPhase.READY, timeout=60, vm_name="web01")
    return service


@BOTH_FLOWS
def test_finalize_keeps_waiting_while_a_snapshot_backup_still_reads_ready(
    vm_service: VmService, web01: Vm, seen: list[str], backup_flow: str
) -> None:
    service = ready_backup(vm_service, web01)
    seen.clear()
    result = finalize_backup(service, wait=True, wait_timeout=60, vm_name="web01")
    assert result.backup is not None and result.backup.phase == BackupPhase.SUCCEEDED
    assert not result.already_finished and result.note is None
    # hybrid: finalize only marked it stopped, the engine still said ready at the first poll
    assert seen[:1] == (["ready"] if backup_flow == "hybrid" else ["finalizing"])


@BOTH_FLOWS
def test_finalize_of_a_backup_that_fails_is_a_failure_unless_allowed(
    engine: FakeEngine, vm_service: VmService, web01: Vm, seen: list[str], backup_flow: str
) -> None:
    service = ready_backup(vm_service, web01)
    engine.fail_backup(service.id)  # hybrid: failed at once; legacy: finalizing, then failed
    with pytest.raises(BackupFailedError, match="failed"):
        finalize_backup(service, wait=True, wait_timeout=60, vm_name="web01")
    result = finalize_backup(service, wait=True, wait_timeout=60, vm_name="web01", allow_failed=True)
    assert result.backup is not None and result.backup.phase == BackupPhase.FAILED
    assert result.already_finished


@BOTH_FLOWS
def test_a_job_that_needs_ready_is_told_when_the_backup_went_past_it(
    vm_service: VmService, web01: Vm, seen: list[str]
) -> None:
    service = ready_backup(vm_service, web01)
    finalize_backup(service, wait=True, wait_timeout=60, vm_name="web01")  # someone else finished it
    seen.clear()
    with pytest.raises(StateError, match="already succeeded, past ready"):
        wait_for_phase(service, BackupPhase.READY, timeout=60, vm_name="web01", or_later=False)
    assert seen == []  # at once, not at the deadline
    assert wait_for_phase(service, BackupPhase.STARTING, timeout=60, vm_name="web01").phase == "succeeded"


def test_a_transfer_names_its_disk_as_the_engine_does(
    engine: FakeEngine, vm_service: VmService, web01: Vm, seen: list[str]
) -> None:
    """The engine's reply carries ``<image id=DISK>`` (no ``<disk>``): ovbackup reads the disk from it."""
    service = ready_backup(vm_service, web01)
    with Connection(engine.url, engine.username, engine.password) as c:
        transfers = SystemService(c).image_transfers_service()
        t = transfers.add_backup_download(disk_id=web01.disks[0].id, backup_id=service.id)
        assert t.disk_id == web01.disks[0].id and t.host_id == engine.state.host_id
        assert transfers.image_transfer_service(str(t.id)).get().disk_id == web01.disks[0].id
        transfers.image_transfer_service(str(t.id)).cancel()


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

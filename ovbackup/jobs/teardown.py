"""Teardown after a failure: take the VM out of backup mode whatever went wrong, and say what is left.

The engine's order: every open image transfer cancelled first (``jobs.transfers.OpenTransfers``), then the
backup finalized (refused with 409 while a transfer is open), then wait for ``succeeded``/``failed``.
"""

from __future__ import annotations

from collections.abc import Collection

from ovbackup.engine.services import ImageTransfersService, VmBackupService
from ovbackup.errors import NotFoundError, OvbackupError, RefusedError, Terminated
from ovbackup.jobs.lifecycle import finalize_backup
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.transfers import OpenTransfers, is_open

# ACTION_TYPE_FAILED_ACTIVE_IMAGE_TRANSFER_FOR_VM_BACKUP (409, engine >= 4.5.1; ovirt-api.md §5.3)
_ACTIVE_TRANSFER = "There is an active image transfer for VM backup"


def cancel_disk_transfers(
    service: ImageTransfersService, disk_ids: Collection[str], reporter: Reporter
) -> int:
    """Cancel every open image transfer of these disks and wait until the engine closed them.

    For a backup whose run died (SIGKILL, OOM, power loss) or whose transfers someone else opened: the
    engine refuses to finalize a backup while any of its transfers is open ("There is an active image
    transfer for VM backup", 409), and it does not say which backup a transfer belongs to (no
    ``<backup>`` in its reply, ovirt-api.md §6.1); a disk has one active transfer at a time, so the
    VM's disks find them. Returns how many were cancelled.
    """
    stale = OpenTransfers(service)
    for transfer in service.list():
        if transfer.id and transfer.disk_id in disk_ids and is_open(transfer):
            stale.add(transfer)
    count = len(stale.open)
    stale.cancel_all(reporter)
    return count


def finish_after_failure(
    service: VmBackupService,
    vm_name: str,
    timeout: float,
    reporter: Reporter,
    *,
    transfers: ImageTransfersService | None = None,
    disk_ids: Collection[str] = (),
    failure: BaseException | None = None,
) -> bool:
    """Cancel what is still open of the disks' transfers (``transfers``), finalize the backup and wait
    until it finished; never raise. Returns whether the VM is out of backup mode.

    One more Ctrl-C / SIGTERM / SIGHUP during the teardown is reported and the teardown goes on (the VM
    would otherwise stay in backup mode); a second one abandons it, saying so. ``failure`` is what
    started the teardown: an interrupt raised while an earlier one was being handled (download's own
    cancelling) already counts as that one more.
    """
    interruptions = 0
    busy = 0  # finalize refused for a transfer still open (one a worker opened as we cancelled)
    if _is_interrupt(failure) and _is_interrupt(failure.__context__ if failure else None):
        interruptions = 1
        _still_finishing(failure, service.id, vm_name, reporter)
    while True:
        try:
            if transfers is not None and disk_ids:
                cancel_disk_transfers(transfers, disk_ids, reporter)
            result = finalize_backup(
                service,
                wait=True,
                wait_timeout=timeout,
                vm_name=vm_name,
                allow_failed=True,
                on_poll=reporter.waiting,
            )
            phase = result.backup.phase.value if result.backup and result.backup.phase else "finished"
            reporter.note(f"finalized backup {service.id} ({phase})")
            return True
        except NotFoundError:
            reporter.note(f"backup {service.id} was never started on the engine")
            return True
        except (KeyboardInterrupt, Terminated) as e:
            interruptions += 1
            if interruptions == 1:
                _still_finishing(e, service.id, vm_name, reporter)
                continue
            reason = f"{_what(e)} twice while finishing it"
        except RefusedError as e:
            if (
                transfers is not None
                and disk_ids
                and _ACTIVE_TRANSFER in f"{e.reason} {e.detail}"
                and busy < 3
            ):
                busy += 1
                continue  # cancel what is open now, and finalize again
            reason = str(e) or type(e).__name__
        except OvbackupError as e:
            reason = str(e) or type(e).__name__
        reporter.note(
            f"could not finalize backup {service.id}: {reason}; run `ovbackup cleanup {vm_name}` to finish it"
        )
        return False


def _is_interrupt(e: BaseException | None) -> bool:
    return isinstance(e, (KeyboardInterrupt, Terminated))


def _what(e: BaseException | None) -> str:
    return e.what if isinstance(e, Terminated) else "interrupted"


def _still_finishing(e: BaseException | None, backup_id: str, vm_name: str, reporter: Reporter) -> None:
    reporter.note(
        f"{_what(e)}: still finishing backup {backup_id} so VM {vm_name} leaves backup mode "
        "(interrupt once more to leave it open)"
    )

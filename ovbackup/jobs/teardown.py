"""Teardown after a failure: take the VM out of backup mode whatever went wrong, and say what is left.

The engine's order: every open image transfer cancelled first (``jobs.transfers.OpenTransfers``), then the
backup finalized (refused with 409 while a transfer is open), then wait for ``succeeded``/``failed``.
"""

from __future__ import annotations

from ovbackup.engine.services import VmBackupService
from ovbackup.errors import NotFoundError, OvbackupError, Terminated
from ovbackup.jobs.lifecycle import finalize_backup
from ovbackup.jobs.reporter import Reporter


def finish_after_failure(service: VmBackupService, vm_name: str, timeout: float, reporter: Reporter) -> bool:
    """Finalize the backup after a failure (its transfers are already cancelled); never raise.

    Returns whether the VM is out of backup mode.
    """
    try:
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
    except (OvbackupError, KeyboardInterrupt, Terminated) as e:
        reporter.note(
            f"could not finalize backup {service.id}: {e or type(e).__name__}; "
            f"run `ovbackup cleanup {vm_name}` to finish it"
        )
        return False

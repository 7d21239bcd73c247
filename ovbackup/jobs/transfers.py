"""Image transfer sessions on the engine: waiting for them, closing them, and cancelling them all.

A backup cannot be finalized while any of its transfers is open (409 on engine >= 4.5.1), so every
transfer we create is tracked here until the engine reports it finished.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path

from ovbackup.engine import polling
from ovbackup.engine.model import ImageTransfer, ImageTransferPhase
from ovbackup.engine.services import ImageTransfersService
from ovbackup.errors import NotFoundError, OvbackupError, SpaceError, TransferError
from ovbackup.jobs.reporter import Reporter

TRANSFERRING = ImageTransferPhase.TRANSFERRING
# Transfers change phase within a second or two (a ticket is added, a session closed): poll them
# faster than backups, whose phases follow VM operations, and back off gently to at most 1 s.
TRANSFER_PACE = polling.Pace(initial=0.1, factor=1.25, cap=1.0)
_WAITING = (ImageTransferPhase.INITIALIZING, ImageTransferPhase.RESUMING, ImageTransferPhase.UNKNOWN)
_FINISHED_OK = (ImageTransferPhase.FINISHED_SUCCESS,)
_FINALIZING = (ImageTransferPhase.FINALIZING_SUCCESS, ImageTransferPhase.TRANSFERRING)
_TERMINAL = (
    ImageTransferPhase.FINISHED_SUCCESS,
    ImageTransferPhase.FINISHED_FAILURE,
    ImageTransferPhase.FINISHED_CLEANUP,
    ImageTransferPhase.CANCELLED,
)


class OpenTransfers:
    """Open transfers, so a failure anywhere can cancel them all before the backup is finalized."""

    def __init__(self, service: ImageTransfersService) -> None:
        self.service = service
        self.open: dict[str, ImageTransfer] = {}
        self.lock = threading.Lock()
        self.reserved = 0  # bytes promised to downloads in flight (free-space accounting)
        self.stopping = threading.Event()

    def add(self, transfer: ImageTransfer) -> None:
        with self.lock:
            self.open[str(transfer.id)] = transfer

    def closed(self, transfer_id: str) -> None:
        with self.lock:
            self.open.pop(transfer_id, None)

    def reserve(self, directory: Path, needed: int, margin: int) -> None:
        """Promise ``needed`` bytes of ``directory``'s free space to one download, or fail early."""
        with self.lock:
            free = shutil.disk_usage(directory).free - self.reserved
            if needed + margin > free:
                raise SpaceError(
                    f"not enough space in {directory}: {needed} bytes to download, {max(free, 0)} free",
                    hint="free some space or use another --dir",
                )
            self.reserved += needed

    def release(self, amount: int) -> None:
        with self.lock:
            self.reserved -= amount

    def cancel_all(self, reporter: Reporter, timeout: float = 120.0) -> None:
        """Cancel every open transfer and wait until the engine has closed them: it refuses to
        finalize the backup while any transfer is still open (409)."""
        with self.lock:
            pending = list(self.open)
            self.open.clear()
        for transfer_id in pending:
            ts = self.service.image_transfer_service(transfer_id)
            try:
                ts.cancel()
                polling.wait_for(
                    ts.get,
                    lambda t: t.phase in _TERMINAL,
                    timeout=timeout,
                    what=f"image transfer {transfer_id}",
                    pace=TRANSFER_PACE,
                )
                reporter.note(f"cancelled image transfer {transfer_id}")
            except NotFoundError:
                pass  # already gone
            except OvbackupError as e:
                reporter.note(f"could not cancel image transfer {transfer_id}: {e}")


def wait_transferring(service: ImageTransfersService, transfer_id: str, timeout: float) -> ImageTransfer:
    def ready(t: ImageTransfer) -> bool:
        if t.phase == TRANSFERRING:
            return True
        if t.phase in _WAITING or t.phase is None:
            return False
        raise TransferError(f"image transfer {transfer_id} is {t.phase.value}, not transferring")

    return polling.wait_for(
        service.image_transfer_service(transfer_id).get,
        ready,
        timeout=timeout,
        what=f"image transfer {transfer_id}",
        describe=lambda t: t.phase.value if t.phase else "unknown",
        pace=TRANSFER_PACE,
    )


def finalize_transfer(service: ImageTransfersService, transfer_id: str, timeout: float) -> None:
    ts = service.image_transfer_service(transfer_id)
    ts.finalize()

    def finished(t: ImageTransfer) -> bool:
        if t.phase in _FINISHED_OK:
            return True
        if t.phase in _FINALIZING or t.phase is None:
            return False
        raise TransferError(f"image transfer {transfer_id} ended {t.phase.value}")

    with contextlib.suppress(NotFoundError):  # engines before 4.4.7 delete it at once
        polling.wait_for(
            ts.get,
            finished,
            timeout=timeout,
            what=f"image transfer {transfer_id}",
            pace=TRANSFER_PACE,
        )

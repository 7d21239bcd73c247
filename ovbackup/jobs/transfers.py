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
# faster than backups, whose phases follow VM operations: every 0.1 s in the first second (a quick
# step is seen at most 0.1 s late), then backing off gently to at most 1 s.
TRANSFER_PACE = polling.Pace(initial=0.1, factor=1.25, cap=1.0, steady=1.0)
_WAITING = (ImageTransferPhase.INITIALIZING, ImageTransferPhase.RESUMING, ImageTransferPhase.UNKNOWN)
_FINISHED_OK = (ImageTransferPhase.FINISHED_SUCCESS,)
_FINALIZING = (ImageTransferPhase.FINALIZING_SUCCESS, ImageTransferPhase.TRANSFERRING)
_TERMINAL = (
    ImageTransferPhase.FINISHED_SUCCESS,
    ImageTransferPhase.FINISHED_FAILURE,
    ImageTransferPhase.FINISHED_CLEANUP,
    ImageTransferPhase.CANCELLED,
)


def is_open(transfer: ImageTransfer) -> bool:
    """Not ended yet: the engine still counts it against the backup (finalize is refused)."""
    return transfer.phase not in _TERMINAL


class TransferGate:
    """Bounds the image transfers of a whole run: at most ``per_host`` through one host, ``total`` in all.

    The engine has no cap of its own, and imageio's advice is that many transfers sharing a host lose
    throughput (ovirt-api.md §11.5), so a fleet run throttles itself. A slot is taken before a transfer
    is created and given back once the engine has it finalized or cancelled. ``None``: no bound.
    Transfers whose host is unknown (a VM that is down) count only against ``total``.
    """

    def __init__(self, per_host: int | None = None, total: int | None = None) -> None:
        self.per_host = per_host
        self.total = total
        self._cond = threading.Condition()
        self._by_host: dict[str, int] = {}
        self._all = 0

    def _free(self, host: str | None) -> bool:
        if self.total is not None and self._all >= self.total:
            return False
        return host is None or self.per_host is None or self._by_host.get(host, 0) < self.per_host

    def acquire(self, host: str | None, stopping: threading.Event) -> None:
        """Wait for a slot (checking ``stopping`` every 0.2 s: a stopped job must not wait forever)."""
        with self._cond:
            while not self._free(host):
                if stopping.is_set():
                    raise TransferError("stopped while waiting for a transfer slot")
                self._cond.wait(0.2)
            self._all += 1
            if host is not None:
                self._by_host[host] = self._by_host.get(host, 0) + 1

    def release(self, host: str | None) -> None:
        with self._cond:
            self._all -= 1
            if host is not None:
                self._by_host[host] -= 1
            self._cond.notify_all()


class OpenTransfers:
    """Open transfers, so a failure anywhere can cancel them all before the backup is finalized.

    With a ``gate``, each transfer holds one of its slots (on ``host``) from just before it is created
    until the engine has it closed or cancelled.
    """

    def __init__(
        self, service: ImageTransfersService, gate: TransferGate | None = None, host: str | None = None
    ) -> None:
        self.service = service
        self.open: dict[str, ImageTransfer] = {}
        self.lock = threading.Lock()
        self.reserved = 0  # bytes promised to downloads in flight (free-space accounting)
        self.stopping = threading.Event()
        self.gate = gate
        self.host = host
        self._gated: set[str] = set()

    def admit(self) -> None:
        """Take a gate slot for the transfer about to be created (give it to ``add`` or ``abandon``)."""
        if self.gate is not None:
            self.gate.acquire(self.host, self.stopping)

    def abandon(self) -> None:
        """The transfer ``admit`` was for could not be created: give its slot back."""
        if self.gate is not None:
            self.gate.release(self.host)

    def add(self, transfer: ImageTransfer) -> None:
        with self.lock:
            self.open[str(transfer.id)] = transfer
            if self.gate is not None:
                self._gated.add(str(transfer.id))

    def _release(self, transfer_id: str) -> None:
        with self.lock:
            gated = transfer_id in self._gated
            self._gated.discard(transfer_id)
        if gated and self.gate is not None:
            self.gate.release(self.host)

    def closed(self, transfer_id: str) -> None:
        with self.lock:
            self.open.pop(transfer_id, None)
        self._release(transfer_id)

    def reserve(self, directory: Path, needed: int, margin: int, what: str) -> None:
        """Promise ``needed`` bytes of ``directory``'s free space to one download (``what``), or fail
        early; ``margin`` more must stay free (qcow2 metadata, the catalog, other writers)."""
        with self.lock:
            free = shutil.disk_usage(directory).free - self.reserved
            if needed + margin > free:
                raise SpaceError.needing(
                    f"not enough space in {directory} for {what}", needed=needed, margin=margin, free=free
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
            finally:
                self._release(transfer_id)


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
        immediately=False,  # just created: initializing (ovirt-api.md §4)
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
            immediately=False,  # just finalized: finalizing_success
        )

"""Exporting images through qemu-nbd and the daemon's tickets: one :class:`Transfer` per session.

Findings (ovirt-imageio 2.5.1, qemu 7.2) that shaped this module:

NBD
    * URL form: ``nbd:unix:/abs/path.sock`` or ``nbd:unix:/abs/path.sock:exportname=NAME``
      (also ``nbd:HOST:PORT[:exportname=NAME]``). qemu-nbd's default export name is "".
    * qemu-nbd flags: ``--read-only --persistent --shared=0`` (0 = unlimited clients; the default 1
      would block the daemon, which opens one NBD connection per HTTP connection and the client
      uses up to 4 workers plus one extents connection), ``--format`` (probed with
      ``qemu-img info`` so a raw image is never probed by qemu-nbd), ``--allocation-depth`` for
      qcow2 only (imageio needs ``qemu:allocation-depth`` to report ``hole``; imageio itself skips
      it for raw because of a qemu 6.2 base:allocation regression), ``--bitmap NAME``.

Dirty tickets
    * ``"dirty": true`` makes the daemon's NBD client ask for the ``qemu:dirty-bitmap:NAME`` meta
      context; ``GET .../extents?context=dirty`` then returns ``{start, length, dirty, zero}``.
      Without a ``--bitmap`` export the request fails (404 "does not support dirty extents"); on a
      non-dirty ticket it is always 404.
    * The bitmap is persistent in the qcow2 and stays enabled: it accumulates every write since it
      was added, so exporting ``chk1`` after ``chk2`` exists still gives "everything since chk1".
      Granularity is 64 KiB (the cluster size): unaligned writes show as rounded-up dirty ranges.

Gotchas
    * ``Transfer`` sockets are unix sockets: paths are limited to 107 bytes, so a long pytest
      ``tmp_path`` falls back to a short ``mkdtemp`` directory (daemon.py; logs stay in the workdir).
    * The client's ``progress.update()`` counts every extent, skipped ones included, so it always
      sums to the virtual size; the bytes really sent are the ticket's ``transferred``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, STDOUT

from ovirt_fake_engine import images
from ovirt_fake_engine.daemon import ImageioDaemon
from ovirt_fake_engine.procs import START_TIMEOUT, DataPlaneError, stop_process, tail, wait_for_unix_socket


@dataclass
class Transfer:
    """One exported image: a qemu-nbd process plus the daemon ticket that points at it."""

    ticket_id: str
    transfer_url: str
    nbd_socket: Path
    process: subprocess.Popen[bytes]
    path: Path
    size: int
    fmt: str
    bitmap: str | None
    nbd_url: str
    log_file: Path

    @property
    def dirty(self) -> bool:
        """True when the ticket serves ``extents?context=dirty`` (exported with a bitmap)."""
        return self.bitmap is not None


class NbdExports:
    """The qemu-nbd processes and tickets of one daemon; every process is tracked until it ends."""

    def __init__(self, daemon: ImageioDaemon) -> None:
        self.daemon = daemon
        self._transfers: dict[str, Transfer] = {}
        self._lock = threading.RLock()
        self._counter = 0
        # Ticket ids being set up, and every live qemu-nbd (also the half-started ones), so a
        # concurrent stop_all() cannot miss a process.
        self._pending: set[str] = set()
        self._nbd_procs: set[subprocess.Popen[bytes]] = set()

    def start_transfer(
        self,
        path: Path,
        *,
        bitmap: str | None = None,
        ticket_id: str | None = None,
        transfer_id: str | None = None,
        inactivity_timeout: int = 60,
        timeout: int = 3600,
        writable: bool = False,
        size_limit: int | None = None,
    ) -> Transfer:
        """Export ``path`` through qemu-nbd and install a ticket for it: read-only for a download.

        With ``bitmap`` the ticket is dirty, so ``extents?context=dirty`` reports the writes
        since that bitmap was added. ``ticket_id`` defaults to a random UUID, like the engine's.
        ``writable`` makes an upload ticket (ops ``write``, which imageio lets read too) on a
        writable export; ``size_limit`` caps the qcow2 file at that many bytes (a block domain's
        LV: writes beyond fail with ENOSPC).
        """
        if not self.daemon.running:
            raise DataPlaneError("imageio daemon is not running")
        path = Path(path).resolve()
        info = images.image_info(path)
        fmt = info["format"]
        size = int(info["virtual-size"])
        if bitmap is not None and bitmap not in images.bitmaps(path):
            raise DataPlaneError(f"{path} has no bitmap {bitmap!r} (has {images.bitmaps(path)})")
        ticket_id = ticket_id or str(uuid.uuid4())

        with self._lock:
            if ticket_id in self._transfers or ticket_id in self._pending:
                raise DataPlaneError(f"ticket {ticket_id} already exists")
            self._pending.add(ticket_id)
            self._counter += 1
            sock = self.daemon.sockets_dir() / f"nbd-{self._counter}.sock"
            log_file = self.daemon.log_dir / f"qemu-nbd-{self._counter}.log"

        try:
            return self._start_transfer(
                path,
                fmt,
                size,
                sock,
                log_file,
                bitmap,
                ticket_id,
                transfer_id,
                inactivity_timeout,
                timeout,
                writable,
                size_limit,
            )
        finally:
            with self._lock:
                self._pending.discard(ticket_id)

    def _start_transfer(
        self,
        path: Path,
        fmt: str,
        size: int,
        sock: Path,
        log_file: Path,
        bitmap: str | None,
        ticket_id: str,
        transfer_id: str | None,
        inactivity_timeout: int,
        timeout: int,
        writable: bool = False,
        size_limit: int | None = None,
    ) -> Transfer:
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        cmd = ["qemu-nbd", "--read-only"] if not writable else ["qemu-nbd", "--discard=unmap"]
        cmd += ["--persistent", "--shared=0", f"--socket={sock}", "--cache=writeback"]
        if fmt != "raw":
            cmd.append("--allocation-depth")
        if bitmap is not None:
            cmd.append(f"--bitmap={bitmap}")
        if size_limit is not None and fmt == "qcow2":
            # The raw driver's "size" bounds the file: qcow2 cannot grow past it (ENOSPC).
            opts = f"driver=qcow2,file.driver=raw,file.size={size_limit},file.file.driver=file"
            cmd += ["--image-opts", f"{opts},file.file.filename={str(path).replace(',', ',,')}"]
        else:
            cmd += [f"--format={fmt}", str(path)]

        with log_file.open("ab") as log:
            log.write(f"# {' '.join(cmd)}\n".encode())
            log.flush()
            with self._lock:
                proc = subprocess.Popen(cmd, stdin=DEVNULL, stdout=log, stderr=STDOUT)
                self._nbd_procs.add(proc)
        try:
            if not wait_for_unix_socket(sock, proc, START_TIMEOUT):
                rc = proc.poll()
                raise DataPlaneError(f"qemu-nbd did not serve {sock} (rc={rc})\n{tail(log_file)}")
            nbd_url = f"nbd:unix:{sock}"
            self.daemon.control(
                "PUT",
                f"/tickets/{ticket_id}",
                {
                    "uuid": ticket_id,
                    "size": size,
                    "url": nbd_url,
                    "ops": ["write" if writable else "read"],
                    "timeout": timeout,
                    "inactivity_timeout": inactivity_timeout,
                    "sparse": True,
                    "dirty": bitmap is not None,
                    "transfer_id": transfer_id or ticket_id,
                },
            )
        except BaseException:
            stop_process(proc)
            self._nbd_procs.discard(proc)
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            raise

        transfer = Transfer(
            ticket_id=ticket_id,
            transfer_url=f"{self.daemon.data_url}/images/{ticket_id}",
            nbd_socket=sock,
            process=proc,
            path=path,
            size=size,
            fmt=fmt,
            bitmap=bitmap,
            nbd_url=nbd_url,
            log_file=log_file,
        )
        with self._lock:
            self._transfers[ticket_id] = transfer
        return transfer

    def transfers(self) -> list[Transfer]:
        with self._lock:
            return list(self._transfers.values())

    def stop_transfer(self, ticket_id: str) -> None:
        """Delete the ticket and stop its qemu-nbd; a no-op for unknown ids (finalize twice).

        qemu-nbd is stopped even if the daemon is dead or refuses the DELETE, so no process
        outlives the transfer; the DELETE error is raised afterwards.
        """
        with self._lock:
            transfer = self._transfers.pop(ticket_id, None)
        if transfer is None:
            return
        error: Exception | None = None
        if self.daemon.running:
            try:
                self.daemon.remove_ticket(ticket_id)
            except (OSError, DataPlaneError) as e:
                error = e
        rc = stop_process(transfer.process)
        self._nbd_procs.discard(transfer.process)
        with contextlib.suppress(FileNotFoundError):
            transfer.nbd_socket.unlink()
        if error is not None:
            raise DataPlaneError(f"removing ticket {ticket_id}: {error}") from error
        # qemu-nbd exits 0 on SIGTERM; anything else means it died on its own.
        if rc not in (0, -signal.SIGTERM):
            log_tail = tail(transfer.log_file)
            raise DataPlaneError(f"qemu-nbd for {ticket_id} exited rc={rc}\n{log_tail}")

    def stop_all(self) -> list[str]:
        """Stop every export (also half-started ones); the problems, to report after the rest."""
        with self._lock:
            errors: list[str] = []
            for ticket_id in list(self._transfers):
                try:
                    self.stop_transfer(ticket_id)
                except Exception as e:  # keep cleaning up; report at the end
                    errors.append(f"{ticket_id}: {e}")
            for proc in list(self._nbd_procs):
                stop_process(proc)
                self._nbd_procs.discard(proc)
            return errors

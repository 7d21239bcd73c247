"""A real oVirt data plane for tests: the ovirt-imageio daemon serving qcow2 images via qemu-nbd.

The fake engine calls :class:`DataPlane` to implement ``POST /imagetransfers``, and ovbackup's
download code talks to the real daemon, so the tests exercise the same HTTP API, NBD backend,
extents and dirty bitmaps as a production host. Nothing here is mocked; nothing needs root or
system paths.

Findings (ovirt-imageio 2.5.1, qemu 7.2) that shaped this module:

Daemon
    * Entry point: ``ovirt_imageio._internal.server.main()`` (the ``ovirt-imageio`` console script),
      run as ``sys.executable -c ...`` so it works in any venv. ``--conf-dir DIR`` reads
      ``DIR/conf.d/*.conf`` and *also* ``/usr/lib/ovirt-imageio/conf.d/*.conf`` (vendor); files
      apply in basename order, so ours is ``99-test.conf`` to win over a vendor file.
    * Keys used (see ``ovirt_imageio/_internal/config.py`` for defaults):
      ``[daemon] drop_privileges=false`` (else, as root, it switches to user ``ovirtimg``),
      ``systemd_enable=false``, ``run_dir``, ``poll_interval`` (also the shutdown latency);
      ``[tls] enable, cert_file, key_file, ca_file``; ``[remote] host, port`` (port 0 binds a
      free port: the daemon logs ``remote.service listening on ('127.0.0.1', PORT)`` and we read
      the port from there, so there is no pick-then-bind race); ``[local] enable=false``;
      ``[control] transport=unix, socket, remove_timeout``; ``[profile] filename``;
      ``[handler_logfile] keyword__class, args`` (a ``logging.FileHandler`` into the workdir).
    * ``[local]`` must be disabled: its default socket is the *abstract* ``\\0/org/ovirt/imageio``
      (two daemons would collide), and the client switches from HTTP(S) to that socket whenever
      the server is local and OPTIONS reports ``unix_socket`` -- the HTTP/TLS path would then
      never be tested.
    * Control API (unix socket, plain HTTP): ``PUT /tickets/{id}`` (JSON body, 200),
      ``GET /tickets/{id}`` (JSON including ``transferred`` = bytes served by read operations,
      ``connections``, ``active``), ``PATCH /tickets/{id}`` ``{"timeout": N}``,
      ``DELETE /tickets/{id}`` (204; idempotent; waits up to ``remove_timeout`` for ongoing
      operations, then 409).
    * Ticket keys: ``uuid`` (str), ``size`` (int, virtual size), ``ops`` (["read"]),
      ``timeout`` (int, required; the ticket expires when unused that long), ``url`` (str),
      optional ``inactivity_timeout``, ``sparse``, ``dirty``, ``transfer_id``, ``filename``.

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
    * qemu image locking: while a transfer's qemu-nbd has the image open, :meth:`DataPlane.write`
      and bitmap changes fail with 'Failed to get "write" lock'. Stop transfers first.
    * ``Transfer`` sockets are unix sockets: paths are limited to 107 bytes, so a long pytest
      ``tmp_path`` falls back to a short ``mkdtemp`` directory (logs stay in the workdir).
    * The client's ``progress.update()`` counts every extent, skipped ones included, so it always
      sums to the virtual size; the bytes really sent are the ticket's ``transferred``.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, STDOUT
from types import TracebackType
from typing import Any

# Bounded waits: generous for slow CI, short enough that a broken setup fails the test quickly.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CONTROL_TIMEOUT = 30.0
# How long DELETE /tickets waits for ongoing operations before answering 409.
REMOVE_TIMEOUT = 10
# Linux sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_PATH = 107

_LISTEN_RE = re.compile(r"remote\.service listening on \('([^']*)', (\d+)\)")
_DAEMON_MAIN = "from ovirt_imageio._internal import server; server.main()"

# Safety net: if a test run exits without stop() (a crashed fixture, sys.exit in a thread),
# still stop every process we started. The normal path is stop()/the context manager.
_LIVE: weakref.WeakSet[DataPlane] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for dp in list(_LIVE):
        with contextlib.suppress(Exception):
            dp.stop()


class DataPlaneError(RuntimeError):
    """The daemon, qemu-nbd or a qemu tool failed; the message carries the relevant log tail."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the daemon's HTTPS service; ``ca_file`` is what clients pass as ``cafile``."""

    cert_file: Path
    key_file: Path
    ca_file: Path


def make_tls(directory: Path, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """Create a throwaway CA and a server certificate for ``hostnames`` with trustme.

    The certificate carries an IP SAN for 127.0.0.1, so the client can verify the hostname of
    ``https://127.0.0.1:PORT`` with ``secure=True``.
    """
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(*hostnames)
    files = TlsFiles(
        cert_file=directory / "server-cert.pem",
        key_file=directory / "server-key.pem",
        ca_file=directory / "ca.pem",
    )
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(files.key_file))
    ca.cert_pem.write_to_path(str(files.ca_file))
    return files


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


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the daemon's unix control socket (the engine talks to vdsm, vdsm to this)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _run(cmd: list[str], what: str) -> str:
    """Run a qemu tool and raise with its output on failure (qemu tools print errors to stderr)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise DataPlaneError(
            f"{what} failed (rc={proc.returncode}): {' '.join(cmd)}\n{proc.stderr}{proc.stdout}"
        )
    return proc.stdout


def image_info(path: Path) -> dict[str, Any]:
    """Return ``qemu-img info`` JSON; ``-U`` so it works while a transfer has the image open."""
    out = _run(["qemu-img", "info", "--output=json", "-U", str(path)], "qemu-img info")
    info: dict[str, Any] = json.loads(out)
    return info


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path} unreadable>"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, wait, then SIGKILL: a process must never outlive the test that started it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def _wait_for_unix_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                time.sleep(0.02)
            else:
                return True
    return False


class DataPlane:
    """An ovirt-imageio daemon on loopback and the qemu-nbd exports behind its tickets.

    Layout under ``workdir``: ``conf/conf.d/99-test.conf``, ``logs/daemon.log`` (the daemon's own
    log, DEBUG), ``logs/daemon.out`` (stdout/stderr, for crashes before logging starts),
    ``logs/qemu-nbd-<n>.log``, ``run/`` (control and NBD sockets, unless the path is too long
    for a unix socket). Thread-safe: the fake engine may call it from its request threads.
    """

    def __init__(self, workdir: Path, tls: TlsFiles | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.tls = tls
        self.conf_dir = self.workdir / "conf"
        self.log_dir = self.workdir / "logs"
        self.daemon_log = self.log_dir / "daemon.log"
        self.data_url = ""
        self.port = 0
        self._run_dir: Path | None = None
        self._own_run_dir = False
        self._daemon: subprocess.Popen[bytes] | None = None
        self._transfers: dict[str, Transfer] = {}
        self._lock = threading.RLock()
        self._counter = 0
        # Ticket ids being set up, and every live qemu-nbd (also the half-started ones), so a
        # concurrent stop() cannot miss a process.
        self._pending: set[str] = set()
        self._nbd_procs: set[subprocess.Popen[bytes]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> DataPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the daemon process is alive (False after :meth:`kill_daemon`)."""
        return self._daemon is not None and self._daemon.poll() is None

    @property
    def control_socket(self) -> Path:
        return self._sockets_dir() / "control.sock"

    def start(self) -> None:
        """Start the daemon and wait until it serves requests; may be called again after a kill.

        Tickets do not survive a restart, and the data port changes (it is chosen by the kernel).
        """
        with self._lock:
            if self.running:
                raise DataPlaneError("imageio daemon is already running")
            _LIVE.add(self)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
            log_offset = self.daemon_log.stat().st_size if self.daemon_log.exists() else 0
            out = (self.log_dir / "daemon.out").open("ab")
            try:
                self._daemon = subprocess.Popen(
                    [sys.executable, "-c", _DAEMON_MAIN, "--conf-dir", str(self.conf_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            finally:
                out.close()
            try:
                self.port = self._wait_ready(log_offset)
            except BaseException:
                self._stop_daemon()
                raise
            scheme = "https" if self.tls else "http"
            self.data_url = f"{scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop every transfer and the daemon; safe to call twice or after failures."""
        with self._lock:
            errors: list[str] = []
            for ticket_id in list(self._transfers):
                try:
                    self.stop_transfer(ticket_id)
                except Exception as e:  # keep cleaning up; report at the end
                    errors.append(f"{ticket_id}: {e}")
            for proc in list(self._nbd_procs):
                _stop_process(proc)
                self._nbd_procs.discard(proc)
            try:
                self._stop_daemon()
            finally:
                _LIVE.discard(self)
                if self._own_run_dir and self._run_dir is not None:
                    shutil.rmtree(self._run_dir, ignore_errors=True)
                    self._run_dir = None
                    self._own_run_dir = False
            if errors:
                raise DataPlaneError("cleanup problems: " + "; ".join(errors))

    def kill_daemon(self) -> None:
        """SIGKILL the daemon, as a crashed host would: open downloads fail mid-transfer.

        qemu-nbd exports stay up; :meth:`stop_transfer` and :meth:`stop` still clean them up.
        """
        with self._lock:
            if self._daemon is not None and self._daemon.poll() is None:
                self._daemon.kill()
                self._daemon.wait(STOP_TIMEOUT)

    def _stop_daemon(self) -> None:
        if self._daemon is None:
            return
        rc = _stop_process(self._daemon)
        self._daemon = None
        # SIGTERM makes the daemon exit 0; -9 after kill_daemon() is expected too.
        if rc not in (0, -signal.SIGKILL, -signal.SIGTERM):
            raise DataPlaneError(f"imageio daemon exited rc={rc}\n{_tail(self.daemon_log)}")

    def _sockets_dir(self) -> Path:
        """Pick the run directory once: workdir/run if socket paths fit, else a short tmp dir."""
        if self._run_dir is None:
            candidate = self.workdir / "run"
            # Longest name we create: "nbd-<counter>.sock"; leave room for a 6-digit counter.
            if len(str(candidate / "nbd-999999.sock")) <= MAX_UNIX_PATH - 1:
                candidate.mkdir(parents=True, exist_ok=True)
                self._run_dir = candidate
            else:
                self._run_dir = Path(tempfile.mkdtemp(prefix="ovb-dp-"))
                self._own_run_dir = True
        return self._run_dir

    def _write_config(self) -> None:
        conf_d = self.conf_dir / "conf.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        run_dir = self._sockets_dir()
        tls = self.tls
        lines = [
            "[daemon]",
            "drop_privileges = false",
            "systemd_enable = false",
            f"run_dir = {run_dir}",
            "poll_interval = 0.1",
            "",
            "[tls]",
            f"enable = {'true' if tls else 'false'}",
            f"cert_file = {tls.cert_file if tls else ''}",
            f"key_file = {tls.key_file if tls else ''}",
            f"ca_file = {tls.ca_file if tls else ''}",
            "",
            "[remote]",
            "host = 127.0.0.1",
            "port = 0",
            "",
            "[local]",
            "enable = false",
            "",
            "[control]",
            "transport = unix",
            f"socket = {self.control_socket}",
            f"remove_timeout = {REMOVE_TIMEOUT}",
            "",
            "[profile]",
            f"filename = {self.log_dir / 'profile'}",
            "",
            "[logger_root]",
            "level = DEBUG",
            "",
            "[handler_logfile]",
            "keyword__class = logging.FileHandler",
            # Evaluated by logging.config.fileConfig; repr() quotes the path safely.
            f"args = ({str(self.daemon_log)!r}, 'a')",
            "kwargs = {}",
            "level = DEBUG",
            "",
        ]
        (conf_d / "99-test.conf").write_text("\n".join(lines))

    def _wait_ready(self, log_offset: int) -> int:
        """Wait for "Ready for requests" in the log; return the bound port parsed from it."""
        assert self._daemon is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._daemon.poll() is not None:
                raise DataPlaneError(
                    f"imageio daemon exited rc={self._daemon.returncode} during start\n"
                    f"{_tail(self.log_dir / 'daemon.out')}\n{_tail(self.daemon_log)}"
                )
            text = ""
            if self.daemon_log.exists():
                with self.daemon_log.open("rb") as f:
                    f.seek(log_offset)
                    text = f.read().decode(errors="replace")
            if "Ready for requests" in text:
                match = _LISTEN_RE.search(text)
                if match is None:
                    raise DataPlaneError(f"no listening port in daemon log\n{text}")
                port = int(match.group(2))
                # Belt and braces: the port must accept TCP connections now.
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
                return port
            time.sleep(0.05)
        log_tail = _tail(self.daemon_log)
        raise DataPlaneError(f"imageio daemon not ready after {START_TIMEOUT}s\n{log_tail}")

    # ---- control API -----------------------------------------------------------------------

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        con = _UnixHTTPConnection(self.control_socket, timeout=CONTROL_TIMEOUT)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            con.request(method, path, body=payload, headers=headers)
            resp = con.getresponse()
            data = resp.read()
            if resp.status >= 300:
                raise DataPlaneError(
                    f"control {method} {path}: {resp.status} {resp.reason}: "
                    f"{data.decode(errors='replace').strip()}"
                )
            return data
        finally:
            con.close()

    def add_ticket(self, ticket: dict[str, Any]) -> None:
        """Install a raw ticket (``PUT /tickets/{uuid}``) -- for tests of odd tickets."""
        self._control("PUT", f"/tickets/{ticket['uuid']}", ticket)

    def ticket_info(self, ticket_id: str) -> dict[str, Any]:
        """``GET /tickets/{id}``: ``transferred`` (bytes served), ``active``, ``connections``…"""
        info: dict[str, Any] = json.loads(self._control("GET", f"/tickets/{ticket_id}"))
        return info

    def remove_ticket(self, ticket_id: str) -> None:
        """``DELETE /tickets/{id}``: later requests with this ticket get 403."""
        self._control("DELETE", f"/tickets/{ticket_id}")

    # ---- images ----------------------------------------------------------------------------

    def create_disk(
        self, path: Path, size: int, fmt: str = "qcow2", preallocation: str | None = None
    ) -> Path:
        """Create an empty image (all unallocated: every extent is a hole, unless ``preallocation``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = ["-o", f"preallocation={preallocation}"] if preallocation else []
        _run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(path), str(size)], "qemu-img create")
        return path

    def write(self, path: Path, offset: int, length: int, pattern: int | None = None) -> None:
        """Write as the guest would: ``pattern`` fills bytes, ``None`` writes zeroes.

        Zero writes (``write -z``) make qcow2 zero clusters: allocated, reported as
        ``zero: true, hole: false`` and dirty in bitmaps, but no data is sent for them.
        """
        fmt = image_info(path)["format"]
        cmd = (
            f"write -z {offset} {length}"
            if pattern is None
            else (f"write -P {pattern:#04x} {offset} {length}")
        )
        out = _run(["qemu-io", "-f", fmt, "-c", cmd, str(path)], "qemu-io")
        # Older qemu-io printed "write failed" but exited 0; do not trust the exit code alone.
        if "failed" in out:
            raise DataPlaneError(f"qemu-io {cmd!r} on {path}: {out}")

    def add_bitmap(self, path: Path, name: str) -> None:
        """Add an enabled persistent dirty bitmap (a checkpoint) to a qcow2 image."""
        _run(["qemu-img", "bitmap", "--add", "--enable", str(path), name], "qemu-img bitmap")

    def remove_bitmap(self, path: Path, name: str) -> None:
        """Remove a bitmap, as the engine does when a checkpoint is deleted."""
        _run(["qemu-img", "bitmap", "--remove", str(path), name], "qemu-img bitmap")

    def bitmaps(self, path: Path) -> list[str]:
        """Names of the persistent bitmaps in a qcow2 image."""
        specific = image_info(path).get("format-specific", {}).get("data", {})
        return [b["name"] for b in specific.get("bitmaps", [])]

    # ---- transfers -------------------------------------------------------------------------

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
        if not self.running:
            raise DataPlaneError("imageio daemon is not running")
        path = Path(path).resolve()
        info = image_info(path)
        fmt = info["format"]
        size = int(info["virtual-size"])
        if bitmap is not None and bitmap not in self.bitmaps(path):
            raise DataPlaneError(f"{path} has no bitmap {bitmap!r} (has {self.bitmaps(path)})")
        ticket_id = ticket_id or str(uuid.uuid4())

        with self._lock:
            if ticket_id in self._transfers or ticket_id in self._pending:
                raise DataPlaneError(f"ticket {ticket_id} already exists")
            self._pending.add(ticket_id)
            self._counter += 1
            sock = self._sockets_dir() / f"nbd-{self._counter}.sock"
            log_file = self.log_dir / f"qemu-nbd-{self._counter}.log"

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
            if not _wait_for_unix_socket(sock, proc, START_TIMEOUT):
                rc = proc.poll()
                raise DataPlaneError(f"qemu-nbd did not serve {sock} (rc={rc})\n{_tail(log_file)}")
            nbd_url = f"nbd:unix:{sock}"
            self._control(
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
            _stop_process(proc)
            self._nbd_procs.discard(proc)
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            raise

        transfer = Transfer(
            ticket_id=ticket_id,
            transfer_url=f"{self.data_url}/images/{ticket_id}",
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
        if self.running:
            try:
                self.remove_ticket(ticket_id)
            except (OSError, DataPlaneError) as e:
                error = e
        rc = _stop_process(transfer.process)
        self._nbd_procs.discard(transfer.process)
        with contextlib.suppress(FileNotFoundError):
            transfer.nbd_socket.unlink()
        if error is not None:
            raise DataPlaneError(f"removing ticket {ticket_id}: {error}") from error
        # qemu-nbd exits 0 on SIGTERM; anything else means it died on its own.
        if rc not in (0, -signal.SIGTERM):
            log_tail = _tail(transfer.log_file)
            raise DataPlaneError(f"qemu-nbd for {ticket_id} exited rc={rc}\n{log_tail}")


@contextlib.contextmanager
def running_dataplane(workdir: Path, tls: TlsFiles | None = None) -> Iterator[DataPlane]:
    """``with running_dataplane(tmp_path) as dp:`` -- for fixtures that prefer a function."""
    dp = DataPlane(workdir, tls)
    dp.start()
    try:
        yield dp
    finally:
        dp.stop()


__all__ = [
    "DataPlane",
    "DataPlaneError",
    "TlsFiles",
    "Transfer",
    "image_info",
    "make_tls",
    "running_dataplane",
]

"""The ovirt-imageio daemon a host runs, on loopback, and its control API (tickets).

Findings (ovirt-imageio 2.5.1) that shaped this module:

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
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ovirt_fake_engine.procs import (
    MAX_UNIX_PATH,
    START_TIMEOUT,
    STOP_TIMEOUT,
    DataPlaneError,
    stop_process,
    tail,
)

CONTROL_TIMEOUT = 30.0
# How long DELETE /tickets waits for ongoing operations before answering 409.
REMOVE_TIMEOUT = 10

_LISTEN_RE = re.compile(r"remote\.service listening on \('([^']*)', (\d+)\)")
_DAEMON_MAIN = "from ovirt_imageio._internal import server; server.main()"


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


class ImageioDaemon:
    """An ovirt-imageio daemon on loopback and its control API (tickets).

    Layout under ``workdir``: ``conf/conf.d/99-test.conf``, ``logs/daemon.log`` (the daemon's own
    log, DEBUG), ``logs/daemon.out`` (stdout/stderr, for crashes before logging starts), ``run/``
    (the control socket and the NBD sockets of exports.py, unless the path is too long for a unix
    socket). Thread-safe: the fake engine may call it from its request threads.
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
        self._lock = threading.RLock()

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
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
        return self.sockets_dir() / "control.sock"

    def start(self) -> None:
        """Start the daemon and wait until it serves requests; may be called again after a kill.

        Tickets do not survive a restart, and the data port changes (it is chosen by the kernel).
        """
        with self._lock:
            if self.running:
                raise DataPlaneError("imageio daemon is already running")
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
        """Stop the daemon and drop a private run directory; safe to call twice."""
        with self._lock:
            try:
                self._stop_daemon()
            finally:
                if self._own_run_dir and self._run_dir is not None:
                    shutil.rmtree(self._run_dir, ignore_errors=True)
                    self._run_dir = None
                    self._own_run_dir = False

    def kill_daemon(self) -> None:
        """SIGKILL the daemon, as a crashed host would: open transfers fail mid-way.

        qemu-nbd exports stay up; ``DataPlane.stop_transfer`` and ``stop`` still clean them up.
        """
        with self._lock:
            if self._daemon is not None and self._daemon.poll() is None:
                self._daemon.kill()
                self._daemon.wait(STOP_TIMEOUT)

    def _stop_daemon(self) -> None:
        if self._daemon is None:
            return
        rc = stop_process(self._daemon)
        self._daemon = None
        # SIGTERM makes the daemon exit 0; -9 after kill_daemon() is expected too.
        if rc not in (0, -signal.SIGKILL, -signal.SIGTERM):
            raise DataPlaneError(f"imageio daemon exited rc={rc}\n{tail(self.daemon_log)}")

    def sockets_dir(self) -> Path:
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
        run_dir = self.sockets_dir()
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
                    f"{tail(self.log_dir / 'daemon.out')}\n{tail(self.daemon_log)}"
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
        log_tail = tail(self.daemon_log)
        raise DataPlaneError(f"imageio daemon not ready after {START_TIMEOUT}s\n{log_tail}")

    # ---- control API -----------------------------------------------------------------------

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        """One request on the control socket; a non-2xx answer raises :class:`DataPlaneError`."""
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
        self.control("PUT", f"/tickets/{ticket['uuid']}", ticket)

    def ticket_info(self, ticket_id: str) -> dict[str, Any]:
        """``GET /tickets/{id}``: ``transferred`` (bytes served), ``active``, ``connections``…"""
        info: dict[str, Any] = json.loads(self.control("GET", f"/tickets/{ticket_id}"))
        return info

    def remove_ticket(self, ticket_id: str) -> None:
        """``DELETE /tickets/{id}``: later requests with this ticket get 403."""
        self.control("DELETE", f"/tickets/{ticket_id}")

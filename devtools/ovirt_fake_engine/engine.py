"""``FakeEngine``: the object tests hold. It owns the state, the HTTP server and the fault switches.

Its data-plane side (real disk images, guest writes, image transfers) is in data.py.

Fault switches act on the next N API requests (SSO ones too with ``sso=True``) so tests can
provoke outages, lost replies, slow answers and hostile bodies deterministically. Authentication
follows ovirt-api.md §7: an OAuth password grant at the SSO endpoint, Bearer (or Basic) on the API.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

from requests.structures import CaseInsensitiveDict

from ovirt_fake_engine import api
from ovirt_fake_engine.data import DataPlaneControls
from ovirt_fake_engine.dataplane import DataPlane
from ovirt_fake_engine.model import Backup, Checkpoint, Disk, DiskSpec, Event, Vm
from ovirt_fake_engine.server import API_PREFIX, SSO_LOGOUT, RecordedRequest, _Server
from ovirt_fake_engine.state import EngineState

KNOBS = frozenset(
    {
        "phase_seconds",
        "legacy",
        "succeeded_retention",
        "failed_retention",
        "fail_next_backup",
        "tz",
        "fail_next_transfer",
        "transfer_retention",
        "failed_transfer_retention",
    }
)


@dataclass
class _Switch:
    """A fault switch armed for the next ``left`` matching requests."""

    kind: str  # fail | drop | delay | unauthorized | hostile | fault | gather
    left: int
    sso: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    method: str | None = None  # only requests with this method count (None: any)
    path: str | None = None  # only API paths (after /ovirt-engine/api) matching this regex

    def matches(self, sso: bool, method: str, path: str) -> bool:
        """Does this request use up one of the switch's shots?"""
        if self.sso != sso or self.left <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.fullmatch(self.path, path) is not None


def _json(status: int, data: dict[str, str]) -> api.Reply:
    return api.Reply(status, json.dumps(data).encode(), "application/json")


class FakeEngine(DataPlaneControls):
    """A stateful fake oVirt engine on loopback: start it, seed VMs, point a client at ``url``.

    Backups run engine 4.5's snapshot-based ("hybrid") flow, or with ``legacy`` the older live/cold
    one (flows.py). With ``dataplane`` the disks are real images served by that imageio daemon (see
    ``attach_dataplane``); the engine does not start or stop the data plane itself.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        phase_seconds: float = 1.0,
        *,
        legacy: bool = False,
        dataplane: DataPlane | None = None,
        disk_dir: Path | None = None,
    ):
        self.ssl_context = ssl_context
        self.state = EngineState(phase_seconds, legacy)
        if dataplane is not None:
            self.attach_dataplane(dataplane, disk_dir)
        self.username = "admin@internal"
        self.password = "secret-pw"
        self.logins = 0
        self.logouts = 0
        self._tokens: set[str] = set()
        self.tokens_issued: list[str] = []  # every token SSO handed out, oldest first
        self._log: list[RecordedRequest] = []
        self._switches: list[_Switch] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port = 0
        # Set by TLS fixtures / __main__: the CA that signed the server cert and its PEM path.
        self.ca: Any = None
        self.ca_path: str | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen (port 0 picks a free one) and serve in a daemon thread."""
        self._server = _Server(self, host, port)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut idle keep-alive connections and end open transfer sessions.

        Transfer sessions are qemu-nbd processes: they must not outlive the test (the data plane
        itself belongs to whoever started it).
        """
        self.close_transfer_sessions()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._server.sockets_lock:
            for sock in list(self._server.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT``: what SSO URLs are built from."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API entry point, ``.../ovirt-engine/api``."""
        return self.base_url + API_PREFIX

    # -- engine state -----------------------------------------------------------------------------
    def add_vm(
        self, name: str, status: str = "up", disks: list[DiskSpec] | None = None, host_id: str | None = None
    ) -> Vm:
        """Create a VM with its disks attached, on ``host_id`` (see ``add_host``; default the first host)."""
        return self.state.add_vm(name, status, disks or [], host_id)

    def add_host(self, name: str) -> str:
        """Add a host for VMs to run on (their backups' transfers go through it); returns its id."""
        return self.state.add_host(name)

    @property
    def transfer_peaks(self) -> dict[str, int]:
        """Per host id: the most image transfers moving data through it at once so far."""
        with self.state.lock:
            return dict(self.state.transfer_peaks)

    @property
    def transfer_peak_total(self) -> int:
        """The most image transfers moving data at once so far, over every host."""
        with self.state.lock:
            return self.state.transfer_peak_total

    def add_disk(self, vm_id: str, spec: DiskSpec) -> Disk:
        """Attach another disk to a VM."""
        return self.state.add_disk(vm_id, spec)

    def set_vm_status(self, vm_id: str, status: str) -> None:
        """Change a VM's status (up, down, paused, ...)."""
        with self.state.lock:
            self.state.vms[vm_id].status = status

    def advance(self, seconds: float) -> None:
        """Move the engine clock forward."""
        self.state.advance(seconds)

    def backups(self, vm_id: str) -> list[Backup]:
        """The VM's backups, phases settled to now."""
        return self.state.backups(vm_id)

    def checkpoints(self, vm_id: str) -> list[Checkpoint]:
        """The VM's checkpoints, root first."""
        return self.state.checkpoints(vm_id)

    def add_backups(
        self, vm_id: str, n: int, phase: str = "succeeded", description: str | None = "nightly"
    ) -> list[Backup]:
        """Bulk-create backups for scale tests, shaped like a real engine's list (a checkpoint chain)."""
        return self.state.add_backups(vm_id, n, phase, description)

    @property
    def events(self) -> list[Event]:
        """The audit log (``GET /events``), oldest first."""
        with self.state.lock:
            self.state.settle()
            return list(self.state.events)

    def add_checkpoint(
        self,
        vm_id: str,
        *,
        id: str | None = None,
        disk_ids: list[str] | None = None,
        description: str | None = None,
        state: str = "created",
    ) -> Checkpoint:
        """Append a checkpoint to the VM's chain (default: covering all its qcow2 disks)."""
        return self.state.add_checkpoint(
            vm_id, checkpoint_id=id, disk_ids=disk_ids, description=description, state=state
        )

    def set_checkpoint_state(self, checkpoint_id: str, state: str) -> None:
        """Mark a checkpoint ``invalid`` or ``created``."""
        self.state.set_checkpoint_state(checkpoint_id, state)

    def fail_backup(self, backup_id: str) -> None:
        """Move an unfinished backup to failed (its checkpoint disappears)."""
        self.state.fail_backup(backup_id)

    # Knobs live in the state so the engine's rules read them under its lock (read them there:
    # ``engine.state.phase_seconds``); ``configure`` is the one way to change them.
    def configure(self, **knobs: Any) -> None:
        """Set engine knobs at once, under the engine lock (see the package docstring).

        ``phase_seconds`` (engine-clock seconds per phase step, 0: at once), ``succeeded_retention``
        / ``failed_retention`` (seconds a finished backup stays visible: 900 / 1800),
        ``transfer_retention`` / ``failed_transfer_retention`` (the same for transfers),
        ``fail_next_backup`` / ``fail_next_transfer`` (the next one fails, then resets), ``tz`` (the
        engine's time zone for dates), ``legacy`` (new backups run the live/cold flow, flows.py).
        """
        unknown = sorted(set(knobs) - KNOBS)
        if unknown:
            raise TypeError(
                f"unknown fake engine knob(s): {', '.join(unknown)} (known: {', '.join(sorted(KNOBS))})"
            )
        with self.state.lock:
            for name, value in knobs.items():
                setattr(self.state, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in KNOBS:  # a silent no-op attribute would make a test wait forever: say so
            raise AttributeError(f"set {name} with engine.configure({name}=...)")
        super().__setattr__(name, value)

    # -- fault switches ---------------------------------------------------------------------------
    def _arm(
        self, switch: str, n: int, sso: bool, method: str | None = None, path: str | None = None, **args: Any
    ) -> None:
        with self._lock:
            self._switches.append(_Switch(switch, n, sso, args, method, path))

    # Every switch takes ``method`` and ``path`` (a regex matched against the whole API path after
    # /ovirt-engine/api, e.g. r"/vms" or r"/imagetransfers/.*/finalize") to hit only those requests.
    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        sso: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next n requests with ``status`` and a short HTML page, doing nothing."""
        self._arm("fail", n, sso, method, path, status=status)

    def fault_next(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        n: int = 1,
        status: int = 500,
        reason: str = "Operation Failed",
        detail: str = "[Internal Engine Error]",
    ) -> None:
        """Answer the next n matching API requests with an engine ``<fault>``, doing nothing.

        ``engine.fault_next("POST", "/vms")`` fails the next VM creation the way a backend failure
        would (``Operation Failed``, the detail a Java list); pass a 409 and a message for a refusal.
        """
        self._arm("fault", n, False, method, path, status=status, reason=reason, detail=detail)

    def drop_next(
        self,
        n: int = 1,
        after_body: bool = False,
        *,
        sso: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Close the socket without a reply; ``after_body``: perform the request first."""
        self._arm("drop", n, sso, method, path, after_body=after_body)

    def delay_next(
        self,
        n: int = 1,
        seconds: float = 2.0,
        *,
        sso: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Sleep (real time) before handling the next n requests."""
        self._arm("delay", n, sso, method, path, seconds=seconds)

    def hostile_next(
        self, kind: str, n: int = 1, *, sso: bool = False, method: str | None = None, path: str | None = None
    ) -> None:
        """Reply 200 with malformed / billion_laughs / external_entity / html, doing nothing."""
        if kind not in ("malformed", "billion_laughs", "external_entity", "html"):
            raise ValueError(kind)
        self._arm("hostile", n, sso, method, path, kind=kind)

    def gather_next(
        self,
        n: int,
        *,
        expire_tokens: bool = False,
        method: str | None = None,
        path: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Hold the next n matching API requests until all n have arrived (at most ``timeout`` real
        seconds), so they are in flight together; with ``expire_tokens``, every token is invalidated
        as they are let go — a token expiring under parallel requests: each gets a 401 for its token."""
        barrier = threading.Barrier(n, action=self.expire_tokens if expire_tokens else None, timeout=timeout)
        self._arm("gather", n, False, method, path, barrier=barrier)

    def unauthorized_next(self, n: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Answer 401 (HTML + WWW-Authenticate) to the next n API requests."""
        self._arm("unauthorized", n, False, method, path)

    def _take_switches(self, sso: bool, method: str = "GET", path: str = "") -> dict[str, _Switch]:
        """Consume one use of the oldest matching armed switch of each kind for this request."""
        fired: dict[str, _Switch] = {}
        with self._lock:
            for sw in self._switches:
                if sw.kind not in fired and sw.matches(sso, method, path):
                    sw.left -= 1
                    fired[sw.kind] = sw
            self._switches = [sw for sw in self._switches if sw.left > 0]
        return fired

    # -- auth and SSO -----------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call gets 401 until a new SSO login."""
        with self._lock:
            self._tokens.clear()

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, cred = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            with self._lock:
                return cred.strip() in self._tokens
        if scheme.lower() == "basic":
            try:
                user, _, pw = base64.b64decode(cred.strip()).decode().partition(":")
            except ValueError:
                return False
            return (user, pw) == (self.username, self.password)
        return False

    def _sso(self, path: str, headers: CaseInsensitiveDict[str], body: bytes) -> api.Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if path == SSO_LOGOUT:
            with self._lock:
                self._tokens.discard(form.get("token", ""))
                self.logouts += 1
            return _json(200, {})
        rest_scope = form.get("scope") == "ovirt-app-api"

        def error(code: str, message: str) -> api.Reply:
            # REST-scope layout {error_code, error}; otherwise OAuth's {error, error_description}.
            if rest_scope:
                return _json(400, {"error_code": code, "error": message})
            return _json(400, {"error": code, "error_description": message})

        if headers.get("Accept") != "application/json":
            return error("invalid_request", "Missing parameter: 'Accept Header'")
        if form.get("grant_type") != "password":
            return error("unsupported_grant_type", "The grant type is not supported.")
        user, password = form.get("username", ""), form.get("password", "")
        if (user, password) != (self.username, self.password):
            return error(
                "access_denied",
                f"Cannot authenticate user '{user}': The username or password is incorrect..",
            )
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens.add(token)
            self.tokens_issued.append(token)
            self.logins += 1
        exp = str(int((time.time() + 36000) * 1000))
        return _json(
            200,
            {"access_token": token, "token_type": "bearer", "scope": form.get("scope", ""), "exp": exp},
        )

    # -- request log ------------------------------------------------------------------------------
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._log.append(req)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        """Forget recorded requests (counters ``logins``/``logouts`` are kept)."""
        with self._lock:
            self._log.clear()

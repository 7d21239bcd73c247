"""The HTTP(S) side of the fake engine: a ThreadingHTTPServer on loopback and its handler.

HTTP/1.1 with keep-alive and Content-Length on every reply, so a client's connection pooling and
retry logic meet the same socket behaviour as against WildFly. The handler records every request,
applies the fault switches armed on ``FakeEngine``, answers SSO, checks auth and ``Version``, and
hands API paths to api.py. The 401 and bad-Version replies are not XML, like the engine's servlet
filters (ovirt-api.md §5.1).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from ovirt_fake_engine import api, xmlout

if TYPE_CHECKING:
    from ovirt_fake_engine.engine import FakeEngine

API_PREFIX = "/ovirt-engine/api"
SSO_TOKEN = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT = "/ovirt-engine/services/sso-logout"
_ERROR_PAGE = "<html><head><title>Error</title></head><body>{}</body></html>"


@dataclass
class RecordedRequest:
    """One request as the server saw it (SSO included); ``query`` keeps repeated keys."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine: FakeEngine, host: str, port: int) -> None:
        self.engine = engine
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        ctx = self.engine.ssl_context
        if ctx is not None:
            # Handshake later, in the handler thread: a client that never completes it (or
            # rejects our certificate) must not block the accept loop.
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)):
            return  # clients hanging up or failing TLS verification is expected in tests
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOvirtEngine/4.5"
    timeout = 120
    server: _Server

    def setup(self) -> None:
        # Headers and body go out in separate writes; without TCP_NODELAY Nagle plus the
        # client's delayed ACK would add ~40 ms to every small reply.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every request is in ``FakeEngine.requests`` already."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        engine = self.server.engine
        body = self._read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        headers = CaseInsensitiveDict(self.headers.items())
        engine._record(RecordedRequest(self.command, url.path, query, headers, body))
        if url.path in (SSO_TOKEN, SSO_LOGOUT):
            self._with_switches(True, url.path, lambda: engine._sso(url.path, headers, body), url.path)
        elif url.path == API_PREFIX or url.path.startswith(API_PREFIX + "/"):
            parts = [p for p in url.path[len(API_PREFIX) :].split("/") if p]
            rest = parts[1:] if parts[:1] == ["v4"] else parts
            root = api.expected_root(self.command, rest)
            path = "/" + "/".join(rest) if rest else ""
            self._with_switches(False, root, lambda: self._api(parts, query, body), path)
        else:
            self._send(api.Reply(404, _ERROR_PAGE.format("Not Found").encode(), "text/html"))

    def _with_switches(self, sso: bool, root: str, run: Callable[[], api.Reply], path: str) -> None:
        engine = self.server.engine
        fired = engine._take_switches(sso, self.command, path)
        gather = fired.get("gather")
        if gather is not None:
            # Not all of them came (a broken barrier): go on alone rather than hang the test.
            with contextlib.suppress(threading.BrokenBarrierError):
                gather.args["barrier"].wait()
        delay = fired.get("delay")
        if delay is not None:
            time.sleep(delay.args["seconds"])
        drop = fired.get("drop")
        if drop is not None and not drop.args["after_body"]:
            self.close_connection = True
            return
        reply: api.Reply
        if "fail" in fired:
            status = fired["fail"].args["status"]
            page = _ERROR_PAGE.format(f"{status} {_phrase(status)}")
            reply = api.Reply(status, page.encode(), "text/html;charset=UTF-8")
        elif "unauthorized" in fired:
            reply = _unauthorized()
        elif "fault" in fired:
            args = fired["fault"].args
            fault = xmlout.fault(args["reason"], args["detail"])
            reply = api.Reply(args["status"], xmlout.document(fault), "application/xml")
        elif "hostile" in fired:
            ctype, text = xmlout.hostile(fired["hostile"].args["kind"], root)
            reply = api.Reply(200, text, ctype)
        else:
            reply = run()
        if drop is not None:  # after_body: the effect happened, the reply is lost
            self.close_connection = True
            return
        self._send(reply)

    def _api(self, parts: list[str], query: dict[str, list[str]], body: bytes) -> api.Reply:
        engine = self.server.engine
        if not engine._authorized(self.headers.get("Authorization")):
            return _unauthorized()
        version = self.headers.get("Version")
        if parts[:1] == ["v4"]:
            parts = parts[1:]
        elif parts[:1] == ["v3"] or (version is not None and version.strip() != "4"):
            # VersionFilter answers with sendError(400): plain text, not a <fault>.
            text = f'Version "{version or "3"}" isn\'t supported\n'
            return api.Reply(400, text.encode(), "text/plain;charset=UTF-8")
        return api.handle(engine.state, self.command, parts, query, body, engine.base_url)

    def _send(self, reply: api.Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _unauthorized() -> api.Reply:
    """EnforceAuthFilter's sendError(401): the container's HTML page, not XML (§5.1)."""
    headers = {"WWW-Authenticate": 'Basic realm="RESTAPI"'}
    page = _ERROR_PAGE.format("Unauthorized").encode()
    return api.Reply(401, page, "text/html;charset=UTF-8", headers)

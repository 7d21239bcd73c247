"""The one request seam: every call to the engine goes through :meth:`Connection.request`.

It owns the requests session, the SSO token (with one re-login on a 401), TLS verification, timeouts,
the retry policy, the user's extra headers and query parameters, and the mapping of HTTP failures onto
ovbackup's exception tree. Nothing else in ovbackup talks HTTP to the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ovbackup import __version__
from ovbackup.engine.xml import parse_fault
from ovbackup.errors import (
    AuthError,
    ConnectError,
    DeadlineError,
    EngineAuthError,
    EngineError,
    EngineNotFoundError,
    EngineUnavailableError,
    NotAnEngineError,
    RefusedError,
)

log = logging.getLogger("ovbackup.http")
T = TypeVar("T")

API_PATH = "/ovirt-engine/api"
SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"  # noqa: S105 - a path, not a secret
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
CA_PATH = "/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA"
DEFAULT_TIMEOUT = 60.0
QueryValue = str | int | bool


def normalize_url(url: str) -> str:
    """Accept ``https://host`` or ``https://host/ovirt-engine/api`` and return the API URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if path in ("", "/ovirt-engine"):
        path = API_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def render_query_value(value: QueryValue) -> str:
    """Booleans go on the wire as ``true``/``false``, as the SDK writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def strip_brackets(text: str | None) -> str | None:
    """The engine prints validation messages as a Java list: ``[message]``; show the message."""
    if text and text.startswith("[") and text.endswith("]"):
        return text[1:-1].strip()
    return text


class Connection:
    """An authenticated session with one engine.

    Retries: GETs are retried by urllib3 on connection errors and 502/503/504 with exponential backoff;
    other methods are never retried here, because a POST may have taken effect (see
    ``VmBackupsService.add`` for how a lost POST is retried safely).
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, QueryValue] | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = normalize_url(url)
        parts = urlsplit(self.url)
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.username = username
        self._password = password
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.query = {k: render_query_value(v) for k, v in (query or {}).items()}
        self._token: str | None = None
        # Every token obtained, so close() logs each one out; the lock makes the 401s of parallel
        # disk threads cost one re-login, not one each (each thread's login would orphan the others').
        self._tokens: list[str] = []
        self._login_lock = threading.Lock()
        self.session = requests.Session()
        # Passed on every request, not only set on the session: requests lets REQUESTS_CA_BUNDLE
        # override a session's verify (psf/requests#3829), which would ignore --cafile.
        self._verify: bool | str = False if insecure else (ca_file or True)
        self.session.verify = self._verify
        self.session.headers.update(
            {"User-Agent": f"ovbackup/{__version__}", "Version": "4", "Accept": "application/xml"}
        )
        retry = Retry(
            total=retries,
            connect=retries,
            read=1,  # a read timeout retried many times would multiply --timeout
            status=retries,
            other=0,
            backoff_factor=backoff,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        # pool_block: threads beyond the pool (a fleet's --parallel x --parallel-disks) wait for a free
        # connection; without it urllib3 opens extra ones and discards them with a warning on stderr.
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32, pool_block=True)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def __repr__(self) -> str:  # never show the password or the token
        return f"Connection(url={self.url!r}, username={self.username!r})"

    # ---- authentication ------------------------------------------------------------------------

    def login(self) -> None:
        """Get an SSO token with the password grant (ovirt-api.md §7.1)."""
        with self._login_lock:
            self._login()

    def _refresh(self, stale: str | None) -> None:
        """Log in because ``stale`` (None: no token yet) was refused — unless another thread already
        replaced it while this one waited for the lock: then the caller just retries with the new one."""
        with self._login_lock:
            if self._token == stale:
                self._login()

    def _login(self) -> None:
        url = self.base_url + SSO_TOKEN_PATH
        log.debug("POST %s (username=%s, password=<redacted>)", url, self.username)
        response = self._send(
            "POST",
            url,
            data={
                "grant_type": "password",
                "scope": "ovirt-app-api",
                "username": self.username,
                "password": self._password,
            },
            headers={"Accept": "application/json"},
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise self._no_sso(response)
        if "error" in payload or response.status_code != 200:
            # Two layouts: {"error_code", "error": message} for the API scope,
            # {"error": code, "error_description": message} otherwise.
            code = payload.get("error_code") or payload.get("error")
            message = payload.get("error_description") or payload.get("error") or ""
            if "error_code" in payload:
                message = payload.get("error") or ""
            raise AuthError(f"login as {self.username} failed: {message} ({code})")
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"login as {self.username} failed: no access token in the reply")
        self._token = token
        self._tokens.append(token)

    def _no_sso(self, response: requests.Response) -> EngineError | NotAnEngineError:
        """An SSO reply that is not JSON: the engine is starting or stopping behind its proxy
        (502/503/504: unavailable, exit 7), or the URL is not an oVirt engine's (exit 2)."""
        status = response.status_code
        if status in (502, 503, 504):
            return EngineUnavailableError(
                f"the engine's SSO service at {self.base_url} is unavailable (HTTP {status})",
                hint="try again later",
                status=status,
            )
        kind = _content_kind(response)
        return NotAnEngineError(
            f"{self.base_url} is not an oVirt engine: {SSO_TOKEN_PATH} answered HTTP {status} with "
            f"{kind}, not the SSO service's JSON",
            hint="check --engine-url (the engine's address, e.g. https://engine.example.com)",
        )

    def close(self, logout: bool = True) -> None:
        """Revoke the token (best effort: a failed logout must not fail the job) and close sockets."""
        with self._login_lock:
            tokens, self._tokens, self._token = self._tokens, [], None
        # The replaced ones too: a 401 does not prove the SSO service forgot a token.
        for token in tokens if logout else ():
            try:
                self._send(
                    "POST",
                    self.base_url + SSO_LOGOUT_PATH,
                    data={"scope": "ovirt-app-api", "token": token},
                    headers={"Accept": "application/json"},
                    timeout=min(self.timeout, 10.0),
                )
            except Exception as e:
                log.debug("logout failed: %s", e)
                break  # the engine is not answering: do not wait out every other token too
        self.session.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
        stream: bool = False,
    ) -> requests.Response:
        """Send one API request (``path`` is relative to the API URL) and return the successful reply.

        ``stream=True`` leaves the body unread (see :meth:`read_stream`), for very long collections.
        """
        params = dict(self.query)
        for key, value in (query or {}).items():
            if value is not None:
                params[key] = render_query_value(value)
        all_headers = dict(self.headers)
        if body is not None:
            all_headers["Content-Type"] = "application/xml"
        all_headers.update(headers or {})
        url = f"{self.url}/{path}" if path else self.url
        if self._token is None:
            self._refresh(None)
        for attempt in (1, 2):
            token = self._token
            all_headers["Authorization"] = f"Bearer {token}"
            response = self._send(
                method, url, params=params, data=body, headers=all_headers, timeout=timeout, stream=stream
            )
            if response.status_code == 401 and attempt == 1:
                log.debug("401 from the engine: logging in again once")
                self._refresh(token)
                continue
            break
        if response.status_code not in ok:
            raise self._error(method, path, response)
        return response

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        timeout = kwargs.pop("timeout", None) or self.timeout
        started = time.monotonic()
        log.debug("→ %s %s%s", method, url, _describe_params(kwargs.get("params")))
        try:
            response = self.session.request(method, url, timeout=timeout, verify=self._verify, **kwargs)
        except requests.exceptions.SSLError as e:
            raise self._tls_error(e) from None
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as e:
            # A read timeout that urllib3 retried and gave up on arrives as a ConnectionError.
            if isinstance(e, requests.exceptions.Timeout) or _is_timeout(e):
                raise DeadlineError(
                    f"the engine did not answer {method} {_short(url)} within {timeout:g} s",
                    hint="raise --timeout if the engine is slow",
                ) from None
            raise ConnectError(
                f"cannot reach the engine at {self.base_url}: {_root_cause(e)}",
                hint="check --engine-url and that the engine is up",
            ) from None
        size = "streamed" if kwargs.get("stream") else f"{len(response.content)} bytes"
        log.debug(
            "← %s %s (%s, %.0f ms)",
            response.status_code,
            response.reason,
            size,
            (time.monotonic() - started) * 1000,
        )
        return response

    def read_stream(self, response: requests.Response, read: Callable[[IO[bytes]], T]) -> T:
        """Consume a streamed reply with ``read``, mapping transport failures mid-body like any other."""
        import urllib3

        response.raw.decode_content = True
        try:
            return read(response.raw)  # type: ignore[arg-type] # urllib3 HTTPResponse is file-like
        except urllib3.exceptions.ReadTimeoutError:
            raise DeadlineError(
                f"the engine stopped sending {_short(response.url)} for {self.timeout:g} s",
                hint="raise --timeout if the engine is slow",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ConnectError(f"connection to the engine lost while reading a reply: {e}") from None
        finally:
            response.close()

    def _tls_error(self, e: Exception) -> ConnectError:
        text = _root_cause(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return ConnectError(
                f"the engine's TLS certificate at {self.base_url} is not trusted: {text}",
                hint=f"pass --cafile with the engine CA (download it from {self.base_url}{CA_PATH})"
                ", or --insecure to skip verification",
            )
        return ConnectError(f"TLS failed with {self.base_url}: {text}")

    def _error(self, method: str, path: str, response: requests.Response) -> EngineError | NotAnEngineError:
        status = response.status_code
        fault = parse_fault(response.content) if response.content else None
        reason = fault.reason if fault else None
        detail = strip_brackets(fault.detail) if fault else None
        where = f"{method} /{path}" if path else f"{method} /"
        what = detail or reason or response.reason or "no details"
        if fault and fault.reason and fault.detail and fault.reason not in _GENERIC_REASONS:
            what = f"{fault.reason}: {detail}"
        message = f"{what} (HTTP {status}, {where})"
        kwargs: dict[str, Any] = {"status": status, "reason": reason, "detail": detail}
        if status in (401, 403):
            return EngineAuthError(
                f"not authorized: {message}", hint="check the user's permissions", **kwargs
            )
        if status == 404 and _content_kind(response) == "an HTML page":
            # The engine's 404 has an empty body (or a <fault>); an HTML page is some other server's.
            return NotAnEngineError(
                f"{self.url} does not look like an oVirt engine API: {where} answered HTTP 404 with "
                "an HTML page, not the engine's XML",
                hint="check --engine-url (the engine's address, e.g. https://engine.example.com)",
            )
        if status == 404:
            return EngineNotFoundError(f"not found ({where}, HTTP 404)", **kwargs)
        if status in (400, 409):
            return RefusedError(message, **kwargs)
        if status in (502, 503, 504):
            return EngineUnavailableError(
                f"the engine is unavailable: {message}", hint="try again later", **kwargs
            )
        return EngineError(message, **kwargs)


_GENERIC_REASONS = ("Operation Failed", "Operation failed")


def _content_kind(response: requests.Response) -> str:
    """What a reply holds, for messages: 'an HTML page', 'no body', or its content type."""
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    head = response.content[:512].lstrip().lower()
    if ctype in ("text/html", "application/xhtml+xml") or head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if not response.content:
        return "no body"
    return f"a {ctype} body" if ctype else "a body of unknown type"


def _describe_params(params: Mapping[str, str] | None) -> str:
    if not params:
        return ""
    return "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def _short(url: str) -> str:
    return urlsplit(url).path


def _causes(e: BaseException) -> Iterator[BaseException]:
    """``e`` and what it wraps, outermost first: urllib3's ``reason``, an exception passed as the
    first argument (requests wraps that way), then ``__cause__``/``__context__``."""
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__


def _root_cause(e: BaseException) -> str:
    """The innermost reason of a requests/urllib3 exception chain, without the pool noise."""
    *_, innermost = _causes(e)
    text = str(innermost)
    if "Max retries exceeded" in text and "(Caused by" in text:
        text = text.split("(Caused by", 1)[1].rstrip(")")
    if ": " in text and text.startswith("<"):  # "<urllib3.connection.HTTPConnection object at …>: reason"
        text = text.split(": ", 1)[1]
    return text.strip() or type(innermost).__name__


def _is_timeout(e: BaseException) -> bool:
    return any(
        "TimeoutError" in type(cause).__name__ or "timed out" in str(cause).lower() for cause in _causes(e)
    )

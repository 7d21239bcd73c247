"""The request seam: URL forms, retries, SSO error layouts."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from ovirt_fake_engine import FakeEngine

from ovbackup.engine.connection import SSO_LOGOUT_PATH, SSO_TOKEN_PATH, Connection, normalize_url
from ovbackup.engine.services import SystemService
from ovbackup.errors import AuthError, EngineUnavailableError


@pytest.mark.parametrize(
    ("given", "api"),
    [
        ("https://engine.example.com", "https://engine.example.com/ovirt-engine/api"),
        ("https://engine.example.com/", "https://engine.example.com/ovirt-engine/api"),
        ("https://engine.example.com/ovirt-engine", "https://engine.example.com/ovirt-engine/api"),
        ("https://engine.example.com/ovirt-engine/api/", "https://engine.example.com/ovirt-engine/api"),
        ("http://127.0.0.1:8080/ovirt-engine/api", "http://127.0.0.1:8080/ovirt-engine/api"),
    ],
)
def test_api_path_is_added_when_missing(given: str, api: str) -> None:
    assert normalize_url(given) == api


def test_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        normalize_url("engine.example.com")


def test_503_retries_are_bounded(engine: FakeEngine) -> None:
    engine.add_vm("web01")
    with Connection(engine.url, engine.username, engine.password, retries=2, backoff=0) as c:
        c.request("GET", "vms")
        engine.fail_next(2, status=503)
        assert c.request("GET", "vms").status_code == 200  # two failures, then success
        engine.fail_next(10, status=503)
        with pytest.raises(EngineUnavailableError, match="HTTP 503"):
            c.request("GET", "vms")


class FakeResponse:
    def __init__(self, status: int, payload: Any) -> None:
        self.status_code = status
        self._payload = payload
        self.content = b"{}"
        self.reason = "Bad Request"

    def json(self) -> Any:
        return self._payload


@pytest.mark.parametrize(
    "payload",
    [
        {"error_code": "access_denied", "error": "Cannot authenticate user 'u@internal'."},
        {"error": "access_denied", "error_description": "Cannot authenticate user 'u@internal'."},
    ],
    ids=["api-scope-layout", "oauth-layout"],
)
def test_both_sso_error_layouts_are_read(monkeypatch: pytest.MonkeyPatch, payload: dict[str, str]) -> None:
    c = Connection("https://engine.invalid", "u@internal", "pw")
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: FakeResponse(400, payload))
    with pytest.raises(AuthError) as info:
        c.login()
    assert "Cannot authenticate user 'u@internal'." in str(info.value)
    assert "access_denied" in str(info.value)


def test_many_threads_share_the_pool_without_noise(
    engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A fleet run's disk threads (``--parallel`` x ``--parallel-disks``) outnumber the pool: they wait for
    a connection instead of opening extra ones that urllib3 then discards with a warning on stderr."""
    engine.add_vm("web01")
    errors: list[BaseException] = []
    with Connection(engine.url, engine.username, engine.password) as c:
        c.request("GET", "vms")
        start = threading.Barrier(64)

        def worker() -> None:
            try:
                start.wait()
                for _ in range(5):
                    assert c.request("GET", "vms").status_code == 200
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        with caplog.at_level("WARNING"):
            threads = [threading.Thread(target=worker) for _ in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert errors == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")] == []


def sso_requests(engine: FakeEngine, path: str) -> list[Any]:
    return [q for q in engine.requests if q.path == path]


def logged_out(engine: FakeEngine) -> list[str]:
    """The tokens the SSO logout requests carried, in order."""
    return [parse_qs(q.body.decode())["token"][0] for q in sso_requests(engine, SSO_LOGOUT_PATH)]


def test_simultaneous_401s_log_in_again_once_and_every_token_is_logged_out(engine: FakeEngine) -> None:
    web01 = engine.add_vm("web01")
    n = 6
    names: list[str] = []
    errors: list[BaseException] = []
    with Connection(engine.url, engine.username, engine.password) as connection:
        vms = SystemService(connection).vms_service()
        vms.vm_service(web01.id).get()  # logged in
        # The token expires while n threads' requests are in flight: every one of them gets a 401.
        engine.gather_next(n, expire_tokens=True, method="GET", path=rf"/vms/{web01.id}")
        start = threading.Barrier(n)

        def get() -> None:
            start.wait()
            try:
                names.append(str(vms.vm_service(web01.id).get().name))
            except BaseException as e:  # handed to the test thread
                errors.append(e)

        threads = [threading.Thread(target=get) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and names == ["web01"] * n
    assert len(sso_requests(engine, SSO_TOKEN_PATH)) == 2  # the first login and ONE re-login
    assert len(engine.tokens_issued) == 2
    assert sorted(logged_out(engine)) == sorted(engine.tokens_issued)  # the replaced one too

"""Shared by the fake engine's tests: a raw HTTP client whose replies the SDK's reader checks."""

from __future__ import annotations

from typing import Any

import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine import FakeEngine, Vm
from ovirtsdk4.reader import Reader


class Client:
    """Raw HTTP against the fake engine with an SSO token, as ovbackup will talk to it."""

    def __init__(self, eng: FakeEngine) -> None:
        self.eng = eng
        self.session = requests.Session()
        r = self.session.post(
            eng.base_url + "/ovirt-engine/sso/oauth/token",
            data={
                "grant_type": "password",
                "scope": "ovirt-app-api",
                "username": eng.username,
                "password": eng.password,
            },
            headers={"Accept": "application/json"},
        )
        r.raise_for_status()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {r.json()['access_token']}",
                "Version": "4",
                "Accept": "application/xml",
                "Content-Type": "application/xml",
            }
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.eng.url + path, params=params, timeout=10)

    def post(self, path: str, body: str, **params: Any) -> requests.Response:
        return self.session.post(self.eng.url + path, data=body, params=params, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.eng.url + path, timeout=10)

    def read(self, path: str, **params: Any) -> Any:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/xml"
        return Reader.read(r.content)

    def start(self, vm: Vm, *, disks: list[str] | None = None, extra: str = "", **params: Any) -> Any:
        ids = disks if disks is not None else [d.id for d in vm.disks]
        body = "".join(f'<disk id="{i}"/>' for i in ids)
        return self.post(f"/vms/{vm.id}/backups", f"<backup>{extra}<disks>{body}</disks></backup>", **params)


@pytest.fixture
def client(engine: FakeEngine) -> Client:
    return Client(engine)


def fault_of(r: requests.Response) -> types.Fault:
    assert r.headers["Content-Type"] == "application/xml"
    fault = Reader.read(r.content)
    assert isinstance(fault, types.Fault)
    return fault


def backup_ready(engine: FakeEngine, client: Client, vm: Vm, **kw: Any) -> types.Backup:
    r = client.start(vm, **kw)
    assert r.status_code == 201, r.text
    engine.advance(5)
    b = client.read(f"/vms/{vm.id}/backups/{Reader.read(r.content).id}")
    assert b.phase == types.BackupPhase.READY
    return b

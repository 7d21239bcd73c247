"""``search=`` as a real engine reads it (search.py), ``/hosts`` and ``/events``: replies read with the
SDK's reader, and the SDK itself as a client."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirt_fake_engine import FakeEngine, Vm

from conftest import Client, fault_of


@pytest.fixture
def vms(engine: FakeEngine) -> dict[str, Vm]:
    made = [
        engine.add_vm("my vm"),
        engine.add_vm("my"),
        engine.add_vm("web01"),
        engine.add_vm("web_02", status="down"),
        engine.add_vm("db01", status="down"),
    ]
    return {v.name: v for v in made}


def names(client: Client, search: str, **params: str) -> list[str]:
    return [v.name for v in client.read("/vms", search=search, **params)]


def test_vm_search(client: Client, vms: dict[str, Vm]) -> None:
    assert names(client, 'name="my vm"') == ["my vm"]
    assert names(client, "name=my") == ["my"]  # = is a whole-value match, * the only wildcard
    assert names(client, "name=my*") == ["my vm", "my"]
    assert names(client, "name=MY") == ["my"]  # ILIKE unless case_sensitive=true
    assert names(client, "name=MY", case_sensitive="true") == []
    assert names(client, "name=web_0*") == ["web_02"]  # _ is escaped: not a one-character wildcard
    assert names(client, "status=up") == ["my vm", "my", "web01"]
    assert names(client, "status=down and name=web*") == ["web_02"]
    assert names(client, "name=web* status=down") == ["web_02"]  # adjacent conditions: and
    assert names(client, "name=db01 or name=web01") == ["web01", "db01"]
    assert names(client, "status=down and name=db* or name=my") == ["my", "db01"]  # and binds tighter
    assert names(client, "name!=my* and status=up") == ["web01"]
    assert names(client, f"id={vms['web01'].id}") == ["web01"]
    assert names(client, "EB") == ["web01", "web_02"]  # free text: anywhere in a text column
    assert names(client, "  ") == list(vms)


@pytest.mark.parametrize("search", ["id=nope", "color=red", "name=x sortby name", "or name=x", "name=x or"])
def test_search_the_fake_cannot_answer_is_a_400(client: Client, vms: dict[str, Vm], search: str) -> None:
    r = client.get("/vms", search=search)
    assert r.status_code == 400
    assert fault_of(r).detail.startswith("[fake engine: unsupported search")


def test_sdk_finds_a_vm_whose_name_has_a_space(engine: FakeEngine, vms: dict[str, Vm]) -> None:
    c = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    try:
        (vm,) = c.system_service().vms_service().list(search='name="my vm" and status=up')
        assert vm.id == vms["my vm"].id
        (host,) = c.system_service().hosts_service().list()
        assert (host.id, host.name) == (engine.state.host_id, "fake-host-1")
    finally:
        c.close()


def test_hosts(engine: FakeEngine, client: Client) -> None:
    (host,) = client.read("/hosts")
    assert isinstance(host, types.Host)
    assert (host.id, host.name, host.status) == (engine.state.host_id, "fake-host-1", types.HostStatus.UP)
    assert host.href == f"/ovirt-engine/api/hosts/{host.id}"
    one = client.read(f"/hosts/{host.id}")
    assert (one.id, one.address) == (host.id, "127.0.0.1")
    assert [h.id for h in client.read("/hosts", search="name=fake*")] == [host.id]
    assert client.read("/hosts", search="name=other") == []
    missing = client.get("/hosts/11111111-2222-3333-4444-555555555555")
    assert (missing.status_code, missing.content) == (404, b"")


def test_events_empty_and_refused(client: Client) -> None:
    r = client.get("/events")
    assert r.status_code == 200 and r.content.rstrip().endswith(b"<events/>")
    assert client.read("/events", search="anything") == []
    assert client.get("/events", search="type=x").status_code == 400

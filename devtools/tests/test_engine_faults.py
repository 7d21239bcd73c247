"""Fault injection a restore needs: an engine fault on one kind of request (``fault_next``, and the
other switches aimed with ``method``/``path``), and the imageio daemon killed in the middle of an
upload — each leaving nothing behind that the client did not ask for.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.demo import DataEngine
from ovirt_imageio import client
from test_engine_uploads import STEP, Api
from test_engine_vms import config_of, from_config

from conftest import Client

MiB = 1 << 20
P = types.ImageTransferPhase


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    engine.configure(phase_seconds=STEP)
    return engine.add_vm("web01", status="down", disks=[DiskSpec(alias="web01_os")])


def test_fault_next_post_vms(engine: FakeEngine, web01: Vm) -> None:
    api = Api(engine)  # type: ignore[arg-type]
    data = config_of(api, web01.id)
    engine.fault_next("POST", r"/vms")
    assert api.ok(api.call("GET", "/vms")) != []  # other requests are not hit
    assert api.call("POST", f"/vms/{web01.id}/start", "<action/>").status_code == 200  # nor sub-paths
    r = api.call("POST", "/vms", from_config("web01-restore", data, regenerate=True))
    f = api.ok(r, 500)
    assert isinstance(f, types.Fault) and (f.reason, f.detail) == (
        "Operation Failed",
        "[Internal Engine Error]",
    )
    assert [v.name for v in engine.state.vms.values()] == ["web01"]  # nothing was created
    assert api.call("POST", "/vms", from_config("web01-restore", data, regenerate=True)).status_code == 201

    engine.fault_next("POST", "/vms", status=409, detail="[Cannot import VM. Data Center is not up.]")
    conn = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    try:
        with pytest.raises(sdk.Error, match="Data Center is not up") as err:
            conn.system_service().vms_service().add(from_config("again", data, regenerate=True))
        assert err.value.code == 409
    finally:
        conn.close()
    assert "again" not in {v.name for v in engine.state.vms.values()}


def test_switches_aimed_at_a_path(engine: FakeEngine, web01: Vm) -> None:
    api = Api(engine)  # type: ignore[arg-type]
    engine.fail_next(status=502, method="DELETE", path=r"/disks/.*")
    engine.drop_next(after_body=True, method="POST", path=r"/disks")
    assert api.call("GET", "/disks").status_code == 200
    with pytest.raises(requests.ConnectionError):
        api.add_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=MiB)
    (made,) = [d for d in engine.state.disks.values() if d.vm_id is None]  # done, only the reply lost
    engine.advance(STEP)
    assert api.call("DELETE", f"/disks/{made.id}").status_code == 502
    assert made.id in engine.state.disks
    assert api.call("DELETE", f"/disks/{made.id}").status_code == 200


def image(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)], check=True)
    cmd = f"write -P 0x5a 0 {size // 2}"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(path)], check=True, capture_output=True)
    return path


def test_daemon_killed_mid_upload(data_engine: DataEngine, tmp_path: Path) -> None:
    eng = data_engine
    eng.configure(phase_seconds=STEP)
    api = Api(eng)
    src = image(tmp_path, 64 * MiB)
    d = api.new_disk(format=types.DiskFormat.COW, sparse=True, provisioned_size=64 * MiB)
    t = api.upload(d.id)
    assert eng.dataplane is not None
    dataplane = eng.dataplane
    sent: list[int] = []

    def progress(n: int) -> Any:
        sent.append(n)
        if len(sent) == 1:
            dataplane.kill_daemon()  # the host's imageio dies after the first write landed

    with pytest.raises(Exception):  # noqa: B017  (connection refused / reset, whatever the client saw)
        client.upload(str(src), str(t.transfer_url), None, progress=progress, buffer_size=MiB, max_workers=1)
    assert sent and sum(sent) < 64 * MiB
    cur = api.transfer(t.id)
    assert cur.phase == P.PAUSED_SYSTEM  # the engine's next poll finds the ticket unreadable
    assert api.disk(d.id).status == types.DiskStatus.LOCKED
    assert dataplane.transfers() == []  # its qemu-nbd is gone too
    api.ok(api.call("POST", f"/imagetransfers/{t.id}/cancel", "<action/>"))
    assert api.phases_until(t.id, P.FINISHED_FAILURE) == [
        P.CANCELLED_USER,
        P.FINALIZING_CLEANUP,
        P.FINISHED_CLEANUP,
    ]
    assert api.call("GET", f"/disks/{d.id}").status_code == 404 and eng.open_transfers() == []


def test_gather_next_holds_requests_together_and_expires_tokens_under_them(engine: FakeEngine) -> None:
    engine.add_vm("web01")
    clients = [Client(engine) for _ in range(3)]
    assert len(engine.tokens_issued) == 3
    engine.gather_next(3, expire_tokens=True, method="GET", path=r"/vms")
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda c=c: statuses.append(c.get("/vms").status_code)) for c in clients
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [401, 401, 401]  # every token was valid when sent, expired when answered
    assert Client(engine).get("/vms").status_code == 200  # a new login works; the switch is used up

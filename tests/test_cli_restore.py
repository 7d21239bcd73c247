"""``restore`` against the real data path: the fake engine creates real images, the real imageio daemon
takes the uploads through qemu-nbd, and every new disk is judged with ``qemu-img compare`` against the
source disk as it was when its point was taken. Failures must leave nothing the run created."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4.types as types
import pytest
import requests
from ovirt_fake_engine.demo import DataEngine
from ovirtsdk4.reader import Reader

import ovbackup.jobs.upload as upload_module
from ovbackup.engine.connection import Connection
from ovbackup.engine.model import DiskAttachment, Nic
from ovbackup.engine.services import SystemService, VmService
from ovbackup.imageio import client as imageio_client
from ovbackup.imageio import images
from tests.harness import Cli, Result
from tests.test_cli_backup_job import MiB, backup, same_image, snapshot

ROOT = Path(__file__).resolve().parent.parent


def restore(cli: Cli, *args: str) -> Result:
    return cli("-o", "json", "restore", "web01", *args)


def disk_ids(engine: DataEngine) -> set[str]:
    return set(engine.state.disks)


def vm_names(engine: DataEngine) -> set[str]:
    return {v.name for v in engine.state.vms.values()}


def assert_left_as_it_was(engine: DataEngine, disks: set[str], vms: set[str]) -> None:
    assert disk_ids(engine) == disks
    assert vm_names(engine) == vms
    assert engine.open_transfers() == []


def api_requests(engine: DataEngine) -> list[Any]:
    return [q for q in engine.requests if q.path.startswith("/ovirt-engine/api")]


def by_source(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["source_id"]: d for d in doc["disks"]}


def _vm_service(engine: DataEngine, vm_id: str) -> Iterator[VmService]:
    with Connection(engine.url, engine.username, engine.password) as connection:
        yield SystemService(connection).vms_service().vm_service(vm_id)


def attachments_of(engine: DataEngine, vm_id: str) -> list[DiskAttachment]:
    """What the engine says is attached, read over its REST API like any client would."""
    for service in _vm_service(engine, vm_id):
        return service.disk_attachments()
    raise AssertionError("unreachable")


def nics_of(engine: DataEngine, vm_id: str) -> list[Nic]:
    for service in _vm_service(engine, vm_id):
        return service.nics()
    raise AssertionError("unreachable")


def test_every_point_restores_as_a_new_vm_byte_exact(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    source = data_engine.web01
    os_disk, raw_disk = source.disks
    points, snaps = [], []
    points.append(backup(dcli).json())
    snaps.append(snapshot(data_engine, tmp_path, "1"))
    data_engine.write_disk(os_disk.id, 1 * MiB, 1 * MiB, 0xA1)
    data_engine.write_disk(raw_disk.id, 10 * MiB, 1 * MiB, 0xA3)
    points.append(backup(dcli).json())
    snaps.append(snapshot(data_engine, tmp_path, "2"))
    data_engine.write_disk(os_disk.id, 64 * MiB, 512 * 1024, 0xB1)
    data_engine.write_disk(os_disk.id, 1 * MiB, 64 * 1024, None)
    points.append(backup(dcli).json())
    snaps.append(snapshot(data_engine, tmp_path, "3"))
    assert [p["mode"] for p in points] == ["full", "incremental", "incremental"]
    source_attachments = {a.disk.id: a for a in attachments_of(data_engine, source.id)}
    source_nics = nics_of(data_engine, source.id)

    for n, (point, snap) in enumerate(zip(points, snaps, strict=True), 1):
        r = restore(dcli, point["name"], "--name", f"web01-r{n}")
        assert r.code == 0, r.stderr
        doc = r.json()
        assert doc["point"] == point["name"] and doc["vm"]["name"] == f"web01-r{n}"
        assert doc["vm"]["id"] != source.id and doc["verified"] is None
        new = by_source(doc)
        assert set(new) == {os_disk.id, raw_disk.id}
        for source_id, d in new.items():
            assert d["id"] != source_id and d["storage_domain"] == "data"
            assert same_image(data_engine.disk_path(d["id"]), snap[source_id]), (point["name"], d["alias"])
        attachments = {a.disk.id: a for a in attachments_of(data_engine, doc["vm"]["id"])}
        assert set(attachments) == {d["id"] for d in doc["disks"]}
        for source_id, d in new.items():
            was, now = source_attachments[source_id], attachments[d["id"]]
            assert (now.interface, now.bootable, now.active) == (was.interface, was.bootable, was.active)
        os_new, raw_new = attachments[new[os_disk.id]["id"]].disk, attachments[new[raw_disk.id]["id"]].disk
        assert (os_new.format.value, os_new.backup.value) == ("cow", "incremental")  # type: ignore[union-attr]
        assert raw_new.format.value == "raw"  # type: ignore[union-attr]
        nics = nics_of(data_engine, doc["vm"]["id"])
        assert [n.name for n in nics] == [n.name for n in source_nics]
        assert not {n.mac for n in nics} & {n.mac for n in source_nics}  # new MACs
        assert not {n.id for n in nics} & {n.id for n in source_nics}  # new NIC ids
    assert not same_image(data_engine.disk_path(by_source(r.json())[os_disk.id]["id"]), snaps[0][os_disk.id])

    # The restored VM is backed up at once, and incrementally the second time.
    first = dcli("-o", "json", "backup", "web01-r3")
    assert first.code == 0, first.stderr
    second = dcli("-o", "json", "backup", "web01-r3")
    assert second.code == 0, second.stderr
    assert second.json()["mode"] == "incremental"
    os_rec = next(d for d in second.json()["disks"] if d["alias"].startswith("web01_os"))
    assert os_rec["mode"] == "incremental"


def test_disks_only_and_attach_to(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    source = data_engine.web01
    os_disk, raw_disk = source.disks
    point = backup(dcli).json()
    snap = snapshot(data_engine, tmp_path, "1")
    vms_before = vm_names(data_engine)
    disk_ids_before = disk_ids(data_engine)

    r = restore(dcli, "--disks-only", "--disk", "web01_os")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["vm"] is None and doc["point"] == point["name"]
    (only,) = doc["disks"]
    assert only["source_id"] == os_disk.id and only["alias"] == f"web01_os-restore-{point['name']}"
    assert same_image(data_engine.disk_path(only["id"]), snap[os_disk.id])
    assert vm_names(data_engine) == vms_before  # no VM
    assert only["id"] not in {a.disk.id for a in attachments_of(data_engine, source.id)}
    assert only["id"] in r.stderr  # the new ids are printed for the person too
    table = dcli("restore", "web01", "--disks-only", "--disk", "web01_raw")
    assert table.code == 0, table.stderr
    new_id = next(d for d in disk_ids(data_engine) - disk_ids_before if d != only["id"])
    assert new_id in table.stdout and "New disk ID" in table.stdout  # a table for people on stdout

    attached = restore(dcli, "--attach-to", "web01", "--disk", raw_disk.id)
    assert attached.code == 0, attached.stderr
    doc = attached.json()
    assert doc["vm"] == {"id": source.id, "name": "web01"}
    (new,) = doc["disks"]
    assert same_image(data_engine.disk_path(new["id"]), snap[raw_disk.id])
    now = {a.disk.id: a for a in attachments_of(data_engine, source.id)}
    assert new["id"] in now and {os_disk.id, raw_disk.id} <= set(now)  # added beside the originals
    assert now[new["id"]].interface == "virtio_scsi" and now[new["id"]].bootable is False


def test_raw_and_block_storage_domains(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    os_disk, raw_disk = data_engine.web01.disks
    backup(dcli)
    snap = snapshot(data_engine, tmp_path, "1")
    before = disk_ids(data_engine)

    # The engine refuses sparse raw on block storage, so we refuse first, before creating anything.
    data_engine.reset_log()
    refused = restore(dcli, "--storage-domain", "data2", "--disks-only", "--format", "raw", "--sparse")
    assert refused.code == 2, refused.stderr
    assert "sparse raw" in refused.stderr and "--no-sparse" in refused.stderr
    assert not [q for q in api_requests(data_engine) if q.method == "POST"]  # nothing was asked for
    assert disk_ids(data_engine) == before

    data_engine.reset_log()
    r = restore(dcli, "--storage-domain", "data2", "--disks-only", "--disk", "web01_os")
    assert r.code == 0, r.stderr
    (os_new,) = r.json()["disks"]
    assert os_new["storage_domain"] == "data2"
    assert same_image(data_engine.disk_path(os_new["id"]), snap[os_disk.id])
    (post,) = [q for q in data_engine.requests if q.method == "POST" and q.path.endswith("/disks")]
    sent = Reader.read(post.body)
    top = point_file(tmp_path, os_disk.id)
    assert sent.initial_size == images.measure(top, "qcow2") and sent.initial_size > 0
    assert sent.format == types.DiskFormat.COW and sent.backup == types.DiskBackup.INCREMENTAL

    raw = restore(dcli, "--storage-domain", "data2", "--disks-only", "--disk", "web01_raw")  # preallocated
    assert raw.code == 0, raw.stderr
    (raw_new,) = raw.json()["disks"]
    assert same_image(data_engine.disk_path(raw_new["id"]), snap[raw_disk.id])

    as_raw = restore(dcli, "--format", "raw", "--disks-only", "--disk", "web01_os")  # file domain
    assert as_raw.code == 0, as_raw.stderr
    (os_raw,) = as_raw.json()["disks"]
    assert images.image_info(data_engine.disk_path(os_raw["id"]))["format"] == "raw"
    assert same_image(data_engine.disk_path(os_raw["id"]), snap[os_disk.id])


def point_file(tmp_path: Path, disk_id: str) -> Path:
    (path,) = sorted((tmp_path / "backups" / "web01").glob(f"*.{disk_id}.*"))[-1:]
    return path


def test_verify_and_a_planted_mismatch(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup(dcli)
    ok = restore(dcli, "--verify", "--name", "web01-verified")
    assert ok.code == 0, ok.stderr
    assert ok.json()["verified"] is True and all(d["verified"] is True for d in ok.json()["disks"])
    disks, vms = disk_ids(data_engine), vm_names(data_engine)

    real_upload = upload_module.upload

    def bad_upload(path: Path, url: str, **kw: Any) -> None:
        real_upload(path, url, **kw)
        # a bit flips on the way: 4 KiB of the new disk differ from the point (written through imageio)
        verify: bool | str = kw["cafile"] or True
        response = requests.put(
            url, data=b"\xff" * 4096, headers={"Content-Range": "bytes 0-4095/*"}, verify=verify, timeout=30
        )
        assert response.status_code == 200, response.text

    monkeypatch.setattr(upload_module, "upload", bad_upload)
    r = restore(dcli, "--verify", "--name", "web01-bad")
    assert r.code == 8, r.stderr
    assert "checksum mismatch" in r.error_lines[-1] and "removed disk" in r.error_lines[-1]
    assert "Traceback" not in r.stderr
    assert_left_as_it_was(data_engine, disks, vms)


@pytest.mark.parametrize("detach_only", [False, True], ids=["vm-and-disks-deleted", "vm-deleted-disks-kept"])
def test_restore_after_the_source_vm_is_gone(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, detach_only: bool
) -> None:
    source = data_engine.web01
    point = backup(dcli).json()
    snap = snapshot(data_engine, tmp_path, "1")
    data_engine.set_vm_status(source.id, "down")
    for service in _vm_service(data_engine, source.id):
        service.remove(detach_only=detach_only)
    assert "web01" not in vm_names(data_engine)
    r = restore(dcli, "--name", "web01", "--start")  # its name is free again, so it may be reused
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["vm"]["name"] == "web01" and doc["point"] == point["name"] and doc["started"] is True
    for source_id, d in by_source(doc).items():
        assert same_image(data_engine.disk_path(d["id"]), snap[source_id])
    # Only the new disks are attached, even when the originals still float on the engine: the OVF's
    # disks are taken out before POST /vms, or the engine would attach them by id.
    attached = {a.disk.id for a in attachments_of(data_engine, doc["vm"]["id"])}
    assert attached == {d["id"] for d in doc["disks"]}
    assert engine_vm_status(data_engine, doc["vm"]["id"]) in ("powering_up", "up")
    by_id = dcli("-o", "json", "restore", source.id, "--disks-only")  # the old id still finds the catalog
    assert by_id.code == 0, by_id.stderr


def engine_vm_status(engine: DataEngine, vm_id: str) -> str | None:
    for service in _vm_service(engine, vm_id):
        return service.get().status
    raise AssertionError("unreachable")


def test_everything_refusable_is_refused_before_anything_is_created(
    dcli: Cli, data_engine: DataEngine
) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    cases = [
        (("--name", "web01"), 5, "already exists"),  # the original's name while it exists
        (("--storage-domain", "nosuch"), 4, "storage domain 'nosuch' not found"),
        (("--cluster", "nosuch"), 4, "cluster 'nosuch' not found"),
        (("--attach-to", "nosuch"), 4, "VM 'nosuch' not found"),
        (("--disk", "nosuch"), 4, "no disk 'nosuch'"),
        (("--name", "bad name!"), 2, "not a valid VM name"),
        (("--format", "vmdk"), 2, "--format must be cow or raw"),
        (("--disks-only", "--attach-to", "web01"), 2, "choose one of"),
        (("--attach-to", "web01", "--start"), 2, "--start starts the new VM"),
        (("20990101",), 4, "no restore point matches"),
    ]
    for args, code, text in cases:
        data_engine.reset_log()
        r = restore(dcli, *args)
        assert (r.code, text in r.stderr) == (code, True), (args, r.stderr)
        assert len(r.error_lines) == 1 and "Traceback" not in r.stderr
        assert not [q for q in api_requests(data_engine) if q.method in ("POST", "DELETE")], args
    assert_left_as_it_was(data_engine, disks, vms)


def test_imageio_dying_mid_upload_leaves_nothing(
    dcli: Cli, data_engine: DataEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    dp = data_engine.dataplane
    assert dp is not None
    real_update = imageio_client.Progress.update

    def crash(self: imageio_client.Progress, n: int) -> None:
        if dp.running:
            dp.kill_daemon()  # the host's imageio dies while our bytes are on their way
        real_update(self, n)

    monkeypatch.setattr(imageio_client.Progress, "update", crash)
    r = restore(dcli, "--name", "web01-crash")
    assert r.code == 8, r.stderr
    assert "Traceback" not in r.stderr and len(r.error_lines) == 1
    assert "upload of" in r.error_lines[0] and "LEFT BEHIND" not in r.error_lines[0], r.stderr
    assert_left_as_it_was(data_engine, disks, vms)
    monkeypatch.setattr(imageio_client.Progress, "update", real_update)
    dp.start()
    assert restore(dcli, "--name", "web01-crash").code == 0  # and the next run succeeds


def test_an_engine_fault_creating_the_vm_removes_the_disks(dcli: Cli, data_engine: DataEngine) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    data_engine.fault_next("POST", "/vms")
    r = restore(dcli, "--name", "web01-fault")
    assert r.code != 0 and "Traceback" not in r.stderr
    line = r.error_lines[-1]
    assert line.count("removed disk") == 2 and "VM web01-fault was never created" in r.stderr
    assert_left_as_it_was(data_engine, disks, vms)


def test_old_and_incomplete_points(dcli: Cli, data_engine: DataEngine, tmp_path: Path) -> None:
    point = backup(dcli).json()
    manifest = tmp_path / "backups" / "web01" / "catalog.json"
    data = json.loads(manifest.read_text())
    data["points"][0]["config"] = None  # as written before ovbackup recorded the configuration
    manifest.write_text(json.dumps(data))
    old = restore(dcli)
    assert old.code == 2 and "--disks-only" in old.stderr
    assert restore(dcli, "--disks-only", "--storage-domain", "data").code == 0
    data["points"][0]["complete"] = False
    manifest.write_text(json.dumps(data))
    incomplete = restore(dcli, point["name"], "--disks-only", "--storage-domain", "data")
    assert incomplete.code == 2 and "incomplete" in incomplete.stderr


SUBPROCESS_RESTORE = """
import sys
from ovbackup.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_upload_leaves_nothing(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path, sig: int, code: int
) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    env = {
        **os.environ,
        "OVIRT_URL": data_engine.url,
        "OVIRT_USERNAME": data_engine.username,
        "OVBACKUP_DIR": str(tmp_path / "backups"),
    }
    argv = [sys.executable, "-c", SUBPROCESS_RESTORE, "--password-file", str(dcli.password_file)]
    proc = subprocess.Popen(
        [*argv, "restore", "web01", "--name", "web01-sig", "--max-workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not [t for t in data_engine.transfers if t.direction == "upload" and t.phase == "transferring"]:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("ovbackup: error:")]
    assert len(lines) == 1 and lines[0].count("removed disk web01_") == 2, err
    assert "LEFT BEHIND" not in lines[0]
    assert out == ""
    assert_left_as_it_was(data_engine, disks, vms)


def test_every_backup_records_what_a_restore_needs_for_two_requests(
    dcli: Cli, data_engine: DataEngine, tmp_path: Path
) -> None:
    source = data_engine.web01
    data_engine.reset_log()
    point = backup(dcli).json()
    config = point["config"]
    # two requests per backup for it, never one per disk or per poll
    api = [q for q in api_requests(data_engine) if q.method == "GET"]
    assert len([q for q in api if q.query.get("all_content") == ["true"]]) == 1
    assert len([q for q in api if q.path.endswith("/nics")]) == 1
    # the engine's own OVF, whole, and the cluster
    with Connection(data_engine.url, data_engine.username, data_engine.password) as c:
        vm = SystemService(c).vms_service().vm_service(source.id).get(all_content=True)
    assert config["ovf"] == vm.configuration and "ovf:Envelope" in config["ovf"]
    assert config["cluster_id"] == vm.cluster_id and config["vm_id"] == source.id
    cluster = data_engine.state.inventory.clusters[vm.cluster_id]
    assert config["cluster_name"] == cluster.name  # follow=cluster: the name too, in the same request
    attachments = {a.disk.id: a for a in attachments_of(data_engine, source.id)}
    assert {d["id"] for d in config["disks"]} == set(attachments)
    for d in config["disks"]:
        a = attachments[d["id"]]
        assert d["storage_domain_id"] == a.disk.storage_domains[0].id
        assert (d["format"], d["sparse"], d["backup"], d["content_type"]) == (
            a.disk.format.value,  # type: ignore[union-attr]
            a.disk.sparse,
            a.disk.backup.value,  # type: ignore[union-attr]
            a.disk.content_type,
        )
        assert (d["provisioned_size"], d["interface"], d["bootable"], d["active"], d["logical_name"]) == (
            a.disk.provisioned_size,
            a.interface,
            a.bootable,
            a.active,
            a.logical_name,
        )
    nics = nics_of(data_engine, source.id)
    assert [(n["name"], n["interface"], n["mac"], n["vnic_profile_id"]) for n in config["nics"]] == [
        (n.name, n.interface, n.mac, n.vnic_profile_id) for n in nics
    ]
    assert nics and all(n.mac for n in nics)
    # the same, whole, beside the images
    beside = json.loads((tmp_path / "backups" / "web01" / f"{point['name']}.config.json").read_text())
    assert beside == config


def test_what_cannot_be_removed_is_named_with_the_command_to_remove_it(
    dcli: Cli, data_engine: DataEngine
) -> None:
    backup(dcli)
    disks, vms = disk_ids(data_engine), vm_names(data_engine)
    data_engine.fault_next("POST", "/vms")
    data_engine.fault_next("DELETE", "/disks/.*", n=2)  # and then the engine will not remove the disks
    r = restore(dcli, "--name", "web01-left")
    assert r.code != 0 and "Traceback" not in r.stderr
    (line,) = r.error_lines
    left = disk_ids(data_engine) - disks
    assert len(left) == 2 and vm_names(data_engine) == vms
    assert "LEFT BEHIND" in line
    for disk_id in left:
        assert (
            f"curl -X DELETE -H 'Version: 4' -u 'admin@internal' '{data_engine.url}/disks/{disk_id}'" in line
        )
    # and the command it gives does remove them (here through the same REST call)
    with Connection(data_engine.url, data_engine.username, data_engine.password) as c:
        for disk_id in left:
            c.request("DELETE", f"disks/{disk_id}")
    assert_left_as_it_was(data_engine, disks, vms)

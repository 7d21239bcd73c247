"""Run the fake engine by hand: ``python -m ovirt_fake_engine [--demo] [--tls] [--data-dir DIR] ...``.

Meant for poking at ovbackup (or curl, or the SDK) without a real engine. ``--url-file`` lets a
script start it in the background and learn the URL once it is listening. ``--data-dir`` adds the
real data plane (an ovirt-imageio daemon and qemu-nbd, state in DIR) and makes the demo disks real
images, so ``ovbackup backup web01 --dir ...`` downloads actual data; with ``--tls`` the daemon
serves HTTPS with a certificate from the same CA as the engine. One engine per data directory: a
second one on the same DIR exits 2 at once (an flock on ``DIR/.fake-engine.lock``). The console
script ``ovbackup-fake-engine`` is the same program.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path

from ovirt_fake_engine import DiskSpec, FakeEngine
from ovirt_fake_engine.dataplane import DataPlane, TlsFiles
from ovirt_fake_engine.demo import MiB, seed_web01
from ovirt_fake_engine.dirlock import DataDirBusy, DataDirLock
from ovirt_fake_engine.model import GIB


def _tls_context(workdir: Path) -> tuple[ssl.SSLContext, Path, TlsFiles]:
    """A throw-away CA (trustme), server certs for 127.0.0.1/localhost for the engine and imageio.

    Returns the engine's context, the CA path and the imageio daemon's PEM files (same CA, so a
    client needs one CA file for both).
    """
    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca_path = workdir / "fake-engine-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    imageio = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(workdir / "imageio-cert.pem", workdir / "imageio-key.pem", ca_path)
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in imageio.cert_chain_pems))
    imageio.private_key_pem.write_to_path(str(files.key_file))
    return ctx, ca_path, files


def _demo(engine: FakeEngine, real_disks: bool) -> None:
    if real_disks:  # small images: a download takes a moment, not minutes
        seed_web01(engine, os_size=256 * MiB, raw_size=64 * MiB)
    else:
        engine.add_vm(
            "web01",
            status="up",
            disks=[
                DiskSpec(alias="web01_os", format="cow", backup="incremental", provisioned_size=GIB),
                DiskSpec(alias="web01_raw", format="raw", backup="none", provisioned_size=GIB // 2),
            ],
        )
    engine.add_vm("db01", status="down", disks=[DiskSpec(alias="db01_os", provisioned_size=GIB)])
    engine.add_vm("paused01", status="paused", disks=[DiskSpec(alias="paused01_os")])


def main(argv: list[str] | None = None) -> int:
    """Parse options, start the engine, serve until Ctrl-C / SIGTERM."""
    prog = "ovbackup-fake-engine" if Path(sys.argv[0]).name == "ovbackup-fake-engine" else None
    p = argparse.ArgumentParser(prog=prog or "python -m ovirt_fake_engine", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--tls", action="store_true", help="HTTPS with a fresh trustme CA")
    p.add_argument("--phase-seconds", type=float, default=1.0)
    p.add_argument(
        "--legacy",
        action="store_true",
        help="run the older live/cold backup flow instead of engine 4.5's snapshot-based one",
    )
    p.add_argument("--demo", action="store_true", help="create web01 (up), db01 (down), paused01")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="serve real disk data: imageio daemon + images in DIR (implies --demo)",
    )
    p.add_argument("--username", default="admin@internal")
    p.add_argument("--password", default="secret-pw")
    p.add_argument("--password-file", type=Path, help="write the password here instead of stderr")
    p.add_argument("--url-file", type=Path, help="write the API URL here once listening")
    args = p.parse_args(argv)

    lock = None
    if args.data_dir is not None:
        lock = DataDirLock(args.data_dir.resolve())
        try:
            lock.acquire()
        except DataDirBusy as e:
            print(f"{p.prog}: error: {e}", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="fake-engine-"))
    ctx, ca_path, imageio_tls = _tls_context(workdir) if args.tls else (None, None, None)
    engine = FakeEngine(ssl_context=ctx, phase_seconds=args.phase_seconds, legacy=args.legacy)
    engine.username, engine.password = args.username, args.password
    dataplane = None
    if args.data_dir is not None:
        dataplane = DataPlane(args.data_dir.resolve() / "dataplane", tls=imageio_tls)
        dataplane.start()
        engine.attach_dataplane(dataplane, args.data_dir.resolve() / "disks")
    try:
        if args.demo or dataplane is not None:
            _demo(engine, real_disks=dataplane is not None)
        engine.start(args.host, args.port)
    except BaseException:
        if dataplane is not None:
            dataplane.stop()
        if lock is not None:
            lock.release()
        shutil.rmtree(workdir, ignore_errors=True)
        raise

    err = sys.stderr
    print(f"fake oVirt engine at {engine.url}", file=err)
    print(f"username: {engine.username}", file=err)
    if args.password_file:
        args.password_file.write_text(engine.password + "\n")
        print(f"password: in {args.password_file}", file=err)
    else:
        print(f"password: {engine.password}", file=err)
    if ca_path is not None:
        print(f"CA file: {ca_path}", file=err)
    if dataplane is not None:
        print(f"imageio data URL: {dataplane.data_url} (disk images in {args.data_dir}/disks)", file=err)
    for vm in engine.state.vms.values():
        disks = ", ".join(f"{d.alias}={d.id} ({d.format})" for d in vm.disks)
        print(f"vm {vm.name} {vm.id} [{vm.status}] disks: {disks}", file=err)
    if args.url_file:
        tmp = args.url_file.with_name(args.url_file.name + ".tmp")
        tmp.write_text(engine.url + "\n")
        tmp.replace(args.url_file)  # atomic: a reader never sees half a URL

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()  # ends open transfer sessions (qemu-nbd) first
        if dataplane is not None:
            dataplane.stop()
        if lock is not None:
            lock.release()
        shutil.rmtree(workdir, ignore_errors=True)  # its TLS CA and keys
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the fake engine by hand: ``python -m tests.engine [--demo] [--tls] [--port 0] ...``.

Meant for poking at ovbackup (or curl, or the SDK) without a real engine. ``--url-file`` lets a
script start it in the background and learn the URL once it is listening.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path

from tests.engine import DiskSpec, FakeEngine
from tests.engine.model import GIB


def _tls_context(workdir: Path) -> tuple[ssl.SSLContext, Path]:
    """A throw-away CA (trustme) and a server cert for 127.0.0.1/localhost; returns the CA path."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_path = workdir / "fake-engine-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return ctx, ca_path


def _demo(engine: FakeEngine) -> None:
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
    p = argparse.ArgumentParser(prog="python -m tests.engine", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--tls", action="store_true", help="HTTPS with a fresh trustme CA")
    p.add_argument("--phase-seconds", type=float, default=1.0)
    p.add_argument("--demo", action="store_true", help="create web01 (up), db01 (down), paused01")
    p.add_argument("--username", default="admin@internal")
    p.add_argument("--password", default="secret-pw")
    p.add_argument("--password-file", type=Path, help="write the password here instead of stderr")
    p.add_argument("--url-file", type=Path, help="write the API URL here once listening")
    args = p.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="fake-engine-"))
    ctx, ca_path = _tls_context(workdir) if args.tls else (None, None)
    engine = FakeEngine(ssl_context=ctx, phase_seconds=args.phase_seconds)
    engine.username, engine.password = args.username, args.password
    if args.demo:
        _demo(engine)
    engine.start(args.host, args.port)

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
        engine.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

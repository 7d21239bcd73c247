"""Shared fixtures: a started fake engine over HTTP, over trusted HTTPS, and over untrusted HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.engine import DiskSpec, FakeEngine, Vm
from tests.harness import Cli


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    """A running fake engine over plain HTTP; one phase step per engine-clock second."""
    with FakeEngine(phase_seconds=1.0) as eng:
        yield eng


def _tls_engine(tmp_path: Path, name: str) -> tuple[FakeEngine, trustme.CA]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    eng = FakeEngine(ssl_context=ctx, phase_seconds=1.0)
    eng.ca = ca
    eng.ca_path = str(tmp_path / f"{name}-ca.pem")
    ca.cert_pem.write_to_path(eng.ca_path)
    return eng, ca


@pytest.fixture
def tls_engine(tmp_path: Path) -> Iterator[FakeEngine]:
    """HTTPS engine whose certificate (127.0.0.1, localhost) is signed by ``.ca``/``.ca_path``."""
    eng, _ = _tls_engine(tmp_path, "trusted")
    with eng:
        yield eng


@pytest.fixture
def untrusted_tls_engine(tmp_path: Path) -> Iterator[FakeEngine]:
    """HTTPS engine whose CA a client must not be given: ``.ca_path`` is an UNRELATED CA's PEM.

    ``.ca`` still holds the real issuer, for a test that wants to prove the opposite case.
    """
    eng, _ = _tls_engine(tmp_path, "issuer")
    eng.ca_path = str(tmp_path / "unrelated-ca.pem")
    trustme.CA().cert_pem.write_to_path(eng.ca_path)
    with eng:
        yield eng


@pytest.fixture
def cli(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Run ``ovbackup`` in-process against ``engine`` (env set, password file given, fake clock)."""
    return Cli(engine, tmp_path, monkeypatch, capsys)


@pytest.fixture
def web01(engine: FakeEngine) -> Vm:
    """An up VM with a qcow2 disk enabled for incremental backup and a raw disk."""
    return engine.add_vm(
        "web01",
        disks=[
            DiskSpec(alias="web01_os", format="cow", backup="incremental"),
            DiskSpec(alias="web01_raw", format="raw", backup="none"),
        ],
    )

"""The fake engine's pytest fixtures, for any suite that installs it (an entry point loads them).

A started fake engine over HTTP, over trusted HTTPS and over untrusted HTTPS; a real data plane
(imageio + qemu-nbd) and an engine whose disks are real images on it.

``engine`` and ``data_engine`` run the backup flow ``backup_flow`` names: "hybrid" (engine 4.5's
default) unless a test parametrizes it, so a test whose outcome depends on the flow runs under both
with ``@BOTH_FLOWS`` (``pytest.mark.parametrize("backup_flow", FLOWS)``) and the rest stay single.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from ovirt_fake_engine import DiskSpec, FakeEngine, Vm
from ovirt_fake_engine.dataplane import DataPlane, DataPlaneError, make_tls
from ovirt_fake_engine.demo import DataEngine, seed_web01

FLOWS = ("hybrid", "legacy")
BOTH_FLOWS = pytest.mark.parametrize("backup_flow", FLOWS)


@pytest.fixture
def backup_flow() -> str:
    """The backup flow of ``engine``/``data_engine``; parametrize it (``BOTH_FLOWS``) to run both."""
    return "hybrid"


@pytest.fixture
def engine(backup_flow: str) -> Iterator[FakeEngine]:
    """A running fake engine over plain HTTP; one phase step per engine-clock second."""
    with FakeEngine(phase_seconds=1.0, legacy=backup_flow == "legacy") as eng:
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
def web01(engine: FakeEngine) -> Vm:
    """An up VM with a qcow2 disk enabled for incremental backup and a raw disk."""
    return engine.add_vm(
        "web01",
        disks=[
            DiskSpec(alias="web01_os", format="cow", backup="incremental"),
            DiskSpec(alias="web01_raw", format="raw", backup="none"),
        ],
    )


# -- data plane: a real ovirt-imageio daemon + qemu-nbd behind the fake engine ---------------------
# The daemon starts in ~0.15 s and stops in ~0.15 s; one per session (plain, and TLS on first use)
# saves that per test. The function-scoped wrappers restart a daemon a previous test killed and stop
# any transfer a test left behind, so tests stay independent.


@pytest.fixture(scope="session")
def _dataplane_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    with DataPlane(tmp_path_factory.mktemp("dataplane")) as dp:
        yield dp


@pytest.fixture(scope="session")
def _tls_dataplane_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    workdir = tmp_path_factory.mktemp("dataplane-tls")
    with DataPlane(workdir, tls=make_tls(workdir / "pki")) as dp:
        yield dp


def _clean(dp: DataPlane) -> DataPlane:
    for transfer in dp.transfers():
        with contextlib.suppress(DataPlaneError, OSError):
            dp.stop_transfer(transfer.ticket_id)
    if not dp.running:
        dp.start()
    return dp


@pytest.fixture
def dataplane(_dataplane_session: DataPlane) -> Iterator[DataPlane]:
    """A running imageio daemon over HTTP (``.data_url``), shared by the session."""
    yield _clean(_dataplane_session)
    _clean(_dataplane_session)


@pytest.fixture
def tls_dataplane(_tls_dataplane_session: DataPlane) -> Iterator[DataPlane]:
    """A running imageio daemon over HTTPS; clients need ``.tls.ca_file`` (a trustme CA)."""
    yield _clean(_tls_dataplane_session)
    _clean(_tls_dataplane_session)


def _data_engine(dp: DataPlane, disk_dir: Path, flow: str) -> Iterator[DataEngine]:
    with DataEngine(phase_seconds=0.05, legacy=flow == "legacy", dataplane=dp, disk_dir=disk_dir) as eng:
        eng.web01 = seed_web01(eng)
        yield eng


@pytest.fixture
def data_engine(request: pytest.FixtureRequest, tmp_path: Path, backup_flow: str) -> Iterator[DataEngine]:
    """A fake engine with real disks: ``web01`` (up) with ``web01_os`` (qcow2, 128 MiB, incremental,
    25% data, see ovirt_fake_engine.demo.os_regions) and ``web01_raw`` (raw, 64 MiB, some data).

    Phases step every 0.05 s of engine clock (real time unless a test calls ``advance``), so
    real-time polling sees ``ready``/``transferring`` on its first or second poll. Parametrize
    indirectly with ``"tls"`` for an HTTPS data plane (``data_engine.imageio_ca_file``).
    """
    tls = getattr(request, "param", None) == "tls"
    dp = request.getfixturevalue("tls_dataplane" if tls else "dataplane")
    yield from _data_engine(dp, tmp_path / "disks", backup_flow)


@pytest.fixture
def tls_data_engine(tls_dataplane: DataPlane, tmp_path: Path, backup_flow: str) -> Iterator[DataEngine]:
    """``data_engine`` whose imageio daemon serves HTTPS; the CA is ``.imageio_ca_file``."""
    yield from _data_engine(tls_dataplane, tmp_path / "disks", backup_flow)

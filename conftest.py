"""Rules for the whole suite (tests/ and devtools/tests/), so CI can trust a green run.

In CI (``CI`` set, as ``.ci/run`` and CI services do) a skipped test is a failure: a test that does not
run proves nothing, and scripts/setup installs everything every test needs (zsh, fish, qemu-utils…).
The order is random (pytest-randomly, a test dependency) so tests cannot lean on each other; the seed is
printed at the end so a failing order can be replayed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Fixtures that start the real data plane (imageio daemon, qemu-nbd): their tests get the marker,
# so `pytest -m "not dataplane"` is the quick run.
DATAPLANE_FIXTURES = {"dataplane", "tls_dataplane", "data_engine", "tls_data_engine"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATAPLANE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dataplane)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI ({reason}): scripts/setup must install what this test needs"
    return report  # type: ignore[return-value]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and getattr(config.option, "randomly_reorganize", True):
        terminalreporter.write_line(
            "tests ran in random order (pytest-randomly); replay it with: "
            f"./scripts/test --randomly-seed={seed}"
        )

"""Options shared by several commands, declared once (typer reads them from the annotations).

No `from __future__ import annotations` in the cli modules: typer would then eval every string
annotation (twice) while building the app, on every run (~15 ms, benchmarks/startup.py).
"""

from collections.abc import Callable
from typing import Annotated, Optional

import typer


def offer(*choices: str) -> Callable[[], list[str]]:
    """What TAB offers for an option whose value is one of ``choices`` (typer keeps those that match
    what was typed). The value stays a plain ``str`` checked by the command: a typer choice type would
    import pydantic on every run that passes the option."""

    def complete() -> list[str]:
        return list(choices)

    return complete


# Options accepted both before and after the command.
OutputOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10 too
    typer.Option(
        "--output",
        "-o",
        metavar="table|json",
        help="Print a table, or one JSON document on stdout [env OVBACKUP_OUTPUT]",
        autocompletion=offer("table", "json"),
    ),
]
TimeoutOpt = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--timeout", metavar="S", help="Seconds to wait for each engine request (default 60).", min=0.001
    ),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Log requests (secrets redacted) and show tracebacks.")
]
ProgressOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--progress",
        metavar="auto|bars|lines|json",
        autocompletion=offer("auto", "bars", "lines", "json"),
        help="How to show progress on stderr [config progress]",
    ),
]

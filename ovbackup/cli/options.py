"""Options shared by several commands, declared once (typer reads them from the annotations).

No `from __future__ import annotations` in the cli modules: typer would then eval every string
annotation (twice) while building the app, on every run (~15 ms, benchmarks/startup.py).
"""

from typing import Annotated, Optional

import typer

# Options accepted both before and after the command.
OutputOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10 too
    typer.Option("--output", "-o", help="table or json (one JSON document on stdout) [env OVBACKUP_OUTPUT]"),
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

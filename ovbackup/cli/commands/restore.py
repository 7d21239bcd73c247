"""Commands that bring a restore point back: export (to local files)."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ovbackup.cli.commands.backups import VmArg
from ovbackup.cli.commands.data import DirOpt, _backup_dir
from ovbackup.cli.context import note, settings
from ovbackup.cli.options import DebugOpt, OutputOpt

if TYPE_CHECKING:
    from ovbackup.jobs.export import ExportResult

PointArg = Annotated[
    Optional[str],  # noqa: UP045 - typer reads annotations at run time
    typer.Argument(
        metavar="[POINT]", help="Restore point: a name from `catalog`, a unique prefix, or latest (default)."
    ),
]
RestoreDiskOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--disk", metavar="ID|ALIAS", help="Only this disk of the point (repeat); default: all."),
]


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP become exceptions in the main thread, so the cleanup stack unwinds as for
    Ctrl-C (systemd stopping a unit; an ssh session that drops)."""
    from ovbackup.errors import HungUp, Terminated

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        raise HungUp()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _export_json(r: "ExportResult") -> dict[str, Any]:
    return {
        "vm": {"id": r.vm_id, "name": r.vm_name},
        "point": r.point,
        "dest": str(r.dest),
        "disks": [
            {
                "source_id": d.source_id,
                "file": str(r.dest / d.file),
                "alias": d.alias,
                "format": d.format,
                "bytes": d.bytes,
                "seconds": d.seconds,
                "verified": None,
            }
            for d in r.disks
        ],
        "ovf": str(r.dest / r.ovf) if r.ovf else None,
        "verified": None,
    }


def _print_disks(rows: list[dict[str, Any]], ident: str, header: str, title: str) -> None:
    from ovbackup.cli import render

    fields: list[render.Field[dict[str, Any]]] = [
        render.Field(None, "Source disk", lambda d: d["source_id"], no_wrap=True),
        render.Field(None, "Alias", lambda d: d["alias"]),
        render.Field(None, header, lambda d: d[ident], no_wrap=True),
        render.Field(None, "Data", lambda d: d["bytes"], show=render.human_size),
        render.Field(None, "Seconds", lambda d: d["seconds"]),
        render.Field(None, "Verified", lambda d: "-" if d["verified"] is None else "yes"),
    ]
    render.print_table(rows, fields, title=title)


def export_cmd(
    ctx: typer.Context,
    vm: VmArg,
    point: PointArg = None,
    directory: DirOpt = None,
    to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--to", metavar="DEST", help="Directory for the images and vm.ovf (required)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="qcow2|raw", help="Image format.", case_sensitive=False)
    ] = "qcow2",
    disk: RestoreDiskOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export a point of VM as standalone images and its OVF into DEST (no engine needed)."""
    from ovbackup.cli.commands.data import _format
    from ovbackup.cli.reporting import close_reporter, make_reporter
    from ovbackup.errors import ConfigError
    from ovbackup.imageio.client import require_tools
    from ovbackup.jobs.export import run_export
    from ovbackup.store.catalog import find_catalog

    s = settings(ctx, output=output, debug=debug, backup_dir=directory)
    if not to:
        raise ConfigError("export needs --to DEST, the directory to write the images into")
    catalog = find_catalog(_backup_dir(s), vm)
    image_format = _format(fmt)
    require_tools("exporting", imageio=False, tools=("qemu-img",))
    with signals_as_exceptions():
        reporter = make_reporter()
        try:
            result = run_export(
                catalog,
                point,
                Path(to).expanduser(),
                fmt=image_format,
                disk_refs=tuple(disk or ()),
                reporter=reporter,
            )
        finally:
            close_reporter(reporter)
    note(f"exported point {result.point} of {result.vm_name}: {len(result.disks)} disk(s) → {result.dest}")
    document = _export_json(result)
    if s.output == "json":
        from ovbackup.cli.render import print_json

        print_json(document)
    else:
        _print_disks(document["disks"], "file", "File", f"Exported {result.point} → {result.dest}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)

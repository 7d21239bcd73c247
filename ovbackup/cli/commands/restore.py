"""Commands that bring a restore point back: restore (to the engine) and export (to local files)."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ovbackup.cli.commands.backups import VmArg
from ovbackup.cli.commands.data import DirOpt, WorkersOpt, _backup_dir
from ovbackup.cli.context import connect, note, settings, signals_as_interrupt
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt, TimeoutOpt, offer

if TYPE_CHECKING:
    from ovbackup.jobs.export import ExportResult
    from ovbackup.jobs.restore import RestoreResult

PointArg = Annotated[
    Optional[str],  # noqa: UP045 - typer reads annotations at run time
    typer.Argument(
        metavar="POINT", help="Restore point: a name from `catalog`, a unique prefix, or latest (default)."
    ),
]
UploadParallelOpt = Annotated[
    int, typer.Option("--parallel-disks", metavar="N", help="Disks uploaded at once.", min=1, max=16)
]
RestoreDiskOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--disk", metavar="ID|ALIAS", help="Only this disk of the point (repeat); default: all."),
]


def _restore_format(fmt: Optional[str]) -> Optional[str]:  # noqa: UP045
    from ovbackup.errors import ConfigError

    if fmt is None:
        return None
    value = {"qcow2": "cow"}.get(fmt.lower(), fmt.lower())
    if value not in ("cow", "raw"):
        raise ConfigError(f"--format must be cow or raw, not {fmt!r}")
    return value


def _restore_json(r: "RestoreResult") -> dict[str, Any]:
    return {
        "vm": {"id": r.vm.id, "name": r.vm.name} if r.vm else None,
        "point": r.point,
        "disks": [
            {
                "source_id": d.source_id,
                "id": d.id,
                "alias": d.alias,
                "storage_domain": d.storage_domain,
                "bytes": d.bytes,
                "seconds": d.seconds,
                "upload_seconds": d.upload_seconds,
                "verified": d.verified,
            }
            for d in r.disks
        ],
        "verified": r.verified,
        "started": r.started,
    }


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


def restore_cmd(
    ctx: typer.Context,
    vm: VmArg,
    point: PointArg = None,
    directory: DirOpt = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", metavar="NEW", help="Name of the new VM (default VM-restore-POINT)."),
    ] = None,
    cluster: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--cluster", metavar="C", help="Cluster name or id (default: the original)."),
    ] = None,
    storage_domain: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--storage-domain", metavar="SD", help="Storage domain for every disk (default: each original)."
        ),
    ] = None,
    disk: RestoreDiskOpt = None,
    disks_only: Annotated[
        bool, typer.Option("--disks-only", help="Create and upload the disks only, no VM.")
    ] = False,
    attach_to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--attach-to", metavar="VM2", help="Attach the new disks to this existing VM."),
    ] = None,
    fmt: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--format",
            metavar="cow|raw",
            help="Disk format (default: the original's).",
            autocompletion=offer("cow", "raw"),
        ),
    ] = None,
    sparse: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--sparse/--no-sparse", show_default=False, help="Thin or preallocated (default: original)."
        ),
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="Start the new VM afterwards.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Compare imageio's checksum of each new disk with the point's.")
    ] = False,
    max_workers: WorkersOpt = 4,
    parallel_disks: UploadParallelOpt = 4,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Restore a point of VM as a new VM (or its disks only) on the engine; nothing is left on failure."""
    from ovbackup.cli.reporting import close_reporter, make_reporter
    from ovbackup.engine.services import SystemService
    from ovbackup.imageio.client import require_tools
    from ovbackup.jobs.restore import RestoreOptions, run_restore
    from ovbackup.jobs.upload import UploadOptions
    from ovbackup.store.catalog import find_catalog

    s = settings(ctx, output=output, timeout=timeout, debug=debug, backup_dir=directory)
    catalog = find_catalog(_backup_dir(s), vm)
    opts = RestoreOptions(
        name=name,
        cluster=cluster,
        storage_domain=storage_domain,
        disk_refs=tuple(disk or ()),
        disks_only=disks_only,
        attach_to=attach_to,
        fmt=_restore_format(fmt),
        sparse=sparse,
        start=start,
        parallel_disks=parallel_disks,
        upload=UploadOptions(verify=verify, max_workers=max_workers, cafile=s.cafile, secure=not s.insecure),
    )
    require_tools("restoring")
    with connect(ctx, s) as connection, signals_as_interrupt():
        reporter = make_reporter()
        try:
            result = run_restore(SystemService(connection), catalog, point, opts, reporter)
        finally:
            close_reporter(reporter)
    where = f"VM {result.vm.label} ({result.vm.id})" if result.vm else "new disks"
    note(f"restored point {result.point} of {catalog.vm_name}: {len(result.disks)} disk(s) → {where}")
    document = _restore_json(result)
    if s.output == "json":
        from ovbackup.cli.render import print_json

        print_json(document)
    else:
        _print_disks(document["disks"], "id", "New disk ID", f"Restored {result.point} → {where}")


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
        str,
        typer.Option(
            "--format",
            metavar="qcow2|raw",
            help="Image format.",
            case_sensitive=False,
            autocompletion=offer("qcow2", "raw"),
        ),
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
    with signals_as_interrupt():
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
    app.command("restore", cls=Command)(restore_cmd)
    app.command("export", cls=Command)(export_cmd)

"""Commands that bring a restore point back: restore (to the engine) and export (to local files)."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ovbackup.cli.commands.backups import VmArg
from ovbackup.cli.commands.data import DirOpt, FormatOpt, WorkersOpt, _backup_dir
from ovbackup.cli.context import connect, note, settings, signals_as_interrupt
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt, ProgressOpt, TimeoutOpt, offer

if TYPE_CHECKING:
    from ovbackup.cli.reporting import JsonEvents
    from ovbackup.jobs.export import ExportResult
    from ovbackup.jobs.restore import Plan, RestoreResult

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


def _run_start(events: "JsonEvents", vm: str, plan: "Plan") -> None:
    target = (
        {"new_vm": plan.vm_name}
        if plan.vm_name
        else {"attach_to": plan.attach_to.label}
        if plan.attach_to
        else {"disks_only": True}
    )
    disks = [
        {
            "source": d.source_id,
            "alias": d.alias,
            "bytes": d.data,
            "size": d.size,
            "storage_domain": d.domain.label,
        }
        for d in plan.disks
    ]
    events.emit("run_start", vm=vm, point=plan.point.name, disks=disks, **target)


def _run_result(events: "JsonEvents", started: float, e: BaseException | None, doc: Any = None) -> None:
    import time

    from ovbackup.errors import ExitCode

    seconds = round(time.monotonic() - started, 3)
    if e is None:
        done = {
            "vm": doc["vm"],
            "point": doc["point"],
            "disks": len(doc["disks"]),
            "verified": doc["verified"],
        }
        bytes_ = sum(d["bytes"] for d in doc["disks"])
        events.emit("run_result", ok=True, **done, bytes=bytes_, seconds=seconds, exit_code=0)
        return
    code = getattr(
        e, "exit_code", ExitCode.INTERRUPTED if isinstance(e, KeyboardInterrupt) else ExitCode.ERROR
    )
    events.emit(
        "run_result", ok=False, error=str(e) or type(e).__name__, seconds=seconds, exit_code=int(code)
    )


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
    progress: ProgressOpt = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Restore a point of VM as a new VM (or its disks only) on the engine; nothing is left on failure."""
    import time

    from ovbackup.cli.reporting import JsonReporter, close_reporter, make_reporter, progress_mode
    from ovbackup.engine.services import SystemService
    from ovbackup.imageio.client import require_tools
    from ovbackup.jobs.restore import RestoreOptions, run_restore
    from ovbackup.jobs.upload import UploadOptions
    from ovbackup.store.catalog import existing_root, find_catalog

    s = settings(ctx, output=output, timeout=timeout, debug=debug, backup_dir=directory)
    catalog = find_catalog(existing_root(_backup_dir(s)), vm)
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
    mode = progress_mode(progress, s.section.get("progress"))
    require_tools("restoring")
    began = time.monotonic()
    reporter = make_reporter(mode)
    events = reporter.events if isinstance(reporter, JsonReporter) else None
    try:
        with connect(ctx, s) as connection, signals_as_interrupt():
            try:
                result = run_restore(
                    SystemService(connection),
                    catalog,
                    point,
                    opts,
                    reporter,
                    planned=None
                    if events is None
                    else lambda plan: _run_start(events, catalog.vm_name, plan),
                )
            finally:
                close_reporter(reporter)
    except BaseException as e:
        if events is not None:
            _run_result(events, began, e)
        raise
    where = f"VM {result.vm.label} ({result.vm.id})" if result.vm else "new disks"
    document = _restore_json(result)
    if events is not None:
        _run_result(events, began, None, document)
    else:
        note(f"restored point {result.point} of {catalog.vm_name}: {len(result.disks)} disk(s) → {where}")
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
    fmt: FormatOpt = "qcow2",
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
    from ovbackup.store.catalog import existing_root, find_catalog

    s = settings(ctx, output=output, debug=debug, backup_dir=directory)
    if not to:
        raise ConfigError("export needs --to DEST, the directory to write the images into")
    catalog = find_catalog(existing_root(_backup_dir(s)), vm)
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

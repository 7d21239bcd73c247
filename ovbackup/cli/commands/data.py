"""Commands that move or check data: download, backup, catalog, verify."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ovbackup.cli.commands import retention as prune_cli
from ovbackup.cli.commands.backups import BackupIdArg, VmArg
from ovbackup.cli.context import connect, note, settings, signals_as_interrupt
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt, ProgressOpt, TimeoutOpt, offer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ovbackup.cli import render
    from ovbackup.config import Settings
    from ovbackup.jobs.backup import BackupOptions
    from ovbackup.jobs.download import DownloadOptions
    from ovbackup.store.catalog import RestorePoint

DirOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads annotations at run time
    typer.Option("--dir", metavar="DIR", help="Backup directory [env OVBACKUP_DIR, config backup_dir]"),
]
DiskOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--disk", metavar="ID", help="Only this disk (repeat); default: every disk."),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="qcow2|raw",
        help="Local image format.",
        case_sensitive=False,
        autocompletion=offer("qcow2", "raw"),
    ),
]
WorkersOpt = Annotated[
    int, typer.Option("--max-workers", metavar="N", help="Connections per disk.", min=1, max=16)
]
ParallelOpt = Annotated[
    int, typer.Option("--parallel-disks", metavar="N", help="Disks downloaded at once.", min=1, max=16)
]


def _backup_dir(s: "Settings") -> Path:
    from ovbackup.errors import ConfigError

    if not s.backup_dir:
        raise ConfigError(
            "no backup directory: pass --dir DIR, set OVBACKUP_DIR, or set backup_dir in a config section"
        )
    return Path(s.backup_dir).expanduser()


def _format(fmt: str) -> str:
    from ovbackup.errors import ConfigError

    if fmt.lower() not in ("qcow2", "raw"):
        raise ConfigError(f"--format must be qcow2 or raw, not {fmt!r}")
    return fmt.lower()


def _download_options(
    s: "Settings", fmt: str, verify: bool, workers: int, parallel: int
) -> "DownloadOptions":
    from ovbackup.jobs.download import DownloadOptions

    return DownloadOptions(
        fmt=_format(fmt),
        verify=verify,
        max_workers=workers,
        parallel_disks=parallel,
        cafile=s.cafile,
        secure=not s.insecure,
    )


def emit_point(s: "Settings", point: "RestorePoint") -> None:
    from ovbackup.cli import render

    if s.output == "json":
        render.print_json(point.to_json())
        return
    _print_points([point], title=f"Restore point {point.name} of {point.vm_name}")


def _print_points(
    points: "list[RestorePoint]", *, title: str, extra: "Sequence[render.Field[RestorePoint]]" = ()
) -> None:
    from ovbackup.cli import render

    fields: list[render.Field[RestorePoint]] = [
        # On a narrow terminal the columns with a drop rank go, lowest first; ids always stay.
        render.Field("name", "Point", lambda p: p.name, no_wrap=True),
        render.Field("mode", "Mode", lambda p: p.mode, drop=6),
        render.Field("complete", "Complete", lambda p: "yes" if p.complete else "NO"),
        render.Field("backup_id", "Backup ID", lambda p: p.backup_id, no_wrap=True),
        render.Field(
            None,
            "Checkpoints (from → to)",
            lambda p: f"{p.from_checkpoint_id or '(full)'} → {p.to_checkpoint_id or '-'}",
        ),
        render.Field(None, "Disks", lambda p: len(p.disks), drop=3),
        render.Field(
            None, "Bytes", lambda p: p.bytes_transferred, show=render.human_size, no_wrap=True, drop=4
        ),
        render.Field(
            None,
            "Verified",
            lambda p: "-" if p.verified is None else ("yes" if p.verified else "FAILED"),
            drop=5,
        ),
    ]
    render.print_table(points, [*fields, *extra], title=title)


def download_cmd(
    ctx: typer.Context,
    vm: VmArg,
    backup_id: BackupIdArg,
    directory: DirOpt = None,
    disk: DiskOpt = None,
    fmt: FormatOpt = "qcow2",
    max_workers: WorkersOpt = 4,
    parallel_disks: ParallelOpt = 4,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Download the disks of a ready backup into DIR (does not finalize the backup)."""
    from ovbackup.cli.reporting import close_reporter, make_reporter
    from ovbackup.engine.services import SystemService
    from ovbackup.imageio.client import require_tools
    from ovbackup.jobs.download import run_download

    s = settings(ctx, output=output, timeout=timeout, debug=debug, backup_dir=directory)
    root = _backup_dir(s)
    opts = _download_options(s, fmt, False, max_workers, parallel_disks)
    require_tools()
    with connect(ctx, s) as connection, signals_as_interrupt():
        reporter = make_reporter()
        try:
            point = run_download(
                SystemService(connection),
                vm,
                backup_id,
                root,
                opts,
                reporter,
                disk_ids=tuple(disk or ()),
                engine_url=connection.url,
            )
        finally:
            close_reporter(reporter)
    note(f"downloaded {len(point.disks)} disk(s) of backup {backup_id}; it is still open on the engine")
    emit_point(s, point)


def _mode(full: bool, incremental: bool, auto: bool) -> str:
    from ovbackup.errors import ConfigError

    chosen = [name for name, on in (("full", full), ("incremental", incremental), ("auto", auto)) if on]
    if len(chosen) > 1:
        raise ConfigError("choose one of --full, --incremental and --auto")
    return chosen[0] if chosen else "auto"


def backup_cmd(
    ctx: typer.Context,
    vm: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            metavar="VM",
            help="VM names or ids (several: a fleet run), or --all/--search.",
            show_default=False,
        ),
    ] = None,
    directory: DirOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Take a full backup.")] = False,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Incremental from the newest restore point, or fail.")
    ] = False,
    auto: Annotated[
        bool, typer.Option("--auto", help="Incremental when the chain allows, else full (default).")
    ] = False,
    disk: DiskOpt = None,
    fmt: FormatOpt = "qcow2",
    verify: Annotated[bool, typer.Option("--verify", help="Compare imageio's checksum per disk.")] = False,
    require_consistency: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--require-consistency/--no-require-consistency",
            show_default=False,
            help="Fail if the guest cannot be frozen.",
        ),
    ] = None,
    use_active: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--use-active/--no-use-active",
            show_default=False,
            help="Back up the active volume instead of a snapshot.",
        ),
    ] = None,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", metavar="S", help="Wait up to S seconds for the VM's lock.", min=0)
    ] = 0.0,
    max_workers: WorkersOpt = 4,
    parallel_disks: ParallelOpt = 4,
    all_: Annotated[bool, typer.Option("--all", help="Every VM you can see.")] = False,
    search: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--search", metavar="QUERY", help="The VMs an engine search finds, e.g. 'name=web*'."),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--exclude", metavar="GLOB", help="Leave out VMs whose name matches (repeat) [config exclude]"
        ),
    ] = None,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--shard", metavar="I/N", help="Only the VMs whose id hashes to I of N [config shard]"),
    ] = None,
    parallel: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--parallel",
            metavar="N",
            help="VMs backed up at once (default 1) [config parallel]",
            min=1,
            max=16,
        ),
    ] = None,
    per_host: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--per-host",
            metavar="N",
            help="Transfers through one host at once (default 2) [config per_host]",
            min=1,
        ),
    ] = None,
    max_transfers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--max-transfers",
            metavar="N",
            help="Transfers at once in all (default 8) [config max_transfers]",
            min=1,
        ),
    ] = None,
    report: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--report", metavar="FILE", help="Write the run's JSON summary here [config report]"),
    ] = None,
    metrics_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--metrics-file", metavar="FILE", help="Prometheus textfile, merged [config metrics_file]"
        ),
    ] = None,
    hook: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--hook", metavar="CMD", help="Run CMD PHASE at each phase, vzdump style [config hook]"),
    ] = None,
    hook_timeout: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--hook-timeout",
            metavar="S",
            help="Kill a hook after S seconds (default 300) [config hook_timeout]",
            min=0.001,
        ),
    ] = None,
    log_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--log-file", metavar="FILE", help="Append timestamped lines per VM [config log_file]"),
    ] = None,
    progress: ProgressOpt = None,
    prune: prune_cli.PruneAfterOpt = False,
    max_chain: prune_cli.MaxChainOpt = None,
    keep_checkpoints: prune_cli.KeepCheckpointsOpt = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Back up VMs into DIR: start, download every disk, finalize, record the restore point."""
    from ovbackup.cli.fleet import FleetFlags, run_backup_command
    from ovbackup.imageio.client import require_tools
    from ovbackup.jobs.backup import BackupOptions

    given = prune_cli.chain_flags(max_chain, keep_checkpoints)
    s = settings(ctx, output=output, timeout=timeout, debug=debug, backup_dir=directory, retention=given)
    root = _backup_dir(s)
    opts = BackupOptions(
        mode=_mode(full, incremental, auto),
        disk_ids=tuple(disk or ()),
        require_consistency=require_consistency,
        use_active=use_active,
        lock_wait=lock_wait,
        download=_download_options(s, fmt, verify, max_workers, parallel_disks),
        max_chain=prune_cli.int_setting(s, "max_chain"),
        keep_checkpoints=prune_cli.int_setting(s, "keep_checkpoints"),
    )
    flags = FleetFlags(
        names=tuple(vm or ()),
        all=all_,
        search=search,
        exclude=tuple(exclude or ()),
        shard=shard,
        parallel=parallel,
        per_host=per_host,
        max_transfers=max_transfers,
        hook=hook,
        hook_timeout=hook_timeout,
        report=report,
        metrics_file=metrics_file,
        log_file=log_file,
        progress=progress,
    )
    require_tools()
    # a bad or empty policy fails before the backup, not after
    policy = prune_cli.prune_options(s) if prune else None
    if flags.is_fleet(s):
        run_backup_command(ctx, s, root, flags, opts, prune=policy)
        return
    _backup_one(ctx, s, root, flags.names[0], opts, prune=prune)


def _backup_one(
    ctx: typer.Context, s: "Settings", root: Path, vm: str, opts: "BackupOptions", *, prune: bool = False
) -> None:
    """One named VM: the one-VM job, exactly as before fleets existed."""
    from ovbackup.cli.reporting import close_reporter, make_reporter
    from ovbackup.engine.services import SystemService
    from ovbackup.jobs.backup import run_backup

    with connect(ctx, s) as connection, signals_as_interrupt():
        reporter = make_reporter()
        try:
            point = run_backup(SystemService(connection), vm, root, opts, reporter, engine_url=connection.url)
        finally:
            close_reporter(reporter)
    note(
        f"{point.mode} restore point {point.name} of {point.vm_name} complete: "
        f"{len(point.disks)} disk(s), backup {point.backup_id}"
    )
    if not (prune and prune_cli.prune_after_backup(s, root, point)):  # only after a success
        emit_point(s, point)


def verify_cmd(
    ctx: typer.Context,
    vm: VmArg,
    point_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(metavar="POINT", help="Restore point name or backup id (default: newest)."),
    ] = None,
    directory: DirOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check a restore point offline: images open, chains are whole, checksums match."""
    from dataclasses import replace

    from ovbackup.cli.render import print_json
    from ovbackup.errors import BackupFailedError
    from ovbackup.imageio.client import require_tools
    from ovbackup.store.catalog import existing_root, find_catalog
    from ovbackup.store.verify import verify_point

    s = settings(ctx, output=output, debug=debug, backup_dir=directory)
    require_tools()
    catalog = find_catalog(existing_root(_backup_dir(s)), vm)  # by name or id; an unknown VM: exit 4
    with catalog.lock(0):
        prune_cli.tidy(catalog)  # finish an interrupted prune, remove orphan files
        point = catalog.find(point_name)
        results = verify_point(catalog, point)
        ok = all(r.ok for r in results)
        if point.complete:
            catalog.record(replace(point, verified=ok))
    if s.output == "json":
        print_json(
            {
                "point": point.name,
                "ok": ok,
                "disks": [
                    {"id": r.disk_id, "alias": r.alias, "files": list(r.files), "problems": list(r.problems)}
                    for r in results
                ],
            }
        )
    for r in results:
        for problem in r.problems:
            note(f"disk {r.alias or r.disk_id}: {problem}")
        if r.ok:
            note(f"disk {r.alias or r.disk_id}: ok ({len(r.files)} file(s) in the chain)")
    if not ok:
        raise BackupFailedError(f"restore point {point.name} of {catalog.vm_name} failed verification")
    note(f"restore point {point.name} of {catalog.vm_name} verified")


def catalog_cmd(
    ctx: typer.Context,
    vm: VmArg,
    directory: DirOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the local restore points of VM (no engine needed)."""
    from ovbackup.cli.render import print_json
    from ovbackup.store.catalog import existing_root, find_catalog

    s = settings(ctx, output=output, debug=debug, backup_dir=directory)
    catalog = find_catalog(existing_root(_backup_dir(s)), vm)  # by name or id; an unknown VM: exit 4
    points = catalog.points()
    extra, fields = prune_cli.chain_columns(catalog, points)  # chain depth, bytes held alone
    if s.output == "json":
        print_json([{**p.to_json(), **extra[p.name]} for p in points])
    elif points:
        _print_points(points, title=f"Restore points of {catalog.vm_name} in {catalog.dir}", extra=fields)
    else:
        note(f"no restore points in {catalog.dir}")


def register(app: typer.Typer) -> None:
    app.command("download", cls=Command)(download_cmd)
    app.command("backup", cls=Command)(backup_cmd)
    app.command("catalog", cls=Command)(catalog_cmd)
    app.command("verify", cls=Command)(verify_cmd)

"""Commands for one VM's backups: add, list, show, finalize, wait, disks, cleanup."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ovbackup.cli.context import connect, note, settings
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt, TimeoutOpt, offer

if TYPE_CHECKING:
    from ovbackup.config import Settings
    from ovbackup.engine.connection import Connection
    from ovbackup.engine.model import Backup, Disk, Vm
    from ovbackup.engine.services import VmService

VmArg = Annotated[str, typer.Argument(metavar="VM", help="VM name or id.")]
BackupIdArg = Annotated[str, typer.Argument(metavar="BACKUP_ID", help="Backup id.")]
WaitTimeoutOpt = Annotated[
    float, typer.Option("--wait-timeout", metavar="S", help="Give up waiting after S seconds.", min=0)
]
FollowOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads annotations at run time
    typer.Option("--follow", metavar="LINKS", help="Links the engine should inline, e.g. disks."),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def open_vm(connection: "Connection", name_or_id: str) -> "tuple[Vm, VmService]":
    from ovbackup.engine.services import SystemService

    return SystemService(connection).vms_service().open(name_or_id)


def emit_backup(s: "Settings", backup: "Backup", disks: "list[Disk] | None" = None) -> None:
    from ovbackup.cli import render

    if s.output == "json":
        document = render.to_dict(backup, render.BACKUP_FIELDS)
        if disks is not None:
            document["disks"] = [render.to_dict(d, render.DISK_FIELDS) for d in disks]
        render.print_json(document)
        return
    render.print_record(backup, render.BACKUP_FIELDS, title=f"Backup {backup.id}")
    if disks is not None:
        render.print_table(disks, render.DISK_FIELDS, title="Disks")


def emit_disks(s: "Settings", disks: "list[Disk]") -> None:
    from ovbackup.cli import render

    if s.output == "json":
        render.print_json([render.to_dict(d, render.DISK_FIELDS) for d in disks])
    else:
        render.print_table(disks, render.DISK_FIELDS)


def add(
    ctx: typer.Context,
    vm: VmArg,
    disk: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--disk", metavar="ID", help="Disk to back up (repeat); default: every disk."),
    ] = None,
    from_checkpoint: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--from-checkpoint", metavar="ID", help="Incremental backup since this checkpoint."),
    ] = None,
    backup_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--backup-id", metavar="UUID", help="Id for the new backup (default: a fresh UUID)."),
    ] = None,
    description: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--description", metavar="TEXT", help="Stored with the backup and its checkpoint."),
    ] = None,
    require_consistency: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--require-consistency/--no-require-consistency",
            help="Fail if the guest cannot be frozen (engine default: no).",
            show_default=False,
        ),
    ] = None,
    use_active: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--use-active/--no-use-active",
            help="Back up the active volume instead of a snapshot (engine default: no).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the backup is ready.")] = True,
    wait_timeout: WaitTimeoutOpt = 900.0,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Start a backup of VM (full, or incremental with --from-checkpoint)."""
    from ovbackup.cli.reporting import status_line
    from ovbackup.engine.model import Backup, BackupPhase
    from ovbackup.engine.services import UUID_RE
    from ovbackup.errors import ConfigError
    from ovbackup.jobs.lifecycle import interrupted_while, select_disks, wait_for_phase

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    if backup_id is not None and not UUID_RE.match(backup_id):
        raise ConfigError(f"--backup-id must be a UUID, not {backup_id!r}")
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        name = found.label
        chosen = select_disks(
            vm_service.disk_attachments(), disk or [], incremental=bool(from_checkpoint), vm_name=name
        )
        if chosen.left_out:
            note(
                "left out of the incremental backup (not enabled for incremental backup): "
                + ", ".join(f"{d.label} ({d.id})" for d in chosen.left_out)
            )
        backup = vm_service.backups_service().add(
            Backup(
                id=backup_id,
                from_checkpoint_id=from_checkpoint,
                description=description,
                disks=chosen.disks,
            ),
            require_consistency=require_consistency,
            use_active=use_active,
        )
        kind = f"incremental from {from_checkpoint}" if from_checkpoint else "full"
        note(f"started {kind} backup {backup.id} of VM {name} ({len(chosen.disks)} disks)")
        # The engine never inlines a backup's disks (a link instead): show the ones asked for, and once
        # it is ready the engine's own list, which says how each disk is taken (backup_mode).
        disks = list(backup.disks) if backup.disks is not None else list(chosen.disks)
        if wait:
            started_id = str(backup.id)
            service = vm_service.backups_service().backup_service(started_id)
            try:
                backup = wait_for_phase(
                    service, BackupPhase.READY, timeout=wait_timeout, vm_name=name, on_poll=status_line()
                )
            except KeyboardInterrupt:
                raise interrupted_while(name, started_id, "waiting for it to be ready") from None
            note(f"backup {backup.id} is ready; checkpoint {backup.to_checkpoint_id or '-'}")
            disks = service.disks()
        emit_backup(s, backup, disks)


def list_backups(
    ctx: typer.Context,
    vm: VmArg,
    max_: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max", metavar="N", help="Return at most N backups.", min=1),
    ] = None,
    follow: FollowOpt = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the backups of VM (the engine forgets finished ones after about 15 minutes)."""
    from ovbackup.cli import render

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        backups = vm_service.backups_service().list(follow=follow, max=max_)
    if s.output == "json":
        render.print_json_array(render.to_dict(b, render.BACKUP_FIELDS) for b in backups)
    else:
        render.print_table(backups, render.BACKUP_FIELDS, title=f"Backups of {found.name}")


def show(
    ctx: typer.Context,
    vm: VmArg,
    backup_id: BackupIdArg,
    follow: FollowOpt = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show every field of one backup, and its disks."""
    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        _, vm_service = open_vm(connection, vm)
        service = vm_service.backups_service().backup_service(backup_id)
        backup = service.get(follow=follow)
        disks = list(backup.disks) if backup.disks is not None else service.disks()
    emit_backup(s, backup, disks)


def finalize(
    ctx: typer.Context,
    vm: VmArg,
    backup_id: BackupIdArg,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it succeeded.")] = True,
    wait_timeout: WaitTimeoutOpt = 900.0,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Finish a backup so the VM leaves backup mode (a no-op if it already finished)."""
    from ovbackup.cli.reporting import status_line
    from ovbackup.jobs.lifecycle import finalize_backup

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        name = found.label
        service = vm_service.backups_service().backup_service(backup_id)
        try:
            result = finalize_backup(
                service, wait=wait, wait_timeout=wait_timeout, vm_name=name, on_poll=status_line()
            )
        except KeyboardInterrupt:
            from ovbackup.errors import Interrupted

            raise Interrupted(
                f"interrupted while waiting for backup {backup_id} of VM {name} to finish; "
                f"finalize was sent: `ovbackup wait {name} {backup_id} --phase succeeded` follows it"
            ) from None
        if result.note:
            note(result.note)
        backup = result.backup
        if backup is None and not result.already_finished:
            backup = service.get()  # --no-wait: show where it is now
        if backup is None:
            note(f"backup {backup_id} finished and the engine no longer lists it")
            if s.output == "json":
                from ovbackup.cli import render

                render.print_json({"id": backup_id, "phase": "succeeded", "already_finished": True})
            return
        note(f"backup {backup.id} is {backup.phase.value if backup.phase else 'unknown'}")
        emit_backup(s, backup)


def wait_cmd(
    ctx: typer.Context,
    vm: VmArg,
    backup_id: BackupIdArg,
    phase: Annotated[
        str,
        typer.Option(
            "--phase",
            metavar="ready|succeeded",
            help="The phase to wait for.",
            case_sensitive=False,
            autocompletion=offer("ready", "succeeded"),
        ),
    ] = "ready",
    wait_timeout: WaitTimeoutOpt = 900.0,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Wait until a backup reaches a phase (exit 8 if it fails, 6 on the deadline)."""
    from ovbackup.cli.reporting import status_line
    from ovbackup.engine.model import BackupPhase
    from ovbackup.errors import ConfigError
    from ovbackup.jobs.lifecycle import interrupted_while, wait_for_phase

    if phase.lower() not in ("ready", "succeeded"):
        raise ConfigError(f"--phase must be ready or succeeded, not {phase!r}")
    target = BackupPhase(phase.lower())
    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        name = found.label
        service = vm_service.backups_service().backup_service(backup_id)
        try:
            backup = wait_for_phase(
                service, target, timeout=wait_timeout, vm_name=name, on_poll=status_line()
            )
        except KeyboardInterrupt:
            raise interrupted_while(name, backup_id, "waiting") from None
    if backup.phase is not None and backup.phase != target:
        note(f"backup {backup_id} is already {backup.phase.value}: it was {target.value} before")
    emit_backup(s, backup)


def disks(
    ctx: typer.Context,
    vm: VmArg,
    backup_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(metavar="BACKUP_ID", help="Backup id (default: the VM's attached disks)."),
    ] = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the disks of a backup and how each is taken, or the disks attached to VM."""
    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        _, vm_service = open_vm(connection, vm)
        if backup_id is None:  # the ids `--disk` takes
            result = [a.disk for a in vm_service.disk_attachments()]
        else:
            result = vm_service.backups_service().backup_service(backup_id).disks()
    emit_disks(s, result)


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal unless --yes; without a terminal, require --yes (exit 2) — never hang cron."""
    import sys

    from ovbackup.errors import ConfigError, ExitCode, Interrupted

    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ConfigError(f"{question} — refusing without --yes when not on a terminal")
    if not typer.confirm(question, default=False, err=True):
        raise Interrupted("cancelled, nothing changed", exit_code=ExitCode.ERROR)


def cleanup(
    ctx: typer.Context,
    vm: VmArg,
    yes: YesOpt = False,
    wait_timeout: WaitTimeoutOpt = 900.0,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Finalize every unfinished backup of VM (cancelling its open image transfers first)."""
    from ovbackup.cli import render
    from ovbackup.cli.reporting import LineReporter, status_line
    from ovbackup.engine.services import SystemService
    from ovbackup.jobs.lifecycle import finalize_backup
    from ovbackup.jobs.teardown import cancel_disk_transfers

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        name = found.label
        backups_service = vm_service.backups_service()
        open_ones = [b for b in backups_service.list() if b.phase is None or not b.phase.finished]
        if not open_ones:
            note(f"VM {name} has no unfinished backups")
        else:
            ids = ", ".join(str(b.id) for b in open_ones)
            confirm(f"Finalize {len(open_ones)} unfinished backup(s) of VM {name} ({ids})?", yes)
            # The engine refuses to finalize while a transfer is open (a run that was killed left one).
            disk_ids = {a.disk.id for a in vm_service.disk_attachments()}
            transfers = SystemService(connection).image_transfers_service()
            cancel_disk_transfers(transfers, disk_ids, LineReporter())
        finished = []
        for backup in open_ones:
            result = finalize_backup(
                backups_service.backup_service(str(backup.id)),
                wait=True,
                wait_timeout=wait_timeout,
                vm_name=name,
                allow_failed=True,
                on_poll=status_line(),
            )
            done = result.backup or backup
            note(f"finalized backup {backup.id}" + (f" ({result.note})" if result.note else ""))
            finished.append(done)
    if s.output == "json":
        render.print_json([render.to_dict(b, render.BACKUP_FIELDS) for b in finished])
    elif finished:
        render.print_table(finished, render.BACKUP_FIELDS, title=f"Finalized backups of {name}")


def register(app: typer.Typer) -> None:
    app.command("add", cls=Command)(add)
    app.command("list", cls=Command)(list_backups)
    app.command("show", cls=Command)(show)
    app.command("finalize", cls=Command)(finalize)
    app.command("wait", cls=Command)(wait_cmd)
    app.command("disks", cls=Command)(disks)
    app.command("cleanup", cls=Command)(cleanup)

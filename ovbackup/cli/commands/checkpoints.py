"""``ovbackup checkpoints``: the VM's checkpoint chain (list, show, remove, purge)."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ovbackup.cli.commands.backups import VmArg, YesOpt, confirm, emit_disks, open_vm
from ovbackup.cli.context import connect, note, settings
from ovbackup.cli.help import Command, Group
from ovbackup.cli.options import DebugOpt, OutputOpt, TimeoutOpt

if TYPE_CHECKING:
    from ovbackup.config import Settings
    from ovbackup.engine.model import Checkpoint

CheckpointArg = Annotated[str, typer.Argument(metavar="CHECKPOINT_ID", help="Checkpoint id.")]

checkpoints_app = typer.Typer(
    cls=Group,
    help="Manage the VM's checkpoint chain (incremental backups start from a checkpoint).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _emit(s: "Settings", checkpoints: "list[Checkpoint]", *, title: str) -> None:
    from ovbackup.cli import render
    from ovbackup.engine.model import CheckpointState

    if s.output == "json":
        render.print_json([render.to_dict(c, render.CHECKPOINT_FIELDS) for c in checkpoints])
        return
    render.print_table(checkpoints, render.CHECKPOINT_FIELDS, title=title)
    invalid = [c.id for c in checkpoints if c.state == CheckpointState.INVALID]
    if invalid:
        note(
            f"invalid checkpoint(s) {', '.join(invalid)} cannot start an incremental backup: "
            "remove them with `ovbackup checkpoints remove VM ID`"
        )


@checkpoints_app.command("list", cls=Command)
def list_checkpoints(
    ctx: typer.Context,
    vm: VmArg,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the checkpoints of VM in chain order, root first."""
    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        chain = vm_service.checkpoints_service().list()
    _emit(s, chain, title=f"Checkpoints of {found.name}")


@checkpoints_app.command("show", cls=Command)
def show_checkpoint(
    ctx: typer.Context,
    vm: VmArg,
    checkpoint_id: CheckpointArg,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show one checkpoint and its disks."""
    from dataclasses import replace

    from ovbackup.cli import render

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        _, vm_service = open_vm(connection, vm)
        service = vm_service.checkpoints_service().checkpoint_service(checkpoint_id)
        checkpoint = service.get()
        disks = service.disks()
    if s.output == "json":
        render.print_json(render.to_dict(replace(checkpoint, disks=tuple(disks)), render.CHECKPOINT_FIELDS))
        return
    render.print_record(checkpoint, render.CHECKPOINT_FIELDS, title=f"Checkpoint {checkpoint.id}")
    emit_disks(s, disks)


@checkpoints_app.command("remove", cls=Command)
def remove_checkpoint(
    ctx: typer.Context,
    vm: VmArg,
    checkpoint_id: CheckpointArg,
    yes: YesOpt = False,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Remove one checkpoint (the engine re-links its child to its parent)."""
    from ovbackup.cli import render

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        service = vm_service.checkpoints_service().checkpoint_service(checkpoint_id)
        checkpoint = service.get()
        confirm(f"Remove checkpoint {checkpoint.id} of VM {found.name}?", yes)
        service.remove()
    note(
        f"removed checkpoint {checkpoint_id}; an incremental backup from it is no longer possible: "
        "the next backup that would start from it must be full"
    )
    if s.output == "json":
        render.print_json({"removed": [checkpoint_id]})


@checkpoints_app.command("purge", cls=Command)
def purge_checkpoints(
    ctx: typer.Context,
    vm: VmArg,
    keep: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--keep", metavar="N", help="Keep the N newest checkpoints.", min=1),
    ] = None,
    older_than: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--older-than", metavar="DAYS", help="Remove checkpoints older than DAYS.", min=0),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")] = False,
    yes: YesOpt = False,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Remove old checkpoints, oldest first, never the newest."""
    from ovbackup.cli import render
    from ovbackup.errors import ConfigError
    from ovbackup.jobs.checkpoints import choose_purge

    if keep is None and older_than is None:
        raise ConfigError("purge needs --keep N or --older-than DAYS")
    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        found, vm_service = open_vm(connection, vm)
        checkpoints = vm_service.checkpoints_service()
        doomed = choose_purge(checkpoints.list(), keep=keep, older_than=older_than, now=datetime.now(UTC))
        if doomed and not dry_run:
            confirm(f"Remove {len(doomed)} checkpoint(s) of VM {found.name}?", yes)
            for checkpoint in doomed:
                checkpoints.checkpoint_service(checkpoint.id).remove()
                note(f"removed checkpoint {checkpoint.id}")
    verb = "would remove" if dry_run else "removed"
    if s.output == "json":
        render.print_json(
            {
                "dry_run": dry_run,
                "removed": [] if dry_run else [c.id for c in doomed],
                "candidates": [render.to_dict(c, render.CHECKPOINT_FIELDS) for c in doomed],
            }
        )
    elif doomed:
        render.print_table(doomed, render.CHECKPOINT_FIELDS, title=f"{verb.capitalize()}")
    else:
        note("nothing to remove")


def register(app: typer.Typer) -> None:
    app.add_typer(checkpoints_app, name="checkpoints")

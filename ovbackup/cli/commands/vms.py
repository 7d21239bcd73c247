"""``ovbackup vms``: find VMs and see which of their disks can be backed up incrementally."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from typing import Annotated, Optional

import typer

from ovbackup.cli.context import connect, settings
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt, TimeoutOpt


def vms(
    ctx: typer.Context,
    search: Annotated[
        Optional[str],  # noqa: UP045 - typer reads annotations at run time
        typer.Option("--search", metavar="QUERY", help="Engine search, e.g. 'name=web*'."),
    ] = None,
    max_: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max", metavar="N", help="Return at most N VMs.", min=1),
    ] = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List VMs with their status and how many disks allow incremental backup."""
    from ovbackup.cli import render
    from ovbackup.engine.model import DiskBackup, VmSummary
    from ovbackup.engine.services import SystemService

    s = settings(ctx, output=output, timeout=timeout, debug=debug)
    with connect(ctx, s) as connection:
        # One request for every VM and its disks (follow), not one more per VM.
        found = (
            SystemService(connection)
            .vms_service()
            .list(search=search, max=max_, follow="disk_attachments.disk")
        )
    rows = []
    for vm in found:
        attachments = vm.disks or ()
        enabled = sum(1 for a in attachments if a.disk.backup == DiskBackup.INCREMENTAL)
        rows.append(VmSummary(vm, len(attachments), enabled))
    if s.output == "json":
        render.print_json([render.to_dict(r, render.VM_FIELDS) for r in rows])
    else:
        render.print_table(rows, render.VM_FIELDS, title="VMs")


def register(app: typer.Typer) -> None:
    app.command("vms", cls=Command)(vms)

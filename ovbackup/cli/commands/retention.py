"""``ovbackup prune``: remove restore points by restic's keep rules, chains intact (no engine needed)."""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ovbackup.cli.commands.backups import VmArg, YesOpt
from ovbackup.cli.context import note, settings
from ovbackup.cli.help import Command
from ovbackup.cli.options import DebugOpt, OutputOpt

if TYPE_CHECKING:
    from ovbackup.cli import render
    from ovbackup.config import Settings
    from ovbackup.jobs.prune import PruneResult
    from ovbackup.jobs.reporter import Reporter
    from ovbackup.store.catalog import Catalog, RestorePoint
    from ovbackup.store.retention import PrunePlan


LastOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads annotations at run time
    typer.Option("--keep-last", metavar="N", help="Keep the N newest points [config keep_last]"),
]
HourlyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-hourly",
        metavar="N",
        help="Keep the newest point of each of the last N hours that have one [config keep_hourly]",
    ),
]
DailyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-daily",
        metavar="N",
        help="Keep the newest point of each of the last N days that have one [config keep_daily]",
    ),
]
WeeklyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-weekly",
        metavar="N",
        help="Keep the newest point of each of the last N ISO weeks that have one [config keep_weekly]",
    ),
]
MonthlyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-monthly",
        metavar="N",
        help="Keep the newest point of each of the last N months that have one [config keep_monthly]",
    ),
]
YearlyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-yearly",
        metavar="N",
        help="Keep the newest point of each of the last N years that have one [config keep_yearly]",
    ),
]
WithinOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--keep-within",
        metavar="DURATION",
        help="Keep points newer than the newest point minus DURATION (1y2m3w4d5h) [config keep_within]",
    ),
]
MergeOpt = Annotated[
    Optional[bool],  # noqa: UP045
    typer.Option(
        "--merge/--no-merge",
        show_default=False,
        help="Fold removed points a kept point depends on into it, instead of keeping them [config merge]",
    ),
]
DirOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--dir", metavar="DIR", help="Backup directory [env OVBACKUP_DIR, config backup_dir]"),
]


# backup's options for chains and retention (the command lives in data.py)
PruneAfterOpt = Annotated[
    bool, typer.Option("--prune", help="Then prune by the config section's keep_* policy (one VM).")
]
MaxChainOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--max-chain", metavar="N", min=1, help="Full once the chain has N incrementals [config max_chain]"
    ),
]
KeepCheckpointsOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--keep-checkpoints",
        metavar="N",
        min=0,
        help="Then trim the engine's checkpoints to N [config keep_checkpoints]",
    ),
]


def chain_flags(max_chain: int | None, keep_checkpoints: int | None) -> dict[str, str | None]:
    given = {"max_chain": max_chain, "keep_checkpoints": keep_checkpoints}
    return {k: None if v is None else str(v) for k, v in given.items()}


def int_setting(s: "Settings", key: str) -> int | None:
    """``max_chain`` / ``keep_checkpoints``: the flag, else the config section's key."""
    from ovbackup.errors import ConfigError

    value = s.retention.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{key} must be a number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{key} must not be negative")
    return number


def prune_after_backup(s: "Settings", root: Path, point: "RestorePoint") -> bool:
    """Prune after a successful backup; True when the point's JSON (with ``"prune"``) was printed."""
    from ovbackup.cli.render import print_json
    from ovbackup.cli.reporting import LineReporter

    pruned = run(s, root, point.vm_name, LineReporter())
    note(f"pruned {len(pruned.plan.removed)} restore point(s), freed {pruned.freed_bytes} bytes")
    if s.output != "json":
        return False
    print_json({**point.to_json(), "prune": result_json(pruned)})
    return True


def tidy(catalog: "Catalog") -> None:
    """What ``verify`` does first: finish a prune a crash interrupted, remove files no point references."""
    from ovbackup.store.journal import recover, sweep_orphans

    if recover(catalog):
        note("finished a prune that was interrupted after its merged files were written")
    for orphan in sweep_orphans(catalog):
        note(f"removed orphan file {orphan} (no restore point references it)")


def chain_columns(
    catalog: "Catalog", points: "list[RestorePoint]"
) -> "tuple[dict[str, dict[str, int]], list[render.Field[RestorePoint]]]":
    """``catalog``'s chain depth and bytes held alone per point: JSON keys and table columns."""
    from ovbackup.cli import render
    from ovbackup.store.retention import bytes_alone, chain_depth

    files = catalog.files()
    extra = {
        p.name: {"chain_depth": chain_depth(p, points), "bytes_alone": bytes_alone(p, points, files)}
        for p in points
    }
    fields: list[render.Field[RestorePoint]] = [
        render.Field(None, "Depth", lambda p: extra[p.name]["chain_depth"], drop=2),
        render.Field(
            None,
            "Holds alone",
            lambda p: extra[p.name]["bytes_alone"],
            show=render.human_size,
            no_wrap=True,
            drop=1,
        ),
    ]
    return extra, fields


def prune_options(s: "Settings", *, dry_run: bool = False, lock_wait: float = 0.0) -> Any:
    """PruneOptions from the resolved settings (flags over the config section); an empty policy is refused."""
    from ovbackup.config import _bool
    from ovbackup.errors import ConfigError
    from ovbackup.jobs.prune import PruneOptions
    from ovbackup.store.retention import Policy

    merge = s.retention.get("merge")
    policy = Policy.from_values(s.retention)
    if policy.empty:
        raise ConfigError(
            "empty policy: prune would remove every restore point",
            hint="give at least one --keep-* option, or keep_* keys in the config section",
        )
    return PruneOptions(
        policy=policy,
        merge=_bool(merge, "merge") if merge else False,
        dry_run=dry_run,
        lock_wait=lock_wait,
    )


def _fields() -> "list[Any]":
    from ovbackup.cli import render
    from ovbackup.store.retention import point_time

    return [
        render.Field("name", "Point", lambda d: d.point.name, no_wrap=True),
        render.Field(None, "Mode", lambda d: d.point.mode),
        render.Field(
            None, "Time (UTC)", lambda d: point_time(d.point).strftime("%Y-%m-%d %H:%M"), no_wrap=True
        ),
        render.Field(None, "Action", lambda d: "keep" if d.keep else "REMOVE"),
        render.Field(None, "Reasons", lambda d: ", ".join(d.reasons)),
        render.Field(None, "Size", lambda d: d.size, show=render.human_size),
    ]


def show_plan(plan: "PrunePlan", vm: str, *, title: str) -> None:
    from ovbackup.cli import render

    render.print_table(list(plan.decisions), _fields(), title=title)
    for m in plan.merges:
        note(f"merge: {len(m.folded)} removed file(s) fold into the new image of {m.point} ({m.disk.alias})")
    if plan.orphans:
        note(f"orphan files to remove: {', '.join(plan.orphans)}")


def result_json(result: "PruneResult") -> dict[str, Any]:
    plan = result.plan
    return {
        "dry_run": result.dry_run,
        "keep": [{"name": d.point.name, "reasons": list(d.reasons)} for d in plan.kept],
        "remove": [{"name": d.point.name, "reason": d.reasons[0]} for d in plan.removed],
        "merged": [{"disk_id": d.id, "file": d.file, "backing_file": d.backing_file} for d in result.merged],
        "orphans": list(plan.orphans),
        "freed_bytes": result.freed_bytes,
    }


def run(
    s: "Settings",
    root: Path,
    vm: str,
    reporter: "Reporter",
    *,
    dry_run: bool = False,
    yes: bool = True,
    lock_wait: float = 0.0,
    show_before: bool = False,
) -> "PruneResult":
    """Run the prune job; on a terminal without --yes show the plan and ask, off one require --yes."""
    from ovbackup.cli.commands.backups import confirm
    from ovbackup.jobs.prune import run_prune

    def ask(plan: "PrunePlan") -> None:
        if show_before:
            show_plan(plan, vm, title=f"Prune plan for {vm}")
        confirm(f"Remove {len(plan.removed)} restore point(s) of {vm}?", yes)

    return run_prune(root, vm, prune_options(s, dry_run=dry_run, lock_wait=lock_wait), reporter, confirm=ask)


def prune_cmd(
    ctx: typer.Context,
    vm: VmArg,
    directory: DirOpt = None,
    keep_last: LastOpt = None,
    keep_hourly: HourlyOpt = None,
    keep_daily: DailyOpt = None,
    keep_weekly: WeeklyOpt = None,
    keep_monthly: MonthlyOpt = None,
    keep_yearly: YearlyOpt = None,
    keep_within: WithinOpt = None,
    merge: MergeOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be removed.")] = False,
    yes: YesOpt = False,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", metavar="S", help="Wait up to S seconds for the VM's lock.", min=0)
    ] = 0.0,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Remove old restore points of VM by restic's keep rules; chains stay whole (no engine needed)."""
    import sys

    from ovbackup.cli import render
    from ovbackup.cli.commands.data import _backup_dir
    from ovbackup.cli.reporting import LineReporter

    flags = {
        "keep_last": keep_last,
        "keep_hourly": keep_hourly,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_yearly": keep_yearly,
        "keep_within": keep_within,
        "merge": None if merge is None else ("yes" if merge else "no"),
    }
    s = settings(ctx, output=output, debug=debug, backup_dir=directory, retention=flags)
    on_terminal = sys.stdin.isatty() and sys.stderr.isatty() and s.output != "json"
    result = run(
        s,
        _backup_dir(s),
        vm,
        LineReporter(),
        dry_run=dry_run,
        yes=yes,
        lock_wait=lock_wait,
        show_before=on_terminal and not yes,
    )
    if s.output == "json":
        render.print_json(result_json(result))
    elif not (on_terminal and not yes and not dry_run and result.plan.delete):
        verb = "Would keep / remove" if dry_run else "Kept / removed"
        show_plan(result.plan, vm, title=f"{verb}: restore points of {vm}")
    size = render.human_size(result.freed_bytes)
    removed = len(result.plan.removed)
    if dry_run:
        note(f"dry run: would remove {removed} restore point(s) and free {size}; nothing changed")
    else:
        note(f"removed {removed} restore point(s), merged {len(result.merged)} image(s), freed {size}")


def register(app: typer.Typer) -> None:
    app.command("prune", cls=Command)(prune_cmd)

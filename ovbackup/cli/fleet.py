"""``backup`` of several VMs (or of one with fleet options): resolve the options, select, run, render.

Every fleet option comes from its flag, else the config section (``parallel``, ``per_host``,
``max_transfers``, ``exclude``, ``shard``, ``hook``, ``hook_timeout``, ``report``, ``metrics_file``,
``log_file``, ``progress``), else its default. A run of one named VM prints what a one-VM backup
prints and exits with its exit code; a run of several prints the summary and exits 0 when every VM is
ok, 10 when any failed or was skipped, 129/130/143 when a signal stopped it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from ovbackup.cli.context import connect, note, signals_as_interrupt
from ovbackup.errors import ConfigError, IncompleteError, Interrupted

if TYPE_CHECKING:
    from ovbackup.config import Settings
    from ovbackup.jobs.backup import BackupOptions
    from ovbackup.jobs.fleet import FleetResult
    from ovbackup.jobs.prune import PruneOptions
    from ovbackup.jobs.selection import Selection

T = TypeVar("T")


@dataclass(frozen=True)
class FleetFlags:
    """What the user typed for the fleet options (None: not given)."""

    names: tuple[str, ...] = ()
    all: bool = False
    search: str | None = None
    exclude: tuple[str, ...] = ()
    shard: str | None = None
    parallel: int | None = None
    per_host: int | None = None
    max_transfers: int | None = None
    hook: str | None = None
    hook_timeout: float | None = None
    report: str | None = None
    metrics_file: str | None = None
    log_file: str | None = None
    progress: str | None = None

    def is_fleet(self, s: Settings) -> bool:
        """Anything beyond one named VM with today's options takes the fleet path."""
        if len(self.names) != 1 or self.all or self.search or self.exclude or self.shard:
            return True
        keys = ("hook", "report", "metrics_file", "log_file", "exclude", "shard")
        extra = (self.hook, self.report, self.metrics_file, self.log_file)
        progress = self.progress or s.section.get("progress")
        return any(extra) or any(s.section.get(k) for k in keys) or progress not in (None, "auto")


def _pick(flag: T | None, s: Settings, key: str, convert: Callable[[str], T], default: T) -> T:
    if flag is not None:
        return flag
    raw = s.section.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return convert(raw.strip())
    except ValueError:
        raise ConfigError(f"{key} = {raw!r} in [{s.config_name}] is not valid") from None


def _positive(value: int, what: str) -> int:
    if value < 1:
        raise ConfigError(f"{what} must be at least 1, not {value}")
    return value


def _selection(flags: FleetFlags, s: Settings) -> Selection:
    from ovbackup.jobs.selection import Selection, parse_shard

    exclude = flags.exclude or tuple(s.section.get("exclude", "").replace(",", " ").split())
    shard = flags.shard or s.section.get("shard") or None
    return Selection(
        names=flags.names,
        all=flags.all,
        search=flags.search,
        exclude=exclude,
        shard=parse_shard(shard) if shard else None,
    )


def _write_report(path: Path, result: FleetResult) -> None:
    from ovbackup.store.catalog import write_atomically

    document = {
        **result.to_json(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(result.seconds, 3),
    }
    try:
        write_atomically(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    except OSError as e:
        raise ConfigError(f"cannot write report {path}: {e.strerror or e}") from None


def _write_metrics(path: Path, result: FleetResult, shard: str) -> None:
    from ovbackup.jobs.fleet import FAILED, OK, SKIPPED
    from ovbackup.store.metrics import RunSample, VmSample, write_metrics

    vms = [VmSample(v.vm, v.id, v.status == OK, v.finished, v.bytes, v.seconds) for v in result.vms]
    run = RunSample(
        shard,
        result.count(OK),
        result.count(FAILED),
        result.count(SKIPPED),
        result.bytes,
        result.seconds,
        time.time(),
    )
    write_metrics(path, vms, run)


def run_backup_command(
    ctx: typer.Context,
    s: Settings,
    root: Path,
    flags: FleetFlags,
    backup: BackupOptions,
    *,
    prune: PruneOptions | None = None,
) -> None:
    from ovbackup.cli.commands.data import emit_point
    from ovbackup.cli.fleet_display import FleetDisplay, LogFile, print_summary
    from ovbackup.engine.services import SystemService
    from ovbackup.jobs.fleet import OK, FleetOptions, run_fleet
    from ovbackup.jobs.hooks import DEFAULT_TIMEOUT, parse_hook
    from ovbackup.jobs.selection import select_vms

    selection = _selection(flags, s)
    hook = _pick(flags.hook, s, "hook", str, "")
    opts = FleetOptions(
        backup=backup,
        parallel=_positive(_pick(flags.parallel, s, "parallel", int, 1), "--parallel"),
        per_host=_positive(_pick(flags.per_host, s, "per_host", int, 2), "--per-host"),
        max_transfers=_positive(_pick(flags.max_transfers, s, "max_transfers", int, 8), "--max-transfers"),
        hook=tuple(parse_hook(hook)) if hook else (),
        hook_timeout=_pick(flags.hook_timeout, s, "hook_timeout", float, DEFAULT_TIMEOUT),
        prune=prune,
    )
    report = _pick(flags.report, s, "report", str, "")
    metrics = _pick(flags.metrics_file, s, "metrics_file", str, "")
    log_path = _pick(flags.log_file, s, "log_file", str, "")
    progress = _pick(flags.progress, s, "progress", str, "auto").lower()
    single = len(flags.names) == 1 and not (flags.all or flags.search)
    if backup.disk_ids and not single:
        raise ConfigError("--disk needs exactly one VM")
    with connect(ctx, s) as connection, signals_as_interrupt():
        system = SystemService(connection)
        vms = select_vms(system.vms_service(), selection)  # unknown names: exit 4, nothing started
        if not vms:
            note("no VM matches the selection: nothing to back up")
        display = FleetDisplay(
            progress, several=not single, log=LogFile(Path(log_path).expanduser()) if log_path else None
        )
        try:
            result = run_fleet(system, vms, root, opts, display, engine_url=connection.url)
        finally:
            display.close()
    if report:
        _write_report(Path(report).expanduser(), result)
    if metrics:
        _write_metrics(Path(metrics).expanduser(), result, str(selection.shard or "all"))
    if single and len(result.vms) == 1:  # one VM: today's output and exit codes
        (only,) = result.vms
        if only.status == OK and only.restore_point is not None:
            point = only.restore_point
            note(
                f"{point.mode} restore point {point.name} of {point.vm_name} complete: "
                f"{len(point.disks)} disk(s), backup {point.backup_id}"
            )
            emit_point(s, point)
            return
        if only.exception is not None:
            raise only.exception
        raise IncompleteError(f"VM {only.vm} {only.status}: {only.error}")
    print_summary(result, json_output=s.output == "json", table_on_stderr=progress != "json")
    _finish(result)


def _finish(result: FleetResult) -> None:
    from ovbackup.jobs.fleet import FAILED, SKIPPED

    failed, skipped, total = result.count(FAILED), result.count(SKIPPED), len(result.vms)
    if result.stopped is not None:
        raise Interrupted(
            f"stopped by a signal: {failed} VM(s) torn down or failed, {skipped} not started",
            exit_code=result.stopped,
        )
    if failed or skipped:
        names = ", ".join(v.vm for v in result.vms if v.status in (FAILED, SKIPPED))
        raise IncompleteError(f"{failed} of {total} VM(s) failed and {skipped} skipped: {names}")

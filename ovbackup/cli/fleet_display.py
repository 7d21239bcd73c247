"""How a fleet run (``backup`` of several VMs) talks to people, scripts and files.

``FleetDisplay`` is the jobs layer's FleetReporter: it hands each VM a Reporter that draws on the
terminal (bars, lines, or JSON Lines events with ``--progress json``) and appends timestamped lines to
``--log-file``. The summary table and the JSON document are rendered here from the FleetResult.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ovbackup.cli import render
from ovbackup.cli.reporting import PROGRESS, BarReporter, JsonEvents, LineReporter, now_iso
from ovbackup.engine.model import Disk, Vm
from ovbackup.errors import ConfigError
from ovbackup.jobs.fleet import FleetResult, VmResult
from ovbackup.jobs.reporter import Reporter
from ovbackup.store.catalog import DiskRecord

if TYPE_CHECKING:
    from ovbackup.jobs.upload import RestoredDisk

SUMMARY_FIELDS: list[render.Field[VmResult]] = [
    render.Field("vm", "VM", lambda r: r.vm, no_wrap=True),
    render.Field("status", "Status", lambda r: r.status),
    render.Field("mode", "Mode", lambda r: r.mode, drop=3),
    render.Field("point", "Point", lambda r: r.point, no_wrap=True),
    render.Field("bytes", "Bytes", lambda r: r.bytes, show=render.human_size, no_wrap=True, drop=2),
    render.Field("seconds", "Seconds", lambda r: f"{r.seconds:.1f}", drop=1),
    render.Field("error", "Error", lambda r: r.error),
]


class LogFile:
    """``--log-file``: timestamped lines appended per VM (start, mode, disks, teardown, result)."""

    def __init__(self, path: Path) -> None:
        try:
            self._file = path.open("a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot open log file {path}: {e.strerror or e}") from None
        self._lock = threading.Lock()

    def line(self, vm: str | None, text: str) -> None:
        with self._lock:
            try:
                self._file.write(f"{now_iso()} {vm + ': ' if vm else ''}{text}\n")
                self._file.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _VmReporter:
    """One VM's Reporter: the shared terminal display, with the VM's name in front when there are
    several, plus JSON events and the log file."""

    def __init__(self, display: FleetDisplay, vm: Vm) -> None:
        self.display = display
        self.vm = vm
        self.prefix = f"{vm.label}: " if display.several else ""
        self._last_progress: dict[str, float] = {}

    def note(self, text: str) -> None:
        d = self.display
        if d.terminal is not None:
            d.terminal.note(self.prefix + text)
        if d.events is not None:
            d.events.emit("note", vm=self.vm.label, text=text)
        if d.log is not None:
            d.log.line(self.vm.label, text)

    def disk_started(self, disk: Disk, mode: str, data_bytes: int, size: int) -> None:
        d = self.display
        if d.terminal is not None:
            shown = replace(disk, name=self.prefix + disk.label) if self.prefix else disk
            d.terminal.disk_started(shown, mode, data_bytes, size)
        if d.events is not None:
            d.events.emit(
                "disk_start", vm=self.vm.label, disk=disk.id, alias=disk.name, mode=mode, bytes=data_bytes
            )
        if d.log is not None:
            d.log.line(self.vm.label, f"disk {disk.label}: {mode}, {data_bytes} bytes to download")

    def disk_progress(self, disk_id: str, done: int, size: int | None) -> None:
        d = self.display
        if d.terminal is not None:
            d.terminal.disk_progress(disk_id, done, size)
        if d.events is not None:
            now = time.monotonic()
            if now - self._last_progress.get(disk_id, 0.0) >= 1.0 or (size is not None and done >= size):
                self._last_progress[disk_id] = now
                d.events.emit("disk_progress", vm=self.vm.label, disk=disk_id, done=done, size=size)

    def disk_finished(self, record: DiskRecord) -> None:
        d = self.display
        if d.terminal is not None:
            shown = (
                replace(record, alias=self.prefix + (record.alias or record.id)) if self.prefix else record
            )
            d.terminal.disk_finished(shown)
        if d.events is not None:
            d.events.emit(
                "disk_done",
                vm=self.vm.label,
                disk=record.id,
                alias=record.alias,
                bytes=record.bytes_transferred,
                seconds=record.seconds,
                file=record.file,
            )
        if d.log is not None:
            d.log.line(
                self.vm.label,
                f"disk {record.alias or record.id}: {record.bytes_transferred} bytes in "
                f"{record.seconds:.1f} s → {record.file}",
            )

    def disk_restored(self, disk: RestoredDisk) -> None:  # a fleet backs up: never called today
        if self.display.terminal is not None:
            self.display.terminal.disk_restored(disk)

    def waiting(self, text: str | None, elapsed: float) -> None:
        d = self.display
        if d.terminal is not None and not d.several:  # one status line: for one VM only
            d.terminal.waiting(text, elapsed)


class FleetDisplay:
    """The CLI's FleetReporter (see the module docstring)."""

    def __init__(self, progress: str, *, several: bool, log: LogFile | None) -> None:
        if progress not in PROGRESS:
            raise ConfigError(f"--progress must be one of {', '.join(PROGRESS)}, not {progress!r}")
        if progress == "auto":
            progress = "bars" if sys.stderr.isatty() else "lines"
        self.several = several
        self.log = log
        self.events = JsonEvents() if progress == "json" else None
        self.terminal: LineReporter | None = None
        if progress == "bars":
            self.terminal = BarReporter()
        elif progress == "lines":
            self.terminal = LineReporter()
        self._reporters: dict[str, _VmReporter] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        if isinstance(self.terminal, BarReporter):
            self.terminal.close()
        if self.log is not None:
            self.log.close()

    def note(self, text: str) -> None:
        if self.terminal is not None:
            self.terminal.note(text)
        if self.events is not None:
            self.events.emit("note", text=text)
        if self.log is not None:
            self.log.line(None, text)

    def vm_reporter(self, vm: Vm) -> Reporter:
        with self._lock:
            if vm.id not in self._reporters:
                self._reporters[vm.id] = _VmReporter(self, vm)
            return self._reporters[vm.id]

    def run_started(self, vms: Sequence[Vm]) -> None:
        if self.events is not None:
            self.events.emit("run_start", vms=[{"vm": v.label, "id": v.id} for v in vms])
        if self.log is not None:
            self.log.line(None, f"run started: {len(vms)} VM(s)")
        if self.several and self.terminal is not None:
            self.terminal.note(f"backing up {len(vms)} VM(s)")

    def vm_started(self, vm: Vm) -> None:
        if self.events is not None:
            self.events.emit("vm_start", vm=vm.label, id=vm.id)
        if self.log is not None:
            self.log.line(vm.label, f"start (id {vm.id})")

    def vm_mode(self, vm: Vm, backup_id: str, mode: str, fallback: str | None) -> None:
        if self.events is not None:
            self.events.emit("mode", vm=vm.label, id=vm.id, backup_id=backup_id, mode=mode, fallback=fallback)
        if self.log is not None:
            why = f" ({fallback})" if fallback else ""
            self.log.line(vm.label, f"{mode} backup {backup_id}{why}")

    def vm_finished(self, result: VmResult) -> None:
        if self.events is not None:
            self.events.emit("vm_result", **result.to_json())
        if self.log is not None:
            detail = f": {result.error}" if result.error else f", point {result.point}, {result.bytes} bytes"
            self.log.line(result.vm, f"{result.status} in {result.seconds:.1f} s{detail}")
        if self.several and self.terminal is not None:
            self.terminal.note(
                f"{result.vm}: {result.status}" + (f" ({result.error})" if result.error else "")
            )

    def run_finished(self, result: FleetResult) -> None:
        counts = result.to_json()
        if self.events is not None:
            self.events.emit(
                "run_result",
                ok=counts["ok"],
                failed=counts["failed"],
                skipped=counts["skipped"],
                bytes=result.bytes,
                seconds=round(result.seconds, 3),
                exit_code=int(result.exit_code),
            )
        if self.log is not None:
            self.log.line(
                None,
                f"run finished in {result.seconds:.1f} s: {counts['ok']} ok, {counts['failed']} failed, "
                f"{counts['skipped']} skipped",
            )


def print_summary(result: FleetResult, *, json_output: bool, table_on_stderr: bool = True) -> None:
    """The table (stdout; stderr when stdout carries the JSON document, unless stderr carries JSON Lines
    events) and the JSON document."""
    title = (
        f"{result.count('ok')} ok, {result.count('failed')} failed, {result.count('skipped')} skipped "
        f"in {result.seconds:.0f} s"
    )
    if json_output:
        if table_on_stderr:
            render.print_table(result.vms, SUMMARY_FIELDS, title=title, stderr=True)
        render.print_json(result.to_json())
    else:
        render.print_table(result.vms, SUMMARY_FIELDS, title=title)

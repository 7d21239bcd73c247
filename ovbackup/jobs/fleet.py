"""Back up many VMs in one run, each with the one-VM job (jobs/backup.py), isolated from the others.

One engine session for the run; ``parallel`` VMs at once; every image transfer passes a shared
:class:`~ovbackup.jobs.transfers.TransferGate` (at most ``per_host`` through one host, ``max_transfers``
in all: the engine has no cap of its own, ovirt-api.md §11.5). A VM's failure, a refused start, or its
lock held by another run makes that VM ``failed`` or ``skipped`` with the reason; the others go on.

Stopping (Ctrl-C, SIGTERM, SIGHUP): the signal reaches the main thread. With one VM at a time the job
runs there, so the signal interrupts it exactly as in a one-VM run. With several at once the main
thread only waits; on a signal it sets the stop, and every running VM stops at its next interruption
point (after taking its lock, while waiting for ``ready``, while its disks download) and runs its own
teardown — all of them in parallel, each in its thread. Nothing new starts; VMs past the download
finish normally.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ovbackup.engine.model import Backup, Vm
from ovbackup.engine.services import SystemService
from ovbackup.errors import (
    ExitCode,
    HungUp,
    Interrupted,
    LockedError,
    OvbackupError,
    RefusedError,
    Terminated,
)
from ovbackup.jobs.backup import BackupOptions, Plan, run_backup
from ovbackup.jobs.hooks import DEFAULT_TIMEOUT, HookResult, run_hook
from ovbackup.jobs.prune import PruneOptions, run_prune
from ovbackup.jobs.reporter import Reporter
from ovbackup.jobs.transfers import TransferGate
from ovbackup.store.catalog import RestorePoint

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
_BUSY = "during a backup operation"  # the engine's refusal when another backup of the VM runs (§5.3)


@dataclass(frozen=True)
class FleetOptions:
    backup: BackupOptions = field(default_factory=BackupOptions)
    parallel: int = 1
    per_host: int | None = 2
    max_transfers: int | None = 8
    hook: tuple[str, ...] = ()  # argv; empty: no hook
    hook_timeout: float = DEFAULT_TIMEOUT
    prune: PruneOptions | None = None  # ``backup --prune``: each VM's policy applied after its success


@dataclass
class VmResult:
    vm: str
    id: str
    status: str = SKIPPED
    mode: str | None = None
    point: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    backup_id: str | None = None
    finished: float = 0.0  # Unix time
    exit_code: int = ExitCode.OK
    restore_point: RestorePoint | None = None
    exception: OvbackupError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "id": self.id,
            "status": self.status,
            "mode": self.mode,
            "point": self.point,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class FleetResult:
    vms: list[VmResult]
    seconds: float
    stopped: ExitCode | None = None  # the signal's exit code when the run was interrupted

    def count(self, status: str) -> int:
        return sum(1 for v in self.vms if v.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "vms": [v.to_json() for v in self.vms],
            "ok": self.count(OK),
            "failed": self.count(FAILED),
            "skipped": self.count(SKIPPED),
        }

    @property
    def bytes(self) -> int:
        return sum(v.bytes for v in self.vms)

    @property
    def exit_code(self) -> ExitCode:
        if self.stopped is not None:
            return self.stopped
        return ExitCode.OK if all(v.status == OK for v in self.vms) else ExitCode.INCOMPLETE


class FleetReporter(Protocol):
    """What a fleet run tells the person watching (the CLI draws it; tests record it)."""

    def note(self, text: str) -> None: ...
    def run_started(self, vms: Sequence[Vm]) -> None: ...
    def vm_reporter(self, vm: Vm) -> Reporter: ...
    def vm_started(self, vm: Vm) -> None: ...
    def vm_mode(self, vm: Vm, backup_id: str, mode: str, fallback: str | None) -> None: ...
    def vm_finished(self, result: VmResult) -> None: ...
    def run_finished(self, result: FleetResult) -> None: ...


class _Stop:
    """The run's stop: set once by the first signal; running VMs raise it at their next check."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.code: ExitCode | None = None
        self._raise: type[BaseException] = KeyboardInterrupt

    def request(self, code: ExitCode) -> None:
        if self.code is None:
            self.code = code
            self._raise = KeyboardInterrupt if code == ExitCode.INTERRUPTED else Terminated
            self.event.set()

    def check(self) -> None:
        if self.event.is_set():
            raise self._raise


def signal_code(e: BaseException) -> ExitCode:
    if isinstance(e, HungUp):
        return ExitCode.HANGUP
    if isinstance(e, Terminated):
        return ExitCode.TERMINATED
    return ExitCode.INTERRUPTED


class _Run:
    def __init__(
        self,
        system: SystemService,
        root: Path,
        opts: FleetOptions,
        reporter: FleetReporter,
        engine_url: str,
    ) -> None:
        self.system = system
        self.root = root
        self.opts = opts
        self.reporter = reporter
        self.engine_url = engine_url
        self.gate = TransferGate(opts.per_host, opts.max_transfers)
        self.stop = _Stop()

    def hook(self, phase: str, vm: Vm | None = None, **extra: str | None) -> HookResult | None:
        if not self.opts.hook:
            return None
        env = {
            "OVBACKUP_VM": vm.label if vm else None,
            "OVBACKUP_VM_ID": vm.id if vm else None,
            "OVBACKUP_DIR": str(self.root),
            "OVBACKUP_POINT": extra.get("point"),
            "OVBACKUP_STATUS": extra.get("status"),
        }
        note = self.reporter.vm_reporter(vm).note if vm else self.reporter.note
        result = run_hook(list(self.opts.hook), phase, env, timeout=self.opts.hook_timeout, output=note)
        if not result.ok:
            note(f"warning: {result.describe()}")
        return result

    def one(self, vm: Vm) -> VmResult:
        """Back up one VM; never raises for the VM's own failure (the others must go on)."""
        result = VmResult(vm.label, vm.id)
        started = time.monotonic()
        reporter = self.reporter.vm_reporter(vm)
        self.reporter.vm_started(vm)

        def on_start(backup: Backup, plan: Plan) -> None:
            result.backup_id = str(backup.id)
            result.mode = "incremental" if plan.from_checkpoint_id else "full"
            self.reporter.vm_mode(vm, result.backup_id, result.mode, plan.fallback)

        try:
            self.stop.check()
            started_hook = self.hook("backup-start", vm)
            if started_hook is not None and not started_hook.ok:
                result.error = f"skipped: {started_hook.describe()}"
            else:
                point = run_backup(
                    self.system,
                    vm,
                    self.root,
                    self.opts.backup,
                    reporter,
                    engine_url=self.engine_url,
                    gate=self.gate,
                    interrupt=self.stop.check,
                    on_start=on_start,
                )
                result.status, result.restore_point = OK, point
                result.point, result.mode, result.bytes = point.name, point.mode, point.bytes_transferred
                if self.opts.prune is not None:
                    self.prune(result, point, self.opts.prune, reporter)
        except LockedError as e:
            result.error, result.exit_code, result.exception = str(e), e.exit_code, e
        except RefusedError as e:
            busy = result.backup_id is None and _BUSY in (e.detail or str(e))
            result.status = SKIPPED if busy else FAILED
            result.error, result.exit_code, result.exception = str(e), e.exit_code, e
        except Interrupted as e:  # torn down after a signal (one at a time) or the run's stop
            self.stop.request(ExitCode(e.exit_code))
            result.status, result.error, result.exit_code, result.exception = FAILED, str(e), e.exit_code, e
        except OvbackupError as e:
            result.status, result.error, result.exit_code, result.exception = FAILED, str(e), e.exit_code, e
        except (KeyboardInterrupt, Terminated) as e:  # before its backup started: nothing to tear down
            code = self.stop.code or signal_code(e)
            self.stop.request(code)
            result.error, result.exit_code = "not started: the run was interrupted", code
        except Exception as e:  # a bug must not take the other VMs down with this one
            result.status, result.exit_code = FAILED, ExitCode.ERROR
            result.error = f"unexpected {type(e).__name__}: {e}"
        result.seconds = time.monotonic() - started
        result.finished = time.time()
        if result.status == OK:
            self.hook("backup-end", vm, point=result.point, status=OK)
        elif result.status == FAILED:
            self.hook("backup-abort", vm, point=result.point, status=FAILED)
        self.reporter.vm_finished(result)
        return result

    def prune(self, result: VmResult, point: RestorePoint, opts: PruneOptions, reporter: Reporter) -> None:
        """The VM's retention after its successful backup. Any failure (its lock held by a ``prune``
        elsewhere included) makes the VM ``failed``: monitoring must see a directory that no longer
        shrinks; the message says the backup itself is safe."""
        try:
            pruned = run_prune(self.root, point.vm_name, opts, reporter, confirm=lambda _: None)
        except OvbackupError as e:
            result.status, result.exit_code, result.exception = FAILED, e.exit_code, e
            result.error = f"backed up as {point.name}, but the prune after it failed: {e}"
            return
        reporter.note(
            f"pruned {len(pruned.plan.removed)} restore point(s) of {point.vm_name}, "
            f"freed {pruned.freed_bytes} bytes"
        )

    def skipped(self, vm: Vm, reason: str) -> VmResult:
        result = VmResult(vm.label, vm.id, error=reason, finished=time.time())
        self.reporter.vm_finished(result)
        return result

    def sequential(self, vms: Sequence[Vm]) -> list[VmResult]:
        """One VM at a time, in this (the main) thread: a signal interrupts the running job itself."""
        results = []
        for vm in vms:
            if self.stop.event.is_set():
                results.append(self.skipped(vm, "not started: the run was interrupted"))
                continue
            results.append(self.one(vm))
        return results

    def parallel(self, vms: Sequence[Vm]) -> list[VmResult]:
        queue = deque(vms)
        lock = threading.Lock()
        results: dict[str, VmResult] = {}

        workers = min(self.opts.parallel, len(vms))
        running = [workers]
        finished = threading.Event()

        def worker() -> None:
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        vm = queue.popleft()
                    if self.stop.event.is_set():
                        outcome = self.skipped(vm, "not started: the run was interrupted")
                    else:
                        outcome = self.one(vm)
                    with lock:
                        results[vm.id] = outcome
            finally:
                with lock:
                    running[0] -= 1
                    if running[0] == 0:
                        finished.set()

        for i in range(workers):
            threading.Thread(target=worker, name=f"fleet-{i}", daemon=True).start()
        _wait(finished, self._on_signal)
        return [results[vm.id] for vm in vms]

    def _on_signal(self, e: BaseException) -> None:
        first = not self.stop.event.is_set()
        self.stop.request(signal_code(e))
        if first:
            self.reporter.note("stopping: tearing down the running VMs; nothing new starts")
        else:
            self.reporter.note("still tearing down the running VMs; please wait")


def _wait(finished: threading.Event, on_signal: Callable[[BaseException], None]) -> None:
    """Wait until every worker is done; a signal in the meantime is handed to ``on_signal`` and the wait
    goes on (the workers are tearing down: leaving now would leave backups open on the engine).

    An Event, not Thread.join: a KeyboardInterrupt inside join() can mark a thread that is still running
    as stopped (CPython 3.11 ``_wait_for_tstate_lock`` releases the running thread's own lock).
    """
    while True:
        try:
            while not finished.wait(0.2):
                pass
            return
        except (KeyboardInterrupt, Terminated) as e:
            on_signal(e)


def run_fleet(
    system: SystemService,
    vms: Sequence[Vm],
    root: Path,
    opts: FleetOptions,
    reporter: FleetReporter,
    *,
    engine_url: str,
) -> FleetResult:
    """Back up ``vms`` (chosen by jobs.selection) into ``root``; never raises for one VM's failure."""
    run = _Run(system, root, opts, reporter, engine_url)
    started = time.monotonic()
    reporter.run_started(vms)
    job_start = run.hook("job-start")
    if job_start is not None and not job_start.ok:
        results = [run.skipped(vm, f"skipped: {job_start.describe()}") for vm in vms]
    elif opts.parallel <= 1 or len(vms) <= 1:
        results = run.sequential(vms)
    else:
        results = run.parallel(vms)
    result = FleetResult(results, time.monotonic() - started, run.stop.code)
    run.hook("job-end", status=OK if result.exit_code == ExitCode.OK else FAILED)
    reporter.run_finished(result)
    return result

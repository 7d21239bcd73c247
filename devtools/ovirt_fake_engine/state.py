"""In-memory model of the engine and the rules it enforces for backups and checkpoints.

Everything here runs under one re-entrant lock (``EngineState.lock``); the HTTP layer takes it for the
whole of a request so a reply is always rendered from a consistent snapshot.

Phases advance lazily: nothing ticks in the background. Each backup remembers its phase and when it
entered it; ``settle()`` (called before every read or rule check) replays the transitions that are due
on the engine clock. The transition time is the exact due time, not the time of the read, so
``modification_date`` and retention behave as if a real engine had been running all along.
Facts (texts, order of checks) follow /work/shared/ovirt-api.md §1-§5 and the engine's
StartVmBackupCommand.validate; the two backup flows (hybrid, legacy) are in flows.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, tzinfo

from ovirt_fake_engine import disks, flows, transfers, vms
from ovirt_fake_engine.inventory import Inventory
from ovirt_fake_engine.model import (
    TERMINAL,
    ApiError,
    Backup,
    Checkpoint,
    Disk,
    DiskSpec,
    Event,
    ImageTransfer,
    Vm,
    check_guid,
    failed,
    not_found,
)
from ovirt_fake_engine.storage import Storage


class EngineState:
    """The engine's database plus its clock and backup/checkpoint rules."""

    def __init__(self, phase_seconds: float = 1.0, legacy: bool = False) -> None:
        self.lock = threading.RLock()
        self.phase_seconds = phase_seconds
        # True: every backup runs the older live/cold flow, as on a cluster without UseHybridBackup
        # (a client can also ask for it per request with ?legacy=true); see flows.py.
        self.legacy = legacy
        self.succeeded_retention = 900.0  # SucceededBackupCleanupTimeInMinutes=15
        self.failed_retention = 1800.0  # FailedBackupCleanupTimeInMinutes=30
        self.fail_next_backup = False
        self.tz: tzinfo = datetime.now().astimezone().tzinfo or UTC
        self.host_id = str(uuid.uuid4())
        # Hosts by id → name; VMs run on ``host_id`` unless added with another (fleet tests: --per-host).
        self.hosts: dict[str, str] = {self.host_id: "fake-host-1"}
        # Per host, the most transfers that were moving data at once (initializing..transferring):
        # what a client's per-host limit must bound.
        self.transfer_peaks: dict[str, int] = {}
        self.transfer_peak_total = 0  # the same, over every host
        self.cluster_id = str(uuid.uuid4())
        self.inventory = Inventory(self.cluster_id)  # data centre, cluster, storage domains
        self.vms: dict[str, Vm] = {}
        self.disks: dict[str, Disk] = {}
        self.all_backups: dict[str, Backup] = {}
        self.vm_backups: dict[str, dict[str, Backup]] = {}
        self.vm_checkpoints: dict[str, list[Checkpoint]] = {}
        self._active: dict[str, Backup] = {}
        self._offset = 0.0
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._dates: dict[tuple[float, tzinfo], str] = {}
        # Image transfers (rules in transfers.py) and, once a data plane is attached, the real
        # images whose bitmaps follow the checkpoints (storage.py).
        self.transfers: dict[str, ImageTransfer] = {}
        self.storage: Storage | None = None
        self.transfer_retention = 900.0  # engine: 15 min after a successful transfer
        self.failed_transfer_retention = 1800.0  # engine: 30 min after a failed/cancelled one
        self.fail_next_transfer = False
        # The audit log (GET /events), newest last; ids count up like audit_log_id.
        self.events: list[Event] = []

    # -- clock ------------------------------------------------------------------------------------
    def now(self) -> float:
        """Engine clock: monotonic time plus whatever tests added with ``advance()``."""
        with self.lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the engine clock forward, so phases and retention can be tested without sleeping."""
        with self.lock:
            self._offset += seconds

    def date_text(self, t: float) -> str:
        """Engine-clock time → engine date format ``2022-03-21T06:29:02.650-04:00`` (``Z`` for UTC)."""
        key = (t, self.tz)
        text = self._dates.get(key)
        if text is None:  # cached: listing 10,000 backups would otherwise format 20,000 dates
            dt = datetime.fromtimestamp(self._wall0 + (t - self._mono0), self.tz)
            text = dt.isoformat(timespec="milliseconds")
            text = text[:-6] + "Z" if text.endswith("+00:00") else text
            if len(self._dates) > 200_000:
                self._dates.clear()
            self._dates[key] = text
        return text

    # -- inventory --------------------------------------------------------------------------------
    def add_host(self, name: str) -> str:
        """Another host VMs can run on; returns its id."""
        with self.lock:
            host_id = str(uuid.uuid4())
            self.hosts[host_id] = name
            return host_id

    def add_vm(self, name: str, status: str, disks: list[DiskSpec], host_id: str | None = None) -> Vm:
        """Create a VM with its disks attached, running on ``host_id`` (default: the first host)."""
        with self.lock:
            if host_id is not None and host_id not in self.hosts:
                raise KeyError(host_id)
            vm = Vm(id=str(uuid.uuid4()), name=name, status=status, host_id=host_id or self.host_id)
            vm.cluster_id = self.cluster_id
            vms.seed_nic(self, vm)
            self.vms[vm.id] = vm
            self.vm_backups[vm.id] = {}
            self.vm_checkpoints[vm.id] = []
            for spec in disks:
                self.add_disk(vm.id, spec)
            return vm

    def add_disk(self, vm_id: str, spec: DiskSpec) -> Disk:
        """Attach a new disk (e.g. to test that a disk missing from the from-checkpoint is full)."""
        with self.lock:
            actual = spec.actual_size
            if actual is None:
                actual = spec.provisioned_size // 4 if spec.format == "cow" else spec.provisioned_size
            inv = self.inventory
            sd = inv.resolve_storage_domain(spec.storage_domain) if spec.storage_domain else None
            disk = Disk(
                id=spec.id or str(uuid.uuid4()),
                alias=spec.alias,
                format=spec.format,
                backup=spec.backup,
                provisioned_size=spec.provisioned_size,
                actual_size=actual,
                vm_id=vm_id,
                storage_domain_id=(sd or inv.default_storage_domain).id,
                sparse=spec.format == "cow" if spec.sparse is None else spec.sparse,
            )
            if self.storage is not None:
                self.storage.create(disk)
            self.disks[disk.id] = disk
            self.vms[vm_id].disks.append(disk)
            return disk

    def vm(self, vm_id: str) -> Vm:
        """The VM or a 404 with empty body."""
        vm = self.vms.get(vm_id)
        if vm is None:
            raise not_found()
        return vm

    # -- lazy progression -------------------------------------------------------------------------
    def settle(self) -> None:
        """Apply every phase transition and retention expiry that is due on the engine clock."""
        with self.lock:
            now = self.now()
            for b in list(self._active.values()):
                flows.progress(self, b, now)
            for b in list(self.all_backups.values()):
                if b.phase in TERMINAL:
                    keep = self.succeeded_retention if b.phase == "succeeded" else self.failed_retention
                    if now >= b.phase_since + keep:
                        del self.all_backups[b.id]
                        del self.vm_backups[b.vm_id][b.id]
            transfers.settle(self, now)
            disks.settle(self, now)
            vms.settle(self, now)

    def finished(self, b: Backup) -> None:
        """A backup reached succeeded/failed: it no longer blocks the VM (flows.py calls this)."""
        self._active.pop(b.id, None)

    # -- backups ----------------------------------------------------------------------------------
    def backups(self, vm_id: str) -> list[Backup]:
        """The VM's backups in creation order (the engine defines no order)."""
        with self.lock:
            self.settle()
            return list(self.vm_backups[self.vm(vm_id).id].values())

    def backup(self, vm_id: str, backup_id: str) -> Backup:
        """One backup of the VM, or 404 (also once retention has forgotten it)."""
        with self.lock:
            self.settle()
            b = self.vm_backups[self.vm(vm_id).id].get(backup_id)
            if b is None:
                raise not_found()
            return b

    def start_backup(
        self,
        vm_id: str,
        disk_ids: list[str],
        *,
        backup_id: str | None = None,
        from_checkpoint_id: str | None = None,
        description: str | None = None,
        query: dict[str, list[str]] | None = None,
    ) -> Backup:
        """POST /vms/{vm}/backups, with the engine's checks in the engine's order.

        ``?legacy=true`` (or an engine started with ``legacy``) runs the live/cold flow, otherwise
        the snapshot-based one (BackendVmBackupsResource.add; flows.py).
        """
        with self.lock:
            self.settle()
            vm = self.vm(vm_id)
            if not disk_ids:
                raise ApiError(400, "Incomplete parameters", "Backup [disks] required for add")
            for value in [backup_id, from_checkpoint_id, *disk_ids]:
                if value is not None:
                    check_guid(value)
            attached = {d.id: d for d in vm.disks}
            missing = [d for d in disk_ids if d not in attached]
            if missing:
                raise failed(
                    400,
                    f"Cannot backup VM. The following disk(s) ID(s) does not exist: {', '.join(missing)}.",
                )
            from_cp = None
            if from_checkpoint_id is not None:
                from_cp = self._find_checkpoint(from_checkpoint_id)
                if from_cp is None:
                    raise failed(400, f"Cannot backup VM. Checkpoint ID {from_checkpoint_id} doesn't exist.")
                if from_cp.state == "invalid":
                    raise failed(
                        400,
                        f"Cannot backup VM. Checkpoint ID {from_checkpoint_id} is invalid and "
                        "should be removed.",
                    )
            if vm.status not in ("up", "down"):
                raise failed(409, "Cannot backup VM. The Virtual Machine should be in Up or Down status.")
            if self.busy(vm.id):
                raise failed(409, "Cannot backup VM. The VM is during a backup operation.")
            if description is not None and len(description) > 1024:
                raise failed(
                    400,
                    "Cannot backup VM. The VM backup description shouldn't contain more than "
                    "1024 characters.",
                )
            if backup_id is not None and backup_id in self.all_backups:
                raise failed(400, f"Cannot backup VM. The specified VM backup ID {backup_id} already exists.")
            disks = [attached[d] for d in dict.fromkeys(disk_ids)]
            query = dict(query or {})
            legacy = self.legacy or (query.get("legacy") or ["false"])[0].lower() == "true"
            b = self._new_backup(vm, disks, backup_id, from_cp, description, "initializing", not legacy)
            b.query = query
            b.doomed, self.fail_next_backup = self.fail_next_backup, False
            self._active[b.id] = b
            now = self.now()
            flows.start(self, b, now)
            flows.progress(self, b, now)  # phase_seconds == 0: ready at once
            return b

    def _new_backup(
        self,
        vm: Vm,
        disks: list[Disk],
        backup_id: str | None,
        from_cp: Checkpoint | None,
        description: str | None,
        phase: str,
        hybrid: bool,
    ) -> Backup:
        now = self.now()
        covered = set(from_cp.disk_ids) if from_cp else set()
        modes = {d.id: "incremental" if d.format == "cow" and d.id in covered else "full" for d in disks}
        live = vm.status == "up"
        b = Backup(
            id=backup_id or str(uuid.uuid4()),
            vm_id=vm.id,
            disks=disks,
            modes=modes,
            live=live,
            created=now,
            phase=phase,
            phase_since=now,
            hybrid=hybrid,
            from_checkpoint_id=from_cp.id if from_cp else None,
            description=description,
            host_id=vm.host_id if live and not hybrid else None,
        )
        self.all_backups[b.id] = b
        self.vm_backups[vm.id][b.id] = b
        return b

    def add_backups(
        self, vm_id: str, n: int, phase: str = "succeeded", description: str | None = "nightly"
    ) -> list[Backup]:
        """Bulk-create ``n`` backups of all the VM's disks without rule checks (scale tests).

        They look like what an engine lists after a chain of backups: each but the first from the
        previous one's checkpoint, a description, both dates, a ``<host>`` in the legacy flow of an
        up VM. The checkpoint ids are not added to the VM's chain (an engine's chain is usually
        shorter than its list of backups, since checkpoints get removed).
        """
        with self.lock:
            vm = self.vm(vm_id)
            made = []
            previous: str | None = None
            for _ in range(n):
                b = self._new_backup(vm, list(vm.disks), None, None, description, phase, not self.legacy)
                b.from_checkpoint_id, b.to_checkpoint_id = previous, str(uuid.uuid4())
                b.checkpoint_id = previous = b.to_checkpoint_id
                if b.from_checkpoint_id is not None:
                    b.modes = {d.id: "incremental" if d.format == "cow" else "full" for d in b.disks}
                made.append(b)
            if phase not in TERMINAL:
                self._active.update((b.id, b) for b in made)
            return made

    def busy(self, vm_id: str) -> bool:
        """VmCommand.isVmDuringBackup: any backup not yet succeeded/failed blocks (already settled)."""
        return any(b.vm_id == vm_id for b in self._active.values())

    def finalize(self, vm_id: str, backup_id: str) -> None:
        """POST .../finalize; raw execute-failure strings give 400 without brackets (§5.3)."""
        with self.lock:
            b = self.backup(vm_id, backup_id)
            if transfers.open_for_backup(self, b.id):  # validate() runs before execute (≥ 4.5.1)
                raise failed(409, "Cannot stop VM backup. There is an active image transfer for VM backup")
            flows.finalize(self, b, self.now())

    def fail_backup(self, backup_id: str) -> None:
        """Test switch: an unfinished backup fails (legacy: ``finalizing`` for one step first) and
        its checkpoint disappears."""
        with self.lock:
            self.settle()
            b = self.all_backups.get(backup_id)
            if b is None or b.phase in TERMINAL:
                raise ValueError(f"backup {backup_id} is unknown or already finished")
            flows.fail(self, b, self.now())

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoints(self, vm_id: str) -> list[Checkpoint]:
        """The VM's checkpoints in chain order, root first."""
        with self.lock:
            self.settle()
            return list(self.vm_checkpoints[self.vm(vm_id).id])

    def checkpoint(self, vm_id: str, checkpoint_id: str) -> Checkpoint:
        """One checkpoint of the VM, or 404."""
        for cp in self.checkpoints(vm_id):
            if cp.id == checkpoint_id:
                return cp
        raise not_found()

    def _find_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        for chain in self.vm_checkpoints.values():
            for cp in chain:
                if cp.id == checkpoint_id:
                    return cp
        return None

    def add_checkpoint(
        self,
        vm_id: str,
        *,
        checkpoint_id: str | None = None,
        disk_ids: list[str] | None = None,
        description: str | None = None,
        state: str = "created",
    ) -> Checkpoint:
        """Append a checkpoint to the VM's chain (default: covering all its qcow2 disks)."""
        with self.lock:
            vm = self.vm(vm_id)
            chain = self.vm_checkpoints[vm.id]
            cp = Checkpoint(
                id=checkpoint_id or str(uuid.uuid4()),
                vm_id=vm.id,
                parent_id=chain[-1].id if chain else None,
                created=self.now(),
                state=state,
                description=description,
                disk_ids=disk_ids if disk_ids is not None else [d.id for d in vm.disks if d.format == "cow"],
            )
            chain.append(cp)
            if self.storage is not None:
                self.storage.add_bitmaps(cp.id, cp.disk_ids)
            return cp

    def set_checkpoint_state(self, checkpoint_id: str, state: str) -> None:
        """Mark a checkpoint ``invalid`` (as after reverting to an older snapshot) or back."""
        with self.lock:
            cp = self._find_checkpoint(checkpoint_id)
            if cp is None:
                raise KeyError(checkpoint_id)
            cp.state = state

    def remove_checkpoint(self, vm_id: str, checkpoint_id: str) -> None:
        """DELETE .../checkpoints/{id}: 404 first, then 409 while a backup runs, then re-link."""
        with self.lock:
            self.checkpoint(vm_id, checkpoint_id)
            if self.busy(vm_id):
                raise failed(409, "Cannot remove checkpoint. The VM is during a backup operation.")
            self.unlink_checkpoint(vm_id, checkpoint_id)

    def unlink_checkpoint(self, vm_id: str, checkpoint_id: str) -> None:
        """Delete a checkpoint and its bitmaps; its child takes its parent (DeleteVmCheckpointCommand)."""
        chain = self.vm_checkpoints[vm_id]
        for i, cp in enumerate(chain):
            if cp.id == checkpoint_id:
                if self.storage is not None:
                    self.storage.remove_bitmaps(cp.id, cp.disk_ids)
                for child in chain[i + 1 :]:
                    if child.parent_id == cp.id:
                        child.parent_id = cp.parent_id
                del chain[i]
                return

"""``--metrics-file``: per-VM freshness for node_exporter's textfile collector (Prometheus text format).

The file is rewritten whole and atomically (temp file, fsync, rename), so the collector never reads half
of it. VMs not in this run keep their previous samples: the old file is read and merged, so N shards,
or a run of one VM, never erase what other runs reported. A VM that failed keeps its previous
``ovbackup_last_success_timestamp_seconds``: that is what an alert on staleness needs.

prometheus_client renders (its escaping of label values is the reference) and parses the old file; the
write goes through our own fsync-and-rename, since ``write_to_textfile`` does not fsync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovbackup.errors import ConfigError
from ovbackup.store.catalog import write_atomically
from ovbackup.store.lock import hold_lock

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# name → help text; every per-VM family is labelled vm, vm_id.
VM_FAMILIES = {
    "ovbackup_last_success_timestamp_seconds": "When the VM's last successful backup finished (Unix time).",
    "ovbackup_last_run_timestamp_seconds": "When the VM's last backup attempt finished (Unix time).",
    "ovbackup_last_status": "Result of the VM's last backup attempt: 1 ok, 0 failed or skipped.",
    "ovbackup_bytes_transferred": "Bytes the VM's last backup attempt downloaded.",
    "ovbackup_duration_seconds": "Seconds the VM's last backup attempt took.",
}
# Run totals, labelled by shard ("all" without --shard), so shards sharing one file keep each other's.
RUN_FAMILIES = {
    "ovbackup_run_vms": "VMs of the last run by status (ok, failed, skipped).",
    "ovbackup_run_bytes_transferred": "Bytes the last run downloaded.",
    "ovbackup_run_duration_seconds": "Seconds the last run took.",
    "ovbackup_run_timestamp_seconds": "When the last run finished (Unix time).",
}


@dataclass(frozen=True)
class VmSample:
    vm: str
    vm_id: str
    ok: bool
    finished: float  # Unix time
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RunSample:
    shard: str
    ok: int
    failed: int
    skipped: int
    bytes: int
    seconds: float
    finished: float


Samples = dict[str, list[tuple[dict[str, str], float]]]


def _read_old(path: Path) -> Samples:
    """Our families' samples from the previous file; an unreadable file is replaced, not fatal."""
    from prometheus_client.parser import text_string_to_metric_families

    old: Samples = {name: [] for name in (*VM_FAMILIES, *RUN_FAMILIES)}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return old
    except OSError as e:
        raise ConfigError(f"cannot read metrics file {path}: {e.strerror or e}") from None
    with contextlib.suppress(ValueError):  # a mangled file: start again from this run's samples
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in old:
                    old[sample.name].append((dict(sample.labels), float(sample.value)))
    return old


def _merge(old: Samples, vms: Sequence[VmSample], run: RunSample) -> Samples:
    ran = {v.vm_id for v in vms}
    merged: Samples = {
        name: [(labels, value) for labels, value in samples if labels.get("vm_id") not in ran]
        for name, samples in old.items()
        if name in VM_FAMILIES
    }
    previous_success = {
        labels.get("vm_id"): value for labels, value in old["ovbackup_last_success_timestamp_seconds"]
    }
    for v in vms:
        labels = {"vm": v.vm, "vm_id": v.vm_id}
        success = v.finished if v.ok else previous_success.get(v.vm_id)
        if success is not None:
            merged["ovbackup_last_success_timestamp_seconds"].append((labels, success))
        merged["ovbackup_last_run_timestamp_seconds"].append((labels, v.finished))
        merged["ovbackup_last_status"].append((labels, 1.0 if v.ok else 0.0))
        merged["ovbackup_bytes_transferred"].append((labels, float(v.bytes)))
        merged["ovbackup_duration_seconds"].append((labels, round(v.seconds, 3)))
    for name in RUN_FAMILIES:
        merged[name] = [(labels, value) for labels, value in old[name] if labels.get("shard") != run.shard]
    shard = {"shard": run.shard}
    for status, count in (("ok", run.ok), ("failed", run.failed), ("skipped", run.skipped)):
        merged["ovbackup_run_vms"].append(({**shard, "status": status}, float(count)))
    merged["ovbackup_run_bytes_transferred"].append((shard, float(run.bytes)))
    merged["ovbackup_run_duration_seconds"].append((shard, round(run.seconds, 3)))
    merged["ovbackup_run_timestamp_seconds"].append((shard, run.finished))
    return merged


def render(samples: Samples) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import GaugeMetricFamily

    class _Merged:
        def collect(self) -> Iterable[Metric]:
            for name, rows in samples.items():
                help_text = VM_FAMILIES.get(name) or RUN_FAMILIES[name]
                keys = ("vm", "vm_id") if name in VM_FAMILIES else ("shard", "status")
                used = [k for k in keys if any(k in labels for labels, _ in rows)] or list(keys[:1])
                family = GaugeMetricFamily(name, help_text, labels=used)
                for labels, value in sorted(rows, key=lambda r: tuple(r[0].get(k, "") for k in used)):
                    family.add_metric([labels.get(k, "") for k in used], value)
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)


def write_metrics(path: Path, vms: Sequence[VmSample], run: RunSample) -> None:
    """Merge this run's samples into ``path`` and replace it atomically (under a lock beside it, so two
    runs writing the same file at once never lose each other's VMs)."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        with hold_lock(lock, f"metrics file {path}", wait=60):
            write_atomically(path, render(_merge(_read_old(path), vms, run)))
    except OSError as e:
        raise ConfigError(f"cannot write metrics file {path}: {e.strerror or e}") from None

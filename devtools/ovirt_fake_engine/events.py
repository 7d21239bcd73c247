"""The audit log behind ``GET /events``: what backup_vm.py reads when a backup failed.

The SDK's example searches ``/events?search=<backup id>`` and takes the first (newest) entry
(ovirt-api.md §9). Codes, severities and texts are the engine's AuditLogType / AuditLogMessages
entries for backups; the search is the engine's free-text search over an event's text columns
(BaseConditionFieldAutoCompleter.buildFreeTextConditionSql: ILIKE '%value%' on each). The user
name is the fake's guess at what the engine records for ``admin@internal``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ovirt_fake_engine.model import Backup, Event

if TYPE_CHECKING:
    from ovirt_fake_engine.state import EngineState

USER = "admin@internal-authz"
# kind → (AuditLogType code, severity, message after "Backup {id} for VM {name} ")
_BACKUP = {
    "started": (10790, "normal", "started"),
    "failed": (10792, "error", "failed"),
    "succeeded": (10793, "normal", "completed successfully"),
    "finalized": (10794, "normal", "finalized"),
    "stopped": (10796, "normal", "stopped"),
}


def record(state: EngineState, code: int, severity: str, text: str, t: float, vm_id: str | None) -> Event:
    """Append one entry to the audit log."""
    vm = state.vms.get(vm_id or "")
    event = Event(
        id=len(state.events) + 1,
        code=code,
        severity=severity,
        description=text,
        time=t,
        vm_id=vm.id if vm else None,
        vm_name=vm.name if vm else None,
        user_name=USER,
    )
    state.events.append(event)
    return event


def backup(state: EngineState, b: Backup, kind: str, t: float) -> Event:
    """VM_BACKUP_STARTED / _FAILED / _SUCCEEDED / _FINALIZED / _STOPPED for one backup."""
    code, severity, what = _BACKUP[kind]
    vm = state.vms.get(b.vm_id)
    name = vm.name if vm else b.vm_id
    return record(state, code, severity, f"Backup {b.id} for VM {name} {what} (User: {USER}).", t, b.vm_id)


def text_columns(e: Event) -> list[str]:
    """What a free-text search looks in: the message, user, VM name and id."""
    return [v for v in (e.description, e.user_name, e.vm_name, e.vm_id, "oVirt") if v]

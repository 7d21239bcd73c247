"""Tables for people, JSON for scripts, from one field spec per resource so the two cannot drift.

stdout carries only data; rich is imported only when a table is printed (start-up time matters for
shell completion). Colour follows rich's rules: none when stdout is not a terminal or NO_COLOR is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from ovbackup.engine.model import Backup, Checkpoint, Disk, VmSummary
from ovbackup.errors import human_size

__all__ = ["human_size"]  # re-exported: tables and reporters show sizes as errors do

T = TypeVar("T")


@dataclass(frozen=True)
class Field(Generic[T]):
    """One attribute of a resource: its JSON key (None: table only) and how the table shows it."""

    key: str | None
    header: str
    get: Callable[[T], Any]
    table: bool = True
    no_wrap: bool = False
    style: str | None = None
    show: Callable[[Any], str] | None = None


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def human_date(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return human_date(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


DISK_FIELDS: list[Field[Disk]] = [
    Field("id", "Disk ID", lambda d: d.id, no_wrap=True),
    Field("name", "Name", lambda d: d.name),
    Field("format", "Format", lambda d: d.format),
    Field("backup", "Backup", lambda d: d.backup),
    Field("backup_mode", "Mode", lambda d: d.backup_mode),
    Field("provisioned_size", "Size", lambda d: d.provisioned_size, show=human_size),
    Field("actual_size", "Allocated", lambda d: d.actual_size, show=human_size),
]


def _disks_json(disks: Sequence[Disk] | None) -> list[dict[str, Any]] | None:
    return None if disks is None else [to_dict(d, DISK_FIELDS) for d in disks]


def _checkpoints(b: Backup) -> str:
    return f"{b.from_checkpoint_id or '(full)'} → {b.to_checkpoint_id or '-'}"


def _disk_names(disks: Sequence[Disk] | None) -> str:
    if disks is None:
        return "-"
    return ", ".join(d.label for d in disks) or "none"


# Backup phases, and the checkpoint state that needs action (an invalid checkpoint must be removed).
PHASE_STYLES = {"failed": "red", "succeeded": "green", "ready": "cyan", "invalid": "bold red"}

BACKUP_FIELDS: list[Field[Backup]] = [
    Field("id", "Backup ID", lambda b: b.id, no_wrap=True),
    Field("phase", "Phase", lambda b: b.phase),
    Field(None, "Checkpoints (from → to)", _checkpoints, no_wrap=True),
    Field("from_checkpoint_id", "From checkpoint", lambda b: b.from_checkpoint_id, table=False),
    Field("to_checkpoint_id", "To checkpoint", lambda b: b.to_checkpoint_id, table=False),
    Field("creation_date", "Created", lambda b: b.creation_date),
    Field("modification_date", "Modified", lambda b: b.modification_date, table=False),
    Field("description", "Description", lambda b: b.description, table=False),
    Field("vm_id", "VM ID", lambda b: b.vm_id, table=False),
    Field("host_id", "Host ID", lambda b: b.host_id, table=False),
    Field("snapshot_id", "Snapshot ID", lambda b: b.snapshot_id, table=False),
    Field("disks", "Disks", lambda b: b.disks, show=_disk_names),
]

CHECKPOINT_FIELDS: list[Field[Checkpoint]] = [
    Field("id", "Checkpoint ID", lambda c: c.id, no_wrap=True),
    Field("parent_id", "Parent", lambda c: c.parent_id, no_wrap=True),
    Field("creation_date", "Created", lambda c: c.creation_date),
    Field("state", "State", lambda c: c.state),
    Field("description", "Description", lambda c: c.description),
    Field("vm_id", "VM ID", lambda c: c.vm_id, table=False),
    Field("disks", "Disks", lambda c: c.disks, table=False),
]

VM_FIELDS: list[Field[VmSummary]] = [
    Field("id", "VM ID", lambda v: v.vm.id, no_wrap=True),
    Field("name", "Name", lambda v: v.vm.name),
    Field("status", "Status", lambda v: v.vm.status),
    Field("disks", "Disks", lambda v: v.disks),
    Field("incremental_disks", "Incremental disks", lambda v: v.incremental_disks),
]


def to_dict(item: T, fields: Iterable[Field[T]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for f in fields:
        if f.key is None:
            continue
        value = f.get(item)
        if f.key == "disks" and not isinstance(value, int):
            result[f.key] = _disks_json(value)
        else:
            result[f.key] = jsonable(value)
    return result


def _json_default(value: Any) -> Any:
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serializable: {type(value).__name__}")
    return converted


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout: indented for a person, one line for a pipe.

    Without indentation the json module uses its C encoder, which matters for 10,000 backups.
    """
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(document, indent=indent, ensure_ascii=False, default=_json_default))
    sys.stdout.write("\n")
    sys.stdout.flush()


def print_json_array(items: Iterable[Any]) -> None:
    """One JSON array on stdout, written item by item (no list of dicts, no giant string)."""
    if sys.stdout.isatty():
        print_json(list(items))
        return
    write = sys.stdout.write
    write("[")
    for n, item in enumerate(items):
        if n:
            write(",")
        write(json.dumps(item, ensure_ascii=False, default=_json_default))
    write("]\n")
    sys.stdout.flush()


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # When piped, never wrap or truncate: ids must stay whole for grep/awk.
    return Console(
        file=stream,
        width=None if tty else 1_000,
        no_color=bool(os.environ.get("NO_COLOR")) or not tty,
        highlight=False,
        soft_wrap=not tty,
    )


def _cell(f: Field[T], item: T) -> str:
    value = f.get(item)
    return (f.show or show_value)(value)


def print_table(
    items: Sequence[T], fields: Sequence[Field[T]], *, title: str | None = None, stderr: bool = False
) -> None:
    """A table on stdout (``stderr``: on stderr, when stdout carries a JSON document)."""
    from rich import box
    from rich.table import Table

    console = _console(stderr)
    table = Table(title=title, box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII2)
    shown = [f for f in fields if f.table]
    for f in shown:
        table.add_column(f.header, no_wrap=f.no_wrap or not console.is_terminal, overflow="fold")
    for item in items:
        row = []
        for f in shown:
            text = _cell(f, item)
            style = PHASE_STYLES.get(text) or f.style
            row.append(f"[{style}]{text}[/]" if style and console.is_terminal else _escape(text))
        table.add_row(*row)
    console.print(table)


def print_record(item: T, fields: Sequence[Field[T]], *, title: str | None = None) -> None:
    """Every field of one resource, one per line (for ``show``)."""
    from rich import box
    from rich.table import Table

    console = _console()
    table = Table(title=title, show_header=False, box=box.SIMPLE if console.is_terminal else box.ASCII2)
    table.add_column("field", style="bold" if console.is_terminal else None, no_wrap=True)
    table.add_column("value", no_wrap=not console.is_terminal, overflow="fold")
    for f in fields:
        if f.key is None:
            continue
        table.add_row(f.header, _escape(_cell(f, item)))
    console.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

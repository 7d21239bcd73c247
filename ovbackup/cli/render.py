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
    """One attribute of a resource: its JSON key (None: table only) and how the table shows it.

    ``no_wrap``: the value is never broken (ids, sizes; other cells wrap between words). ``drop``: when
    the table is too wide for the terminal, the columns with a ``drop`` go, lowest first (layout.py);
    the others stay, or each record becomes a block of lines."""

    key: str | None
    header: str
    get: Callable[[T], Any]
    table: bool = True
    no_wrap: bool = False
    style: str | None = None
    show: Callable[[Any], str] | None = None
    drop: int | None = None


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
    Field("format", "Format", lambda d: d.format, drop=3),
    Field("backup", "Backup", lambda d: d.backup, drop=2),
    Field("backup_mode", "Mode", lambda d: d.backup_mode),
    Field("provisioned_size", "Size", lambda d: d.provisioned_size, show=human_size, no_wrap=True, drop=4),
    Field("actual_size", "Allocated", lambda d: d.actual_size, show=human_size, no_wrap=True, drop=1),
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
    Field(None, "Checkpoints (from → to)", _checkpoints),  # wraps between the two ids
    Field("from_checkpoint_id", "From checkpoint", lambda b: b.from_checkpoint_id, table=False),
    Field("to_checkpoint_id", "To checkpoint", lambda b: b.to_checkpoint_id, table=False),
    Field("creation_date", "Created", lambda b: b.creation_date, drop=2),
    Field("modification_date", "Modified", lambda b: b.modification_date, table=False),
    Field("description", "Description", lambda b: b.description, table=False),
    Field("vm_id", "VM ID", lambda b: b.vm_id, table=False),
    Field("host_id", "Host ID", lambda b: b.host_id, table=False),
    Field("snapshot_id", "Snapshot ID", lambda b: b.snapshot_id, table=False),
    Field("disks", "Disks", lambda b: b.disks, show=_disk_names, drop=1),
]

CHECKPOINT_FIELDS: list[Field[Checkpoint]] = [
    Field("id", "Checkpoint ID", lambda c: c.id, no_wrap=True),
    Field("parent_id", "Parent", lambda c: c.parent_id, no_wrap=True),
    Field("creation_date", "Created", lambda c: c.creation_date, drop=2),
    Field("state", "State", lambda c: c.state),
    Field("description", "Description", lambda c: c.description, drop=1),
    Field("vm_id", "VM ID", lambda c: c.vm_id, table=False),
    Field("disks", "Disks", lambda c: c.disks, table=False),
]

VM_FIELDS: list[Field[VmSummary]] = [
    Field("id", "VM ID", lambda v: v.vm.id, no_wrap=True),
    Field("name", "Name", lambda v: v.vm.name),
    Field("status", "Status", lambda v: v.vm.status),
    Field("disks", "Disks", lambda v: v.disks, drop=2),
    Field("incremental_disks", "Incremental disks", lambda v: v.incremental_disks, drop=1),
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
    """A table on stdout (``stderr``: on stderr, when stdout carries a JSON document).

    Piped, every row is one line, however long (ids stay whole for grep and awk). On a terminal the
    table fits its width without cutting an id (layout.py): cells wrap between words, low-value
    columns go, or each record becomes a block.
    """
    from rich import box
    from rich.table import Table

    console = _console(stderr)
    shown = [f for f in fields if f.table]
    rows = [[_cell(f, item) for f in shown] for item in items]
    if not console.is_terminal:
        table = Table(title=title, box=box.ASCII2)
        for f in shown:
            table.add_column(f.header, no_wrap=True)
        for row in rows:
            table.add_row(*(_escape(text) for text in row))
        console.print(table)
        return
    from ovbackup.cli.layout import Column, plan

    columns = [Column(f.header, [row[n] for row in rows], f.no_wrap, f.drop) for n, f in enumerate(shown)]
    fit = plan(columns, console.width)
    if fit.blocks:
        _print_blocks(console, shown, rows, title)
        return
    table = Table(
        title=_escape(title) if title else None, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    for n, width in zip(fit.shown, fit.widths, strict=True):
        table.add_column(shown[n].header, width=width, no_wrap=shown[n].no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*(_styled(shown[n], row[n]) for n in fit.shown))
    console.print(table)


def _styled(f: Field[Any], text: str) -> str:
    style = PHASE_STYLES.get(text) or f.style
    return f"[{style}]{_escape(text)}[/]" if style else _escape(text)


def _print_blocks(
    console: Any, shown: Sequence[Field[Any]], rows: list[list[str]], title: str | None
) -> None:
    """Each record as ``header  value`` lines, a blank line between records: for terminals too narrow
    for the columns that must stay. Values wrap between words; one that still does not fit beside the
    headers goes on a line of its own under its header."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    label = max(cell_len(f.header) for f in shown)
    longest = max((cell_len(w) for row in rows for text in row for w in text.split()), default=1)
    beside = console.width - label - 2 >= longest
    if title:
        console.print(Text(title, style="italic"))
    for row in rows:
        console.print()
        grid = Table.grid(padding=(0, 2) if beside else (0, 0))
        if beside:
            grid.add_column(no_wrap=True, width=label, style="bold")
            grid.add_column(overflow="fold")
            for f, text in zip(shown, row, strict=True):
                grid.add_row(_escape(f.header), _styled(f, text))
        else:
            grid.add_column(overflow="fold")
            for f, text in zip(shown, row, strict=True):
                grid.add_row(f"[bold]{_escape(f.header)}[/]")
                grid.add_row(_styled(f, text))
        console.print(grid)


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

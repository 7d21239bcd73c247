"""Fit a table to the terminal without ever cutting an id.

A copied id must always work, so a cell marked whole (ids, sizes) is never broken and no column is ever
narrower than its longest word (a header never splits as "Form/at"). When the columns do not fit at
those widths, the columns a resource declares droppable go, lowest ``drop`` first; when the rest still
does not fit, every record is shown as a block of ``header  value`` lines instead. Pure: render.py draws
what this decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

# Between two columns: rich's padding on each side and the box's (blank) column separator.
GAP = 3


@dataclass(frozen=True)
class Column:
    header: str
    cells: Sequence[str]
    whole: bool = False  # a cell is never broken (ids); otherwise it may wrap between words
    drop: int | None = None  # dropped, lowest first, when the table does not fit; None: never

    @property
    def narrowest(self) -> int:
        """The least width that breaks no word of the header and no cell marked whole."""
        words = [*self.header.split(), *(w for cell in self.cells for w in cell.split())]
        if self.whole:
            words.extend(self.cells)
        return max((cell_len(w) for w in words), default=1)

    @property
    def widest(self) -> int:
        return max((cell_len(text) for text in (self.header, *self.cells)), default=1)


@dataclass(frozen=True)
class Plan:
    """Which columns to show (their indexes) at which widths; ``blocks``: one record per block."""

    shown: tuple[int, ...]
    widths: tuple[int, ...]
    blocks: bool = False


def table_width(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(len(widths) - 1, 0)


def plan(columns: Sequence[Column], width: int) -> Plan:
    """The columns that fit in ``width`` at their narrowest, dropping the droppable ones in order;
    spare width goes to the columns that would wrap, a share each, until each shows whole."""
    shown = list(range(len(columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    while table_width([columns[i].narrowest for i in shown]) > width:
        if not droppable:
            return Plan(tuple(range(len(columns))), (), blocks=True)
        shown.remove(droppable.pop(0)[1])
    widths = {i: columns[i].narrowest for i in shown}
    spare = width - table_width(list(widths.values()))
    while spare > 0:
        needy = [i for i in shown if widths[i] < columns[i].widest]
        if not needy:
            break
        share = max(1, spare // len(needy))
        for i in needy:
            grow = min(share, columns[i].widest - widths[i], spare)
            widths[i] += grow
            spare -= grow
    return Plan(tuple(shown), tuple(widths[i] for i in shown))

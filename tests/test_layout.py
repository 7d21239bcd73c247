"""The table layout's promises for any columns and any width (the pty tests show it on a real terminal)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ovbackup.cli.layout import Column, plan, table_width

words = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=40)
cells = st.lists(words, min_size=1, max_size=3).map(" ".join)
columns = st.lists(
    st.builds(
        Column,
        header=st.lists(words, min_size=1, max_size=3).map(" ".join),
        cells=st.lists(cells, min_size=0, max_size=4),
        whole=st.booleans(),
        drop=st.one_of(st.none(), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=8,
)


@given(columns, st.integers(20, 250))
def test_a_table_fits_and_breaks_no_word(cols: list[Column], width: int) -> None:
    fit = plan(cols, width)
    if fit.blocks:  # the columns that must stay do not fit, even at their narrowest
        kept = [c for c in cols if c.drop is None]
        assert table_width([c.narrowest for c in kept]) > width
        return
    assert table_width(fit.widths) <= width
    for n, w in zip(fit.shown, fit.widths, strict=True):
        assert cols[n].narrowest <= w <= max(cols[n].widest, cols[n].narrowest)
    assert {n for n, c in enumerate(cols) if c.drop is None} <= set(fit.shown)  # only droppable ones go
    dropped = [cols[n].drop for n in range(len(cols)) if n not in fit.shown]
    kept = [cols[n].drop for n in fit.shown if cols[n].drop is not None]
    assert not dropped or not kept or max(d for d in dropped if d is not None) <= min(kept)  # lowest first


def test_the_widest_fit_shows_every_cell_on_one_line() -> None:
    cols = [
        Column("Backup ID", ["a" * 36], whole=True),
        Column("Checkpoints (from → to)", ["b" * 36 + " → " + "c" * 36]),
    ]
    fit = plan(cols, 200)
    assert fit.widths == (36, 75)
    fit = plan(cols, 80)
    assert fit.widths == (36, 41)  # the checkpoints wrap between their ids
    assert plan(cols, 60).blocks

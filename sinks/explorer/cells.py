"""How a public view's cells read on the page. The public views write NULL for a suppressed
cell and for a window not closed yet, and list each row's suppressed cells in their
``suppressed`` column (sinks/public.py): a listed NULL reads *suppressed*, any other NULL
*not yet observable*. Never 0. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sinks.explorer.labels import label
from sinks.explorer.measures import Measure
from sinks.explorer.query import Table, hidden
from sinks.public import SUPPRESSED_COLUMN

__all__ = [
    "NOT_OBSERVABLE",
    "SUPPRESSED",
    "Cell",
    "Headline",
    "cells",
    "headline",
    "shown_columns",
    "trend",
]

SUPPRESSED = "suppressed"
NOT_OBSERVABLE = "not yet observable"


@dataclass(frozen=True)
class Cell:
    """A value as shown: ``text``; ``state`` is "" for a number, else why there is none."""

    text: str
    state: str = ""
    value: float | int | None = None


def _fmt(column: str, value: Any) -> str:
    if isinstance(value, float):
        if column == "rate":
            return f"{value:.1%}"
        if column == "coverage":
            return f"{value:.0%}"
        return f"{value:,.0f}" if value >= 100 else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and column.endswith("year"):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def shown_columns(table: Table) -> list[str]:
    """The columns a page shows: all but the view's list of suppressed cells, which it
    reads instead."""
    return [c for c in table.columns if c != SUPPRESSED_COLUMN]


def cells(spec: Measure, table: Table) -> list[list[Cell]]:
    """Every shown cell of ``table`` (a query's answer over ``spec``'s view, with its
    ``suppressed`` column): *suppressed* where the view lists the cell as hidden by
    suppression, *not yet observable* for any other NULL."""
    cols = table.columns
    keys = set(spec.view.keys)
    shown: list[list[Cell]] = []
    for row in table.rows:
        listed = hidden(spec, table, row)
        out: list[Cell] = []
        for i, column in enumerate(cols):
            value = row[i]
            if column == SUPPRESSED_COLUMN:
                continue
            if value is not None and column in keys and isinstance(value, str):
                out.append(Cell(label(value)))
            elif value is not None:
                number = value if isinstance(value, (int, float)) else None
                out.append(Cell(_fmt(column, value), "", number))
            elif column in keys:
                out.append(Cell("(none)"))
            elif column in listed:
                out.append(Cell(SUPPRESSED, SUPPRESSED))
            else:
                out.append(Cell(NOT_OBSERVABLE, NOT_OBSERVABLE))
        shown.append(out)
    return shown


@dataclass(frozen=True)
class Headline:
    year: int
    rate: float
    count: int
    denominator: int
    partial: bool  # some rows of the year were suppressed: the rate is of published cells


def trend(spec: Measure, table: Table) -> list[Headline]:
    """The headline rate by year, over the rows of ``table`` (the headline query's answer:
    its count summed over published cells, over its denominator); years whose count is
    not observable in any row are left out."""
    cols = table.columns
    y, d, c = cols.index(spec.year), cols.index(spec.view.denominator), cols.index(spec.headline)
    sums: dict[int, list[int]] = {}
    partial: set[int] = set()
    for row in table.rows:
        year, den, count = row[y], row[d], row[c]
        if count is None or den is None:
            partial.add(year)
            continue
        total = sums.setdefault(year, [0, 0])
        total[0] += count
        total[1] += den
    return [
        Headline(year, n / den, n, den, year in partial)
        for year, (n, den) in sorted(sums.items())
        if den > 0
    ]


def headline(spec: Measure, table: Table) -> Headline | None:
    """The latest year's headline that is observable (None: no year is yet)."""
    years = trend(spec, table)
    return years[-1] if years else None

"""How a public view's cells read on the page. The public views write NULL for a suppressed
cell and for a window not closed yet; the explorer tells them apart as far as the public
data allows: a count that is NULL in every row of its year (and, where windows differ by
segment, its segment) while its denominator is published, and at least twice the smallest
cell (below that, a count or its complement is under it, so suppression hides it anyway),
is a window not yet observable; any other NULL is suppressed. Never 0. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sinks.explorer.measures import Measure
from sinks.explorer.query import Table

__all__ = [
    "NOT_OBSERVABLE",
    "SUPPRESSED",
    "Cell",
    "Headline",
    "cells",
    "headline",
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


def _base(spec: Measure, column: str, count: str) -> str:
    """The count a NULL in ``column`` follows (a rate its count, a quartile its people)."""
    if column == "rate":
        return count
    for value, behind in spec.view.statistics:
        if value == column:
            return behind
    return column


def _window(spec: Measure, cols: list[str], row: list[Any]) -> tuple[Any, ...]:
    return (row[cols.index(spec.year)], *(row[cols.index(c)] for c in spec.window_by))


def cells(
    spec: Measure,
    table: Table,
    count: str,
    context: Table | None = None,
    *,
    min_cell: int = 11,
) -> list[list[Cell]]:
    """Every cell of ``table`` (a query's answer over ``spec``'s view) as shown; whether a
    window is observable is judged over ``context`` (every row of the view, for ``count``;
    default ``table``), as a filtered table may hold only suppressed rows of a year.
    ``min_cell``: the views' smallest published cell (C2C_SUPPRESSION_MIN_CELL)."""
    cols = table.columns
    den = spec.view.denominator
    den_at = cols.index(den) if den in cols else None
    keys = set(spec.view.keys)
    observable: dict[tuple[tuple[Any, ...], str], bool] = defaultdict(bool)
    every = context if context is not None else table
    for row in every.rows:
        window = _window(spec, every.columns, row)
        for i, column in enumerate(every.columns):
            if row[i] is not None:
                observable[(window, column)] = True
    shown: list[list[Cell]] = []
    for row in table.rows:
        out: list[Cell] = []
        for i, column in enumerate(cols):
            value = row[i]
            if value is not None:
                number = value if isinstance(value, (int, float)) else None
                out.append(Cell(_fmt(column, value), "", number))
            elif column in keys:
                out.append(Cell("(none)"))
            elif (
                (den_at is not None and (row[den_at] is None or row[den_at] < 2 * min_cell))
                or column == "coverage"
                or observable[(_window(spec, cols, row), _base(spec, column, count))]
            ):
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

"""What each page shows, as plain data for the templates: the summary's headlines, a
measure's dashboard, a query's table and chart. Pure: rows in, page data out."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sinks.explorer.cells import Cell, Headline, cells, headline, shown_columns, trend
from sinks.explorer.charts import bar_chart, line_chart, sparkline
from sinks.explorer.labels import label
from sinks.explorer.measures import Measure
from sinks.explorer.query import Query, Table

__all__ = [
    "Dashboard",
    "Section",
    "Summary",
    "dashboard",
    "headline_query",
    "query_page",
    "summary",
]


@dataclass(frozen=True)
class Summary:
    measure: Measure
    headline: Headline | None
    trend: list[Headline]
    chart: str


def summary(spec: Measure, rows: Table) -> Summary:
    """One measure's card: ``rows`` answer its headline query (:func:`headline_query`)."""
    years = trend(spec, rows)
    label = f"{spec.title}: share by year"
    return Summary(
        spec, headline(spec, rows), years, sparkline([(h.year, h.rate) for h in years], label)
    )


def headline_query(spec: Measure) -> Query:
    return Query(spec.key, spec.headline, filters=spec.headline_filters)


def _filtered(table: Table, where: dict[str, Any]) -> Table:
    at = {c: table.columns.index(c) for c in where}
    return Table(
        table.columns, [r for r in table.rows if all(r[at[c]] == v for c, v in where.items())]
    )


@dataclass(frozen=True)
class Section:
    title: str
    chart: str
    columns: list[str]
    cells: list[list[Cell]]


@dataclass(frozen=True)
class Dashboard:
    measure: Measure
    headline: Headline | None
    sections: list[Section] = field(default_factory=list)


def _rate_at(table: Table) -> int:
    return table.columns.index("rate")


def _section(spec: Measure, title: str, table: Table, chart: str) -> Section:
    return Section(title, chart, shown_columns(table), cells(spec, table))


def dashboard(spec: Measure, rows: Table) -> Dashboard:
    """A measure's dashboard from every row of its view (the headline count's query)."""
    cols = rows.columns
    year_at = cols.index(spec.year)
    base = _filtered(rows, dict(spec.headline_filters))
    top = headline(spec, base)
    sections: list[Section] = []
    # over years: one line per value of the first dimension that is not a breakdown
    lines = [d for d in spec.dimensions if d not in ("breakdown", "group_value")]
    by = lines[0] if lines else None
    series: dict[str, dict[int, float | None]] = defaultdict(dict)
    for row in base.rows:
        name = "statewide" if by is None else label(row[cols.index(by)])
        series[name][row[year_at]] = row[_rate_at(base)]
    if by is None or len(series) > 1:
        totals = trend(spec, base)
        if by is not None:
            series = {"all (published cells)": {h.year: h.rate for h in totals}, **series}
    chart = line_chart(
        [(name, sorted(points.items())) for name, points in series.items()],
        f"{spec.title}: share by year" + (f" and {by}" if by else ""),
    )
    sections.append(_section(spec, "Over the years", base, chart))
    # breakdowns by student group, program, institution: the latest observable year
    if "breakdown" in spec.dimensions and top is not None:
        kinds = sorted({r[cols.index("breakdown")] for r in rows.rows} - {"all"})
        for kind in kinds:
            part = _filtered(rows, {"breakdown": kind, spec.year: top.year})
            group_at = cols.index("group_value")
            shown = cells(spec, part)
            bars = []
            for row, row_cells in zip(part.rows, shown, strict=True):
                name = (
                    label(row[group_at])
                    if by is None
                    else f"{label(row[cols.index(by)])} · {label(row[group_at])}"
                )
                rate_cell = row_cells[_rate_at(part)]
                bars.append((name, row[_rate_at(part)], rate_cell.state))
            chart = bar_chart(bars[:40], f"{spec.title} by {kind}, {top.year}")
            title = f"By {kind.replace('_', ' ')}, {top.year}"
            sections.append(Section(title, chart, shown_columns(part), shown))
    elif by is not None and top is not None:
        # no breakdown column: the latest year, every row
        part = _filtered(rows, {spec.year: top.year})
        shown = cells(spec, part)
        dims = list(spec.dimensions)
        rate_at = _rate_at(part)
        bars = [
            (" · ".join(label(r[cols.index(d)]) for d in dims), r[rate_at], c[rate_at].state)
            for r, c in zip(part.rows, shown, strict=True)
        ]
        named = ", ".join(d.replace("_", " ") for d in dims)
        chart = bar_chart(bars[:40], f"{spec.title} by {named}, {top.year}")
        sections.append(Section(f"By {named}, {top.year}", chart, shown_columns(part), shown))
    return Dashboard(spec, top, sections)


def query_page(query: Query, table: Table) -> tuple[list[list[Cell]], str]:
    """A query's cells and its chart (rate by year, one line per combination of the
    dimensions that the filters leave open)."""
    spec = query.spec
    cols = table.columns
    fixed = {name for name, _ in query.filters}
    open_dims = [d for d in spec.dimensions if d not in fixed]
    year_at, rate_at = cols.index(spec.year), cols.index("rate")
    series: dict[str, dict[int, float | None]] = defaultdict(dict)
    for row in table.rows:
        name = " · ".join(label(row[cols.index(d)]) for d in open_dims) or "rate"
        series[name][row[year_at]] = row[rate_at]
    chart = line_chart(
        [(name, sorted(points.items())) for name, points in series.items()],
        f"{spec.title}: {query.count} as a share of {spec.view.denominator}, by year",
    )
    return cells(spec, table), chart

"""The query builder's queries: what a reader may ask, checked against a whitelist of the
public views' columns, and rendered to parameterised SQL over one public view. The page
never sends SQL; it sends a measure, a count, years and filters, and gets back the SQL that
ran. Pure: :mod:`sinks.explorer.source` runs it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from c2c.errors import C2CError
from sinks.explorer.measures import Measure, measure
from sinks.public import SUPPRESSED_COLUMN

__all__ = [
    "Query",
    "QueryRefused",
    "Table",
    "check_text",
    "columns",
    "hidden",
    "inline_sql",
    "parse_query",
    "render_sql",
    "table_csv",
]

_PARAMS = frozenset({"measure", "count", "year_from", "year_to"})
_VALUE = re.compile(r"[A-Za-z0-9_:.\- ]{1,64}")
# What no request may name: the unsuppressed tables, and SQL's own punctuation and comments.
_UNSUPPRESSED = re.compile(r"(?<!public_)outcome_", re.IGNORECASE)
_SQL = re.compile(r"[;'\"`\\]|--|/\*")
_YEARS = (1990, 2100)


class QueryRefused(C2CError):
    """A request the explorer does not answer (an unknown column, an outcome_* table, SQL):
    the web page answers 400 with the message."""

    code = "explorer.refused"


@dataclass(frozen=True)
class Query:
    """Rows of one measure's public view: ``count`` over its denominator by year, within
    ``year_from``..``year_to``, where each of ``filters`` (dimension column -> value) holds."""

    measure: str
    count: str
    year_from: int | None = None
    year_to: int | None = None
    filters: tuple[tuple[str, str], ...] = ()

    @property
    def spec(self) -> Measure:
        return measure(self.measure)

    def params(self) -> dict[str, str]:
        """The query as URL parameters (:func:`parse_query` reads them back)."""
        out = {"measure": self.measure, "count": self.count}
        if self.year_from is not None:
            out["year_from"] = str(self.year_from)
        if self.year_to is not None:
            out["year_to"] = str(self.year_to)
        out.update(self.filters)
        return out


@dataclass(frozen=True)
class Table:
    """A query's answer: columns and rows as plain values (None: NULL)."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}


def _refuse(message: str) -> QueryRefused:
    return QueryRefused(message)


def check_text(name: str, value: str) -> None:
    """Refuses a request parameter (or path) that names an outcome_* table or carries SQL's
    quotes, semicolons or comments; no legitimate request does either."""
    for text in (name, value):
        if _UNSUPPRESSED.search(text):
            raise _refuse(
                f"{name}={value!r}: the explorer serves the public_* views only; the "
                "unsuppressed outcome_* tables are for authorized researchers"
            )
        if _SQL.search(text):
            raise _refuse(f"{name}={value!r}: quotes, semicolons and comments are not accepted")


def _year(name: str, value: str | None) -> int | None:
    if value in (None, ""):
        return None
    assert value is not None
    if not value.isdigit() or not _YEARS[0] <= int(value) <= _YEARS[1]:
        raise _refuse(f"{name}={value!r}: a year from {_YEARS[0]} to {_YEARS[1]}")
    return int(value)


def parse_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> Query:
    """A :class:`Query` from request parameters; QueryRefused names the first parameter
    that is not on the whitelist (measures, their counts and dimension columns)."""
    items = list(params.items() if isinstance(params, Mapping) else params)
    for name, value in items:
        check_text(name, value)
    given: dict[str, str] = {}
    for name, value in items:
        if name in given:
            raise _refuse(f"{name} is given twice; give each parameter once")
        given[name] = value
    key = given.get("measure", "")
    try:
        spec = measure(key)
    except KeyError as exc:
        raise _refuse(f"measure={key!r}: {exc.args[0]}") from exc
    count = given.get("count") or spec.headline
    if count not in spec.counts:
        raise _refuse(f"count={count!r}: {spec.table} has {', '.join(spec.counts)}")
    filters: list[tuple[str, str]] = []
    for name, value in given.items():
        if name in _PARAMS or value == "":
            continue
        if name not in spec.dimensions:
            allowed = ", ".join((*sorted(_PARAMS), *spec.dimensions))
            raise _refuse(f"{name}: not a parameter of {spec.table} (it takes {allowed})")
        if not _VALUE.fullmatch(value):
            raise _refuse(f"{name}={value!r}: letters, digits, spaces and _ : . - only")
        filters.append((name, value))
    year_from = _year("year_from", given.get("year_from"))
    year_to = _year("year_to", given.get("year_to"))
    if year_from is not None and year_to is not None and year_from > year_to:
        raise _refuse(f"year_from {year_from} is after year_to {year_to}")
    order = {d: i for i, d in enumerate(spec.dimensions)}
    filters.sort(key=lambda f: order[f[0]])
    return Query(spec.key, count, year_from, year_to, tuple(filters))


def columns(query: Query) -> list[str]:
    """The columns the query's SQL selects, in order; the last, ``suppressed``, is output
    only (the view's list of the row's suppressed cells): no parameter may name it."""
    spec = query.spec
    den = spec.view.denominator
    stats = list(spec.statistics) if query.count == spec.headline else []
    return [
        spec.year,
        *spec.dimensions,
        den,
        query.count,
        "rate",
        *stats,
        "coverage",
        SUPPRESSED_COLUMN,
    ]


def hidden(spec: Measure, table: Table, row: list[Any]) -> set[str]:
    """The columns of ``table`` (an answer over ``spec``'s view) that suppression hides in
    ``row``, as the view lists them; ``rate`` where its count or denominator is hidden. Any
    other NULL is a window not closed yet. Empty for a table without the list."""
    if SUPPRESSED_COLUMN not in table.columns:
        return set()
    listed = set(row[table.columns.index(SUPPRESSED_COLUMN)] or ())
    # the rate is of the one count a query selects, over the denominator
    behind = {spec.view.denominator, *(c for c in table.columns if c in spec.view.numerators)}
    if "rate" in table.columns and listed & behind:
        listed.add("rate")
    return listed & set(table.columns)


def render_sql(query: Query) -> tuple[str, dict[str, Any]]:
    """The query's SQL, over its public view only, and its parameters (ClickHouse's
    ``{name:Type}`` placeholders; every value is a parameter, every name is whitelisted)."""
    spec = query.spec
    den = spec.view.denominator
    selected = columns(query)
    exprs = [f"round({query.count} / {den}, 3) AS rate" if c == "rate" else c for c in selected]
    where: list[str] = []
    params: dict[str, Any] = {}
    if query.year_from is not None:
        where.append(f"{spec.year} >= {{year_from:UInt16}}")
        params["year_from"] = query.year_from
    if query.year_to is not None:
        where.append(f"{spec.year} <= {{year_to:UInt16}}")
        params["year_to"] = query.year_to
    for name, value in query.filters:
        where.append(f"toString({name}) = {{{name}:String}}")
        params[name] = value
    sql = f"SELECT {', '.join(exprs)}\nFROM {spec.table}"
    if where:
        sql += "\nWHERE " + "\n  AND ".join(where)
    sql += f"\nORDER BY {', '.join(spec.view.keys)}"
    return sql, params


def inline_sql(query: Query) -> str:
    """The SQL with its parameters written in, to copy into any ClickHouse client (the
    values passed the whitelist's pattern, so quoting them is enough)."""
    sql, params = render_sql(query)
    for name, value in params.items():
        placeholder = re.compile(r"\{" + re.escape(name) + r":\w+\}")
        literal = str(value) if isinstance(value, int) else "'" + str(value) + "'"
        sql = placeholder.sub(literal, sql)
    return sql


def table_csv(spec: Measure, table: Table) -> str:
    """The table as CSV: a header, then rows; a NULL cell is empty, never 0, and the
    ``suppressed`` column names the row's cells hidden by suppression (space-separated):
    an empty cell not named there is a window not yet observable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    at = table.columns.index(SUPPRESSED_COLUMN) if SUPPRESSED_COLUMN in table.columns else -1
    for row in table.rows:
        listed = hidden(spec, table, row)
        writer.writerow(
            [
                " ".join(c for c in table.columns if c in listed)
                if i == at
                else ("" if v is None else v)
                for i, v in enumerate(row)
            ]
        )
    return out.getvalue()

"""Reading the outcome tables: names, and rows as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sinks.public import PUBLIC_VIEWS

__all__ = ["OUTCOMES", "PUBLIC_OUTCOMES", "OutcomeTable", "read_outcome", "unsuppressed"]

OUTCOMES: tuple[str, ...] = tuple(
    name for view in PUBLIC_VIEWS for name in (view.outcome, view.name)
)
PUBLIC_OUTCOMES: tuple[str, ...] = tuple(view.name for view in PUBLIC_VIEWS)


def unsuppressed(name: str) -> bool:
    """Whether ``name`` is an unsuppressed outcome table: for an authenticated researcher or
    operator only (the public_* views are for anyone)."""
    return name in OUTCOMES and name not in PUBLIC_OUTCOMES


@dataclass(frozen=True)
class OutcomeTable:
    name: str
    columns: list[str]
    rows: list[list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": self.columns, "rows": self.rows}


def read_outcome(client: Any, name: str) -> OutcomeTable:
    """Every row of outcome table ``name``, ordered by its key columns. ValueError names the
    tables there are for an unknown name."""
    if name not in OUTCOMES:
        raise ValueError(f"no outcome table {name!r}; there are: {', '.join(OUTCOMES)}")
    keys = next(v.keys for v in PUBLIC_VIEWS if name in (v.outcome, v.name))
    result = client.query(f"SELECT * FROM {name} ORDER BY {', '.join(keys)}")
    rows = [[_plain(v) for v in row] for row in result.result_rows]
    return OutcomeTable(name, list(result.column_names), rows)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):  # a public view's ``suppressed``: column names
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (int, float, str)) else str(value)

"""Rows ClickHouse refuses for what they hold, found and set aside so the rest is written.

A refusal for the data (a value a column cannot hold: a date before 1970 in a Date, a number
past its type) repeats on every retry: retrying the batch would stall the sink for good. An
outage (ClickHouse unreachable, a timeout, a full disk) passes: retrying is right.
:func:`refused_for_data` tells them apart; :func:`bisect` inserts a table's rows in halves,
and halves of the refused halves, until each refused row stands alone, and returns those;
:func:`salvage` does so for every table of a batch and takes the refused rows out of it, for
the sink to dead-letter them and write the rest.

Rows of a part that was taken are written then; the batch is written again whole after the
salvage, and such copies collapse as any retried insert's do (ReplacingMergeTree, FINAL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from c2c.deadletter import dead_letter
from c2c.errors import C2CError
from c2c.kinds import LINKED_KINDS
from sinks.batch import Batch, add_row
from sinks.optouts import OPTOUT_PERSON_COLUMNS
from sinks.rows import PERSON_MAP_COLUMNS, PUBLISHED_AT, columns, event_id_text

__all__ = [
    "DATA_ERROR_CODES",
    "OUTAGE_ERROR_CODES",
    "RefusedRow",
    "bisect",
    "outage",
    "refused_for_data",
    "salvage",
    "summary",
]

R = TypeVar("R")

# ClickHouse error codes that name a value it cannot take: the same rows are refused again.
# (ErrorCodes.cpp: CANNOT_PARSE_*, CANNOT_CONVERT_TYPE, ARGUMENT_OUT_OF_BOUND, INCORRECT_DATA,
# TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE, FUNCTION_THROW_IF_VALUE_IS_
# NON_ZERO, DECIMAL_OVERFLOW, CANNOT_PARSE_DATE/DATETIME, TYPE_MISMATCH, ...)
DATA_ERROR_CODES = frozenset(
    {6, 25, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 153, 321, 395, 407, 441}
)
# ClickHouse error codes that pass: timeouts, network, memory, disk, too many parts, read-only
# replicas, Keeper.
OUTAGE_ERROR_CODES = frozenset({159, 164, 209, 210, 241, 242, 243, 252, 279, 999})
_CODE = re.compile(r"\bCode: (\d+)\b")
_UNAVAILABLE = re.compile(
    r"\bHTTP (?:status )?(?:code )?50[234]\b|\b50[234] (?:Bad Gateway|Service Unavailable|"
    r"Gateway Time-?out)|Connection refused|timed out|Name or service not known"
)


# ClickHouse ends a message with its error's name: "... In scope SELECT ... (UNKNOWN_TABLE)"
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")


def summary(exc: BaseException, limit: int = 300) -> str:
    """``exc`` in one line of at most ``limit`` characters, for status pages and dead
    letters: its type, and ClickHouse's code and error name first (``Code: 60
    (UNKNOWN_TABLE).``), which a long message (a query quoted in it) would otherwise push
    past the cut."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    code, names = _CODE.search(first), _NAME.findall(first)
    if code is not None and names and not first.startswith(f"Code: {code.group(1)} ("):
        first = (
            f"Code: {code.group(1)} ({names[-1]}). "
            + first.replace(code.group(0) + ".", "", 1).lstrip()
        )
    return f"{type(exc).__name__}: {first}"[:limit]


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says ClickHouse is not there for now: a connection
    refused or cut, a timeout, an HTTP 502/503/504, or a server error code that passes
    (:data:`OUTAGE_ERROR_CODES`). Worth waiting for, unlike a refusal or a mistake."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError | OSError):
            return True
        if isinstance(seen, DatabaseError):
            found = _CODE.search(str(seen))
            if found is not None and int(found.group(1)) in OUTAGE_ERROR_CODES:
                return True
        if _UNAVAILABLE.search(str(seen)):
            return True
        seen = seen.__cause__
    return False


def refused_for_data(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by an insert) refuses the rows themselves: clickhouse-connect
    could not write a value into its column's type, or the server named a data error.
    Anything else (connections, timeouts, disk, memory, unknown tables) is an outage."""
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    if isinstance(exc, DataError):
        return True
    if isinstance(exc, OperationalError) or not isinstance(exc, DatabaseError):
        return False
    found = _CODE.search(str(exc))
    return found is not None and int(found.group(1)) in DATA_ERROR_CODES


def bisect(
    rows: Sequence[R], insert: Callable[[Sequence[R]], object]
) -> list[tuple[R, BaseException]]:
    """Insert ``rows`` through ``insert``, halving every part refused for its data until the
    refused rows stand alone; those, with what refused each. Every other row is inserted
    once. An error that is not a refusal for the data (an outage) is raised at once."""
    refused: list[tuple[R, BaseException]] = []
    parts: list[Sequence[R]] = [rows] if rows else []
    while parts:
        part = parts.pop()
        try:
            insert(part)
        except Exception as exc:
            if not refused_for_data(exc):
                raise
            if len(part) == 1:
                refused.append((part[0], exc))
            else:
                half = len(part) // 2
                parts += [part[half:], part[:half]]  # the first half is tried first
    return refused


class RefusedRow(NamedTuple):
    """A row ClickHouse refused, the table it was for, and why."""

    table: str
    row: list[Any]
    error: BaseException

    def dead_letter(self) -> dict[str, Any]:
        """The dead letter of this row (stage "sink"): the row as JSON in place of the
        original message (its linked topic named, the event id in the message: the message
        itself stays on the topic), the person id as the key."""
        topic = _TOPIC_OF.get(self.table)
        what = f"event {event_id_text(self.row[0])}" if self.table in _TOPIC_OF else "row"
        error = C2CError(
            f"ClickHouse refused {what} for table {self.table}: "
            f"{summary(self.error)}; the rest of its batch was written",
            code="sink.row_refused",
        )
        person = self.row[3] if self.table in _TOPIC_OF else None
        return dead_letter(
            stage="sink",
            error=error,
            source_topic=topic,
            same_as=f"{self.table}/{event_id_text(self.row[0])}",
            key=str(person).encode() if person is not None else None,
            value=json.dumps([event_id_text(self.row[0]), *self.row[1:]], default=str).encode(),
        )


_TOPIC_OF = {kind.fact_table: kind.linked_topic for kind in LINKED_KINDS}


def salvage(
    insert: Callable[[str, Sequence[str], Sequence[Any]], object], batch: Batch
) -> list[RefusedRow]:
    """Find the rows of ``batch`` that ClickHouse refuses (``insert(table, columns, rows)``
    inserts one table's rows) and take them out of it: the fact tables', the person map's
    and the opted-out persons'. Each person's row in ``batch.persons`` is then its latest
    event among the rows kept. Raises what an outage raised."""
    published = batch.published
    tables = [(table, (*columns(table), PUBLISHED_AT), rows) for table, rows in batch.facts.items()]
    tables += [
        ("person_map", PERSON_MAP_COLUMNS, batch.merges),
        ("optout_person", OPTOUT_PERSON_COLUMNS, batch.optout_persons),
    ]
    refused: list[RefusedRow] = []
    for table, names, rows in tables:

        def insert_part(
            part: Sequence[list[Any]], table: str = table, names: Sequence[str] = names
        ) -> None:
            if names[-1] == PUBLISHED_AT:  # a fact row and when it was published
                part = [[*row, max(0, published.get(id(row), 0))] for row in part]
            insert(table, names, part)

        refused += [RefusedRow(table, row, exc) for row, exc in bisect(rows, insert_part)]
    if refused:
        out = {id(item.row) for item in refused}
        facts, batch.facts, batch.persons = batch.facts, {}, {}
        for table, rows in facts.items():
            batch.facts[table] = []
            for row in rows:
                if id(row) not in out:
                    add_row(batch, table, row)
        batch.merges[:] = [row for row in batch.merges if id(row) not in out]
        batch.optout_persons[:] = [row for row in batch.optout_persons if id(row) not in out]
    return refused

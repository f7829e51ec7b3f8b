"""From linked events and identity changes to ClickHouse rows. Pure code: no client.

Each linked topic has a fact table whose columns are the event's id, time, provider,
person id, de-identified attributes, then its facts' fields under their schema names.
:class:`PersonMap` keeps merges transitive: when B (which absorbed A) is absorbed by C,
both A and B are re-pointed to C, so one join finds any fact's current person.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

from c2c._avro_compiled import CompiledRowDecoder, compile_row_decoder
from c2c.kinds import LINKED_KINDS
from c2c.serde import AvroDecoder, AvroEncoder, SerdeError, frame

__all__ = [
    "AFTER_ID_AND_TIME",
    "ATTRIBUTE_COLUMNS",
    "CHANGE_PATHS",
    "DIM_PERSON_COLUMNS",
    "FACT_COLUMNS",
    "FACT_MEMO",
    "FACT_TABLES",
    "PERSON_MAP_COLUMNS",
    "PUBLISHED_AT",
    "ChangeReader",
    "PersonMap",
    "RowReader",
    "dim_person_of",
    "event_id_text",
    "fact_row",
    "framed_id_and_time",
    "leading_fields",
]


def event_id_text(value: Any) -> str:
    """A row's event id as ClickHouse's ``toString`` writes it (lower case): the row reader
    gives a UUID as its 128-bit integer (which ClickHouse's UUID column takes), ``fact_row``
    a UUID or its text."""
    if isinstance(value, int):
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return str(value).lower()


# linked topic -> fact table, for every linked kind (c2c.kinds)
FACT_TABLES: Mapping[str, str] = {kind.linked_topic: kind.fact_table for kind in LINKED_KINDS}

ATTRIBUTE_COLUMNS = (
    "event_id",
    "event_time",
    "provider",
    "person_id",
    "birth_year",
    "sex",
    "race_ethnicity",
    "county_fips",
    "foster_youth",
    "homeless",
    "socioeconomically_disadvantaged",
    "english_learner",
)
_DEMOGRAPHICS = ATTRIBUTE_COLUMNS[6:]

FACT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "fact_enrollment": (
        "institution_id",
        "district_id",
        "academic_year",
        "term",
        "term_start_date",
        "grade_level",
        "program_cip",
        "first_time",
    ),
    "fact_completion": ("award_level", "completion_date", "institution_id", "program_cip"),
    "fact_financial_aid": ("aid_program", "award_year", "amount", "institution_id"),
    "fact_wage": ("employer_id", "naics", "year", "quarter", "wages"),
    "fact_credential": ("credential_type", "issue_date", "recommending_institution_id"),
}

# The fact tables' column of when each row's linked message was published (its Kafka
# timestamp, which the resolver sets: epoch milliseconds here), after the rows' columns
# (:func:`columns`) and ingested_at (migration 0013). An opt-out's delete removes the rows
# published up to its decision (sinks/optouts.py); rows written before 0013 hold 1970.
PUBLISHED_AT = "published_at"

PERSON_MAP_COLUMNS = ("person_id", "survivor_id", "changed_at")
DIM_PERSON_COLUMNS = (
    "person_id",
    "birth_year",
    "sex",
    "race_ethnicity",
    "county_fips",
    "updated_at",
)


def columns(table: str) -> tuple[str, ...]:
    """Column names of a fact table, in row order."""
    return (*ATTRIBUTE_COLUMNS, *FACT_COLUMNS[table])


def fact_paths(table: str) -> tuple[str, ...]:
    """Where each of :func:`columns` comes from in the linked event (dotted field names)."""
    return (
        *ATTRIBUTE_COLUMNS[:4],
        "attributes.birth_year",
        "attributes.sex",
        *(f"attributes.demographics.{name}" for name in _DEMOGRAPHICS),
        *(f"facts.{name}" for name in FACT_COLUMNS[table]),
    )


# A linked event's attributes (birth year, sex, demographics) are the same bytes in every
# event of its person: its row decoder remembers them under the person id (about 40 events
# a person in bench.end_to_end), checking the bytes each time.
FACT_MEMO: Mapping[str, str] = {"attributes": "person_id"}

# An identity change as the sink reads it (CHANGE_PATHS order).
CHANGE_PATHS = ("change_type", "person_id", "previous_person_id", "changed_at")

# dim_person's row out of a fact row (either form): person, birth year, sex, race/ethnicity,
# county, and the event time as updated_at.
dim_person_of: Callable[[list[Any]], tuple[Any, ...]] = itemgetter(3, 4, 5, 6, 7, 1)


class RowReader:
    """Wire-format messages of one topic straight to flat rows (the fields at ``paths``,
    see :func:`c2c._avro_compiled.compile_row_decoder`), in the forms ClickHouse stores:
    times as epoch milliseconds, dates as epoch days, UUIDs as 128-bit integers
    (clickhouse-connect writes those as they are, with no conversion per value).

    A message written with the reader schema (the usual case) is read by a decoder compiled
    for those fields alone; one written with an older schema is decoded into the current
    schema by ``decoder`` (fastavro's resolution), encoded again, and read the same way, so
    every row has the same forms. :meth:`decode` raises c2c.serde.SerdeError naming what is
    wrong with bytes that do not decode (the full decoder's explanation). ``memo_by``: the
    records whose fields are remembered under a field read before them (see
    compile_row_decoder; FACT_MEMO for linked events); the rows are the same."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        schema_id: int,
        decoder: AvroDecoder,
        paths: tuple[str, ...],
        memo_by: Mapping[str, str] | None = None,
    ) -> None:
        self._decoder = decoder
        self._encoder = AvroEncoder(schema, schema_id)
        self._header = frame(schema_id, b"")
        self._name = str(schema.get("name", "record"))
        self._rows: CompiledRowDecoder = compile_row_decoder(
            schema, paths, plain=True, memo_by=memo_by
        )
        self.paths = paths
        # the row of one message (see the class docstring): read by the compiled decoder
        # when framed with the reader schema and whole, else by _resolved
        self.decode: Callable[[bytes], list[Any]] = self._rows.whole(self._header, self._resolved)

    def _resolved(self, data: bytes) -> list[Any]:
        """The row of a message the compiled decoder did not read: written with another
        schema (resolved by the full decoder), or bad (SerdeError, the full decoder's)."""
        event = self._decoder.decode(data)  # SerdeError if the bytes are not a value
        try:
            row, _end = self._rows.decode(self._encoder.encode(event), 5)
        except Exception as exc:  # the full decoder read what the row decoder could not
            raise SerdeError(
                f"the row decoder of {self._name} failed where the full decoder did not "
                f"(a compiler bug): {exc!r}",
                code="serde.decode",
            ) from exc
        return row  # type: ignore[no-any-return]


# Linked events and identity changes begin alike: after the 5-byte frame, an id (a length
# byte and 36 characters) and a time, a varint of 6 bytes for every time from mid-1970 to
# 2039 (milliseconds, zigzag): the next field begins at AFTER_ID_AND_TIME. One regular
# expression checks it all (a third of the time of the same checks in Python, per message).
AFTER_ID_AND_TIME = 5 + 1 + 36 + 6


def framed_id_and_time(header: bytes, then: bytes) -> re.Pattern[bytes]:
    """A pattern that matches a message framed with ``header`` and laid out as above, whose
    next bytes match ``then``."""
    return re.compile(
        re.escape(header)
        + rb"\x48.{36}"  # 36 characters (zigzag 72)
        + rb"[\x80-\xff]{5}[\x00-\x7f]"  # a time of six bytes: five that go on, the last
        + then,
        re.DOTALL,
    )


# Where a change shows its type: the type's index (zigzag: twice the index), after its id
# and changed_at.
_TYPE_AT = AFTER_ID_AND_TIME
# the changes the sink applies (decoded in full); it only counts the others
_APPLIED_TYPES = frozenset({"PERSONS_MERGED", "PERSON_SPLIT"})


class ChangeReader:
    """Identity changes as the sink reads them. The sink applies merges and only counts
    the other changes (a RECORD_LINKED one for each linked event, a PERSON_CREATED one for
    each new person), so :meth:`counted` tells their type from their leading bytes without
    decoding them: the frame of the reader schema, a change id of 36 characters, a time in
    6 bytes and the type's index, each checked. A merge, and any message laid out
    otherwise, is :meth:`decode`d in full (:class:`RowReader`, CHANGE_PATHS order), which
    raises c2c.serde.SerdeError naming what is wrong. The bytes after a counted change's
    type are not read: the sink would not use them (a change damaged there is counted,
    not a dead letter)."""

    def __init__(self, schema: Mapping[str, Any], schema_id: int, decoder: AvroDecoder) -> None:
        self._rows = RowReader(schema, schema_id, decoder, CHANGE_PATHS)
        # a counted change's frame and layout, its type and at least a byte after it
        self._layout = framed_id_and_time(frame(schema_id, b""), b"..")
        layout, symbols = leading_fields(schema, 3)
        expected = [
            ("change_id", "string/uuid"),
            ("changed_at", "long/timestamp-millis"),
            ("change_type", "enum"),
        ]
        # the type of a counted change by the byte at _TYPE_AT (indexes below 64 are one
        # byte); all None when this schema's changes are laid out otherwise
        self._types: list[str | None] = [None] * 256
        if layout == expected:
            for index, symbol in enumerate(symbols[2][:64]):
                if symbol not in _APPLIED_TYPES:
                    self._types[2 * index] = symbol
        self.types = sorted({t for t in self._types if t is not None})  # what it may count

    @property
    def peeks(self) -> bool:
        """Whether :meth:`counted` can tell any change's type (the layout allows it)."""
        return bool(self.types)

    def counted(self, data: bytes) -> str | None:
        """The type of ``data`` if it is a change the sink only counts, in the reader
        schema's layout (see the class docstring); None: decode it."""
        if self._layout.match(data) is not None:
            return self._types[data[_TYPE_AT]]
        return None

    def decode(self, data: bytes) -> list[Any]:
        """The change's row, CHANGE_PATHS order (:meth:`RowReader.decode`)."""
        return self._rows.decode(data)


def leading_fields(
    schema: Mapping[str, Any], count: int
) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The first ``count`` fields of the record ``schema``, for layouts read from leading
    bytes (ChangeReader, sinks.wire.person_found): (name, "type/logicalType") of each, and
    each one's enum symbols (none if it is not an enum)."""
    fields = list(schema.get("fields", []))[:count]
    kinds = [_field_kind(field) for field in fields]
    names = [str(field.get("name")) for field in fields]
    return list(zip(names, (kind for kind, _s in kinds), strict=True)), [s for _k, s in kinds]


def _field_kind(field: Mapping[str, Any]) -> tuple[str, list[str]]:
    """("type/logicalType", enum symbols) of a record field."""
    kind = field.get("type")
    if isinstance(kind, Mapping):
        if kind.get("type") == "enum":
            return "enum", [str(s) for s in kind.get("symbols", [])]
        return f"{kind.get('type')}/{kind.get('logicalType')}", []
    return str(kind), []


_EMPTY: Mapping[str, Any] = {}


def _row_builder(table: str) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function from a linked event to ``table``'s row, generated from the column lists
    (one expression per column: about four times faster than looping over the names,
    which counts at tens of thousands of events a second)."""
    values = [
        'event["event_id"]',
        'event["event_time"]',
        'event["provider"]',
        'event["person_id"]',
        'attributes.get("birth_year")',
        'attributes.get("sex")',
        *(f"demographics.get({name!r})" for name in _DEMOGRAPHICS),
        *(f"facts.get({name!r})" for name in FACT_COLUMNS[table]),
    ]
    source = "\n".join(
        [
            "def build(event):",
            '    attributes = event.get("attributes") or _EMPTY',
            '    demographics = attributes.get("demographics") or _EMPTY',
            '    facts = event["facts"]',
            f"    return [{', '.join(values)}]",
        ]
    )
    namespace: dict[str, Any] = {"_EMPTY": _EMPTY}
    exec(compile(source, f"<row builder {table}>", "exec"), namespace)
    build: Callable[[Mapping[str, Any]], list[Any]] = namespace["build"]
    return build


_BUILDERS: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], list[Any]]]] = {
    topic: (table, _row_builder(table)) for topic, table in FACT_TABLES.items()
}


def fact_row(topic: str, event: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """(table, row) for one linked event, values in :func:`columns` order. KeyError names
    a topic with no fact table, or a required field (id, time, provider, person, facts)
    the event lacks; an optional attribute or fact that is missing is None."""
    table, build = _BUILDERS[topic]
    return table, build(event)


class PersonMap:
    """Absorbed person id -> surviving id, kept transitive."""

    def __init__(self, known: Iterable[tuple[str, str]] = ()) -> None:
        self._survivor: dict[str, str] = {}
        self._absorbed: dict[str, set[str]] = {}
        for person_id, survivor in known:
            if person_id != survivor:  # a split person counts under itself again
                self._set(person_id, survivor)

    def _set(self, person_id: str, survivor: str) -> None:
        previous = self._survivor.get(person_id)
        if previous is not None:
            self._absorbed[previous].discard(person_id)
        self._survivor[person_id] = survivor
        self._absorbed.setdefault(survivor, set()).add(person_id)

    def current(self, person_id: str) -> str:
        return self._survivor.get(person_id, person_id)

    def merge(self, absorbed: str, survivor: str, at: datetime) -> list[list[Any]]:
        """Record that ``absorbed`` merged into ``survivor``; the person_map rows to write
        (the absorbed id and every id it had absorbed, now pointing at the final survivor)."""
        final = self.current(survivor)
        if final == absorbed or self.current(absorbed) == final:
            return []
        moved = [absorbed, *sorted(self._absorbed.get(absorbed, set()))]
        for person_id in moved:
            self._set(person_id, final)
        self._absorbed.pop(absorbed, None)
        return [[person_id, final, at] for person_id in moved]

    def split(self, person_id: str, at: datetime) -> list[list[Any]]:
        """Record that ``person_id`` was split out of the person it had been merged into
        (an operator's `c2c review separate`); the person_map row to write: it counts
        under itself again (the row replaces its merge row, being later). Ids it had
        absorbed before stay with the survivor, as the identity worker keeps them."""
        previous = self._survivor.pop(person_id, None)
        if previous is None:
            return []
        self._absorbed.get(previous, set()).discard(person_id)
        return [[person_id, person_id, at]]

    def __len__(self) -> int:
        return len(self._survivor)

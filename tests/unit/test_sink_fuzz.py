"""Property-based tests of the sink's pure core: whatever bytes arrive on the topics it
reads, :meth:`sinks.batch.BatchBuilder.take` never raises and accounts for every message
(added, a Kafka error handed back, or a dead letter), and neither do ``decide_paths`` nor
``unwire`` (the wire path's fallback); and rows holding values a ClickHouse column cannot
hold are exactly the rows :func:`sinks.refusal.salvage` takes out, against an insert that
refuses as clickhouse-connect does.

Messages are built as the worker publishes them (the sink's own decoders, over the local
schema library: tests/unit/test_sink_batch.py's stand-ins), then mutated: bytes flipped,
cut short, extended, framed with another schema's id or none. A few dozen examples a test
by default; set C2C_FUZZ_EXAMPLES for more (`C2C_FUZZ_EXAMPLES=2000 pytest
tests/unit/test_sink_fuzz.py`). A failing example that finds a bug becomes an @example or a
plain test here.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.exceptions import DataError
from hypothesis import example, given
from hypothesis import strategies as st

from c2c.examples import example_linked
from c2c.schemas import SchemaLibrary
from c2c.serde import SerdeError, frame
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, get_topic
from sinks.batch import Batch
from sinks.ddl import fact_columns
from sinks.optouts import OPTOUT_PERSON_COLUMNS
from sinks.refusal import salvage
from sinks.rows import FACT_TABLES, PERSON_MAP_COLUMNS, PUBLISHED_AT, columns
from sinks.wire import varint
from tests.fuzzing import FUZZ, mutated
from tests.unit.test_sink_batch import REGISTRY, _builder, _Message

AT = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
AT_MS = int(AT.timestamp() * 1000)
LINKED = tuple(FACT_TABLES)
TOPICS = (*LINKED, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC)
PERSONS = ("P1", "P2", "P3", "c2c-000000000007", "")  # few, so that decisions meet rows
SCHEMA_IDS = tuple(REGISTRY.schema_id(get_topic(topic)) for topic in TOPICS)


def _encode(topic: str, record: dict[str, Any]) -> bytes:
    return REGISTRY.encoder(get_topic(topic)).encode(record)


# -- messages as the worker publishes them ----------------------------------------------

_times = st.one_of(
    st.integers(-10_000, 10_000).map(lambda m: AT + datetime.timedelta(minutes=m)),
    st.sampled_from(
        [
            datetime.datetime(1, 1, 1, tzinfo=datetime.UTC),
            datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
            datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
            datetime.datetime(2039, 12, 31, tzinfo=datetime.UTC),  # past the 6-byte varints
            datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
        ]
    ),
)


@st.composite
def _linked(draw: st.DrawFn) -> _Message:
    topic = draw(st.sampled_from(LINKED))
    event = example_linked(topic.removeprefix("c2c.linked."), draw(st.integers(0, 500)))
    event["event_id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    event["person_id"] = draw(st.one_of(st.sampled_from(PERSONS), st.text(max_size=80)))
    event["event_time"] = draw(_times)
    attributes = event["attributes"] = {**event["attributes"]}
    for name in ("birth_year", "sex", "demographics"):
        if draw(st.booleans()):
            attributes[name] = None
    return _Message(topic, _encode(topic, event), timestamp_ms=draw(_published))


_published = st.one_of(st.just(AT_MS), st.integers(-1, 2 * AT_MS))


@st.composite
def _change(draw: st.DrawFn) -> _Message:
    change = {
        "change_id": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "changed_at": draw(_times),
        "change_type": draw(
            st.sampled_from(["PERSON_CREATED", "RECORD_LINKED", "PERSONS_MERGED", "UNKNOWN"])
        ),
        "person_id": draw(st.sampled_from(PERSONS)),
        "previous_person_id": draw(st.one_of(st.none(), st.sampled_from(PERSONS))),
        "provider": "edd",
        "source_event_id": uuid.uuid4(),
        "rule": draw(st.one_of(st.none(), st.sampled_from(["SSN", "NEW"]))),
        "match_weight": draw(st.one_of(st.none(), st.floats(allow_nan=True))),
    }
    return _Message(CHANGES_TOPIC, _encode(CHANGES_TOPIC, change))


@st.composite
def _decision(draw: st.DrawFn) -> _Message:
    persons = draw(st.lists(st.sampled_from(PERSONS), max_size=4))
    opted_out = draw(st.booleans())
    decision = {
        "decision_id": str(uuid.uuid4()),
        "decided_at": draw(_times),
        "requested_at": draw(_times),
        "request_id": draw(st.text(max_size=10)),
        "cause": draw(st.sampled_from(["REQUESTED", "REVOKED", "MERGED", "UNKNOWN"])),
        "requested_by": "OPERATOR",
        "person_id": persons[0] if persons else "",
        "person_ids": persons,
        "opted_out": opted_out,
    }
    return _Message(
        OPTOUT_DECISIONS_TOPIC,
        _encode(OPTOUT_DECISIONS_TOPIC, decision),
        timestamp_ms=draw(_published),
    )


@st.composite
def _message(draw: st.DrawFn) -> _Message:
    kind = draw(st.integers(0, 9))
    if kind == 0:  # anything on any topic the sink reads
        return _Message(draw(st.sampled_from(TOPICS)), draw(st.binary(max_size=120)))
    if kind == 1:  # a tombstone
        return _Message(draw(st.sampled_from(TOPICS)), None)
    if kind == 2:  # a Kafka error (partition EOF, a broker error...)
        return _Message(draw(st.sampled_from(TOPICS)), None, error=object())
    made = draw(st.sampled_from([_linked, _linked, _linked, _change, _decision]))()
    message: _Message = draw(made)
    value = draw(mutated(message.value() or b"", SCHEMA_IDS))
    return _Message(
        message.topic(),
        value,
        timestamp_ms=message.timestamp()[1],
        headers=[("traceparent", b"00-ab-cd-01")] if draw(st.booleans()) else None,
    )


def _linked_taken(taken_per_topic: dict[str, int]) -> int:
    return sum(n for topic, n in taken_per_topic.items() if topic in FACT_TABLES)


@FUZZ
@given(
    st.lists(_message(), max_size=30),
    st.integers(0, 30),
    st.booleans(),
    st.booleans(),
    st.sampled_from([2, 8, 20_000]),
)
def test_every_message_is_added_an_error_or_a_dead_letter(
    messages: list[_Message], cut: int, wire: bool, tracing: bool, batch_rows: int
) -> None:
    builder = _builder(wire=wire, tracing=tracing, batch_rows=batch_rows)
    batch = Batch()
    per_topic: dict[str, int] = {}
    added = 0
    for fetch in (messages[:cut], messages[cut:]):  # two fetches into one batch
        taken = builder.take(batch, fetch)
        assert taken.added + len(taken.errors) + len(taken.dead_letters) == len(fetch)
        assert taken.errors == [m for m in fetch if m.error() is not None]
        assert all(isinstance(d.error, SerdeError) for d in taken.dead_letters)
        assert all(d.error.code.startswith("serde") for d in taken.dead_letters)
        assert len(taken.traced) + sum(taken.untraced.values()) == taken.added
        assert not tracing or all(m.headers() for m in taken.traced)
        for message in taken.traced:
            per_topic[str(message.topic())] = per_topic.get(str(message.topic()), 0) + 1
        for topic, n in taken.untraced.items():
            per_topic[topic] = per_topic.get(topic, 0) + n
        added += taken.added
    assert batch.messages == builder.counts["decoded"] == added
    # every linked message taken is a row, a wire message, or left out (opted out)
    not_written = builder.counts["optout.not_written"]
    linked = _linked_taken(per_topic)
    assert batch.facts_count + not_written == linked
    dead = builder.decide_paths(batch)
    assert all(isinstance(d.error, SerdeError) for d in dead)
    assert batch.facts_count + not_written + len(dead) == linked
    assert batch.messages == builder.counts["decoded"] == added - len(dead)
    more = builder.unwire(batch)  # the fallback after a refused container
    dead += more
    assert all(isinstance(d.error, SerdeError) for d in more)
    assert (batch.wire, batch.wire_persons) == ({}, set())
    assert batch.facts_count + not_written + len(dead) == linked
    assert batch.messages == added - len(dead)
    # each person's row is one of the batch's rows, and their latest
    rows = [row for table_rows in batch.facts.values() for row in table_rows]
    assert {id(row) for row in batch.persons.values()} <= {id(row) for row in rows}
    for row in rows:
        assert batch.persons[row[3]][1] >= row[1]


def test_a_message_of_a_topic_framed_with_each_other_topics_schema_is_a_dead_letter() -> None:
    builder = _builder(wire=True, tracing=False, batch_rows=2)
    messages = []
    for topic in TOPICS:
        for schema_id in SCHEMA_IDS:
            body = _encode(topic, _sample(topic))[5:]
            for other in TOPICS:
                messages.append(_Message(other, frame(schema_id, body)))
    batch = Batch()
    taken = builder.take(batch, messages)
    assert taken.added + len(taken.dead_letters) == len(messages)
    dead = builder.unwire(batch)
    assert batch.messages == taken.added - len(dead)


def _sample(topic: str) -> dict[str, Any]:
    if topic in FACT_TABLES:
        event = example_linked(topic.removeprefix("c2c.linked."), 3)
        event["person_id"] = "P1"
        return event
    if topic == CHANGES_TOPIC:
        return {
            "change_id": uuid.uuid4(),
            "changed_at": AT,
            "change_type": "PERSONS_MERGED",
            "person_id": "P1",
            "previous_person_id": "P2",
            "provider": "edd",
            "source_event_id": uuid.uuid4(),
            "rule": "SSN",
            "match_weight": None,
        }
    return {
        "decision_id": str(uuid.uuid4()),
        "decided_at": AT,
        "requested_at": AT,
        "request_id": "R1",
        "cause": "REQUESTED",
        "requested_by": "OPERATOR",
        "person_id": "P1",
        "person_ids": ["P1"],
        "opted_out": True,
    }


# -- rows ClickHouse refuses --------------------------------------------------------------

_LIBRARY = SchemaLibrary()
# fact table -> column -> its ClickHouse type (sinks.ddl, as the migrations created them)
FACT_TYPES: dict[str, dict[str, str]] = {
    table: {
        **{
            column.name: column.fact
            for column in fact_columns(_LIBRARY.resolve(get_topic(topic).schema))
        },
        PUBLISHED_AT: "DateTime64(3, 'UTC')",  # when its message was published
    }
    for topic, table in FACT_TABLES.items()
}
_OTHER_TYPES = {
    "person_map": dict(
        zip(PERSON_MAP_COLUMNS, ("String", "String", "DateTime64(3, 'UTC')"), strict=True)
    ),
    "optout_person": dict(
        zip(OPTOUT_PERSON_COLUMNS, ("String", "DateTime64(3, 'UTC')"), strict=True)
    ),
}
_INTEGERS = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
# ClickHouse's Date: days since 1970-01-01 in a UInt16 (to 2149-06-06)
_DATE_DAYS = (0, 2**16 - 1)


def _base(kind: str) -> str:
    for wrapper in ("LowCardinality(", "Nullable("):
        if kind.startswith(wrapper):
            kind = _base(kind[len(wrapper) : -1])
    return kind


def _fits(kind: str, value: Any) -> bool:
    """Whether clickhouse-connect writes ``value`` (in the row's form) into a column of
    ``kind``: integers and dates packed into fixed widths, decimals scaled into Int64 or
    Int128; a value past its width is refused (DataError, as its struct packing fails)."""
    if value is None:
        return kind.startswith(("Nullable(", "LowCardinality(Nullable("))
    base = _base(kind)
    if base in _INTEGERS:
        low, high = _INTEGERS[base]
        return isinstance(value, int) and low <= value <= high
    if base == "Date":
        if isinstance(value, datetime.date):
            value = (value - datetime.date(1970, 1, 1)).days
        return _DATE_DAYS[0] <= value <= _DATE_DAYS[1]
    if base.startswith("Decimal("):
        precision, scale = (int(n) for n in base[8:-1].split(","))
        bits = 64 if precision <= 18 else 128
        unscaled = int(Decimal(value).scaleb(scale))
        return -(2 ** (bits - 1)) <= unscaled < 2 ** (bits - 1)
    if base.startswith("DateTime64"):
        if isinstance(value, datetime.datetime):
            return True
        return _INTEGERS["Int64"][0] <= value <= _INTEGERS["Int64"][1]
    return True


def _refusing_insert(
    written: list[tuple[str, list[Any]]],
) -> Callable[[str, Sequence[str], Sequence[list[Any]]], None]:
    """An insert that refuses any part holding a value its column cannot hold, as
    clickhouse-connect does (DataError before anything is sent), and records what it wrote."""

    def insert(table: str, names: Sequence[str], rows: Sequence[list[Any]]) -> None:
        types = FACT_TYPES.get(table) or _OTHER_TYPES[table]
        for row in rows:
            for name, value in zip(names, row, strict=True):
                if not _fits(types[name], value):
                    raise DataError(
                        f"Unable to create Python array for source column `{name}`. This is "
                        "usually caused by trying to insert None values into a ClickHouse "
                        "column that is not Nullable"
                    )
        written.extend((table, row) for row in rows)

    return insert


# Values at and past each range, as the linked event holds them.
_DATES = [
    datetime.date(1, 1, 1),
    datetime.date(1969, 12, 31),
    datetime.date(1970, 1, 1),
    datetime.date(2149, 6, 6),
    datetime.date(2149, 6, 7),
    datetime.date(9999, 12, 31),
]
_EDGES = {
    "UInt8": [-(2**31), -1, 0, 255, 256, 2**31 - 1],
    "UInt16": [-(2**31), -1, 0, 65_535, 65_536, 2**31 - 1],
    "UInt32": [-(2**31), -1, 0, 2**31 - 1],
    "Int32": [-(2**31), 0, 2**31 - 1],
}
# (amounts of at most 14 digits, the schemas' precision: the sink's decoder rounds to it)
_AMOUNTS = [
    Decimal("0.00"),
    Decimal("-0.01"),
    Decimal("999999999999.99"),
    Decimal("9E+16"),  # 9e18 cents: an Int64 holds it
    Decimal("1E+17"),  # 1e19 cents: it does not
    Decimal("-1E+30"),
]


def _in_range(table: str, name: str, value: Any) -> bool:
    """Whether the event's ``value`` of column ``name`` fits its ClickHouse type, judged
    from the event's own value (a date by its calendar range, a number by its type's)."""
    base = _base(FACT_TYPES[table][name])
    if value is None:
        return FACT_TYPES[table][name].startswith(("Nullable(", "LowCardinality(Nullable("))
    if base == "Date":
        return datetime.date(1970, 1, 1) <= value <= datetime.date(2149, 6, 6)
    if base in _INTEGERS:
        low, high = _INTEGERS[base]
        return low <= value <= high
    if base.startswith("Decimal("):
        return abs(value) * 100 < 2**63
    return True


@st.composite
def _extreme_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], bool]:
    """A linked event with some of its dates, integers and amounts at or past their
    column's range; and whether every value fits."""
    topic = draw(st.sampled_from(LINKED))
    table = FACT_TABLES[topic]
    event = example_linked(topic.removeprefix("c2c.linked."), draw(st.integers(0, 100)))
    event["event_id"] = str(uuid.uuid4())
    event["person_id"] = draw(st.sampled_from(PERSONS[:3]))
    event["event_time"] = AT + datetime.timedelta(minutes=draw(st.integers(0, 100)))
    event["attributes"] = {**event["attributes"]}
    event["facts"] = facts = {**event["facts"]}
    fits = True
    if draw(st.booleans()):
        year = draw(st.sampled_from(_EDGES["UInt16"]))
        event["attributes"]["birth_year"] = year
        fits &= _in_range(table, "birth_year", year)
    for name in sorted(facts):
        if not draw(st.booleans()):
            continue
        base = _base(FACT_TYPES[table][name])
        if base == "Date":
            facts[name] = draw(st.sampled_from(_DATES))
        elif base in _EDGES:
            facts[name] = draw(st.sampled_from(_EDGES[base]))
        elif base.startswith("Decimal("):
            facts[name] = draw(st.sampled_from(_AMOUNTS))
        else:
            continue
        fits &= _in_range(table, name, facts[name])
    return topic, event, fits


@FUZZ
@given(st.lists(_extreme_event(), min_size=1, max_size=25), st.booleans())
def test_salvage_refuses_exactly_the_rows_out_of_their_columns_range(
    events: list[tuple[str, dict[str, Any], bool]], wire: bool
) -> None:
    messages = [_Message(topic, _encode(topic, event)) for topic, event, _fits in events]
    builder = _builder(wire=wire, tracing=False, batch_rows=2)
    batch = Batch()
    taken = builder.take(batch, messages)
    assert taken.added == len(messages)
    assert builder.unwire(batch) == []  # every one of them decodes
    written: list[tuple[str, list[Any]]] = []
    refused = salvage(_refusing_insert(written), batch)
    bad = sorted(str(event["event_id"]) for _t, event, fits in events if not fits)
    assert sorted(str(uuid.UUID(int=item.row[0])) for item in refused) == bad
    assert all(item.dead_letter()["error_code"] == "sink.row_refused" for item in refused)
    # what is left is written whole, and each person's row is their latest kept
    kept = [row for rows in batch.facts.values() for row in rows]
    assert len(kept) == len(events) - len(bad)
    again: list[tuple[str, list[Any]]] = []
    assert salvage(_refusing_insert(again), batch) == []
    for row in kept:
        assert batch.persons[row[3]][1] >= row[1]
        assert batch.persons[row[3]] in kept


def _with_days(message: bytes, days: int, new_days: int) -> bytes:
    """``message`` with the date field holding epoch day ``days`` set to ``new_days``
    (dates past year 9999, which no Python date can hold, but an Avro int can)."""

    old = varint(days)
    assert message.count(old) == 1
    return message.replace(old, varint(new_days))


@example(2**31 - 1)
@example(-(2**31))
@example(65_535)
@FUZZ
@given(st.integers(-(2**31), 2**31 - 1))
def test_a_date_past_any_calendar_is_refused_alone(new_days: int) -> None:
    topic = "c2c.linked.completion"
    event = example_linked("completion", 1)
    event["facts"]["completion_date"] = datetime.date(2011, 7, 13)
    days = (datetime.date(2011, 7, 13) - datetime.date(1970, 1, 1)).days
    good = _Message(topic, _encode(topic, example_linked("completion", 2)))
    odd = _Message(topic, _with_days(_encode(topic, event), days, new_days))
    builder = _builder(wire=False, tracing=False, batch_rows=20_000)
    batch = Batch()
    assert builder.take(batch, [good, odd]).added == 2  # the sink reads epoch days as they are
    written: list[tuple[str, list[Any]]] = []
    refused = salvage(_refusing_insert(written), batch)
    assert len(refused) == (0 if 0 <= new_days <= 65_535 else 1)
    assert len(written) == 2 - len(refused)


def test_the_column_types_cover_every_fact_column() -> None:
    for table, types in FACT_TYPES.items():
        assert tuple(types) == (*columns(table), PUBLISHED_AT)  # as the sink inserts them


def test_a_tracing_sink_reads_trace_headers_that_are_not_utf8() -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from c2c.consuming import Decoded
    from c2c.telemetry import Telemetry
    from sinks.observer import SinkObserver

    provider, meters = TracerProvider(), NoOpMeterProvider()
    telemetry = Telemetry(provider.get_tracer("t"), meters.get_meter("t"), provider, meters)
    observer = SinkObserver(telemetry, group="g", counts=[], lag=dict, newest_row_time=lambda: None)
    # what the builder hands back for tracing: a linked message with headers
    [traced] = (
        _builder(wire=False, tracing=True, batch_rows=8)
        .take(
            Batch(),
            [
                _Message(
                    LINKED[0],
                    _encode(LINKED[0], _sample(LINKED[0])),
                    headers=[("traceparent", b"\xff")],
                )
            ],
        )
        .traced
    )
    observer.received(Decoded(str(traced.topic()), 0, 0, None, None, tuple(traced.headers() or ())))

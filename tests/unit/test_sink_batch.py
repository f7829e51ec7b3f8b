"""The sink's batch builder (sinks/batch.py) without Kafka or ClickHouse: messages built as
the worker publishes them, read by the sink's own decoders (sinks.sink.readers, over the
local schema library), in stand-ins for confluent-kafka's messages."""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid
from typing import Any

import pytest

from c2c.examples import example_linked
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroDecoder, AvroEncoder, SerdeError, frame
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, Topic, get_topic
from sinks.batch import Batch, BatchBuilder, add_row
from sinks.optouts import OptOutFilter
from sinks.rows import FACT_TABLES, PersonMap
from sinks.sink import readers
from sinks.wire import person_finder

WAGES = "c2c.linked.wage"
AT = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
AT_MS = int(AT.timestamp() * 1000)


class _Registry:
    """What sinks.sink.readers asks of the schema registry, from the local library: each
    topic's schema under an id of its own."""

    def __init__(self) -> None:
        self.library = SchemaLibrary()
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def schema_id(self, topic: Topic) -> int:
        if topic.name not in self._ids:
            self._ids[topic.name] = len(self._ids) + 1
            self._schemas[self._ids[topic.name]] = self.library.resolve(topic.schema)
        return self._ids[topic.name]

    def decoder(self, topic: Topic) -> AvroDecoder:
        schema_id = self.schema_id(topic)
        return AvroDecoder(
            self._schemas[schema_id], self._schemas.__getitem__, reader_schema_id=schema_id
        )

    def encoder(self, topic: Topic) -> AvroEncoder:
        schema_id = self.schema_id(topic)
        return AvroEncoder(self._schemas[schema_id], schema_id)


REGISTRY = _Registry()
DECODERS = readers(REGISTRY)  # type: ignore[arg-type]


class _Message:
    """A confluent_kafka.Message as the builder reads it."""

    def __init__(
        self,
        topic: str,
        value: bytes | None,
        *,
        timestamp_ms: int = AT_MS,
        headers: list[tuple[str, bytes]] | None = None,
        error: object = None,
    ) -> None:
        self._topic, self._value, self._timestamp = topic, value, timestamp_ms
        self._headers, self._error = headers, error

    def error(self) -> object:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # (TIMESTAMP_CREATE_TIME, milliseconds)


def _encode(topic: str, record: dict[str, Any]) -> bytes:
    return REGISTRY.encoder(get_topic(topic)).encode(record)


def _linked(kind: str, index: int, person: str, *, minutes: int = 0, **kwargs: Any) -> _Message:
    event = example_linked(kind, index)
    event["event_id"] = str(uuid.uuid4())
    event["person_id"] = person
    event["event_time"] = AT + datetime.timedelta(minutes=minutes)
    return _Message(f"c2c.linked.{kind}", _encode(f"c2c.linked.{kind}", event), **kwargs)


def _change(change_type: str, person: str, previous: str | None = None) -> _Message:
    change = {
        "change_id": uuid.uuid4(),
        "changed_at": AT,
        "change_type": change_type,
        "person_id": person,
        "previous_person_id": previous,
        "provider": "edd",
        "source_event_id": uuid.uuid4(),
        "rule": "SSN",
        "match_weight": None,
    }
    return _Message(CHANGES_TOPIC, _encode(CHANGES_TOPIC, change))


def _decision(persons: list[str], *, opted_out: bool = True) -> _Message:
    decision = {
        "decision_id": str(uuid.uuid4()),
        "decided_at": AT,
        "requested_at": AT,
        "request_id": "R1",
        "cause": "REQUESTED" if opted_out else "REVOKED",
        "requested_by": "OPERATOR",
        "person_id": persons[0],
        "person_ids": persons,
        "opted_out": opted_out,
    }
    return _Message(OPTOUT_DECISIONS_TOPIC, _encode(OPTOUT_DECISIONS_TOPIC, decision))


def _builder(
    *, wire: bool = False, tracing: bool = False, batch_rows: int = 20_000
) -> BatchBuilder:
    finders = {}
    if wire:  # as C2C_SINK_DECODE=clickhouse does, for the linked topics whose layout allows it
        finders = {
            topic: person_finder(frame(REGISTRY.schema_id(get_topic(topic)), b""))
            for topic in FACT_TABLES
        }
    return BatchBuilder(
        DECODERS,
        person_map=PersonMap(),
        optouts=OptOutFilter(),
        wire=finders,
        batch_rows=batch_rows,
        tracing=tracing,
    )


def test_linked_events_become_the_rows_add_row_makes_and_each_persons_latest() -> None:
    messages = [
        _linked("wage", 1, "P1", minutes=5),
        _linked("enrollment", 2, "P1", minutes=1),  # earlier: P1's latest stays the wage
        _linked("credential", 3, "P2", minutes=2),
        _linked("wage", 4, "P2", minutes=9),
    ]
    builder = _builder()
    batch = Batch()
    taken = builder.take(batch, messages)
    assert (taken.added, taken.errors, taken.dead_letters, taken.traced) == (4, [], [], [])
    assert taken.untraced == {WAGES: 2, "c2c.linked.enrollment": 1, "c2c.linked.credential": 1}
    # the same rows as the sink's row readers give, added by add_row's rule
    expected = Batch()
    for message in messages:
        row = DECODERS[message.topic()].decode(message.value() or b"")
        add_row(expected, FACT_TABLES[message.topic()], row)
    assert {t: rows for t, rows in batch.facts.items() if rows} == expected.facts
    assert batch.persons == expected.persons
    assert batch.persons["P1"] is batch.facts["fact_wage"][0]
    assert batch.persons["P2"] is batch.facts["fact_wage"][1]
    assert (batch.messages, batch.largest, batch.rows) == (4, 2, 4)
    assert builder.counts == {"decoded": 4}


def test_what_does_not_decode_is_a_dead_letter_and_a_kafka_error_is_handed_back() -> None:
    good = _linked("wage", 1, "P1")
    cut = _Message(WAGES, (good.value() or b"")[:-3])
    unframed = _Message(OPTOUT_DECISIONS_TOPIC, b"not avro")
    failed = _Message(WAGES, None, error=object())
    builder = _builder()
    batch = Batch()
    taken = builder.take(batch, [cut, good, failed, unframed])
    assert taken.added == 1
    assert taken.errors == [failed]
    assert [d.message for d in taken.dead_letters] == [cut, unframed]
    assert all(isinstance(d.error, SerdeError) for d in taken.dead_letters)
    assert len(batch.facts["fact_wage"]) == 1
    assert batch.messages == 1
    assert builder.counts["decoded"] == 1


def test_changes_are_counted_from_their_bytes_and_a_merge_re_points_persons() -> None:
    builder = _builder()
    batch = Batch()
    messages = [
        _change("PERSON_CREATED", "P1"),
        _change("RECORD_LINKED", "P1"),
        _change("RECORD_LINKED", "P2"),
        _change("PERSONS_MERGED", "P1", previous="P2"),
    ]
    taken = builder.take(batch, messages)
    assert taken.added == 4
    assert batch.merges == [["P2", "P1", AT_MS]]  # times as ClickHouse stores them
    assert builder.person_map.current("P2") == "P1"
    assert builder.counts == {
        "decoded": 4,
        "change.PERSON_CREATED": 1,
        "change.RECORD_LINKED": 2,
        "change.PERSONS_MERGED": 1,
    }


def test_a_decision_withholds_its_persons_rows_published_up_to_it() -> None:
    builder = _builder()
    batch = Batch()
    before = AT_MS - 1_000
    messages = [
        _linked("wage", 1, "P1", timestamp_ms=before),  # read before it: taken, then out
        _decision(["P1", "P7"]),
        _linked("wage", 2, "P7", timestamp_ms=before),  # published before it: left out
        _linked("wage", 3, "P7", timestamp_ms=AT_MS + 1),  # published after it: taken
        _linked("wage", 4, "P2", timestamp_ms=before),  # somebody else
    ]
    taken = builder.take(batch, messages)
    assert taken.added == 5  # the one left out was handled, not refused
    # P1's row was read before the decision, so published before it (the worker publishes
    # nothing of an opted-out person): taken out of the batch when the decision is read
    # (the rows already in ClickHouse are removed before the batch is written)
    assert [row[3] for row in batch.facts["fact_wage"]] == ["P7", "P2"]
    assert "P1" not in batch.persons
    assert [d["person_ids"] for d in batch.decisions] == [["P1", "P7"]]
    assert len(batch.decisions_read) == 1
    assert batch.optout_persons == [["P1", AT], ["P7", AT]]
    assert builder.counts["optout.requested"] == 1
    assert builder.counts["optout.not_written"] == 2
    # a revocation re-admits nothing already left out, and writes no optout_person row
    builder.take(batch, [_decision(["P7"], opted_out=False)])
    assert builder.counts["optout.revoked"] == 1
    assert len(batch.optout_persons) == 2


def test_events_after_a_revocation_in_the_same_batch_stay_in_it() -> None:
    """An opt-out, its revocation and the events re-admitted after it, in one batch (a
    worker working through a backlog after a crash publishes them milliseconds apart): the
    re-admitted events are written. They used to be deleted with the person's earlier rows,
    since the removal ran after the batch was written (tests/integration/test_crashes.py
    saw a revoked person lose every event)."""
    builder = _builder()
    batch = Batch()
    builder.take(
        batch,
        [
            _linked("wage", 1, "P1", timestamp_ms=AT_MS - 1_000),
            _decision(["P1"]),
            _decision(["P1"], opted_out=False),
            _linked("wage", 2, "P1", timestamp_ms=AT_MS + 5),
        ],
    )
    assert [row[3] for row in batch.facts["fact_wage"]] == ["P1"]
    assert batch.persons["P1"] is batch.facts["fact_wage"][0]
    assert builder.counts["optout.not_written"] == 1
    # written after the removal of P1's earlier rows, not before (it would go with them)
    first, late = builder.after_decisions(batch)
    assert late is not None
    assert first.facts["fact_wage"] == []
    assert "P1" not in first.persons
    assert [row[3] for row in late.facts["fact_wage"]] == ["P1"]
    assert late.persons["P1"] is batch.facts["fact_wage"][0]
    assert [row[3] for row in batch.facts["fact_wage"]] == ["P1"]  # left as it was


@pytest.mark.parametrize("wire", [False, True])
def test_an_event_read_before_an_opt_out_but_published_after_its_revocation_is_written(
    wire: bool,
) -> None:
    """Partitions are read in no set order: a batch can hold an event published after a
    revocation (from a linked topic's partition) before the opt-out it follows (from the
    decisions' partition). It is the person's to keep: taken out by when it was published,
    not by where it was read (tests/integration/test_crashes.py lost such events)."""
    builder = _builder(wire=wire, batch_rows=2)  # wire_min 1: messages stay as they came
    batch = Batch()
    builder.take(
        batch,
        [
            _linked("wage", 1, "P1", timestamp_ms=AT_MS + 5),  # after the revocation
            _linked("wage", 2, "P1", timestamp_ms=AT_MS - 1_000),  # before the opt-out
            _decision(["P1"]),
            _decision(["P1"], opted_out=False),
        ],
    )
    assert builder.counts["optout.not_written"] == 1
    kept = batch.wire.get("fact_wage", []) if wire else batch.facts["fact_wage"]
    assert len(kept) == 1
    first, late = builder.after_decisions(batch)
    assert late is not None  # written after the removal of P1's earlier rows
    assert len(late.wire.get("fact_wage", []) if wire else late.facts["fact_wage"]) == 1
    assert not (first.wire.get("fact_wage") or first.facts.get("fact_wage"))


def test_only_messages_with_headers_are_handed_back_for_tracing() -> None:
    headed = _linked("wage", 1, "P1", headers=[("traceparent", b"00-ab-cd-01")])
    plain = _linked("wage", 2, "P2")
    taken = _builder(tracing=True).take(Batch(), [headed, plain])
    assert (taken.traced, taken.untraced) == ([headed], {WAGES: 1})
    taken = _builder(tracing=False).take(Batch(), [headed, plain])
    assert (taken.traced, taken.untraced) == ([], {WAGES: 2})


def test_wire_messages_stay_messages_until_the_batch_decides_their_path() -> None:
    messages = [_linked("wage", i, f"P{i % 3}", minutes=i) for i in range(6)]
    builder = _builder(wire=True, batch_rows=8)  # containers from 4 messages of a table on
    assert builder.wire_min == 4
    batch = Batch()
    assert builder.take(batch, messages).added == 6
    assert batch.wire["fact_wage"] == messages
    assert batch.wire_persons == {"P0", "P1", "P2"}
    assert batch.facts_count == 6
    assert not any(batch.facts.values())
    assert not batch.persons
    assert builder.decide_paths(batch) == []  # six: a container
    assert len(batch.wire["fact_wage"]) == 6
    # fewer than wire_min: decoded here, as the python path would have
    few = Batch()
    builder.take(few, messages[:3])
    assert builder.decide_paths(few) == []
    decoded = Batch()
    _builder().take(decoded, messages[:3])
    assert few.facts["fact_wage"] == decoded.facts["fact_wage"]
    assert few.persons == decoded.persons
    assert (few.wire, few.wire_persons) == ({}, set())


def test_unwiring_names_a_bad_wire_message_and_takes_it_back() -> None:
    good = _linked("wage", 1, "P1")
    long = _Message(WAGES, (_linked("wage", 2, "P2").value() or b"") + b"\x02\x04")
    builder = _builder(wire=True)
    batch = Batch()
    builder.take(batch, [good, long])
    assert len(batch.wire["fact_wage"]) == 2  # both framed as expected, persons found
    [dead] = builder.unwire(batch)
    assert dead.message is long
    assert "P2" not in batch.persons
    assert [row[3] for row in batch.facts["fact_wage"]] == ["P1"]
    assert (batch.messages, builder.counts["decoded"]) == (1, 1)
    assert (batch.wire, batch.wire_persons) == ({}, set())


def test_a_builder_without_every_topics_decoder_says_which() -> None:
    partial = {t: d for t, d in DECODERS.items() if t != CHANGES_TOPIC}
    with pytest.raises(ValueError, match=CHANGES_TOPIC.replace(".", r"\.")):
        BatchBuilder(partial, person_map=PersonMap(), optouts=OptOutFilter(), batch_rows=10)


def test_the_batch_module_imports_neither_kafka_nor_clickhouse() -> None:
    code = (
        "import sys, sinks.batch; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'confluent_kafka', 'clickhouse_connect', 'chdb', 'opentelemetry'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"

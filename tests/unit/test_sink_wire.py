"""The wire format: containers that any Avro reader reads back as the messages' events, and
person ids found without decoding."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from c2c.examples import example_linked
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.topics import get_topic
from sinks.rows import FACT_TABLES
from sinks.wire import SEPARATOR, WireFormat, person_finder

_LIBRARY = SchemaLibrary()


def _schema(topic: str) -> dict[str, Any]:
    return _LIBRARY.resolve(get_topic(topic).schema)


@pytest.mark.parametrize("topic", sorted(FACT_TABLES))
def test_a_container_reads_back_as_the_messages_events(topic: str) -> None:
    schema = _schema(topic)
    encoder = AvroEncoder(schema, 42)
    kind = topic.rsplit(".", 1)[1]
    events = [example_linked(kind, index) for index in range(5)]
    events[1]["attributes"]["demographics"] = None
    messages = [encoder.encode(event) for event in events]
    container = WireFormat(schema).container(messages)
    records = list(fastavro.reader(io.BytesIO(container)))
    assert len(records) == len(events)
    plain = fastavro.parse_schema(schema)
    for record, message in zip(records, messages, strict=True):
        assert record.pop("wire_frame") == message[:5]
        ends = [record.pop(f"wire_end_{n}") for n in range(1, 6)]
        assert bytes(ends) == SEPARATOR
        again = io.BytesIO()
        fastavro.schemaless_writer(again, plain, record)
        assert again.getvalue() == message[5:]


def test_person_of_finds_the_person_id_or_says_to_decode() -> None:
    schema = _schema("c2c.linked.wage")
    encoder = AvroEncoder(schema, 42)
    event = example_linked("wage", 3)
    message = encoder.encode(event)
    person_of = person_finder(message[:5])
    assert person_of(message) == event["person_id"]
    assert person_finder(AvroEncoder(schema, 43).encode(event)[:5])(message) is None
    long_id = {**event, "person_id": "p" * 64}  # a two-byte length: decoded instead
    assert person_of(encoder.encode(long_id)) is None
    assert person_of(message[:50]) is None  # cut inside the id
    early = {**event, "event_time": event["event_time"].replace(year=1970)}  # a shorter time
    assert person_of(encoder.encode(early)) is None
    odd = bytearray(message)
    odd[49] |= 1  # a negative length
    assert person_of(bytes(odd)) is None

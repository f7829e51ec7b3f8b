"""Schemas against the real registry: registration, compatibility, evolution, interop with
confluent-kafka's Avro serde, and dead letters on a real topic."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from c2c.consuming import DecodingConsumer
from c2c.deadletter import DeadLetterPublisher
from c2c.examples import example_raw
from c2c.kafka import ensure_topics
from c2c.registry import COMPATIBILITY, RegistryError, SchemaRegistry
from c2c.schemas import SCHEMA_DIR
from c2c.serde import frame
from c2c.settings import Settings
from c2c.topics import CATALOGUE, DEAD_LETTER_TOPIC, Topic, get_topic
from tests.conftest import read_decoded

pytestmark = pytest.mark.integration

# confluent-kafka 2.16 otherwise looks up subject "associations" first (not in ccompat APIs).
TOPIC_STRATEGY = {"subject.name.strategy": topic_subject_name_strategy}


def _scratch_topic(schema: str = "org.c2cstream.raw.WageEvent") -> Topic:
    return Topic(
        name=f"test.evolve.{uuid.uuid4().hex[:10]}",
        schema=schema,
        zone="identity",
        description="scratch",
        partitions=1,
    )


def test_register_all_is_idempotent_and_every_subject_is_backward_transitive(
    registry: SchemaRegistry,
) -> None:
    first = {row.subject: row.schema_id for row in registry.register_all()}
    second = {row.subject: row.schema_id for row in registry.register_all()}
    assert first == second
    assert set(first) == {topic.value_subject for topic in CATALOGUE if topic.schema}
    for subject in first:
        assert registry.client.get_compatibility(subject) == COMPATIBILITY
    assert all(row.status == "registered" for row in registry.check_all())


def _wage_schema(registry: SchemaRegistry) -> dict[str, Any]:
    return registry.library.resolve("org.c2cstream.raw.WageEvent")


def _facts(schema: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == "facts")["type"]


def test_adding_an_optional_field_with_a_default_is_accepted(registry: SchemaRegistry) -> None:
    topic = _scratch_topic()
    v1 = _wage_schema(registry)
    first = registry.register(topic, json.dumps(v1))
    v2 = copy.deepcopy(v1)
    _facts(v2)["fields"].append(
        {"name": "hours", "type": ["null", "int"], "default": None, "doc": "Hours worked."}
    )
    check = registry.check(topic, json.dumps(v2))
    assert (check.status, check.reason) == ("compatible", "")
    second = registry.register(topic, json.dumps(v2))
    assert second.version == first.version + 1

    # An event written with v1 decodes into v2, the new field taking its default.
    event = example_raw("wage", 3)
    from c2c.serde import AvroDecoder, AvroEncoder

    old_bytes = AvroEncoder(v1, first.schema_id).encode(event)
    decoded = AvroDecoder(v2, registry.writer_schema).decode(old_bytes)
    assert decoded["facts"]["hours"] is None
    assert decoded["facts"]["wages"] == event["facts"]["wages"]


def test_changing_a_field_type_is_rejected_with_the_reason(registry: SchemaRegistry) -> None:
    topic = _scratch_topic()
    v1 = _wage_schema(registry)
    registry.register(topic, json.dumps(v1))
    changed = copy.deepcopy(v1)
    year = next(f for f in _facts(changed)["fields"] if f["name"] == "year")
    year["type"] = "string"
    check = registry.check(topic, json.dumps(changed))
    assert check.status == "incompatible"
    assert "a field's type changed" in check.reason
    assert "/fields/6/type/fields/2/type" in check.reason
    with pytest.raises(RegistryError) as caught:
        registry.register(topic, json.dumps(changed))
    assert "not compatible" in str(caught.value)
    assert "STRING" in str(caught.value)
    assert "INT" in str(caught.value)


def test_removing_a_field_without_default_is_rejected(registry: SchemaRegistry) -> None:
    topic = _scratch_topic()
    v1 = _wage_schema(registry)
    registry.register(topic, json.dumps(v1))
    removed = copy.deepcopy(v1)
    _facts(removed)["fields"] = [f for f in _facts(removed)["fields"] if f["name"] != "employer_id"]
    check = registry.check(topic, json.dumps(removed))
    assert check.status == "incompatible"
    assert "removes field(s) facts.employer_id that have no default" in check.reason
    with pytest.raises(RegistryError, match=r"facts\.employer_id"):
        registry.register(topic, json.dumps(removed))


def test_adding_a_field_without_default_is_rejected(registry: SchemaRegistry) -> None:
    topic = _scratch_topic()
    v1 = _wage_schema(registry)
    registry.register(topic, json.dumps(v1))
    added = copy.deepcopy(v1)
    _facts(added)["fields"].append({"name": "hours", "type": "int"})
    check = registry.check(topic, json.dumps(added))
    assert check.status == "incompatible"
    assert "a field was added without a default" in check.reason


def test_schemas_check_command_exits_non_zero_with_the_reason(
    registry: SchemaRegistry, tmp_path: Path
) -> None:
    local = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, local)
    wage_facts = local / "facts" / "WageFacts.avsc"
    schema = json.loads(wage_facts.read_text())
    next(f for f in schema["fields"] if f["name"] == "quarter")["type"] = "string"
    wage_facts.write_text(json.dumps(schema))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "schemas", "check", "--schemas", str(local)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "c2c.raw.wage-value" in result.stdout
    assert "incompatible" in result.stdout
    assert "a field's type changed" in result.stdout
    assert "would refuse c2c.raw.wage-value, c2c.linked.wage-value" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "cli", "schemas", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_interoperates_with_confluent_avro_serde_both_ways(
    registry: SchemaRegistry,
) -> None:
    topic = get_topic("c2c.raw.wage")
    text = registry.library.resolve_text(topic.schema)
    context = SerializationContext(topic.name, MessageField.VALUE)
    event = example_raw("wage", 11)

    ours = registry.encoder(topic).encode(event)
    theirs_decoded = AvroDeserializer(registry.client, conf=TOPIC_STRATEGY)(ours, context)
    assert theirs_decoded is not None
    assert theirs_decoded["facts"] == event["facts"]
    assert theirs_decoded["person"] == event["person"]

    theirs = AvroSerializer(
        registry.client,
        text,
        conf={"auto.register.schemas": False, "use.latest.version": True, **TOPIC_STRATEGY},
    )(event, context)
    assert theirs is not None
    ours_decoded = registry.decoder(topic).decode(theirs)
    assert ours_decoded["facts"] == event["facts"]
    assert str(ours_decoded["event_id"]) == event["event_id"]
    assert theirs == ours  # same schema id, same Avro body


def test_bad_messages_go_to_the_dead_letter_topic_and_the_consumer_goes_on(
    stack: Settings, registry: SchemaRegistry
) -> None:
    topic = get_topic("c2c.raw.wage")
    source = Topic(
        name=f"test.dlq.{uuid.uuid4().hex[:10]}",
        schema=topic.schema,
        zone="identity",
        description="scratch",
        partitions=1,
    )
    ensure_topics(stack, [source])
    encoder = registry.encoder(topic)
    good = [encoder.encode(example_raw("wage", i)) for i in (1, 2)]
    bad = [
        b"definitely not avro",
        frame(987654, b"\x00\x01\x02"),
        good[0][:12],
    ]
    producer = Producer(stack.kafka_config(acks="all"))
    for value in (bad[0], good[0], bad[1], bad[2], good[1]):
        producer.produce(source.name, key=b"k", value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        stack.kafka_config(
            **{
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([source.name])
    dead_letters = DeadLetterPublisher(stack, registry)
    decoding = DecodingConsumer(
        consumer, {source.name: registry.decoder(topic)}, dead_letters, stage="test"
    )
    decoded = []
    deadline = time.monotonic() + 60
    while len(decoded) + decoding.counts["dead_letter"] < 5 and time.monotonic() < deadline:
        decoded.extend(decoding.poll(timeout_s=1.0))
    decoding.commit()
    consumer.close()
    assert [d.offset for d in decoded] == [1, 4]
    assert decoding.counts["dead_letter"] == 3
    assert dead_letters.counts == {
        "serde.not_wire_format": 1,
        "serde.unknown_schema_id": 1,
        "serde.decode": 1,
    }

    letters = _read_dead_letters(stack, registry, source.name, expected=3)
    assert [(d["source_offset"], d["error_code"]) for d in letters] == [
        (0, "serde.not_wire_format"),
        (2, "serde.unknown_schema_id"),
        (3, "serde.decode"),
    ]
    assert [d["original_value"] for d in letters] == bad
    assert all(d["source_topic"] == source.name and d["source_partition"] == 0 for d in letters)
    assert all(d["original_key"] == b"k" and d["stage"] == "test" for d in letters)
    assert "987654" in letters[1]["error_message"]


def _read_dead_letters(
    stack: Settings, registry: SchemaRegistry, source_topic: str, expected: int
) -> list[dict[str, Any]]:
    found = read_decoded(
        stack, registry, DEAD_LETTER_TOPIC, lambda r: r["source_topic"] == source_topic, expected
    )
    return sorted((record for record, _ in found), key=lambda d: d["source_offset"])

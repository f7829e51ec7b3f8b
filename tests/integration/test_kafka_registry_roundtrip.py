"""A real Avro event through the real registry and broker, with confluent-kafka's own serde."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from c2c.settings import Settings
from services.heartbeat import send_heartbeat

pytestmark = pytest.mark.integration

ENROLLMENT = {
    "type": "record",
    "name": "SmokeEnrollment",
    "namespace": "org.c2cstream.test",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "provider", "type": "string"},
        {"name": "school_year", "type": "int"},
        {"name": "grade", "type": ["null", "string"], "default": None},
    ],
}


def test_avro_event_round_trips_through_registry_and_broker(stack: Settings) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(stack.kafka_config())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)

    registry = SchemaRegistryClient(stack.schema_registry_config())
    schema_id = registry.register_schema(f"{topic}-value", Schema(json.dumps(ENROLLMENT), "AVRO"))
    assert registry.get_latest_version(f"{topic}-value").schema_id == schema_id

    topic_strategy = {"subject.name.strategy": topic_subject_name_strategy}
    serializer = AvroSerializer(registry, json.dumps(ENROLLMENT), conf=topic_strategy)
    event = {"event_id": str(uuid.uuid4()), "provider": "k12", "school_year": 2025, "grade": "12"}
    context = SerializationContext(topic, MessageField.VALUE)
    payload = serializer(event, context)
    assert payload is not None
    # Confluent wire format: magic byte 0, then the schema id big-endian, then the Avro body.
    assert payload[0] == 0
    assert int.from_bytes(payload[1:5], "big") == schema_id

    producer = Producer(stack.kafka_config(acks="all"))
    producer.produce(topic, key=event["event_id"].encode(), value=payload)
    assert producer.flush(30) == 0

    consumer = Consumer(stack.kafka_config(**{"group.id": f"test-{uuid.uuid4()}"}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    received = None
    deadline = time.monotonic() + 30
    while received is None and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None:
            assert message.error() is None, message.error()
            received = message.value()
    consumer.close()
    assert received == payload

    decoded = AvroDeserializer(registry, conf=topic_strategy)(received, context)
    assert decoded is not None
    assert {**decoded, "event_id": str(decoded["event_id"])} == event


def test_heartbeat_reaches_every_service(stack: Settings) -> None:
    first = send_heartbeat(stack, origin="pytest")
    second = send_heartbeat(stack, origin="pytest")
    assert first.schema_id == second.schema_id  # registering again is idempotent
    assert (second.partition, second.offset) > (first.partition, first.offset)
    assert first.clickhouse_rows == 1
    assert second.clickhouse_rows == 1

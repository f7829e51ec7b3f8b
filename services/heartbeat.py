"""A heartbeat through the stack: registry, Kafka and ClickHouse, each checked for real.

`c2c demo` runs it; operators can too. A heartbeat is registered under its topic's subject,
produced in Confluent wire format, consumed back from the offset it was written at, decoded,
and stored in ClickHouse's ops_heartbeat table.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message, Producer
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from c2c.clickhouse import connect
from c2c.errors import ServiceError
from c2c.kafka import DURABLE_PRODUCER, ensure_topics, read_at
from c2c.schemas import SchemaLibrary
from c2c.settings import Settings
from c2c.topics import get_topic

__all__ = ["HEARTBEAT_TOPIC", "HeartbeatResult", "send_heartbeat"]

HEARTBEAT_TOPIC = "c2c.ops.heartbeat"

_HEARTBEAT_TABLE = """
CREATE TABLE IF NOT EXISTS ops_heartbeat
(
    heartbeat_id UUID COMMENT 'Unique id of the probe',
    sent_at DateTime64(3, 'UTC') COMMENT 'When the probe was produced',
    origin String COMMENT 'Which command or host sent it',
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it reached ClickHouse'
)
ENGINE = ReplacingMergeTree
ORDER BY heartbeat_id
COMMENT 'Heartbeats sent through the stack; operations only, no person data'
"""


@dataclass(frozen=True)
class HeartbeatResult:
    """What one heartbeat went through."""

    heartbeat_id: str
    schema_id: int
    partition: int
    offset: int
    wire_bytes: int
    kafka_round_trip_ms: float
    clickhouse_rows: int


def _produce(
    settings: Settings, serializer: AvroSerializer, record: dict[str, Any]
) -> tuple[int, int, int]:
    producer = Producer(settings.kafka_config(**DURABLE_PRODUCER))
    context = SerializationContext(HEARTBEAT_TOPIC, MessageField.VALUE)
    payload = serializer(record, context)
    assert payload is not None
    delivered: list[Message] = []
    producer.produce(
        HEARTBEAT_TOPIC,
        key=record["heartbeat_id"].encode(),
        value=payload,
        on_delivery=lambda err, msg: delivered.append(msg) if err is None else None,
    )
    remaining = producer.flush(30)
    if remaining or not delivered:
        raise ServiceError(
            f"the heartbeat was not acknowledged by Kafka at {settings.kafka_bootstrap} in 30 s",
            code="heartbeat.produce",
        )
    message = delivered[0]
    return message.partition() or 0, message.offset() or 0, len(payload)


def _consume_at(settings: Settings, partition: int, offset: int) -> bytes:
    message = read_at(settings, HEARTBEAT_TOPIC, partition, offset)
    value = message.value() if message is not None else None
    if value is None:
        raise ServiceError(
            f"the heartbeat at {HEARTBEAT_TOPIC}[{partition}]@{offset} was not read back in 30 s",
            code="heartbeat.consume",
        )
    return value


def send_heartbeat(settings: Settings, origin: str) -> HeartbeatResult:
    """Send one heartbeat through registry, Kafka and ClickHouse; raise ServiceError if any
    step fails or the decoded event differs from what was sent."""
    topic = get_topic(HEARTBEAT_TOPIC)
    ensure_topics(settings, [topic])
    registry = SchemaRegistryClient(settings.schema_registry_config())
    schema_text = SchemaLibrary().resolve_text(topic.schema)
    schema_id = registry.register_schema(topic.value_subject, Schema(schema_text, "AVRO"))
    # Topic name strategy named explicitly: confluent-kafka 2.16's default first asks for
    # subject "associations", an endpoint Confluent-compatible registries may lack.
    topic_strategy = {"subject.name.strategy": topic_subject_name_strategy}
    serializer = AvroSerializer(
        registry,
        schema_text,
        conf={"auto.register.schemas": False, "use.latest.version": True, **topic_strategy},
    )
    deserializer = AvroDeserializer(registry, conf=topic_strategy)

    now = datetime.now(UTC)
    sent: dict[str, Any] = {
        "heartbeat_id": str(uuid.uuid4()),
        # timestamp-millis keeps milliseconds: truncate so the round trip compares equal
        "sent_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
        "origin": origin,
    }
    started = time.perf_counter()
    partition, offset, size = _produce(settings, serializer, sent)
    payload = _consume_at(settings, partition, offset)
    elapsed_ms = (time.perf_counter() - started) * 1000
    received = deserializer(payload, SerializationContext(HEARTBEAT_TOPIC, MessageField.VALUE))
    if received is None or {**received, "heartbeat_id": str(received["heartbeat_id"])} != sent:
        raise ServiceError(
            f"the heartbeat came back different: sent {sent}, received {received}",
            code="heartbeat.mismatch",
        )

    client = connect(settings)
    try:
        client.command(_HEARTBEAT_TABLE)
        client.insert(
            "ops_heartbeat",
            [[uuid.UUID(sent["heartbeat_id"]), sent["sent_at"], origin]],
            column_names=["heartbeat_id", "sent_at", "origin"],
        )
        rows = int(
            client.query(
                "SELECT count() FROM ops_heartbeat WHERE heartbeat_id = {id:UUID}",
                parameters={"id": sent["heartbeat_id"]},
            ).result_rows[0][0]
        )
    finally:
        client.close()
    return HeartbeatResult(
        heartbeat_id=sent["heartbeat_id"],
        schema_id=schema_id,
        partition=partition,
        offset=offset,
        wire_bytes=size,
        kafka_round_trip_ms=elapsed_ms,
        clickhouse_rows=rows,
    )

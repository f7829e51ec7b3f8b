"""The Faust codec reads and writes the same bytes as our serde and confluent-kafka."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError, schema_id_of
from c2c.settings import Settings
from c2c.topics import get_topic

pytestmark = pytest.mark.integration


def test_faust_schema_loads_and_dumps_through_the_codec(
    stack: Settings, registry: SchemaRegistry
) -> None:
    import faust

    from streams.codec import avro_codec

    topic = get_topic("c2c.linked.enrollment")
    codec = avro_codec(registry, topic)
    event = example_linked("enrollment", 5)

    app = faust.App("c2c-codec-test", broker=f"kafka://{stack.kafka_bootstrap}", store="memory://")
    schema = faust.Schema(value_serializer=codec)
    data, _headers = schema.dumps_value(app, event, headers={})
    assert isinstance(data, bytes)
    assert schema_id_of(data) == registry.schema_id(topic)
    assert data == registry.encoder(topic).encode(event)

    confluent = AvroDeserializer(
        registry.client, conf={"subject.name.strategy": topic_subject_name_strategy}
    )(data, SerializationContext(topic.name, MessageField.VALUE))
    assert confluent is not None
    assert confluent["person_id"] == event["person_id"]

    message = _message(topic.name, 0, data)
    loaded = schema.loads_value(app, message)
    assert loaded["facts"] == event["facts"]
    assert loaded["attributes"] == event["attributes"]

    bad = _message(topic.name, 1, b"garbage")
    with pytest.raises(Exception, match="not in Confluent wire format") as caught:
        schema.loads_value(app, bad)
    chain = [caught.value, caught.value.__cause__, caught.value.__context__]
    assert any(isinstance(exc, SerdeError) for exc in chain), chain


def _message(topic: str, offset: int, value: bytes) -> Any:
    from faust.types.tuples import Message

    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=None,
        value=value,
        checksum=None,
    )

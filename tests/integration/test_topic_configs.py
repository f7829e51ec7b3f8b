"""`c2c topics create` sets the catalogue's configuration on topics made before it was
declared (the intake's larger message size, a retention changed)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from c2c.kafka import align_topic_configs, ensure_topics
from c2c.settings import Settings
from c2c.topics import Topic

pytestmark = pytest.mark.integration


def _config(stack: Settings, name: str) -> dict[str, str]:
    admin = AdminClient(stack.kafka_config())
    [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    return {key: entry.value for key, entry in future.result(timeout=30).items()}


def test_existing_topics_take_the_catalogues_configuration(stack: Settings) -> None:
    name = f"test-align-{uuid.uuid4().hex[:8]}"
    old = Topic(
        name, "", "operations", "a test topic", partitions=1, config={"retention.ms": "60000"}
    )
    assert ensure_topics(stack, [old]) == [name]
    declared = Topic(
        name,
        "",
        "operations",
        "a test topic",
        partitions=1,
        config={"retention.ms": "120000", "max.message.bytes": "2097152"},
    )
    assert align_topic_configs(stack, [declared]) == {
        name: {"retention.ms": "120000", "max.message.bytes": "2097152"}
    }
    config = _config(stack, name)
    assert config["retention.ms"] == "120000"
    assert config["max.message.bytes"] == "2097152"
    assert align_topic_configs(stack, [declared]) == {}  # nothing differs any more

"""`c2c topics create` sets the catalogue's configuration on topics made before it was
declared (the intake's larger message size, a retention changed); the resolver's changelogs
are created compacted and replicated as the cluster allows."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from c2c.kafka import align_topic_configs, cluster_brokers, ensure_topics
from c2c.settings import Settings
from c2c.topics import Topic, replication_factor, topic_config
from streams.app import changelog_topics

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


def _replicas(stack: Settings, name: str) -> int:
    metadata = AdminClient(stack.kafka_config()).list_topics(name, timeout=30)
    return len(metadata.topics[name].partitions[0].replicas)


def test_the_resolver_changelogs_are_created_compacted_at_the_clusters_replication(
    stack: Settings,
) -> None:
    app_id = f"c2c-identity-test-{uuid.uuid4().hex[:8]}"
    topics = changelog_topics(app_id)
    assert ensure_topics(stack, topics) == sorted(t.name for t in topics)
    brokers = cluster_brokers(stack)
    for topic in topics:
        config = _config(stack, topic.name)
        assert config["cleanup.policy"] == "compact"
        assert _replicas(stack, topic.name) == replication_factor(brokers)
        # min.insync.replicas 2 where 3 brokers replicate it; the broker's default (1) below
        assert config["min.insync.replicas"] == topic_config(topic, brokers).get(
            "min.insync.replicas", "1"
        )

"""Kafka administration shared by every service: creating the catalogue's topics."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from c2c.errors import ServiceError
from c2c.settings import Settings
from c2c.topics import Topic

__all__ = ["ensure_topics"]


def ensure_topics(
    settings: Settings, topics: Iterable[Topic], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Replication is capped at the number of brokers, so the same catalogue serves a
    single-node development broker and a cluster.
    """
    admin = AdminClient(settings.kafka_config())
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceError(
            f"Kafka at {settings.kafka_bootstrap} did not answer: {exc.args[0]}; "
            "is it up? (`c2c services status`)",
            code="service.kafka.unreachable",
        ) from exc
    replication = min(3, max(1, len(metadata.brokers)))
    wanted = [topic for topic in topics if topic.name not in metadata.topics]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=replication,
                config=dict(topic.config),
            )
            for topic in wanted
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise ServiceError(
                f"creating topic {name} failed: {exc.args[0]}", code="service.kafka.topic"
            ) from exc
    return sorted(created)

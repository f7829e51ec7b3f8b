"""Kafka helpers shared by every service: creating the catalogue's topics, and reading
topics whole (for evaluation and audits)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from c2c.errors import ServiceError
from c2c.settings import Settings
from c2c.topics import Topic, replication_factor, topic_config

__all__ = [
    "CONSUMER_LIVENESS",
    "DURABLE_PRODUCER",
    "PRODUCER_CONFIG",
    "SESSION_TIMEOUT_S",
    "NotDelivered",
    "Offsets",
    "align_topic_configs",
    "cluster_brokers",
    "deliver",
    "end_offsets",
    "ensure_topics",
    "group_refused",
    "not_authorized",
    "read_at",
    "read_to_end",
    "topic_partitions",
]

# Idempotent, acks=all; batches of up to 20 ms / 1 MB, lz4-compressed.
# What every producer of the project sends with: a write is acknowledged once every
# in-sync replica has it (min.insync.replicas 2 on three brokers), and a retry after a lost
# acknowledgement (a broker killed) is not written twice.
DURABLE_PRODUCER: Mapping[str, Any] = {"enable.idempotence": True, "acks": "all"}

PRODUCER_CONFIG: Mapping[str, Any] = {
    **DURABLE_PRODUCER,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}

SESSION_TIMEOUT_S = 10
"""Seconds a group waits for a consumer it hears nothing from before it hands that
consumer's partitions to the others: a stage killed and started again resumes after about
this long (librdkafka's default is 45 s, Faust's 60 s). Heartbeats go every third of it."""

CONSUMER_LIVENESS: Mapping[str, Any] = {
    "session.timeout.ms": SESSION_TIMEOUT_S * 1000,
    "heartbeat.interval.ms": SESSION_TIMEOUT_S * 1000 // 3,
}
"""librdkafka settings of every group consumer of a stage (forwarder, sink)."""

# (topic, partition) -> offset
Offsets = dict[tuple[str, int], int]


def ensure_topics(
    settings: Settings, topics: Iterable[Topic], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Replication is the cluster's (:func:`c2c.topics.replication_factor`: its brokers, up
    to 3) and topics holding state get ``min.insync.replicas`` 2 on 3 brokers
    (:func:`c2c.topics.topic_config`), so the same catalogue serves a single-node
    development broker and a cluster.
    """
    admin = AdminClient(settings.kafka_config())
    metadata = _cluster_metadata(settings, admin, timeout_s)
    brokers = len(metadata.brokers)
    wanted = [topic for topic in topics if topic.name not in metadata.topics]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=replication_factor(brokers),
                config=topic_config(topic, brokers),
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
            if exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise not_authorized(settings, f"topic {name}", "create") from exc
            raise ServiceError(
                f"creating topic {name} failed: {exc.args[0]}", code="service.kafka.topic"
            ) from exc
    return sorted(created)


def cluster_brokers(settings: Settings, *, timeout_s: float = 30.0) -> int:
    """How many brokers the cluster has now (what topics are replicated to)."""
    admin = AdminClient(settings.kafka_config())
    return len(_cluster_metadata(settings, admin, timeout_s).brokers)


def _cluster_metadata(settings: Settings, admin: AdminClient, timeout_s: float) -> Any:
    """The cluster's metadata (brokers, topics); ServiceError if Kafka does not answer."""
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceError(
            f"Kafka at {settings.kafka_bootstrap} did not answer: {exc.args[0]}; "
            "is it up? (`c2c services status`)" + _principal_hint(settings),
            code="service.kafka.unreachable",
        ) from exc


def align_topic_configs(
    settings: Settings, topics: Iterable[Topic], *, timeout_s: float = 30.0
) -> dict[str, dict[str, str]]:
    """Set on each existing topic the configuration the catalogue declares for it where the
    broker's differs (a topic made before a setting was declared keeps the old one until
    then); return what was changed, per topic: {config: new value}. Partitions are not
    changed (adding some would move keys between partitions)."""
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient(settings.kafka_config())
    metadata = _cluster_metadata(settings, admin, timeout_s)
    existing, brokers = metadata.topics, len(metadata.brokers)
    declared = {
        t.name: config
        for t in topics
        if t.name in existing and (config := topic_config(t, brokers))
    }
    if not declared:
        return {}
    changes = _unapplied(admin, declared, timeout_s)
    if not changes:
        return {}
    updates = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in differ.items()
            ],
        )
        for name, differ in changes.items()
    ]
    for resource, future in admin.incremental_alter_configs(updates).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceError(
                f"setting the catalogue's configuration of topic {resource.name} failed: "
                f"{exc.args[0]}",
                code="service.kafka.topic",
            ) from exc
    # The broker answers the alteration once its metadata log holds it; its own view of a
    # topic's configuration follows a moment later (seen under load: a describe right after
    # still read the old value). Return once every change reads back, as a caller expects.
    deadline = time.monotonic() + timeout_s
    while pending := _unapplied(admin, changes, timeout_s):
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the broker took the configuration of topic(s) {', '.join(sorted(pending))} "
                f"but did not show it within {timeout_s:.0f} s ({pending}); check the broker's "
                "log and run the command again",
                code="service.kafka.topic",
            )
        time.sleep(0.1)
    return changes


def _unapplied(
    admin: AdminClient, wanted: dict[str, dict[str, str]], timeout_s: float
) -> dict[str, dict[str, str]]:
    """Of ``wanted`` ({topic: {config: value}}), what the broker does not show yet."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    shown = {
        resource.name: future.result(timeout=timeout_s)
        for resource, future in admin.describe_configs(resources).items()
    }
    missing: dict[str, dict[str, str]] = {}
    for name, config in wanted.items():
        differ = {
            key: value
            for key, value in config.items()
            if key not in shown[name] or shown[name][key].value != value
        }
        if differ:
            missing[name] = differ
    return missing


def _reader(settings: Settings) -> Consumer:
    """A consumer of a group of its own that commits nothing: for reading, not consuming."""
    return Consumer(
        settings.kafka_config(
            **{"group.id": f"c2c-read-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )


def end_offsets(settings: Settings, topics: Iterable[str]) -> Offsets:
    """The end (high-water mark) of every partition of ``topics`` now: where what is
    published next will be. ServiceError if a topic is missing."""
    consumer = _reader(settings)
    try:
        ends: Offsets = {}
        for topic in topics:
            for partition in topic_partitions(settings, consumer, topic):
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


class NotDelivered(Exception):
    """A message the broker did not acknowledge: its args[0] says why."""


def deliver(
    producer: Producer, topic: str, *, key: bytes, value: bytes, timeout_s: float = 30.0
) -> str:
    """Produce one message and wait for the broker's acknowledgement; where it landed
    (``topic[partition]@offset``). NotDelivered, saying why, if it was refused or not
    acknowledged within ``timeout_s``."""
    placed: list[str] = []
    failed: list[str] = []

    def delivered(err: Any, message: Any) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            placed.append(f"{message.topic()}[{message.partition()}]@{message.offset()}")

    try:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    except KafkaException as exc:
        failed.append(str(exc))
    producer.flush(timeout_s)
    if failed or not placed:
        raise NotDelivered("; ".join(failed) or f"not acknowledged in {timeout_s:.0f} s")
    return placed[0]


def read_at(
    settings: Settings, topic: str, partition: int, offset: int, *, timeout_s: float = 30.0
) -> Message | None:
    """The message at ``offset`` of ``topic[partition]``, read by a consumer that commits
    nothing; None if there is none (retention or compaction took it, it never was, or it was
    not read within ``timeout_s``). ServiceError naming the place if the broker refuses."""
    import time

    consumer = _reader(settings)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    raise not_authorized(settings, f"topic {topic}", "read")
                if error.retriable():
                    continue
                raise ServiceError(
                    f"reading {topic}[{partition}]@{offset} failed: {error.str()}",
                    code="kafka.read",
                )
            return message if message.offset() == offset else None
        return None
    finally:
        consumer.close()


def group_refused(settings: Settings, group: str, *, timeout_s: float = 10.0) -> bool:
    """Whether the broker refuses these settings' principal the offsets of consumer group
    ``group``: a consumer's committed() only times out then (librdkafka retries the
    refusal), where the admin API answers GROUP_AUTHORIZATION_FAILED."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient(settings.kafka_config())
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    try:
        futures[group].result(timeout=timeout_s)
    except KafkaException as exc:
        return bool(exc.args and exc.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED)
    except Exception:  # a timeout or another failure is no proof of refusal
        return False
    return False


def _principal_hint(settings: Settings) -> str:
    if settings.kafka_secured and settings.kafka_security_protocol == "PLAINTEXT":
        return (
            "; the broker is secured (C2C_KAFKA_ACLS) and takes only SASL clients: connect as "
            'a role, for example `eval "$(c2c services credentials admin)"` on the local stack'
        )
    return ""


def not_authorized(settings: Settings, resource: str, action: str) -> ServiceError:
    """The error for a broker's refusal to let these settings' principal ``action`` (read,
    write, create, join) ``resource`` ("topic NAME", "consumer group NAME"): it names the
    principal, the resource, and where the grants are."""
    who = (
        f"principal User:{settings.kafka_sasl_username}"
        if settings.kafka_sasl_username
        else "an unauthenticated client (User:ANONYMOUS)"
    )
    return ServiceError(
        f"Kafka at {settings.kafka_bootstrap} refused to let {who} {action} {resource}: "
        "its role has no ACL for it (c2c/acls.py says who may read and write what). Connect "
        "as the role that may (`c2c services credentials ROLE` on the local stack), or change "
        "the role's grants in c2c/acls.py and run `c2c services up`",
        code="kafka.not_authorized",
    )


def topic_partitions(settings: Settings, consumer: Consumer, topic: str) -> list[int]:
    """The partition numbers of ``topic``, as ``consumer``'s broker knows them; ServiceError
    if the topic is missing or may not be read."""
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    error = metadata.error if metadata is not None else None
    if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        raise not_authorized(settings, f"topic {topic}", "read")
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise ServiceError(
            f"topic {topic} does not exist at {settings.kafka_bootstrap}; run `c2c topics create`",
            code="kafka.no_topic",
        )
    return sorted(metadata.partitions)


def read_to_end(
    settings: Settings,
    topics: Iterable[str],
    *,
    since: Mapping[tuple[str, int], int] | None = None,
    until: Mapping[tuple[str, int], int] | None = None,
    partitions: Collection[int] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[Message]:
    """Every message of ``topics`` (only their ``partitions``, if given) from the first
    offset (or, for a partition ``since`` names, from that offset: :func:`end_offsets`
    taken before publishing gives only what was published after) to the end as it is when
    called (or, for a partition ``until`` names, up to that offset, not included: two
    :func:`end_offsets` give what was published between them). Later messages are not
    waited for. Commits nothing. ServiceError if a topic is missing or the end is not
    reached within ``timeout_s``."""
    import time

    consumer = _reader(settings)
    try:
        starts = dict(since or {})
        stops = until or {}
        ends: Offsets = {}
        for topic in topics:
            for partition in topic_partitions(settings, consumer, topic):
                if partitions is not None and partition not in partitions:
                    continue
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                start = max(low, starts.get((topic, partition), low))
                starts[(topic, partition)] = start
                end = min(high, stops.get((topic, partition), high))
                if end > start:
                    ends[(topic, partition)] = end
        if not ends:
            return
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"reading {len(ends)} partition(s) to their end took over {timeout_s:.0f} s",
                    code="kafka.read_timeout",
                )
            for message in consumer.consume(1000, 1.0):
                if message.error() is not None:
                    continue
                place = (str(message.topic()), int(message.partition() or 0))
                stop_at = ends.get(place)
                offset = int(message.offset() or 0)
                if stop_at is None or offset >= stop_at:  # done (an offset may be skipped)
                    ends.pop(place, None)
                    continue
                yield message
                if offset + 1 >= stop_at:
                    del ends[place]
    finally:
        consumer.close()

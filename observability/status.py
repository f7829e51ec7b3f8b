"""`c2c status`: one screen for operators, from any process, while the pipeline runs.

:func:`collect_status` reads only what Kafka, the registry, ClickHouse and the sink already
expose: service health, per-topic message counts and rates (end offsets sampled twice), lag
per consumer group and partition (committed offsets against end offsets), the dead-letter
topic's size with its last error (code and where, never the offending values: dead letters
may hold PII), the review topic's size with the last reason a record was held (fixed
sentences, never values), and the sink's freshness: seconds since the newest row reached
ClickHouse, from the reader the caller passes (the command line passes the sink's reader:
sinks/reading.py), and Kafka's replication: brokers missing from the cluster
(C2C_KAFKA_BROKERS) and partitions with fewer in-sync replicas than replicas. The result is
plain data (:class:`StatusReport`), printed or sent as JSON.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import CATALOGUE, DEAD_LETTER_TOPIC, REVIEW_TOPIC, get_topic

__all__ = [
    "GroupLag",
    "SinkFreshness",
    "Stage",
    "StatusReport",
    "TopicRate",
    "collect_status",
    "under_replicated",
]


@dataclass(frozen=True)
class TopicRate:
    topic: str
    messages: int
    per_second: float


@dataclass(frozen=True)
class GroupLag:
    """A consumer group's lag from its committed offsets. A partition assigned to a member
    but never committed is in ``uncommitted`` with what it holds; it counts in the lag only
    for a stage known to read from the start (``Stage.start``), since where another group
    starts (its auto.offset.reset) is not known here. ``members``: consumers in the group
    now; ``moved``: whether its committed offsets moved while status sampled (None: not
    sampled)."""

    group: str
    lag: int
    partitions: dict[str, int]  # "topic[partition]" -> lag
    members: int = 0
    moved: bool | None = None
    uncommitted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A stage of the pipeline whose consumer group status watches: its name for operators,
    its group, and its readiness page (JSON with "ready" and "reasons")."""

    name: str
    group: str
    ready_url: str
    start: str = "latest"  # where the group reads a partition it never committed

    @property
    def counts_url(self) -> str:
        """The stage's counts page, beside its readiness page."""
        return self.ready_url.replace("/health/ready", "/metrics/counts")


@dataclass(frozen=True)
class SinkFreshness:
    """Seconds since the newest row reached ClickHouse (None: no row yet), and from where
    that was read ("sink" web port or "clickhouse")."""

    freshness_s: float | None
    source: str


@dataclass
class StatusReport:
    services: list[dict[str, Any]] = field(default_factory=list)
    topics: list[TopicRate] = field(default_factory=list)
    groups: list[GroupLag] = field(default_factory=list)
    dead_letters: int = 0
    last_dead_letter: dict[str, Any] | None = None
    reviews: int = 0
    last_review: dict[str, Any] | None = None
    sink: SinkFreshness | None = None
    under_replicated: list[str] = field(default_factory=list)  # "topic[partition]"
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _end_offsets(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) watermark per partition of each existing topic."""
    metadata = consumer.list_topics(timeout=10)
    marks: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in topics:
        if topic not in metadata.topics:
            continue
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            marks[(topic, partition)] = (low, high)
    return marks


_Committed = dict[str, dict[tuple[str, int], int]]  # group -> (topic, partition) -> offset


def _committed(admin: AdminClient) -> tuple[_Committed, dict[str, set[tuple[str, int]]]]:
    """Each group's committed offsets, and the partitions assigned to its members now."""
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = sorted(g.group_id for g in listed.valid)
    committed: _Committed = {}
    for group in groups:
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        committed[group] = {
            (tp.topic, tp.partition): tp.offset for tp in futures[group].result().topic_partitions
        }
    assigned: dict[str, set[tuple[str, int]]] = {group: set() for group in groups}
    if groups:
        for group, future in admin.describe_consumer_groups(groups, request_timeout=10).items():
            for member in future.result().members:
                if member.assignment is not None:
                    assigned[group].update(
                        (tp.topic, tp.partition) for tp in member.assignment.topic_partitions
                    )
    return committed, assigned


def _group_lags(
    marks: dict[tuple[str, int], tuple[int, int]],
    committed: _Committed,
    assigned: dict[str, set[tuple[str, int]]],
    before: _Committed | None = None,
    from_start: frozenset[str] = frozenset(),
) -> list[GroupLag]:
    """Lag per group; groups in ``from_start`` read a never-committed partition from its
    start, so all it holds is lag."""
    lags = []
    for group, offsets in committed.items():
        partitions: dict[str, int] = {}
        uncommitted: dict[str, int] = {}
        for key in sorted(set(offsets) | assigned.get(group, set())):
            if key not in marks:
                continue
            low, high = marks[key]
            name = f"{key[0]}[{key[1]}]"
            offset = offsets.get(key, -1)
            if offset >= 0:
                partitions[name] = max(0, high - offset)
                continue
            uncommitted[name] = high - low
            if group in from_start:
                partitions[name] = high - low
        moved = None if before is None else before.get(group, {}) != offsets
        if partitions or uncommitted:
            lags.append(
                GroupLag(
                    group,
                    sum(partitions.values()),
                    partitions,
                    members=len(assigned.get(group, ())),
                    moved=moved,
                    uncommitted=uncommitted,
                )
            )
    return lags


def _page(url: str) -> Any:
    """The JSON a stage's page answers (an error status's body too); ValueError or OSError
    if there is none."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, with its reasons
        return json.loads(exc.read() or b"{}")


def _readiness(url: str) -> tuple[bool | None, list[str]]:
    """(ready, reasons) from a stage's readiness page; (None, [why]) if it did not answer
    with readiness (nothing listening, or another program on the port)."""
    try:
        body = _page(url)
        return bool(body.get("ready")), [str(r) for r in body.get("reasons", [])]
    except (OSError, ValueError, AttributeError) as exc:
        return None, [f"no answer at {url} ({exc})"]


def _progress(stage: Stage) -> float | None:
    """The sum of a stage's counts (messages handled, written...), None if unreadable: it
    grows while the stage works, between commits too."""
    try:
        counts = _page(stage.counts_url)
        return float(sum(v for v in counts.values() if isinstance(v, int | float)))
    except (OSError, ValueError, AttributeError):
        return None


def _stalls(
    report: StatusReport,
    stages: Sequence[Stage],
    sample_s: float,
    progress: Mapping[str, tuple[float | None, float | None]],
) -> list[str]:
    """Problems: a stage that says it is not ready; a stage's consumer group with members
    and lag whose offsets did not move while status sampled, and whose counts did not grow
    either (offsets are committed every few seconds, so offsets alone would call a busy
    stage stuck), named with the stage's last error."""
    problems = []
    reasons: dict[str, list[str]] = {}
    for stage in stages:
        ready, why = _readiness(stage.ready_url)
        reasons[stage.group] = why
        if ready is False:
            problems.append(f"{stage.name} is not ready: {'; '.join(why) or 'no reason given'}")
    by_group = {stage.group: stage for stage in stages}
    for lag in report.groups:  # moved is None when status did not sample
        owner = by_group.get(lag.group)
        if owner is None or lag.lag == 0 or lag.moved is not False or lag.members == 0:
            continue
        before, after = progress.get(owner.group, (None, None))
        if before is not None and after is not None and after != before:
            continue  # working between commits
        last = "; ".join(reasons.get(lag.group, []))
        problems.append(
            f"{owner.name} (group {lag.group}) has lag {lag.lag} and did not move in "
            f"{sample_s:.1f} s" + (f": {last}" if last else "")
        )
    return problems


def _last_record(
    settings: Settings,
    consumer: Consumer,
    marks: dict[tuple[str, int], tuple[int, int]],
    topic: str,
    time_field: str,
) -> dict[str, Any] | None:
    """The decoded record of ``topic`` with the latest ``time_field``, among the last
    message of each partition."""
    latest = [(p, high) for (t, p), (low, high) in marks.items() if t == topic and high > low]
    if not latest:
        return None
    decoder = SchemaRegistry(settings).decoder(get_topic(topic))
    found: dict[str, Any] | None = None
    for partition, high in latest:
        consumer.assign([TopicPartition(topic, partition, high - 1)])
        message = consumer.poll(5.0)
        if message is None or message.error() is not None or message.value() is None:
            continue
        record = decoder.decode(message.value() or b"")
        if found is None or record[time_field] > found[time_field]:
            found = record
    return found


def _where(record: dict[str, Any]) -> str:
    if record.get("source_file"):
        return f"{record['source_file']}:{record['source_line']}"
    return f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}"


def _dead_letter_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What an operator may see of a dead letter: when, stage, code, where; no values."""
    return {
        "failed_at": record["failed_at"].isoformat(),
        "stage": record["stage"],
        "error_code": record["error_code"],
        "where": _where(record),
    }


def _review_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What an operator may see of a record held for review: when, why (the resolver's
    fixed sentences), provider and where; never the raw value."""
    return {
        "received_at": record["received_at"].isoformat(),
        "reason": record["reason"],
        "provider": record["provider"],
        "where": _where(record),
    }


def under_replicated(metadata: Any) -> list[str]:
    """The partitions of ``metadata`` (an AdminClient's ClusterMetadata) with fewer in-sync
    replicas than replicas, as "topic[partition]"."""
    found = sorted(
        (name.startswith("__"), name, partition.id)  # Kafka's internal topics last
        for name, topic in metadata.topics.items()
        for partition in topic.partitions.values()
        if len(partition.isrs) < len(partition.replicas)
    )
    return [f"{name}[{partition}]" for _internal, name, partition in found]


def _replication_problems(metadata: Any, brokers: int) -> tuple[list[str], list[str]]:
    """(partitions under-replicated, problems): a broker of the ``brokers`` expected that
    is not in the cluster, and the under-replicated partitions."""
    problems = []
    present = sorted(metadata.brokers)
    if len(present) < brokers:
        missing = sorted(set(range(1, brokers + 1)) - set(present))
        problems.append(
            f"Kafka: {len(present)} of {brokers} brokers in the cluster"
            + (f" (node {', '.join(map(str, missing))} down)" if missing else "")
        )
    lagging = under_replicated(metadata)
    if lagging:
        shown = ", ".join(lagging[:5]) + (", ..." if len(lagging) > 5 else "")
        problems.append(
            f"Kafka: {len(lagging)} under-replicated partition(s) ({shown}): a broker is "
            "down or behind; acks=all writes wait for min.insync.replicas"
        )
    return lagging, problems


def _read(report: StatusReport, what: str, read: Callable[[], Any]) -> Any:
    """``read()``, or None with a problem noted (a service may be down: show the rest)."""
    try:
        return read()
    except Exception as exc:
        report.problems.append(f"{what} unreadable: {exc}")
        return None


def collect_status(
    settings: Settings,
    *,
    services: Callable[[], list[dict[str, Any]]],
    freshness: Callable[[], tuple[float | None, str]],
    stages: Sequence[Stage] = (),
    sample_s: float = 1.0,
) -> StatusReport:
    """Everything `c2c status` shows. ``services()`` says which services are up (one dict a
    service, with "name" and "up"); ``freshness()`` reads the sink's (seconds, source).
    ``stages``: the pipeline's stages, whose readiness pages and groups are checked for a
    stall (see :func:`_stalls`; a stall is seen only when ``sample_s`` > 0).
    Never raises for a service that is down: what cannot be read is listed in ``problems``."""
    report = StatusReport(services=services())
    sink = _read(report, "sink freshness", freshness)
    report.sink = None if sink is None else SinkFreshness(*sink)
    # a cluster's nodes are "kafka", "kafka-2", ...: Kafka answers while any of them is up
    kafka_up = any(
        (row["name"] == "kafka" or row["name"].startswith("kafka-")) and row["up"]
        for row in report.services
    )
    if not kafka_up:
        report.problems.append("Kafka is down: no topic, lag or dead-letter figures")
        return report
    topics = [topic.name for topic in CATALOGUE]
    consumer = Consumer(
        settings.kafka_config(**{"group.id": "c2c-status-reader", "enable.auto.commit": False})
    )
    admin = AdminClient(settings.kafka_config())
    try:
        lagging, problems = _replication_problems(
            admin.list_topics(timeout=10), settings.kafka_brokers
        )
        report.under_replicated = lagging
        report.problems += problems
        first = _end_offsets(consumer, topics)
        committed_before = _committed(admin)[0] if sample_s > 0 else None
        counted = {stage.group: _progress(stage) for stage in stages} if sample_s > 0 else {}
        started = time.monotonic()
        if sample_s > 0:
            time.sleep(sample_s)
        second = _end_offsets(consumer, topics)
        committed, assigned = _committed(admin)
        progress = {
            group: (was, _progress(by))
            for by in stages
            for group, was in counted.items()
            if group == by.group
        }
        elapsed = max(time.monotonic() - started, 1e-6)
        for topic in topics:
            keys = [k for k in second if k[0] == topic]
            if not keys:
                continue
            messages = sum(second[k][1] - second[k][0] for k in keys)
            produced = sum(second[k][1] - first.get(k, second[k])[1] for k in keys)
            report.topics.append(TopicRate(topic, messages, produced / elapsed))
        report.reviews = sum(
            high - low for (t, _), (low, high) in second.items() if t == REVIEW_TOPIC
        )
        report.dead_letters = sum(
            high - low for (t, _), (low, high) in second.items() if t == DEAD_LETTER_TOPIC
        )
        from_start = frozenset(stage.group for stage in stages if stage.start == "earliest")
        report.groups = _group_lags(second, committed, assigned, committed_before, from_start)
        report.problems += _stalls(report, stages, sample_s, progress)
        last = _read(
            report,
            "last dead letter",
            lambda: _last_record(settings, consumer, second, DEAD_LETTER_TOPIC, "failed_at"),
        )
        report.last_dead_letter = None if last is None else _dead_letter_summary(last)
        last = _read(
            report,
            "last review",
            lambda: _last_record(settings, consumer, second, REVIEW_TOPIC, "received_at"),
        )
        report.last_review = None if last is None else _review_summary(last)
    except KafkaException as exc:
        report.problems.append(f"Kafka: {exc.args[0]}")
    finally:
        consumer.close()
    return report

"""The topic catalogue: every Kafka topic the pipeline uses, declared as data.

Topics are created from this catalogue (:func:`c2c.kafka.ensure_topics`), never by a
broker's auto-creation, so partitions, retention and compaction are reviewed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from c2c.kinds import EVENT_KINDS, LINKED_KINDS, EventKind

__all__ = [
    "AUDIT_TOPIC",
    "CATALOGUE",
    "CHANGES_TOPIC",
    "CHANGE_COUNTS",
    "DEAD_LETTER_TOPIC",
    "INTAKE_MAX_MESSAGE_BYTES",
    "INTAKE_TOPIC",
    "OPERATOR_DECISIONS_TOPIC",
    "OPTOUT_DECISIONS_TOPIC",
    "REGISTRY_JOURNAL",
    "REVIEW_TOPIC",
    "Topic",
    "changelog_topic",
    "get_topic",
    "intake_topic",
    "replication_factor",
    "shard_applies_topic",
    "shard_calls_topic",
    "shard_changelog_topic",
    "shard_decider_topic",
    "shard_replies_topic",
    "topic_config",
]

Zone = Literal["identity", "deidentified", "operations"]


@dataclass(frozen=True)
class Topic:
    """One topic: its name, the Avro schema of its values, and how the broker keeps it.

    ``schema`` is the full name of the value's record in schemas/avro/ ('' for a topic whose
    values are not ours, such as the registry's journal). ``zone`` says what it may carry: the
    identity zone carries PII (SSNs, SSIDs, ITINs, names, birth dates in clear) and only the
    identity resolver (and operators, for dead letters) reads it; no other topic may hold an
    identifier or a name (tests/integration/test_at_rest.py scans them). ``kept`` says why it
    is kept as long as ``config`` keeps it: every identity-zone topic must say.
    ``holds_state``: losing an acknowledged message of it loses data held nowhere else (a
    changelog, the intake, decisions, raw events not yet forwarded); such a topic is
    written with ``min.insync.replicas`` 2 where the cluster has 3 brokers
    (:func:`topic_config`).
    """

    name: str
    schema: str
    zone: Zone
    description: str
    partitions: int = 3
    config: dict[str, str] = field(default_factory=dict)
    kept: str = ""
    holds_state: bool = True

    @property
    def value_subject(self) -> str:
        """Registry subject of the value schema (topic name strategy)."""
        return f"{self.name}-value"


REGISTRY_JOURNAL = Topic(
    name="kafkasql-journal",
    schema="",
    zone="operations",
    description=(
        "Apicurio Registry's storage (kafkasql). One partition, kept forever: the registry "
        "rebuilds its state from it at start and refuses a topic that could lose data."
    ),
    partitions=1,
    config={"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
)

_DAY_MS = 24 * 3600 * 1000
_RAW = {"retention.ms": str(7 * _DAY_MS)}
_LINKED = {"retention.ms": str(30 * _DAY_MS)}

# A pack on the intake holds at most about 900 kB of raw messages, or one larger message
# alone: a raw message may be as large as a raw topic takes (the broker's default, about
# 1 MB), and its pack a little larger, so the intake takes messages of up to 2 MiB (the
# forwarder's producer too).
INTAKE_MAX_MESSAGE_BYTES = 2 * 1024 * 1024


def intake_topic(name: str) -> Topic:
    """An intake topic of the identity worker (the catalogue's, or a test's own)."""
    return Topic(
        name=name,
        schema="",
        zone="identity",
        description=(
            "Raw events of every kind, forwarded untouched by the identity worker's intake "
            "agent (headers say where each was read). One partition per resolver shard: "
            "every record that could match another is resolved by one resolver, in one order."
        ),
        partitions=1,
        config={**_RAW, "max.message.bytes": str(INTAKE_MAX_MESSAGE_BYTES)},
        kept=(
            "7 days, as the raw topics: a resolver that fails over or restarts resolves again "
            "from its last committed offset, and a new group reads it from its start; the "
            "raw events stay on the raw topics as long"
        ),
    )


def changelog_topic(app_id: str, table: str, partitions: int = 1) -> Topic:
    """The changelog of the identity worker's Faust table ``table`` (Faust's name for it:
    ``<app id>-<table>-changelog``). Declared here, and created by the worker before Faust
    starts, so that it is replicated as every other topic holding state (Faust alone would
    create it with ``topic_replication_factor`` and no ``min.insync.replicas``).
    ``partitions``: the resolver's shards (the intake's partitions)."""
    return Topic(
        name=f"{app_id}-{table}-changelog",
        schema="",
        zone="identity",
        description=(
            f"Changelog of the identity worker's table {table!r}: every write to it, so that "
            "a new or restarted worker rebuilds the table (Faust's recovery)."
        ),
        partitions=partitions,
        config={"cleanup.policy": "compact"},
        kept=(
            "compacted: the last value of every key, as long as the key lives (a person, a "
            "source id); the table is the resolver's state"
        ),
    )


def shard_calls_topic(app_id: str, shards: int) -> Topic:
    """The rounds that read the sharded resolver's shards (prepare, probe, score), which
    its decider sends (streams/shards.py): partition i is shard i's, in the order sent."""
    return Topic(
        name=f"{app_id}-shard-calls",
        schema="",
        zone="identity",
        description=(
            "The sharded resolver's reading rounds (prepare: an epoch's raw records; probe; "
            "score), one partition per shard, sealed under the identity secret."
        ),
        partitions=shards,
        config=dict(_RAW),
        kept=(
            "7 days, as the intake whose records the prepare calls carry: a shard's next "
            "holder answers the calls its last holder left unanswered"
        ),
    )


def shard_applies_topic(app_id: str, shards: int) -> Topic:
    """The sharded resolver's writes to its shards (each epoch's apply calls): partition i
    is shard i's, which its holders and standbys apply in order."""
    return Topic(
        name=f"{app_id}-shard-applies",
        schema="",
        zone="identity",
        description=(
            "What each epoch wrote to each shard of the sharded resolver (persons' kept "
            "state, blocks, source ids, merges), sealed under the identity secret."
        ),
        partitions=shards,
        config=dict(_RAW),
        kept=(
            "7 days, as the intake: a shard's state is its changelog (compacted) and the "
            "apply calls after the last one the changelog reflects, never more than a few "
            "epochs old"
        ),
    )


def shard_changelog_topic(app_id: str, shards: int) -> Topic:
    """Each key of each shard of the sharded resolver and its value now, as the shard's
    holder applied it: compacted, so that a host with no store of a shard rebuilds it from
    the shard's state, not its history (streams/shards.py)."""
    return Topic(
        name=f"{app_id}-shard-changelog",
        schema="",
        zone="identity",
        description=(
            "The sharded resolver's state by key (persons' kept state, blocks, source ids, "
            "merges, opt-out requests) and the apply call it reflects, one partition per "
            "shard, sealed under the identity secret; block keys hashed."
        ),
        partitions=shards,
        config={"cleanup.policy": "compact"},
        kept=(
            "compacted: the last value of every key, as long as the key lives; the shards' "
            "state, as the persons table's changelog is the one-shard resolver's"
        ),
    )


def shard_decider_topic(app_id: str) -> Topic:
    """The sharded resolver's decider's log (streams/shards.py, ``DeciderLog``): every
    merge, and the last epoch decided (its resolutions and writes, and where the intake
    stands), written before the shards are sent the epoch's writes."""
    return Topic(
        name=f"{app_id}-shard-decider",
        schema="",
        zone="identity",
        description=(
            "The sharded resolver's decider's write-ahead log: merges (ids), and the last "
            "epoch's resolutions and writes (persons' kept state), sealed."
        ),
        partitions=1,
        config={"cleanup.policy": "compact"},
        kept=(
            "compacted: every merge as long as the persons, and the last epoch only (earlier "
            "ones are deleted as each is written); a decider started again resumes from it"
        ),
    )


def shard_replies_topic(app_id: str) -> Topic:
    """The shards' answers to the decider's rounds: one partition, read by the decider."""
    return Topic(
        name=f"{app_id}-shard-replies",
        schema="",
        zone="identity",
        description=(
            "The shards' answers to the sharded resolver's rounds (blocks, scores, persons), "
            "sealed under the identity secret; the decider reads them."
        ),
        partitions=1,
        config={"retention.ms": str(_DAY_MS)},
        kept="a day: the decider reads an answer within seconds of its sending",
        holds_state=False,
    )


# Replicas of every topic: as many as the cluster has brokers, up to 3 (one development
# broker takes 1). With 3, a write to a topic holding state waits for 2 of them
# (acks=all with min.insync.replicas 2): one broker may be lost with nothing acknowledged lost.
_MAX_REPLICAS = 3
_MIN_INSYNC = 2


def replication_factor(brokers: int) -> int:
    """The replication factor of every topic on a cluster of ``brokers`` brokers."""
    return min(_MAX_REPLICAS, max(1, brokers))


def topic_config(topic: Topic, brokers: int) -> dict[str, str]:
    """The configuration ``topic`` is created (and aligned) with on a cluster of
    ``brokers`` brokers: its declared ``config``, plus ``min.insync.replicas`` 2 for a
    topic that holds state once it has 3 replicas."""
    config = dict(topic.config)
    if topic.holds_state and replication_factor(brokers) >= _MAX_REPLICAS:
        config.setdefault("min.insync.replicas", str(_MIN_INSYNC))
    return config


# Raw and linked topics have 6 partitions: up to 6 workers share a stage, and every topic of
# one stage has the same count so that a person's events co-partition.
_STAGE_PARTITIONS = 6


def _raw(kind: EventKind) -> Topic:
    return Topic(
        name=kind.raw_topic,
        schema=kind.raw_schema,
        zone="identity",
        description=(
            f"{kind.description}, as providers send them, with PII. Keyed by the source's "
            "person id."
        ),
        partitions=_STAGE_PARTITIONS,
        config=_RAW,
        kept=(
            "7 days: long enough to resolve a backlog after an outage of a few days; "
            "providers' files are the record of what was sent, and the resolver keeps only "
            "keyed hashes and sealed profiles of it"
        ),
    )


def _linked(kind: EventKind) -> Topic:
    return Topic(
        name=kind.linked_topic,
        schema=kind.linked_schema,
        zone="deidentified",
        description=(
            f"{kind.linked_description or kind.description} keyed by person id, without PII."
        ),
        partitions=_STAGE_PARTITIONS,
        config=_LINKED,
    )


# The raw and linked topics of every kind of event (c2c.kinds), then the pipeline's own.
CATALOGUE: tuple[Topic, ...] = (
    *(_raw(kind) for kind in EVENT_KINDS),
    *(_linked(kind) for kind in LINKED_KINDS),
    Topic(
        name="c2c.identity.changes",
        schema="org.c2cstream.linked.IdentityChange",
        zone="deidentified",
        description="Persons created, records linked, persons merged; sinks re-key on merges.",
        partitions=_STAGE_PARTITIONS,
        config={"retention.ms": "-1"},
    ),
    Topic(
        name="c2c.identity.optouts",
        schema="org.c2cstream.linked.OptOutDecision",
        zone="deidentified",
        description=(
            "Opt-outs the resolver applied, revoked, or spread by a merge: the person ids "
            "whose rows downstream removes or re-admits. Ids only; kept forever, so that a "
            "rebuilt sink knows who is out."
        ),
        partitions=1,
        config={"retention.ms": "-1"},
    ),
    intake_topic("c2c.identity.intake"),
    Topic(
        name="c2c.identity.review",
        schema="org.c2cstream.identity.NeedsReview",
        zone="identity",
        description=(
            "Raw events the resolver would not force into a person (no usable identifier, "
            "a name alone), and possible matches it would not make on its own, with the "
            "reason. Identity zone: holds the raw event."
        ),
        partitions=1,
        config={"retention.ms": str(90 * _DAY_MS)},
        kept=(
            "90 days: a reviewer must see the raw event to decide, and a quarter covers the "
            "providers' correction cycle; after it the provider sends a corrected record"
        ),
    ),
    Topic(
        name="c2c.identity.decisions",
        schema="org.c2cstream.identity.OperatorDecision",
        zone="identity",
        description=(
            "Operators' decisions on possible matches held for review (`c2c review "
            "link|separate`), which the identity worker applies as identity changes. Ids "
            "and the operator's reason."
        ),
        partitions=1,
        config={"retention.ms": "-1"},
        kept=(
            "for ever: a worker that rebuilds its state from scratch (a new group reading "
            "the intake from its start) must apply every decision again, and a separation "
            "holds for as long as the persons do"
        ),
    ),
    Topic(
        name="c2c.deadletter",
        schema="org.c2cstream.ops.DeadLetter",
        zone="identity",
        description=(
            "Messages and rows that could not be processed, with their original bytes and "
            "where they came from. May hold PII: identity zone."
        ),
        partitions=1,
        config={"retention.ms": str(30 * _DAY_MS)},
        kept=(
            "30 days: an operator finds the cause and the provider re-sends the row in that "
            "time; the rejects file beside the provider's extract is the lasting copy"
        ),
    ),
    Topic(
        name="c2c.ops.heartbeat",
        schema="org.c2cstream.ops.Heartbeat",
        zone="operations",
        description="Probe events sent through the stack by `c2c demo` and health checks.",
        partitions=1,
        config={"retention.ms": str(_DAY_MS)},
        holds_state=False,  # probes: a lost one is sent again
    ),
    Topic(
        name="c2c.ops.audit",
        schema="org.c2cstream.ops.OperatorAction",
        zone="operations",
        description=(
            "Operators' decisions on dead letters and reviews: who, when, what, on which id, "
            "and where it went. Ids and places only; kept forever."
        ),
        partitions=1,
        config={"retention.ms": "-1"},
    ),
)

DEAD_LETTER_TOPIC = "c2c.deadletter"
AUDIT_TOPIC = "c2c.ops.audit"
REVIEW_TOPIC = "c2c.identity.review"
CHANGES_TOPIC = "c2c.identity.changes"


class _ChangeCounts(dict[str, str]):
    def __missing__(self, change_type: str) -> str:
        return f"change.{change_type}"


# The counts key of each identity change type on CHANGES_TOPIC ("change.<type>"), as the
# identity worker and the sink count them (/metrics/counts): looked up for the known types,
# with no string built per change; made for any other.
CHANGE_COUNTS: Mapping[str, str] = _ChangeCounts(
    {
        kind: f"change.{kind}"
        for kind in ("PERSON_CREATED", "RECORD_LINKED", "PERSONS_MERGED", "PERSON_SPLIT")
    }
)
INTAKE_TOPIC = "c2c.identity.intake"
OPTOUT_DECISIONS_TOPIC = "c2c.identity.optouts"
OPERATOR_DECISIONS_TOPIC = "c2c.identity.decisions"


def get_topic(name: str) -> Topic:
    """The catalogue entry for ``name``; KeyError names the known topics."""
    for topic in CATALOGUE:
        if topic.name == name:
            return topic
    known = ", ".join(topic.name for topic in CATALOGUE)
    raise KeyError(f"unknown topic {name!r}; the catalogue has: {known}")

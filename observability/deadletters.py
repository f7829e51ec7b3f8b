"""`c2c deadletters`: dead letters worked from the command line.

A dead letter is open until an operator decides: **replay** sends its original key and value,
byte for byte, back to the topic it was read from (or to another, when it was sent to the
wrong one) with a ``c2c-replay-of`` header naming the dead letter; **discard** records that
it is left as it is. Each decision is an OperatorAction on the audit topic
(observability/audit.py), published after the replayed message is acknowledged; a dead
letter's state is its latest decision there. The dead letters themselves stay on their topic
untouched (it is the record of what failed).

What can be replayed: a message read from a topic, kept whole. A rejected file row is not a
message (it is a line of a provider's file, in FILE.rejects.csv too): fix the file and
produce it again. A message larger than the dead letter could hold was kept in part: recover
it from its source by its SHA-256.

:func:`select` and :func:`replay_plan` are plain functions; :func:`read_dead_letters`,
:func:`replay` and :func:`discard` do the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaException, Producer

from c2c.errors import C2CError, ServiceError
from c2c.kafka import DURABLE_PRODUCER, read_at
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import DEAD_LETTER_TOPIC, get_topic
from observability.audit import AuditLog, operator_action, read_decided

__all__ = [
    "REPLAY_HEADER",
    "DeadLetter",
    "DeadLetterFilter",
    "discard",
    "find",
    "parse_since",
    "read_dead_letters",
    "replay",
    "replay_plan",
    "select",
    "skip",
]

REPLAY_HEADER = "c2c-replay-of"
STATES = ("open", "replayed", "discarded")
_STATE_OF_ACTION = {"deadletter.replay": "replayed", "deadletter.discard": "discarded"}


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read: its record, its place on the dead-letter topic, and the
    latest operator decision on it (None: open)."""

    record: dict[str, Any]
    offset: int
    decision: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.record["dead_letter_id"])

    @property
    def state(self) -> str:
        if self.decision is None:
            return "open"
        return _STATE_OF_ACTION.get(self.decision["action"], "open")

    @property
    def where(self) -> str:
        record = self.record
        if record.get("source_file"):
            return f"{record['source_file']}:{record['source_line']}"
        return f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}"

    def summary(self) -> dict[str, Any]:
        """What `list` shows: when, stage, code, where, state; never the values."""
        record = self.record
        return {
            "dead_letter_id": self.id,
            "failed_at": record["failed_at"].isoformat(),
            "stage": record["stage"],
            "error_code": record["error_code"],
            "where": self.where,
            "state": self.state,
        }

    def details(self) -> dict[str, Any]:
        """What `show` shows: the summary, the error message, sizes and digests, the
        decision; the original bytes only on request (they may hold PII)."""
        record = self.record
        value = record.get("original_value")
        return {
            **self.summary(),
            "error_message": record["error_message"],
            "source_topic": record.get("source_topic"),
            "source_partition": record.get("source_partition"),
            "source_offset": record.get("source_offset"),
            "source_file": record.get("source_file"),
            "source_line": record.get("source_line"),
            "original_key_size": _size(record.get("original_key"), record.get("original_key_size")),
            "original_value_size": _size(value, record.get("original_value_size")),
            "original_value_sha256": record.get("original_value_sha256"),
            "truncated": _truncated(record),
            "replayable": _unreplayable(record) is None,
            "decision": None if self.decision is None else _action_dict(self.decision),
        }


def _size(kept: bytes | None, size: int | None) -> int | None:
    return size if size is not None else (None if kept is None else len(kept))


def _truncated(record: dict[str, Any]) -> bool:
    for name in ("key", "value"):
        kept, size = record.get(f"original_{name}"), record.get(f"original_{name}_size")
        if kept is not None and size is not None and size > len(kept):
            return True
    return False


def _action_dict(action: dict[str, Any]) -> dict[str, Any]:
    return {**action, "acted_at": action["acted_at"].isoformat()}


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to take: each set field must match (``code`` and ``stage`` match
    exactly or as a prefix ending at a dot or colon: ``row`` takes ``row.invalid``)."""

    topic: str | None = None
    code: str | None = None
    stage: str | None = None
    since: datetime | None = None
    state: str | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.topic, self.code, self.stage, self.since))


def _prefix_match(value: str, wanted: str) -> bool:
    return value == wanted or (value.startswith(wanted) and value[len(wanted)] in ".:")


def select(letters: Iterable[DeadLetter], wanted: DeadLetterFilter) -> list[DeadLetter]:
    """The dead letters ``wanted`` takes, in the order given."""
    chosen = []
    for letter in letters:
        record = letter.record
        if wanted.topic is not None and record.get("source_topic") != wanted.topic:
            continue
        if wanted.code is not None and not _prefix_match(record["error_code"], wanted.code):
            continue
        if wanted.stage is not None and not _prefix_match(record["stage"], wanted.stage):
            continue
        if wanted.since is not None and record["failed_at"] < wanted.since:
            continue
        if wanted.state is not None and letter.state != wanted.state:
            continue
        chosen.append(letter)
    return chosen


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``text`` as a moment: an ISO date or date-time (UTC unless it says), or a duration
    back from ``now`` (``90s``, ``30m``, ``2h``, ``7d``, ``1w``). ValueError says which
    forms are taken."""
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give an ISO date or date-time (2026-12-06, "
            "2026-12-06T15:00) or a duration back from now (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unreplayable(record: dict[str, Any]) -> str | None:
    """Why ``record`` cannot be replayed as it is, or None."""
    if record.get("source_topic") is None:
        where = f"{record.get('source_file')}:{record.get('source_line')}"
        return (
            f"it is a rejected file row ({where}), not a message: fix the row in the file "
            "(FILE.rejects.csv has it with its reason) and `c2c produce` it again"
        )
    if record.get("original_value") is None:
        return "it has no original value (a tombstone): there is nothing to send"
    if _truncated(record):
        return (
            f"its original was kept in part ({record.get('original_value_size'):,} bytes in "
            f"all): recover the message from its source by its SHA-256 "
            f"{record.get('original_value_sha256')} and publish it there"
        )
    return None


def replay_plan(letter: DeadLetter, to_topic: str | None = None) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) that replaying ``letter`` sends: its original bytes, to its
    source topic or ``to_topic``. C2CError ``deadletter.not_replayable`` says why not."""
    why = _unreplayable(letter.record)
    if why is not None:
        raise C2CError(
            f"dead letter {letter.id} cannot be replayed: {why}", code="deadletter.not_replayable"
        )
    topic = to_topic or str(letter.record["source_topic"])
    try:
        get_topic(topic)
    except KeyError as exc:
        raise C2CError(
            f"dead letter {letter.id}: {exc.args[0]}", code="deadletter.not_replayable"
        ) from exc
    return topic, letter.record.get("original_key"), letter.record["original_value"]


def read_dead_letters(settings: Settings, registry: SchemaRegistry) -> list[DeadLetter]:
    """Every dead letter on the dead-letter topic, oldest first, each with its latest
    decision from the audit."""
    return [
        DeadLetter(*item)
        for item in read_decided(settings, registry, DEAD_LETTER_TOPIC, "dead_letter_id")
    ]


def find(letters: Sequence[DeadLetter], dead_letter_id: str) -> DeadLetter:
    """The dead letter with this id (or a unique id prefix of 8 characters or more)."""
    wanted = dead_letter_id.strip().lower()
    found = [
        letter
        for letter in letters
        if letter.id == wanted or (len(wanted) >= 8 and letter.id.startswith(wanted))
    ]
    if len(found) != 1:
        what = "no dead letter" if not found else f"{len(found)} dead letters"
        raise C2CError(
            f"{what} with id {dead_letter_id!r} on {DEAD_LETTER_TOPIC} "
            f"({len(letters)} read); `c2c deadletters list` shows their ids",
            code="deadletter.unknown",
        )
    return found[0]


def _decided(letter: DeadLetter, again: bool) -> None:
    if letter.state != "open" and not again:
        assert letter.decision is not None
        raise C2CError(
            f"dead letter {letter.id} was already {letter.state} by "
            f"{letter.decision['operator']} at {letter.decision['acted_at'].isoformat()}; "
            "pass --again to act on it once more",
            code="deadletter.decided",
        )


def replay(
    settings: Settings,
    registry: SchemaRegistry,
    letters: Sequence[DeadLetter],
    *,
    operator: str,
    note: str | None = None,
    to_topic: str | None = None,
    again: bool = False,
) -> list[dict[str, Any]]:
    """Send each dead letter's original bytes back (:func:`replay_plan`), then audit each
    one whose message the broker acknowledged, with where it landed. Every letter is
    checked before anything is sent. Returns the audit records."""
    plans = []
    for letter in letters:
        _decided(letter, again)
        plans.append((letter, replay_plan(letter, to_topic)))
    producer = Producer(settings.kafka_config(**DURABLE_PRODUCER))
    landed: dict[str, str] = {}
    failed: dict[str, str] = {}

    def delivered(letter_id: str) -> Any:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failed[letter_id] = str(err)
            else:
                landed[letter_id] = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"

        return report

    for letter, (topic, key, value) in plans:
        try:
            producer.produce(
                topic,
                key=key,
                value=value,
                headers=[(REPLAY_HEADER, letter.id.encode())],
                on_delivery=delivered(letter.id),
            )
        except KafkaException as exc:
            failed[letter.id] = str(exc)
        producer.poll(0)
    producer.flush(30)
    audit = AuditLog(settings, registry)
    actions = []
    for letter, _plan in plans:
        if letter.id not in landed:
            continue
        action = operator_action(
            operator=operator,
            action="deadletter.replay",
            subject=letter.id,
            note=note,
            target=landed[letter.id],
        )
        audit.record(action, producer)
        actions.append(action)
    producer.flush(30)
    unsent = [letter.id for letter, _plan in plans if letter.id not in landed]
    if unsent:
        reasons = "; ".join(sorted(set(failed.values()))[:3]) or "not acknowledged in 30 s"
        raise ServiceError(
            f"{len(unsent)} of {len(plans)} dead letter(s) were not replayed ({reasons}): "
            f"{', '.join(unsent[:5])}; the others were, and are audited",
            code="deadletter.unsent",
        )
    return actions


def discard(
    settings: Settings,
    registry: SchemaRegistry,
    letters: Sequence[DeadLetter],
    *,
    operator: str,
    note: str,
    again: bool = False,
) -> list[dict[str, Any]]:
    """Record that each dead letter is left as it is, with the operator's reason."""
    for letter in letters:
        _decided(letter, again)
    audit = AuditLog(settings, registry)
    actions = []
    for letter in letters:
        action = operator_action(
            operator=operator, action="deadletter.discard", subject=letter.id, note=note
        )
        audit.record(action)
        actions.append(action)
    return actions


def _read_one(settings: Settings, topic: str, partition: int, offset: int) -> Any:
    """The message at ``offset`` of ``topic[partition]``; C2CError if there is none."""
    message = read_at(settings, topic, partition, offset)
    if message is None:
        raise C2CError(
            f"no message at {topic}[{partition}]@{offset}: `c2c status` shows where the "
            "group stands",
            code="deadletter.no_message",
        )
    return message


def skip(
    settings: Settings,
    registry: SchemaRegistry,
    *,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    operator: str,
    note: str,
) -> dict[str, Any]:
    """Move consumer group ``group`` past the message at ``topic[partition]@offset`` that
    stops it (a poison message in a crash loop): the message is dead-lettered whole first
    (code ``operator.skipped``, replayable once the consumer is fixed), then the group's
    offset is set to the next one, then the decision is audited. Refused while the group
    has members (stop its consumers first) or when its committed offset is not
    ``offset`` (the message is not where it stands)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from c2c.deadletter import DeadLetterPublisher, dead_letter

    admin = AdminClient(settings.kafka_config())
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    if described.members:
        raise C2CError(
            f"group {group} has {len(described.members)} member(s) now: stop its consumers "
            "(a crash-looping one too) and run this again",
            code="deadletter.group_active",
        )
    listed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition)])]
    )[group].result()
    committed = listed.topic_partitions[0].offset
    if committed != offset:
        raise C2CError(
            f"group {group} stands at offset {committed} of {topic}[{partition}], not "
            f"{offset}: skipping would pass over other messages, or one already passed",
            code="deadletter.not_stuck",
        )
    message = _read_one(settings, topic, partition, offset)
    record = dead_letter(
        stage=f"operator:skip:{group}",
        error=C2CError(note, code="operator.skipped"),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=message.key(),
        value=message.value(),
    )
    publisher = DeadLetterPublisher(settings, registry)
    publisher.publish(record)
    publisher.flush()
    altered = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition, offset + 1)])]
    )[group].result()
    if altered.topic_partitions[0].error is not None:
        raise ServiceError(
            f"dead letter {record['dead_letter_id']} was sent, but the offset of group "
            f"{group} could not be moved: {altered.topic_partitions[0].error}",
            code="deadletter.commit",
        )
    action = operator_action(
        operator=operator,
        action="deadletter.skip",
        subject=str(record["dead_letter_id"]),
        note=note,
        target=f"group {group} {topic}[{partition}] moved to {offset + 1}",
    )
    AuditLog(settings, registry).record(action)
    return action

"""Dead letters: what could not be processed, kept whole with where it came from and why.

:func:`dead_letter` builds the record (plain data, no I/O); :class:`DeadLetterPublisher`
sends it to the dead-letter topic and counts what it sent. Nothing read is ever dropped: a
consumer that cannot decode a message publishes it here and goes on.

A dead letter is never over a size Kafka takes: it carries the original key and value
whole up to :data:`MAX_ORIGINAL_KEY` and :data:`MAX_ORIGINAL_VALUE` bytes, and beyond that
their first bytes, with the whole one's size and SHA-256 digest (``original_*_size``,
``original_*_sha256``: a truncated original is one whose size is larger than what the
record holds); the error message is cut at :data:`MAX_ERROR_MESSAGE` characters. Without
it, the dead letter of a message near the broker's limit (the original plus the fields
about it) would be over the limit itself, and the process sending it would die.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from c2c.errors import C2CError, ServiceError
from c2c.kafka import DURABLE_PRODUCER, not_authorized
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import DEAD_LETTER_TOPIC, get_topic

__all__ = [
    "BROKER_MESSAGE_MAX_BYTES",
    "MAX_ERROR_MESSAGE",
    "MAX_ORIGINAL_KEY",
    "MAX_ORIGINAL_VALUE",
    "DeadLetterPublisher",
    "dead_letter",
    "failure_id",
]

BROKER_MESSAGE_MAX_BYTES = 1_048_588
"""Kafka's default ``message.max.bytes`` (a record batch, at the broker); librdkafka's own
default for a producer's message is lower, 1,000,000."""

MAX_ORIGINAL_VALUE = BROKER_MESSAGE_MAX_BYTES // 2
"""Bytes of an original value (or row) a dead letter carries: half the broker's default
limit, leaving the other half for the key, the message and the batch's framing."""

MAX_ORIGINAL_KEY = 16 * 1024
"""Bytes of an original key a dead letter carries."""

MAX_ERROR_MESSAGE = 8 * 1024
"""Characters of the error message a dead letter carries (at most 4 bytes each)."""


_QUEUE_WAIT_S = 60.0


def _kept(original: bytes | None, limit: int) -> tuple[bytes | None, int | None, str | None]:
    """(what the dead letter holds of ``original``, its whole size, its SHA-256 hex when
    it was cut). No digest of an original kept whole: a key may be an SSN (wage records
    are keyed by it), and an unkeyed digest of nine digits is as good as the digits."""
    if original is None:
        return None, None, None
    if len(original) <= limit:
        return original, len(original), None
    return original[:limit], len(original), hashlib.sha256(original).hexdigest()


def _message_kept(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE:
        return message
    return f"{message[:MAX_ERROR_MESSAGE]}... (cut: {len(message):,} characters in all)"


_FAILURES = uuid.UUID("6f1c2d0e-5b7a-4c1e-9d2f-3a8b7c6d5e4f")


def failure_id(
    stage: str,
    code: str,
    same_as: str | None,
    topic: str | None,
    partition: int | None,
    offset: int | None,
) -> str:
    """A dead letter's id: a UUID5 of the stage, the error code and what failed
    (``same_as``, else the message's topic, partition and offset), so the same failure
    met again has the same id; a random one when neither says what failed."""
    if same_as is None and (topic is None or offset is None):
        return str(uuid.uuid4())
    what = same_as if same_as is not None else f"{topic}/{partition}/{offset}"
    return str(uuid.uuid5(_FAILURES, f"{stage}\x00{code}\x00{what}"))


def dead_letter(
    *,
    stage: str,
    error: BaseException,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    source_file: str | None = None,
    source_line: int | None = None,
    key: bytes | None = None,
    value: bytes | None = None,
    same_as: str | None = None,
) -> dict[str, Any]:
    """The DeadLetter record for one failure. ``error``'s code (for a C2CError) or class
    name becomes error_code; its message, error_message. ``key`` and ``value`` are kept
    whole up to MAX_ORIGINAL_KEY and MAX_ORIGINAL_VALUE bytes, their first bytes beyond
    with the whole one's digest, and their size always: the record's encoding is always well under
    BROKER_MESSAGE_MAX_BYTES, whatever it was given (tests/unit/test_deadletter.py).

    ``dead_letter_id`` is the same for the same failure met again (:func:`failure_id`): a
    stage that crashed after sending a dead letter and before committing the message reads
    it again and sends it again, and a reader keeps one of the two by its id. The same
    failure is the same stage, error code and ``same_as`` (what the failure is of, where
    the message's topic, partition and offset do not say it: a row the sink wrote in a
    batch names its table and event id) or source position; with neither (a row of a file),
    each dead letter has an id of its own."""
    code = error.code if isinstance(error, C2CError) else type(error).__name__
    message = str(error)
    if isinstance(error, C2CError):
        message = message.removesuffix(f" [{error.code}]")
    kept_key, key_size, key_sha256 = _kept(key, MAX_ORIGINAL_KEY)
    kept_value, value_size, value_sha256 = _kept(value, MAX_ORIGINAL_VALUE)
    return {
        "dead_letter_id": failure_id(
            stage, code, same_as, source_topic, source_partition, source_offset
        ),
        "failed_at": datetime.now(UTC),
        "stage": stage,
        "error_code": code,
        "error_message": _message_kept(message),
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "source_file": source_file,
        "source_line": source_line,
        "original_key": kept_key,
        "original_value": kept_value,
        "original_key_size": key_size,
        "original_key_sha256": key_sha256,
        "original_value_size": value_size,
        "original_value_sha256": value_sha256,
    }


_REFUSED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


class DeadLetterPublisher:
    """Publishes dead letters (Avro, registered schema) and counts them by error code."""

    def __init__(
        self, settings: Settings, registry: SchemaRegistry, producer: Producer | None = None
    ) -> None:
        self._topic = get_topic(DEAD_LETTER_TOPIC)
        self._encoder = registry.encoder(self._topic)
        self._producer = producer or Producer(settings.kafka_config(**DURABLE_PRODUCER))
        self._owns_producer = producer is None
        self._settings = settings
        self.counts: Counter[str] = Counter()
        self._failed: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def publish(self, record: dict[str, Any]) -> None:
        """Queue one dead letter for sending; :meth:`flush` confirms delivery. A dead letter
        Kafka refuses at once is counted as failed, for :meth:`flush` to report, and the
        caller goes on (a file's other rows are still read); while the local queue is full,
        this waits for deliveries to make room, up to _QUEUE_WAIT_S."""
        value = self._encoder.encode(record)
        waited = 0.0
        while True:
            try:
                self._producer.produce(
                    self._topic.name,
                    key=record["original_key"],
                    value=value,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                if waited >= _QUEUE_WAIT_S:
                    self._failed.append(f"the local queue stayed full for {waited:.0f} s")
                    break
                self._producer.poll(0.5)
                waited += 0.5
            except KafkaException as exc:
                self._failed.append(str(exc))
                break
        self._producer.poll(0)
        self.counts[record["error_code"]] += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; ServiceError if one was not
        (``kafka.not_authorized`` if the broker refuses this principal the topic)."""
        try:
            remaining = self._producer.flush(timeout_s)
        except KafkaException as exc:
            # an idempotent producer with no topic to write is refused its producer id as
            # a cluster authorization failure (KIP-679): it is this topic it may not write
            if exc.args[0].code() in _REFUSED:
                raise not_authorized(self._settings, f"topic {self._topic.name}", "write") from exc
            raise
        if remaining or self._failed:
            raise ServiceError(
                f"{remaining} dead letter(s) unsent and {len(self._failed)} failed "
                f"({'; '.join(self._failed[:3])}) on {self._topic.name}",
                code="deadletter.unsent",
            )

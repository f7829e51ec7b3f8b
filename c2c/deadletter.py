"""Dead letters: what could not be processed, kept whole with where it came from and why.

:func:`dead_letter` builds the record (plain data, no I/O); :class:`DeadLetterPublisher`
sends it to the dead-letter topic and counts what it sent. Nothing read is ever dropped: a
consumer that cannot decode a message publishes it here and goes on.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from c2c.errors import C2CError, ServiceError
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import DEAD_LETTER_TOPIC, get_topic

__all__ = ["DeadLetterPublisher", "dead_letter"]


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
) -> dict[str, Any]:
    """The DeadLetter record for one failure. ``error``'s code (for a C2CError) or class
    name becomes error_code; its message, error_message."""
    code = error.code if isinstance(error, C2CError) else type(error).__name__
    message = str(error)
    if isinstance(error, C2CError):
        message = message.removesuffix(f" [{error.code}]")
    return {
        "dead_letter_id": str(uuid.uuid4()),
        "failed_at": datetime.now(UTC),
        "stage": stage,
        "error_code": code,
        "error_message": message,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "source_file": source_file,
        "source_line": source_line,
        "original_key": key,
        "original_value": value,
    }


class DeadLetterPublisher:
    """Publishes dead letters (Avro, registered schema) and counts them by error code."""

    def __init__(
        self, settings: Settings, registry: SchemaRegistry, producer: Producer | None = None
    ) -> None:
        self._topic = get_topic(DEAD_LETTER_TOPIC)
        self._encoder = registry.encoder(self._topic)
        self._producer = producer or Producer(
            settings.kafka_config(**{"enable.idempotence": True, "acks": "all"})
        )
        self._owns_producer = producer is None
        self.counts: Counter[str] = Counter()
        self._failed: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def publish(self, record: dict[str, Any]) -> None:
        """Queue one dead letter for sending; :meth:`flush` confirms delivery."""
        self._producer.produce(
            self._topic.name,
            key=record["original_key"],
            value=self._encoder.encode(record),
            on_delivery=self._on_delivery,
        )
        self._producer.poll(0)
        self.counts[record["error_code"]] += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; ServiceError if one was not."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._failed:
            raise ServiceError(
                f"{remaining} dead letter(s) unsent and {len(self._failed)} failed "
                f"({'; '.join(self._failed[:3])}) on {self._topic.name}",
                code="deadletter.unsent",
            )

"""Publishing raw events to Kafka: encode with the registered schema, send idempotently,
and account for every event through its delivery report.

Used by file producing (`c2c produce`) and by :class:`producers.emitter.EventEmitter` for
source systems that emit events directly. The producer is idempotent with acks=all, and
events are keyed by the source's person id, so one person's events keep their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from c2c.registry import SchemaRegistry
from c2c.serde import AvroEncoder
from c2c.settings import Settings
from c2c.topics import get_topic

__all__ = ["PRODUCER_CONFIG", "DeliveryFailed", "Publisher"]

# Idempotent, acks=all; batches of up to 20 ms / 1 MB, lz4-compressed.
PRODUCER_CONFIG: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}

DeliveryFailed = Callable[[Any, str], None]


class Publisher:
    """Encodes and sends events; counts what the broker acknowledged.

    ``on_failure(context, reason)`` is called for each event the broker did not take after
    librdkafka's retries, with the ``context`` given to :meth:`send`.
    """

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        *,
        on_failure: DeliveryFailed,
        rate: float | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        config = {
            **PRODUCER_CONFIG,
            **(extra_config or {}),
        }
        self._producer = Producer(settings.kafka_config(**config))
        self._registry = registry
        self._encoders: dict[str, AvroEncoder] = {}
        self._on_failure = on_failure
        self._interval = 1.0 / rate if rate else 0.0
        self._next_send = time.monotonic()
        self.acknowledged = 0
        self.failed = 0

    def _encoder(self, topic: str) -> AvroEncoder:
        encoder = self._encoders.get(topic)
        if encoder is None:
            encoder = self._encoders[topic] = self._registry.encoder(get_topic(topic))
        return encoder

    def encode(self, topic: str, event: Mapping[str, Any]) -> bytes:
        """Wire-format bytes of ``event`` for ``topic`` (SerdeError if it does not fit)."""
        return self._encoder(topic).encode(event)

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        context: Any,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue one message; waits only when the local queue is full or a rate is set."""
        if self._interval:
            now = time.monotonic()
            if now < self._next_send:
                time.sleep(self._next_send - now)
            self._next_send = max(now, self._next_send) + self._interval

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.acknowledged += 1
            else:
                self.failed += 1
                self._on_failure(context, f"Kafka did not acknowledge it: {err.str()}")

        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for every delivery report; returns how many are still outstanding."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

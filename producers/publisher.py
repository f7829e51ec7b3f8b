"""Publishing raw events to Kafka: encode with the registered schema, send idempotently,
and account for every event through its delivery report.

Used by file producing (`c2c produce`) and by :class:`producers.emitter.EventEmitter` for
source systems that emit events directly. The producer is idempotent with acks=all, and
events are keyed by the source's person id, so one person's events keep their order.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry.trace import SpanKind

from c2c.kafka import DURABLE_PRODUCER, PRODUCER_CONFIG, not_authorized
from c2c.registry import SchemaRegistry
from c2c.serde import AvroEncoder
from c2c.settings import Settings
from c2c.telemetry import Telemetry, records_spans
from c2c.topics import get_topic

__all__ = ["DeliveryFailed", "Publisher"]

DeliveryFailed = Callable[[Any, str], None]


class Publisher:
    """Encodes and sends events; counts what the broker acknowledged. ``tracing``: each
    message starts a span (when telemetry records them).

    ``on_failure(context, reason)`` is called for each event the broker did not take after
    librdkafka's retries, with the ``context`` given to :meth:`send` (for
    :meth:`send_many`: ``(context, index)``).
    """

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        *,
        on_failure: DeliveryFailed,
        rate: float | None = None,
        extra_config: Mapping[str, Any] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        config = {
            **PRODUCER_CONFIG,
            # Delivery reports reach Python only for failures: a callback per acknowledged
            # message cost about a microsecond each, for nothing. Acknowledged = sent -
            # failed - still outstanding.
            "delivery.report.only.error": True,
            **(extra_config or {}),
            **DURABLE_PRODUCER,  # whatever extra_config says
        }
        self._producer = Producer(settings.kafka_config(**config))
        self._settings = settings
        self._registry = registry
        self._encoders: dict[str, AvroEncoder] = {}
        self._on_failure = on_failure
        self._interval = 1.0 / rate if rate else 0.0
        self._next_send = time.monotonic()
        self.sent = 0
        self.failed = 0
        self._telemetry = telemetry
        self.tracing = records_spans(telemetry)
        if telemetry is not None:
            self._sent = telemetry.meter.create_counter(
                "c2c.events.out", description="Events handed to Kafka, by topic and stage"
            )
            self._failures = telemetry.meter.create_counter(
                "c2c.events.failed", description="Events Kafka did not acknowledge"
            )

    @property
    def acknowledged(self) -> int:
        """Messages the broker acknowledged so far (all sent, once :meth:`flush` returned 0
        and nothing failed)."""
        return self.sent - self.failed - len(self._producer)

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
        key: bytes | None,
        value: bytes,
        context: Any,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        event_id: str | None = None,
    ) -> None:
        """Queue one message; waits only when the local queue is full or a rate is set.

        With telemetry that records, the message starts a trace: a PRODUCER span named
        ``produce <topic>`` whose context travels in the message's W3C headers.
        """
        if not self.tracing:
            self._send(topic, key, value, context, headers)
            if self._telemetry is not None:
                self._sent.add(1, {"topic": topic, "stage": "producer"})
            return
        assert self._telemetry is not None
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "c2c.stage": "producer",
        }
        if event_id:
            attributes["c2c.event_id"] = event_id
        with self._telemetry.tracer.start_as_current_span(
            f"produce {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            self._send(topic, key, value, context, self._telemetry.inject(headers))
        self._sent.add(1, {"topic": topic, "stage": "producer"})

    def send_many(
        self,
        topics: Sequence[str],
        keys: Sequence[bytes],
        values: Sequence[bytes],
        context: Any,
        event_ids: Sequence[str] | None = None,
    ) -> None:
        """Queue messages given as parallel lists, in order; a failed delivery calls
        ``on_failure((context, index), reason)``. The same as :meth:`send` for each, with
        one delivery callback for them all."""
        if self.tracing or self._interval:
            for index, (topic, key, value) in enumerate(zip(topics, keys, values, strict=True)):
                event_id = event_ids[index] if event_ids else None
                self.send(topic, key, value, (context, index), event_id=event_id)
            return
        reported: set[int] = set()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                return
            # Only failures come here (delivery.report.only.error): find the message among
            # the batch's; identical rows fail in order, as they were sent.
            found = msg.value()
            index = next(
                i for i, value in enumerate(values) if value == found and i not in reported
            )
            reported.add(index)
            self._delivery_failed(topics[index], (context, index), err)

        produce, poll = self._producer.produce, self._producer.poll
        for index, (topic, key, value) in enumerate(zip(topics, keys, values, strict=True)):
            while True:
                try:
                    produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:
                    poll(0.05)  # local queue full: let deliveries drain
                except KafkaException as exc:
                    reported.add(index)
                    self._refused(topic, (context, index), exc)
                    break
        poll(0)
        self.sent += len(values)
        if self._telemetry is not None:
            for topic, count in Counter(topics).items():
                self._sent.add(count, {"topic": topic, "stage": "producer"})

    def _refused(self, topic: str, context: Any, exc: KafkaException) -> None:
        """A message ``produce`` refused at once, as a failed delivery: librdkafka raises
        instead of reporting when it already knows the answer (a topic this principal may
        not write, learnt from an earlier message's metadata; a message over the size
        limit)."""
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None:
            raise exc
        self._delivery_failed(topic, context, error)

    def _delivery_failed(self, topic: str, context: Any, err: KafkaError) -> None:
        self.failed += 1
        if self._telemetry is not None:
            self._failures.add(1, {"topic": topic, "stage": "producer"})
        if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            self._on_failure(
                context, str(not_authorized(self._settings, f"topic {topic}", "write"))
            )
            return
        self._on_failure(context, f"Kafka did not acknowledge it: {err.str()}")

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        context: Any,
        headers: list[tuple[str, str | bytes | None]] | None,
    ) -> None:
        if self._interval:
            now = time.monotonic()
            if now < self._next_send:
                time.sleep(self._next_send - now)
            self._next_send = max(now, self._next_send) + self._interval

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._delivery_failed(topic, context, err)

        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:
                self._refused(topic, context, exc)
                break
        self.sent += 1
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for every delivery report; returns how many are still outstanding."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

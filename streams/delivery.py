"""Sending a batch's results and knowing that Kafka took every one of them.

:class:`BatchProducer` is the worker's librdkafka producer (idempotent, acks=all): ``send``
queues a message, ``confirm`` waits until Kafka acknowledged everything queued so far and
raises :class:`DeliveryError` if it did not. Only failures call back into Python
(``delivery.report.only.error``): a batch of thousands of messages costs no per-message
callback, and ``confirm``'s count of what is still queued says whether the rest arrived.
With ``track_offsets`` every delivery calls back, to learn the offsets Kafka gave: the
worker keeps that for its tables' changelogs (a few messages a batch), on a producer of
their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from c2c.errors import ServiceError
from c2c.kafka import DURABLE_PRODUCER, PRODUCER_CONFIG
from c2c.settings import Settings

__all__ = ["BatchProducer", "DeliveryError", "Sendable"]

Headers = Sequence[tuple[str, str | bytes | None]]


class Sendable(Protocol):
    """A message to send (streams.resolution.Outgoing is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


_ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner decides


def _listed(headers: Headers | None) -> list[tuple[str, str | bytes | None]] | None:
    """What to give produce() as headers: None when there are none (no headers argument:
    an empty list costs confluent-kafka about a microsecond a message to convert), else
    a list (produce refuses a tuple)."""
    if not headers:
        return None
    return headers if isinstance(headers, list) else list(headers)


class DeliveryError(ServiceError):
    """Kafka did not take what the worker sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="worker.delivery")


class BatchProducer:
    """Queues messages and confirms them batch by batch; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        what: str,
        extra_config: Mapping[str, Any] | None = None,
        track_offsets: bool = False,
    ) -> None:
        self._what = what
        self._failures: list[str] = []
        self._offsets: dict[tuple[str, int], int] = {}
        self._producer = Producer(
            settings.kafka_config(
                **{
                    **PRODUCER_CONFIG,
                    "delivery.report.only.error": not track_offsets,
                    "on_delivery": self._delivered if track_offsets else self._failed,
                    **(extra_config or {}),
                    **DURABLE_PRODUCER,  # whatever extra_config says
                }
            )
        )

    def _failed(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed(error, message)
            return
        where = (str(message.topic()), int(message.partition() or 0))
        offset = int(message.offset() or 0)
        if offset > self._offsets.get(where, -1):
            self._offsets[where] = offset

    def offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> offset of the last message Kafka confirmed there, of those
        sent since the last call (``track_offsets`` only; empty otherwise)."""
        taken, self._offsets = self._offsets, {}
        return taken

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """Queue one message (to ``partition``, else where the partitioner puts its key;
        ``timestamp_ms``: its create time, 0 for now); waits only while the local queue is
        full."""
        where = _ANY_PARTITION if partition is None else partition
        listed = _listed(headers)
        while True:
            try:
                if listed is None:
                    self._producer.produce(topic, value, key, where, timestamp=timestamp_ms)
                else:
                    self._producer.produce(
                        topic, value, key, where, timestamp=timestamp_ms, headers=listed
                    )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain

    def send_all(self, messages: Iterable[Sendable], timestamp_ms: int = 0) -> None:
        """:meth:`send` each of ``messages``, in order (to where the partitioner puts each
        key): the worker's results, a record's at a time, without a Python call each.
        ``timestamp_ms``: the messages' create time (0: now, as the producer sets it)."""
        produce = self._producer.produce
        for message in messages:
            headers = message.headers
            try:
                if headers:
                    produce(
                        message.topic,
                        message.value,
                        message.key,
                        headers=_listed(headers),
                        timestamp=timestamp_ms,
                    )
                else:
                    produce(message.topic, message.value, message.key, timestamp=timestamp_ms)
            except BufferError:  # local queue full: send waits for room
                self.send(
                    message.topic, message.key, message.value, headers, timestamp_ms=timestamp_ms
                )

    def confirm(self, timeout_s: float = 60.0) -> None:
        """Wait until Kafka acknowledged everything sent so far; DeliveryError naming what
        is missing and why if it did not (the caller must not acknowledge its input)."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._failures:
            raise DeliveryError(
                f"{self._what}: {remaining} message(s) unconfirmed after {timeout_s:.0f} s and "
                f"{len(self._failures)} refused ({'; '.join(self._failures[:3])})"
            )

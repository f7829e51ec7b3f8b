"""Messages of the sharded resolver on Kafka (streams/shards.py, streams/decider_log.py):
sealed payloads (streams/identity/wire.py) cut into chunks, each with its call's id and its
place in the headers; the producer they go through, and its delivery checked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from c2c.errors import ServiceError
from c2c.kafka import DURABLE_PRODUCER
from c2c.settings import Settings
from streams.identity import wire

__all__ = [
    "CALL",
    "CHUNK",
    "ERROR",
    "Chunks",
    "flush_or_raise",
    "headers_of",
    "produce",
    "send_chunks",
    "shard_producer",
]

CALL = "c2c-call"  # "<run>:<round>:<shard>"
CHUNK = "c2c-chunk"  # "<i>/<n>"
ERROR = "c2c-error"  # on a reply: the call was not served, and why


def shard_producer(settings: Settings) -> Producer:
    # idempotent, acks=all; no compression: the payloads are sealed (random bytes)
    return Producer(
        settings.kafka_config(**DURABLE_PRODUCER, **{"linger.ms": 2, "compression.type": "none"})
    )


def headers_of(message: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    pairs: list[tuple[str, Any]] = list(message.headers() or ())  # type: ignore[arg-type]
    for key, value in pairs:
        found[key] = value.decode() if isinstance(value, bytes) else str(value or "")
    return found


class Chunks:
    """Chunks of the messages being received, joined once the last is in."""

    def __init__(self) -> None:
        self._parts: dict[str, list[bytes | None]] = {}

    def add(self, call: str, chunk: str, value: bytes) -> bytes | None:
        at, _, count = chunk.partition("/")
        index, total = int(at), int(count)
        if total == 1:
            return value
        parts = self._parts.setdefault(call, [None] * total)
        parts[index] = value
        if index < total - 1:
            return None
        return wire.join_chunks(self._parts.pop(call), call)

    def clear(self) -> None:
        self._parts.clear()


def produce(
    producer: Producer,
    errors: list[str],
    topic: str,
    key: str,
    value: bytes | None,
    *,
    partition: int | None = None,
    headers: Sequence[tuple[str, str | bytes | None]] = (),
) -> None:
    """One message on ``topic`` (its ``partition``, else the key's), waiting while the
    producer's queue is full; a delivery error goes to ``errors``."""

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(str(error))

    placed: dict[str, Any] = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(
                topic, value, key=key, headers=list(headers), on_delivery=delivered, **placed
            )
            return
        except BufferError:
            producer.poll(0.05)


def send_chunks(
    producer: Producer,
    errors: list[str],
    topic: str,
    partition: int,
    call: str,
    payload: bytes,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    """``payload`` in chunks on ``topic``'s ``partition``; delivery errors to ``errors``."""
    chunks = wire.split_chunks(payload)
    for at, chunk in enumerate(chunks):
        headers = [(CALL, call), (CHUNK, f"{at}/{len(chunks)}"), *extra]
        produce(producer, errors, topic, call, chunk, partition=partition, headers=headers)


def flush_or_raise(producer: Producer, what: str, errors: list[str]) -> None:
    left = producer.flush(60)
    if left or errors:
        reason = errors[0] if errors else f"{left} message(s) still queued after 60 s"
        errors.clear()
        raise ServiceError(
            f"{what}: Kafka did not take them ({reason})", code="identity.shards_delivery"
        )

"""Reading Avro topics: decode each message or send it to the dead-letter topic, and go on.

:class:`DecodingConsumer` wraps a confluent-kafka Consumer. It yields decoded records; a
message that is not in wire format, names an unknown schema id, or does not decode is
published as a dead letter with its original bytes, topic, partition, offset and error,
and counted. Offsets are committed only by :meth:`DecodingConsumer.commit`, after the
caller has handled what it was given (and after dead letters are acknowledged).

A reader that handles tens of thousands of messages a second (the sink) may take the
messages themselves (:meth:`DecodingConsumer.consume`) and decode them its own way, giving
what fails to :meth:`DecodingConsumer.skip_error` and :meth:`DecodingConsumer.dead_letter`:
the same rules, without a :class:`Decoded` built for every message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from c2c.deadletter import DeadLetterPublisher, dead_letter
from c2c.kafka import not_authorized
from c2c.serde import SerdeError
from c2c.settings import Settings

__all__ = ["Decoded", "Decoder", "DecodingConsumer"]

_REFUSED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)


class Decoder(Protocol):
    """What reads a topic's messages: c2c.serde.AvroDecoder, or a reader of rows (the
    sink's); raises SerdeError for a message that does not decode."""

    def decode(self, data: bytes) -> Any: ...


class Decoded(NamedTuple):
    """One decoded message and where it was read (a named tuple: immutable, and built at
    a fifth of a frozen dataclass's cost, which counts at tens of thousands a second)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any  # what the topic's decoder returns (a record, for an AvroDecoder)
    headers: tuple[tuple[str, bytes], ...]
    # the message's Kafka timestamp (milliseconds; the producer's clock unless the topic
    # is set to log-append time), or 0 when the broker gave none
    timestamp_ms: int = 0


class DecodingConsumer:
    """Decoded records from ``consumer``; bad messages become dead letters."""

    def __init__(
        self,
        consumer: Consumer,
        decoders: Mapping[str, Decoder],
        dead_letters: DeadLetterPublisher,
        *,
        stage: str,
        settings: Settings | None = None,
    ) -> None:
        self._consumer = consumer
        self._settings = settings  # names the principal when the broker refuses it
        self._decoders = dict(decoders)
        self._dead_letters = dead_letters
        self._stage = stage
        self.counts: Counter[str] = Counter()

    @property
    def topics(self) -> list[str]:
        """The topics it has a decoder for."""
        return list(self._decoders)

    def consume(self, max_messages: int, timeout_s: float) -> list[Message]:
        """The messages of one fetch, at most ``max_messages``, as the Consumer gives them
        (errors among them), for a caller that decodes them itself (see the module
        docstring) and counts what it decoded."""
        return self._consumer.consume(max_messages, timeout_s)

    def skip_error(self, message: Message) -> None:
        """A message whose ``error()`` is set: counted and passed over when Kafka will
        recover from it (``kafka_error``); KafkaException when it is fatal; ServiceError
        ``kafka.not_authorized`` when the broker refuses the principal of ``settings`` (given
        to the constructor) the topic or the group."""
        error = message.error()
        if error is not None and error.code() in _REFUSED and self._settings is not None:
            # the broker's ACLs will not change while this runs: stop, saying why
            topic = message.topic()
            resource = f"topic {topic}" if topic else "its consumer group"
            raise not_authorized(self._settings, resource, "read")
        if error is not None and not error.retriable() and error.fatal():
            raise KafkaException(error)
        self.counts["kafka_error"] += 1

    def dead_letter(self, message: Message, error: SerdeError) -> None:
        """Publish ``message``, which did not decode, as a dead letter with ``error``, and
        count it (its offset may be committed once :meth:`commit` flushed the letter)."""
        self._dead_letters.publish(
            dead_letter(
                stage=self._stage,
                error=error,
                source_topic=str(message.topic()),
                source_partition=message.partition(),
                source_offset=message.offset(),
                key=message.key(),
                value=message.value(),
            )
        )
        self.counts["dead_letter"] += 1

    @staticmethod
    def decoded(message: Message, value: Any) -> Decoded:
        """``message`` with its decoded ``value``, and where it was read."""
        headers = message.headers()
        stamp = message.timestamp()[1]
        return Decoded(
            str(message.topic()),
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            value,
            _headers(headers) if headers else (),
            stamp if stamp > 0 else 0,
        )

    def poll(self, timeout_s: float = 1.0, max_messages: int = 500) -> Iterator[Decoded]:
        """Decoded records from one batch of at most ``max_messages``."""
        messages = self._consumer.consume(max_messages, timeout_s)
        decoders = self._decoders
        decoded = 0
        try:
            for message in messages:
                if message.error() is not None:
                    self.skip_error(message)
                    continue
                raw = message.value()
                try:
                    value = decoders[str(message.topic())].decode(raw if raw is not None else b"")
                except SerdeError as exc:
                    self.dead_letter(message, exc)
                    continue
                decoded += 1
                yield self.decoded(message, value)
        finally:
            self.counts["decoded"] += decoded

    def commit(self) -> None:
        """Commit the positions of everything polled so far, once dead letters are
        acknowledged (so nothing is marked read before it is safely somewhere)."""
        self._dead_letters.flush()
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing new to commit
                raise


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    pairs: list[tuple[str, bytes]] = []
    for key, value in raw or []:
        pairs.append((str(key), value if isinstance(value, bytes) else b""))
    return tuple(pairs)

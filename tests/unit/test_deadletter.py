"""Dead letters: the record c2c.deadletter builds is always small enough for Kafka, keeps
what it can of the original and says how to recognise the whole; its schema stays
compatible with the dead letters written before; the publisher goes on when Kafka refuses
one and says so when flushed."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from c2c import events
from c2c.compatibility import explain, removed_required_fields
from c2c.deadletter import (
    BROKER_MESSAGE_MAX_BYTES,
    MAX_ERROR_MESSAGE,
    MAX_ORIGINAL_KEY,
    MAX_ORIGINAL_VALUE,
    DeadLetterPublisher,
    dead_letter,
)
from c2c.errors import C2CError, ServiceError
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.settings import Settings
from c2c.topics import Topic

LIBRARY = SchemaLibrary()
NAME = "org.c2cstream.ops.DeadLetter"
# librdkafka's default message.max.bytes for a producer, lower than the broker's
CLIENT_MESSAGE_MAX_BYTES = 1_000_000
NEW_FIELDS = (
    "original_key_size",
    "original_key_sha256",
    "original_value_size",
    "original_value_sha256",
)


def _encoded(record: dict[str, object]) -> bytes:
    return AvroEncoder(LIBRARY.resolve(NAME), 1).encode(record)


def test_a_small_original_is_kept_whole_with_its_size_and_no_digest() -> None:
    record = dead_letter(
        stage="producer:edd",
        error=C2CError("line 3: Wages is not an amount", code="row.invalid"),
        source_file="edd.csv",
        source_line=3,
        value=b"W1,123456789,lots",
    )
    assert record["original_value"] == b"W1,123456789,lots"
    assert record["original_value_size"] == len(b"W1,123456789,lots")
    # no unkeyed digest of what is kept whole: a key or row may hold an SSN
    assert record["original_value_sha256"] is None
    assert record["original_key"] is None
    assert record["original_key_size"] is None
    assert record["error_message"] == "line 3: Wages is not an amount"
    events.DeadLetter.model_validate(record)
    _encoded(record)


def test_a_huge_original_is_truncated_and_the_letter_fits_the_broker() -> None:
    value = b"x" * 10_000_000 + b"end"
    key = b"k" * 2_000_000
    record = dead_letter(
        stage="consumer:identity",
        error=ValueError("m" * 3_000_000),
        source_topic="c2c.raw.wage",
        source_partition=0,
        source_offset=12,
        key=key,
        value=value,
    )
    assert record["original_value"] == value[:MAX_ORIGINAL_VALUE]
    assert record["original_value_size"] == len(value)
    assert record["original_value_sha256"] == hashlib.sha256(value).hexdigest()
    assert record["original_key"] == key[:MAX_ORIGINAL_KEY]
    assert record["original_key_size"] == len(key)
    assert record["original_key_sha256"] == hashlib.sha256(key).hexdigest()
    assert len(record["error_message"]) < MAX_ERROR_MESSAGE + 100
    assert record["error_message"].endswith("(cut: 3,000,000 characters in all)")
    events.DeadLetter.model_validate(record)
    size = len(_encoded(record)) + len(record["original_key"])  # the message's key too
    assert size < CLIENT_MESSAGE_MAX_BYTES < BROKER_MESSAGE_MAX_BYTES


def test_the_worst_error_message_still_fits() -> None:
    # four bytes a character in UTF-8, every field at its limit
    record = dead_letter(
        stage="s",
        error=ValueError("\U0001f600" * 1_000_000),
        key=b"k" * 10**6,
        value=b"v" * 10**7,
    )
    assert len(_encoded(record)) + MAX_ORIGINAL_KEY < CLIENT_MESSAGE_MAX_BYTES


def test_the_schema_reads_dead_letters_written_before_its_new_fields() -> None:
    new = LIBRARY.resolve(NAME)
    old = copy.deepcopy(new)
    old["fields"] = [f for f in old["fields"] if f["name"] not in NEW_FIELDS]
    assert len(old["fields"]) == len(new["fields"]) - len(NEW_FIELDS)
    # what `c2c schemas check` asks, without a registry: new reads old, old reads new
    assert explain(json.dumps(new), json.dumps(old)) == []
    assert explain(json.dumps(old), json.dumps(new)) == []
    assert removed_required_fields(new, old) == []
    assert all(
        f["default"] is None and f["type"][0] == "null"
        for f in new["fields"]
        if f["name"] in NEW_FIELDS
    )


class _Producer:
    """A stand-in for confluent_kafka.Producer that refuses the first sends with
    ``errors``, then takes everything."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.sent: list[bytes] = []
        self.polls = 0

    def produce(self, topic: str, key: Any, value: bytes, on_delivery: Any) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(value)

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class _Registry:
    def encoder(self, topic: Topic) -> AvroEncoder:
        return AvroEncoder(LIBRARY.resolve(str(topic.schema)), 1)


def _publisher(producer: _Producer) -> DeadLetterPublisher:
    return DeadLetterPublisher(Settings(), _Registry(), producer)  # type: ignore[arg-type]


def _letter(line: int) -> dict[str, Any]:
    return dead_letter(stage="producer:edd", error=ValueError("bad"), source_line=line, value=b"x")


def test_a_dead_letter_kafka_refuses_is_reported_at_flush_not_raised() -> None:
    producer = _Producer(KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
    publisher = _publisher(producer)
    publisher.publish(_letter(1))  # refused: the caller goes on
    publisher.publish(_letter(2))
    assert len(producer.sent) == 1
    with pytest.raises(ServiceError, match="1 failed") as raised:
        publisher.flush()
    assert raised.value.code == "deadletter.unsent"


def test_a_full_queue_waits_for_room() -> None:
    producer = _Producer(BufferError(), BufferError())
    publisher = _publisher(producer)
    publisher.publish(_letter(1))
    assert len(producer.sent) == 1
    assert producer.polls >= 3
    publisher.flush()


def test_the_same_failure_met_again_has_the_same_id_and_no_other_does() -> None:
    """A stage killed after sending a dead letter and before committing reads the message
    again and sends it again: the copies share an id, which readers dedupe on."""
    error = C2CError("too large", code="identity.too_large")

    def at(offset: int, stage: str = "identity", err: BaseException = error) -> str:
        return str(
            dead_letter(
                stage=stage,
                error=err,
                source_topic="c2c.raw.enrollment",
                source_partition=3,
                source_offset=offset,
                value=b"x",
            )["dead_letter_id"]
        )

    assert at(41) == at(41)
    assert len({at(41), at(42), at(41, stage="sink"), at(41, err=ValueError("x"))}) == 4
    refused = [
        dead_letter(stage="sink", error=error, same_as=f"fact_wage/{event}")["dead_letter_id"]
        for event in ("e1", "e1", "e2")
    ]
    assert refused[0] == refused[1] != refused[2]
    # a file's row says nothing of which failure it is: every dead letter its own id
    rows = {
        dead_letter(stage="producer", error=error, source_file="k12.csv", source_line=7)[
            "dead_letter_id"
        ]
        for _ in range(2)
    }
    assert len(rows) == 2

"""A message librdkafka refuses at once (``produce`` raises instead of reporting a failed
delivery: a message over the size limit, a topic the principal was already told it may not
write) is a failed delivery like any other: reported with its context, counted, and the
rest of the batch still sent. (Seen: test_acls' wrong-provider extract raised
TOPIC_AUTHORIZATION_FAILED out of `produce_file` once the topic's refusal was known.)"""

from __future__ import annotations

from typing import Any, cast

from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from producers.publisher import Publisher


def _publisher(failures: list[tuple[Any, str]]) -> Publisher:
    # nothing listens there: only librdkafka's own checks answer before a delivery
    settings = Settings(kafka_bootstrap="127.0.0.1:9")
    return Publisher(
        settings,
        cast(SchemaRegistry, None),
        on_failure=lambda context, reason: failures.append((context, reason)),
        extra_config={"message.max.bytes": 2_000, "message.timeout.ms": 1_000},
    )


def test_a_message_refused_at_once_in_a_batch_is_a_failed_delivery() -> None:
    failures: list[tuple[Any, str]] = []
    publisher = _publisher(failures)
    values = [b"small", b"x" * 5_000, b"small too"]
    publisher.send_many(["c2c.raw.wage"] * 3, [b"a", b"b", b"c"], values, "batch 7")
    assert publisher.sent == 3
    assert [context for context, _ in failures] == [("batch 7", 1)]
    assert "Kafka did not acknowledge it" in failures[0][1]
    assert "too large" in failures[0][1].lower()


def test_a_message_refused_at_once_alone_is_a_failed_delivery() -> None:
    failures: list[tuple[Any, str]] = []
    publisher = _publisher(failures)
    publisher.send("c2c.raw.wage", b"k", b"x" * 5_000, "row 12")
    assert publisher.failed == 1
    assert [context for context, _ in failures] == ["row 12"]

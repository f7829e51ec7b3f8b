"""What the identity stage publishes of a record stays under the broker's message limit:
a raw message over MAX_RAW_BYTES is a dead letter, not a crash loop on publishing."""

from __future__ import annotations

import pytest

from c2c.examples import example_raw
from c2c.registry import SchemaRegistry
from c2c.topics import get_topic
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.resolution import (
    MAX_RAW_BYTES,
    OUTPUT_TOPICS,
    RAW_TOPICS,
    IdentityStage,
    Incoming,
)

pytestmark = pytest.mark.integration

BROKER_LIMIT = 1_000_000  # librdkafka's default message.max.bytes, below the broker's


def _stage(registry: SchemaRegistry) -> IdentityStage:
    encoders = {name: registry.encoder(get_topic(name)) for name in OUTPUT_TOPICS}
    decoders = {name: registry.decoder(get_topic(name)) for name in RAW_TOPICS}
    return IdentityStage(Resolver(IdentifierHasher(b"limits")), decoders, encoders)


@pytest.mark.parametrize("size", [MAX_RAW_BYTES - 2_000, MAX_RAW_BYTES + 1, 1_000_000])
def test_a_large_raw_event_is_linked_or_dead_lettered_and_fits_the_broker(
    registry: SchemaRegistry, size: int
) -> None:
    stage = _stage(registry)
    event = example_raw("enrollment", 3)
    event["facts"]["institution_id"] = "X"
    value = registry.encoder(get_topic("c2c.raw.enrollment")).encode(event)
    event["facts"]["institution_id"] = "X" * (size - len(value) + 1)
    value = registry.encoder(get_topic("c2c.raw.enrollment")).encode(event)
    assert abs(len(value) - size) < 8
    done = stage.process(Incoming("c2c.raw.enrollment", 0, 7, b"k", value))
    if len(value) > MAX_RAW_BYTES:
        assert done.outcome == "dead_letter"
        [letter] = done.outgoing
        record = registry.decoder(get_topic("c2c.deadletter")).decode(letter.value)
        assert record["error_code"] == "identity.too_large"
        assert f"{MAX_RAW_BYTES:,}" in record["error_message"]
    else:
        assert done.outcome == "linked"
    assert all(len(out.value) < BROKER_LIMIT for out in done.outgoing)

"""The identity worker's own Faust producer is idempotent on the real broker: the broker gives
it a producer id (InitProducerId) and takes its sends with acks from every in-sync replica.
Faust asks aiokafka for idempotence only inside a transaction; streams.app._Producer asks
always (tests/unit/test_worker_consumer.py checks the settings it hands aiokafka)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from c2c.kafka import ensure_topics, read_at
from c2c.settings import Settings
from c2c.topics import Topic
from streams.app import create_app

pytestmark = pytest.mark.integration


class _Registry:
    """create_app asks the registry for codecs; none is used here."""

    def decoder(self, topic: Topic) -> Any:
        return object()

    def encoder(self, topic: Topic) -> Any:
        return object()


def test_the_worker_faust_producer_gets_a_producer_id_and_delivers(stack: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    topic = Topic(
        name=f"c2c.test.faust-producer-{run}",
        schema="",
        zone="operations",
        description="a scratch topic of tests/integration/test_worker_producer.py",
        partitions=1,
        holds_state=False,
    )
    ensure_topics(stack, [topic])
    app, _state = create_app(
        stack,
        _Registry(),  # type: ignore[arg-type]
        role="resolve",
        app_id=f"c2c-test-producer-{run}",
    )

    async def send() -> tuple[int, int]:
        producer = app.producer
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic.name, b"key", b"value", 0, None, None)
            return producer._producer._txn_manager.producer_id, sent.offset  # type: ignore[attr-defined]
        finally:
            await producer.stop()

    producer_id, offset = asyncio.run(send())
    assert producer_id >= 0  # the broker's id for an idempotent producer (-1: none)
    message = read_at(stack, topic.name, 0, offset)
    assert message is not None
    assert (message.key(), message.value()) == (b"key", b"value")

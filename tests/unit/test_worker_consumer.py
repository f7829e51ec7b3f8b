"""The identity worker's Faust consumer fetches with our wait, not Faust's fixed 1.5 s; its
Faust producer is idempotent with acks from every in-sync replica; its resolve agent stops
on an intake message Faust skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from c2c.settings import Settings
from c2c.topics import Topic
from streams.app import FETCH_MAX_WAIT_MS, IntakeGap, WorkerState, create_app
from streams.resolution import Incoming


class _Registry:
    """create_app asks the registry for codecs; none is used here."""

    def decoder(self, topic: Topic) -> Any:
        return object()

    def encoder(self, topic: Topic) -> Any:
        return object()


def test_the_worker_consumer_waits_at_most_fetch_max_wait_ms(tmp_path: Path) -> None:
    settings = Settings(streams_store="memory", data_dir=tmp_path)
    app, _state = create_app(settings, _Registry(), role="resolve")  # type: ignore[arg-type]
    thread = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]

    async def worker_consumer() -> Any:  # aiokafka makes its consumer inside a loop
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(worker_consumer())
    assert FETCH_MAX_WAIT_MS < 1500
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS


def test_the_worker_faust_producer_is_idempotent_with_acks_all(tmp_path: Path) -> None:
    """Faust asks aiokafka for idempotence only inside a transaction; the worker's producer
    (streams.app._Producer) asks always, as c2c.kafka.DURABLE_PRODUCER does for librdkafka."""
    settings = Settings(streams_store="memory", data_dir=tmp_path)
    app, _state = create_app(settings, _Registry(), role="resolve")  # type: ignore[arg-type]

    async def idempotence_and_acks() -> tuple[bool, Any]:  # aiokafka makes it inside a loop
        producer = app.producer._new_producer()  # type: ignore[attr-defined]
        try:  # aiokafka's idempotence: producer ids and sequence numbers
            return producer._txn_manager is not None, producer._sender._acks
        finally:
            await producer.stop()

    assert asyncio.run(idempotence_and_acks()) == (True, -1)  # -1: "all"


def _at(offset: int, partition: int = 0) -> Incoming:
    return Incoming("c2c.identity.intake", partition, offset, None, None)


def test_the_resolve_agent_refuses_an_intake_offset_beyond_the_next() -> None:
    """Faust once delivered intake offsets 104-167 and then 170 (test_failover): the
    worker stops on the hole, naming it, and accepts a replay (an offset again or before)
    and whatever comes first after a rebalance."""
    state = WorkerState()
    state.expect_next(_at(104))  # nothing read since the rebalance: wherever the seek put it
    for offset in range(104, 168):
        state.expect_next(_at(offset))
        state.saw(_at(offset))
    state.expect_next(_at(120))  # a replay
    state.expect_next(_at(3, partition=1))  # another partition: its own position
    with pytest.raises(IntakeGap, match=r"intake\[0\] delivered offset 170 where 168 was next"):
        state.expect_next(_at(170))
    state.forget_positions()  # a rebalance: the next batch starts at the committed offset
    state.expect_next(_at(170))
    # the consumer sought to the committed offset (168): a first message beyond it is a hole
    state.expect_from({("c2c.identity.intake", 0): 168})
    with pytest.raises(IntakeGap, match=r"delivered offset 172 where 168 was next"):
        state.expect_next(_at(172))
    state.expect_next(_at(168))

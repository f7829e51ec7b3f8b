"""The identity worker's Faust consumer fetches with our wait, not Faust's fixed 1.5 s, and
never commits past an intake message its agent has not resolved; its Faust producer is
idempotent with acks from every in-sync replica."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from faust.types import TP

from c2c.settings import Settings
from c2c.topics import Topic
from streams.app import FETCH_MAX_WAIT_MS, create_app


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


def test_the_worker_consumer_never_commits_past_a_message_not_resolved(tmp_path: Path) -> None:
    """Faust commits over a one-message hole right after the committed offset (its
    ``_new_offset`` lets ``min(acked) - committed`` be 1): offset 30 skipped by its stream,
    31-63 acknowledged, and Faust would commit 64. The worker's consumer commits no further
    than its cursor's resolved position, 30, until 30 is resolved."""
    settings = Settings(streams_store="memory", data_dir=tmp_path)
    app, state = create_app(settings, _Registry(), role="resolve")  # type: ignore[arg-type]
    consumer: Any = app.consumer
    tp = TP("c2c.identity.intake", 0)
    consumer._committed_offset[tp] = 30
    acked = list(range(31, 64))
    consumer._acked[tp] = list(acked)
    consumer._acked_index[tp] = set(acked)
    assert state.cursor.resolved_up_to(("c2c.identity.intake", 0)) is None
    state.cursor.sought({("c2c.identity.intake", 0): 30})
    assert consumer._new_offset(tp) == 30
    for offset in range(30, 64):  # read again from 30 and resolved
        state.cursor.resolved(("c2c.identity.intake", 0), offset)
    consumer._acked[tp] = list(range(30, 64))
    consumer._acked_index[tp] = set(range(30, 64))
    assert consumer._new_offset(tp) == 64

"""A backlog's last batch is written as soon as the sink has read everything, not when its
wait ends: the sink reads 150 linked events left for it (batches of 60 rows), with a wait of
10 minutes, and writes all three batches. Kafka, the registry and ClickHouse are real."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from c2c.clickhouse import connect
from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from sinks.migrate import migrate
from sinks.sink import Sink

pytestmark = pytest.mark.integration

_WAGES = "c2c.linked.wage"


def test_the_last_batch_of_a_backlog_does_not_wait(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{tmp_path / 'ch'}",
            "clickhouse_database": "batches",
            "sink_batch_rows": 60,
            "sink_batch_wait_s": 600.0,
            "sink_start": "latest",
        }
    )
    client = connect(settings)
    migrate(client, min_cell=11)
    run = f"batches-{uuid.uuid4().hex[:8]}"
    encoder = registry.encoder(get_topic(_WAGES))
    producer = Producer(stack.kafka_config())
    sent = set()
    first: dict[int, int] = {}  # partition -> offset of our first message there

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        first[message.partition()] = min(message.offset(), first.get(message.partition(), 1 << 62))

    for index in range(150):
        event = example_linked("wage", index)
        event["event_id"] = str(uuid.uuid4())
        event["person_id"] = f"{run}-{index % 37:04d}"
        sent.add(event["event_id"])
        producer.produce(
            _WAGES, encoder.encode(event), key=event["person_id"].encode(), on_delivery=delivered
        )
    assert producer.flush(30) == 0
    # a new group, to read our messages from where they begin: a backlog (every other
    # partition starts at its end, C2C_SINK_START latest)
    group = f"test-sink-batches-{uuid.uuid4().hex[:10]}"
    committer = Consumer(stack.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        where = [TopicPartition(_WAGES, partition, at) for partition, at in first.items()]
        committer.commit(offsets=where, asynchronous=False)
    finally:
        committer.close()

    sink = Sink(settings, registry, client, group_id=group)
    stop = threading.Event()
    worker = threading.Thread(target=sink.run, args=(stop,), name="sink", daemon=True)
    worker.start()
    try:
        # a deadline far below the batch wait: only a batch written once read meets it
        deadline = time.monotonic() + 120
        while sink.counts["facts"] < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sink.counts["facts"] == len(sent), dict(sink.counts)
        assert sink.counts["batches"] == 3  # 60, 60, then the last 30 at once
    finally:
        stop.set()
        worker.join(timeout=60)
    with sink.lock:
        rows = client.query(
            "SELECT toString(event_id) FROM fact_wage WHERE startsWith(person_id, {run:String})",
            parameters={"run": run},
        ).result_rows
    assert sorted(str(r[0]) for r in rows) == sorted(sent)
    client.close()

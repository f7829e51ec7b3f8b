"""The sink while ClickHouse refuses: it pauses, retries with growing waits, resumes, and in
the end every event is one row; offsets are never committed past a batch not written.

ClickHouse is embedded (chdb) and the sink runs in this process, so the test can make the
real engine refuse: ``DETACH TABLE fact_wage`` (inserts fail with UNKNOWN_TABLE) until
``ATTACH TABLE fact_wage``. Nothing is mocked: Kafka, the registry and ClickHouse are real.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from c2c.clickhouse import connect
from c2c.examples import RAW_KINDS, example_linked
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from sinks.migrate import migrate
from sinks.rows import FACT_TABLES
from sinks.sink import Sink

pytestmark = pytest.mark.integration

Offsets = dict[tuple[str, int], int]


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    """Wait for ``condition`` (a deadline only so that a broken sink fails, not hangs)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout_s:.0f} s")
        time.sleep(0.1)


class _Publisher:
    """Linked events of every kind for persons of this run, published as the worker does;
    remembers each event's id and the first offset of this run per partition."""

    def __init__(self, stack: Settings, registry: SchemaRegistry, run: str) -> None:
        self.run = run
        self.producer = Producer(stack.kafka_config(**{"enable.idempotence": True}))
        self.encoders = {t: registry.encoder(get_topic(t)) for t in FACT_TABLES}
        self.sent: dict[str, set[str]] = {table: set() for table in FACT_TABLES.values()}
        self.at: dict[tuple[str, int, int], str] = {}  # (topic, partition, offset) -> event id
        self.first: Offsets = {}
        self.last: Offsets = {}
        self.count = 0

    def publish(self, per_kind: int) -> None:
        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            where = (message.topic(), message.partition())
            self.at[(*where, message.offset())] = ids[message.key()]
            self.first.setdefault(where, message.offset())
            self.first[where] = min(self.first[where], message.offset())
            self.last[where] = max(self.last.get(where, -1), message.offset())

        ids: dict[bytes, str] = {}
        for kind in RAW_KINDS:
            topic = f"c2c.linked.{kind}"
            for _ in range(per_kind):
                self.count += 1
                event = example_linked(kind, self.count)
                event["event_id"] = str(uuid.uuid4())
                event["person_id"] = f"{self.run}-{self.count % 37:04d}"
                self.sent[FACT_TABLES[topic]].add(event["event_id"])
                key = f"{event['person_id']}/{self.count}".encode()
                ids[key] = event["event_id"]
                self.producer.produce(
                    topic,
                    self.encoders[topic].encode(event),
                    key=key,
                    on_delivery=delivered,
                )
        assert self.producer.flush(30) == 0


def _committed(stack: Settings, group: str, partitions: list[tuple[str, int]]) -> Offsets:
    """The group's committed offsets (read by a consumer that does not join the group)."""
    reader = Consumer(stack.kafka_config(**{"group.id": group}))
    try:
        found = reader.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
    finally:
        reader.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found}


def _assert_written_below(
    client: Any, publisher: _Publisher, committed: Offsets, topics: list[str]
) -> None:
    """Every message of ours on ``topics`` below its partition's committed offset is a row
    in ClickHouse: the sink commits only what it wrote."""
    present: set[str] = set()
    for topic in topics:
        present |= {
            str(row[0])
            for row in client.query(
                f"SELECT DISTINCT event_id FROM {FACT_TABLES[topic]} "
                "WHERE startsWith(person_id, {run:String})",
                parameters={"run": publisher.run},
            ).result_rows
        }
    for (topic, partition, offset), event_id in publisher.at.items():
        if topic in topics and offset < committed.get((topic, partition), -1):
            assert event_id in present, (topic, partition, offset)


def _running(sink: Sink, stop: threading.Event) -> tuple[threading.Thread, list[BaseException]]:
    """``sink.run(stop)`` in a started thread, and the list that gets what it raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop)
        except BaseException as exc:  # surfaced in the test thread
            failed.append(exc)

    worker = threading.Thread(target=run, name="sink", daemon=True)
    worker.start()
    return worker, failed


@pytest.fixture
def clickhouse(tmp_path: Path, stack: Settings) -> Iterator[tuple[Settings, Any]]:
    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{tmp_path / 'ch'}",
            "clickhouse_database": "retry",
            "sink_batch_rows": 60,
            "sink_batch_wait_s": 0.3,
            "sink_start": "latest",
        }
    )
    client = connect(settings)
    migrate(client, min_cell=11)
    yield settings, client
    client.close()


def test_refused_batches_are_held_retried_with_backoff_and_written_once(
    stack: Settings, registry: SchemaRegistry, clickhouse: tuple[Settings, Any]
) -> None:
    settings, client = clickhouse
    group = f"test-sink-retry-{uuid.uuid4().hex[:10]}"
    # 0.1 s waits, by how many refusals the sink had seen of batches it decoded itself: a
    # batch of linked messages as they came (sinks/wire.py) that is refused is decoded in
    # the sink and tried again at once, and only then waits
    waits: Counter[int] = Counter()
    sink: Sink

    def own() -> int:
        return sink.counts["clickhouse_errors"] - sink.counts["wire.refused"]

    def sleep(seconds: float) -> None:
        waits[own()] += 1
        time.sleep(seconds)

    sink = Sink(settings, registry, client, group_id=group, sleep=sleep)
    stop = threading.Event()
    worker, failed = _running(sink, stop)
    try:
        _until(lambda: sink.positioned, "assigned and positioned")
        with sink.lock:
            client.command("DETACH TABLE fact_wage")
        publisher = _Publisher(stack, registry, f"retry-{uuid.uuid4().hex[:8]}")
        publisher.publish(per_kind=30)
        _until(lambda: own() >= 3, "refused three times after decoding in the sink")

        # refused: no wage offset committed; every message below a committed offset written
        assert sink.clickhouse_error is not None
        assert "UNKNOWN_TABLE" in sink.clickhouse_error
        committed = _committed(stack, group, sorted(publisher.first))
        for (topic, partition), offset in committed.items():
            if topic == "c2c.linked.wage":
                assert offset < 0 or offset <= publisher.first[(topic, partition)], offset
        with sink.lock:  # the wage table is detached: the others
            others = [t for t in FACT_TABLES if t != "c2c.linked.wage"]
            _assert_written_below(client, publisher, committed, others)

        # more arrives while the partitions are paused; then ClickHouse takes inserts again
        publisher.publish(per_kind=30)
        with sink.lock:
            client.command("ATTACH TABLE fact_wage")
        total = publisher.count
        _until(
            lambda: sink.counts["facts"] >= total and not any(sink.lag().values()),
            f"done with {total} facts",
        )
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not failed, failed
    assert sink.clickhouse_error is None

    # every event exactly once (refused batches re-inserted whole; copies collapse by id)
    for table, sent in publisher.sent.items():
        rows = client.query(
            f"SELECT toString(event_id), count() FROM {table} FINAL "
            "WHERE startsWith(person_id, {run:String}) GROUP BY event_id",
            parameters={"run": publisher.run},
        ).result_rows
        assert {event_id for event_id, _n in rows} == sent, table
        assert all(n == 1 for _event_id, n in rows), table
    # the refused table itself was never half-written: one row per event even before merges
    unmerged = client.query(
        "SELECT count() FROM fact_wage WHERE startsWith(person_id, {run:String})",
        parameters={"run": publisher.run},
    ).result_rows[0][0]
    assert unmerged == len(publisher.sent["fact_wage"])

    # committed now: everything published, and nothing beyond it
    committed = _committed(stack, group, sorted(publisher.last))
    for where, offset in committed.items():
        assert offset == publisher.last[where] + 1, (where, offset)
    _assert_written_below(client, publisher, committed, list(FACT_TABLES))
    # the waits grew: 0.5 s after the first refusal, 1 s after the second, 2 s after the third
    assert sink.counts["wire.refused"] >= 1  # the wire path was tried first, and at once
    assert waits[0] == 0
    assert waits[1] >= 5
    assert waits[2] > 1.5 * waits[1]
    assert waits[3] > 1.5 * waits[2]


@pytest.mark.parametrize("decode", ["clickhouse", "python"])
def test_rows_clickhouse_refuses_are_dead_lettered_and_the_rest_written(
    stack: Settings, registry: SchemaRegistry, clickhouse: tuple[Settings, Any], decode: str
) -> None:
    """Dates a Date column cannot hold (before 1970, after 2149) pass every check before
    the sink; ClickHouse refuses them on every try. The sink used to retry that batch for
    ever, and write nothing after it; now the refused rows are dead letters and the rest is
    written, and what comes after is written too."""
    import datetime

    from c2c.kinds import get_kind

    settings, client = clickhouse
    settings = settings.model_copy(update={"sink_decode": decode})
    group = f"test-sink-poison-{uuid.uuid4().hex[:10]}"
    sink = Sink(settings, registry, client, group_id=group, sleep=lambda _s: None)
    stop = threading.Event()
    worker, failed = _running(sink, stop)
    poison = {
        "enrollment": ("term_start_date", datetime.date(1800, 8, 14)),
        "credential": ("issue_date", datetime.date(1965, 7, 1)),
        "completion": ("completion_date", datetime.date(9999, 12, 31)),
    }
    run_id = f"poison-{uuid.uuid4().hex[:8]}"
    producer = Producer(stack.kafka_config(**{"enable.idempotence": True}))
    bad: dict[str, str] = {}
    good: dict[str, set[str]] = {}
    try:
        _until(lambda: sink.positioned, "assigned and positioned")
        for round_ in range(2):  # the second round comes after the poison: written too
            for kind, (field, day) in poison.items():
                topic = get_kind(kind).linked_topic
                encoder = registry.encoder(get_topic(topic))
                for index in range(25):
                    event = example_linked(kind, 1000 * round_ + index)
                    event["event_id"] = str(uuid.uuid4())
                    event["person_id"] = f"{run_id}-{index % 7}"
                    if round_ == 0 and index == 12:
                        event["facts"][field] = day
                        bad[event["event_id"]] = kind
                    else:
                        good.setdefault(get_kind(kind).fact_table, set()).add(event["event_id"])
                    producer.produce(topic, encoder.encode(event), key=event["person_id"])
            assert producer.flush(30) == 0
        total = sum(map(len, good.values()))
        _until(lambda: sink.counts["facts"] >= total, f"{total} facts written")
        _until(lambda: sink.counts["row_refused"] >= len(bad), "refused rows dead-lettered")
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not failed, failed
    assert sink.counts["row_refused"] == len(bad)
    assert sink.counts["refused.salvaged"] >= 1
    for table, sent in good.items():
        rows = client.query(
            f"SELECT DISTINCT toString(event_id) FROM {table} "
            "WHERE startsWith(person_id, {run:String})",
            parameters={"run": run_id},
        ).result_rows
        assert {event_id for [event_id] in rows} == sent, table
    # the dead letters name each refused event and its table, never stop the sink
    reader = Consumer(
        stack.kafka_config(**{"group.id": f"{group}-dl", "auto.offset.reset": "earliest"})
    )
    decoder = registry.decoder(get_topic("c2c.deadletter"))
    found: dict[str, str] = {}
    try:
        reader.subscribe(["c2c.deadletter"])
        deadline = time.monotonic() + 60
        while len(found) < len(bad) and time.monotonic() < deadline:
            message = reader.poll(1.0)
            if message is None or message.error() is not None:
                continue
            letter = decoder.decode(message.value() or b"")
            for event_id, kind in bad.items():
                if event_id in letter["error_message"]:
                    assert letter["error_code"] == "sink.row_refused"
                    assert letter["stage"] == "sink"
                    assert letter["source_topic"] == get_kind(kind).linked_topic
                    assert f"table {get_kind(kind).fact_table}" in letter["error_message"]
                    found[event_id] = kind
    finally:
        reader.close()
    assert found == bad

"""Metrics move when they should: the sink's lag (in-memory reader), and the identity
worker's dead letters, flows, changes and lag through its real Prometheus endpoint.

A message the sink would dead-letter is not published here: the linked topics are shared,
and other readers of them (the worker's test, `c2c eval linkage`) decode every message."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from c2c.examples import example_linked, example_raw
from c2c.metrics import (
    BATCH_SIZE,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_IN,
    EVENTS_OUT,
    IDENTITY_CHANGES,
    SINK_ROWS,
)
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import setup_telemetry
from c2c.topics import get_topic
from cli.worker_process import WorkerProcess
from producers.emitter import EventEmitter
from tests.conftest import free_port_pair
from tests.integration.sink_thread import sink_in_thread

pytestmark = pytest.mark.integration


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _lag(reader: InMemoryMetricReader, group: str) -> int | None:
    """The group's lag, summed over its partitions (None: not measured yet)."""
    points = [p for p in _points(reader, CONSUMER_LAG.name) if p.attributes["group"] == group]
    return int(sum(p.value for p in points)) if points else None


def _until(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout_s:.0f} s")


def test_sink_lag_metric_moves_with_a_held_batch_and_drains_to_zero(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    held, more = 10, 5
    reader = InMemoryMetricReader()
    telemetry = setup_telemetry(stack, "sink", metric_readers=[reader])
    encoder = registry.encoder(get_topic("c2c.linked.wage"))
    producer = Producer(stack.kafka_config(acks="all"))
    marker = uuid.uuid4().hex[:8]

    def publish(first: int, count: int) -> None:
        for index in range(first, first + count):
            event = example_linked("wage", index)
            event["event_id"] = str(uuid.uuid4())
            event["person_id"] = f"c2c-{marker}-{index}"
            producer.produce(
                "c2c.linked.wage", key=event["person_id"].encode(), value=encoder.encode(event)
            )
        assert producer.flush(30) == 0

    def dead_letters() -> float:
        return sum(
            p.value for p in _points(reader, DEAD_LETTERS.name) if p.attributes["stage"] == "sink"
        )

    # each event adds a fact_wage row (and a person row): the first `held` events fill
    # two thirds of a batch, which waits (5 minutes at most) for the rest
    with sink_in_thread(
        stack,
        registry,
        tmp_path,
        telemetry,
        sink_batch_rows=held + more,
        sink_batch_wait_s=300.0,
    ) as (sink, group):
        _until(lambda: _lag(reader, group) == 0, "measured, with no lag")
        assert dead_letters() == 0  # the series exists before the first dead letter

        publish(0, held)
        _until(lambda: _lag(reader, group) == held, f"lagging {held}")
        assert sink.counts["facts"] == 0  # the batch is held: nothing written, nothing committed

        publish(held, more)  # the batch is full now: written, committed, no lag
        _until(lambda: _lag(reader, group) == 0, "caught up")
        assert sink.counts["facts"] == held + more
        assert dead_letters() == 0

    rows = {p.attributes["table"]: p.value for p in _points(reader, SINK_ROWS.name)}
    assert rows["fact_wage"] == held + more
    assert rows["dim_person"] == held + more
    into = {p.attributes["topic"]: p.value for p in _points(reader, EVENTS_IN.name)}
    assert into == {"c2c.linked.wage": held + more}
    [size] = [p for p in _points(reader, BATCH_SIZE.name) if p.attributes["stage"] == "sink"]
    assert size.count == 1
    assert size.sum == held + more
    telemetry.shutdown()


def _scrape(port: int) -> dict[str, float]:
    """Prometheus text from the port: series (name and labels, as printed) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = {}
    for line in text.splitlines():
        if line.startswith("c2c_"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def _value(series: dict[str, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s series that carry every label given."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        value
        for key, value in series.items()
        if key.split("{", 1)[0] == name and all(w in key for w in wanted)
    )


def test_worker_serves_dead_letters_flows_changes_and_lag_on_its_prometheus_port(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_port = free_port_pair()
    monkeypatch.setenv("C2C_METRICS_PORT", str(metrics_port))
    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    try:
        worker.start()
        before = _scrape(metrics_port)
        assert _value(before, DEAD_LETTERS.prometheus_name, stage="identity") == 0

        producer = Producer(stack.kafka_config(acks="all"))
        producer.produce("c2c.raw.wage", key=b"bad", value=b"not in wire format")
        assert producer.flush(30) == 0
        emitter = EventEmitter(stack, registry)
        event = example_raw("credential", 0)
        event["source_record_id"] = f"METRICS-{uuid.uuid4().hex[:8]}"
        del event["event_id"]
        emitter.emit("credential", event)
        assert emitter.flush().ok
        worker.drained(2)

        group = worker.app_id
        lag_name = CONSUMER_LAG.prometheus_name

        def caught_up() -> bool:
            series = _scrape(metrics_port)
            raw = [k for k in series if k.startswith(lag_name) and "c2c.raw." in k]
            return len(raw) == 36 and _value(series, lag_name, group=group) == 0

        _until(caught_up, "lag 0 on every partition", timeout_s=30)
        after = _scrape(metrics_port)
    finally:
        worker.kill()

    assert _value(after, DEAD_LETTERS.prometheus_name, stage="identity") == 1
    into = EVENTS_IN.prometheus_name
    assert _value(after, into, stage="forward", topic="c2c.raw.wage") == 1
    assert _value(after, into, stage="forward", topic="c2c.raw.credential") == 1
    assert _value(after, into, stage="identity") == 2
    out = EVENTS_OUT.prometheus_name
    assert _value(after, out, stage="forward") == 2
    assert _value(after, out, stage="identity", topic="c2c.deadletter") == 1
    assert _value(after, out, stage="identity", topic="c2c.linked.credential") == 1
    changes = IDENTITY_CHANGES.prometheus_name
    assert _value(after, changes, stage="identity", change_type="PERSON_CREATED") == 1
    assert _value(after, "c2c_batch_duration_seconds_count", stage="identity") >= 1


def test_clickhouse_refusals_are_counted_and_traced_and_the_batch_waits(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    """The fact table is renamed away, so ClickHouse really refuses the insert; the sink
    retries, the error metric and the refused insert spans show it, the lag holds; once
    the table is back the same batch is written."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from c2c.metrics import CLICKHOUSE_ERRORS, SINK_INSERT_DURATION

    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    telemetry = setup_telemetry(stack, "sink", metric_readers=[reader], span_exporter=spans)
    encoder = registry.encoder(get_topic("c2c.linked.credential"))
    producer = Producer(stack.kafka_config(acks="all"))

    def errors() -> float:
        return sum(p.value for p in _points(reader, CLICKHOUSE_ERRORS.name))

    # one batch of exactly the 4 events (a fact_credential row each)
    with sink_in_thread(
        stack, registry, tmp_path, telemetry, sink_batch_rows=4, sink_batch_wait_s=300.0
    ) as (sink, group):
        assert errors() == 0
        with sink.lock:
            sink.client.command("RENAME TABLE fact_credential TO fact_credential_away")
        for index in range(4):
            event = example_linked("credential", index)
            event["event_id"] = str(uuid.uuid4())
            event["person_id"] = f"c2c-refused-{uuid.uuid4().hex[:8]}"
            producer.produce(
                "c2c.linked.credential",
                key=event["person_id"].encode(),
                value=encoder.encode(event),
            )
        assert producer.flush(30) == 0
        _until(lambda: errors() >= 2, "two refused inserts")
        assert sink.clickhouse_error is not None
        assert "fact_credential" in sink.clickhouse_error
        _until(lambda: _lag(reader, group) == 4, "the refused batch still lagging")
        with sink.lock:
            sink.client.command("RENAME TABLE fact_credential_away TO fact_credential")
        _until(
            lambda: sink.counts["facts"] == 4 and _lag(reader, group) == 0,
            "written once the table is back",
        )
        refused = errors()

    assert sink.clickhouse_error is None
    inserts = [s for s in spans.get_finished_spans() if s.name == "sink.insert"]
    failed = [s for s in inserts if not s.status.is_ok]
    assert len(failed) == refused  # one span per attempt; each refusal is an error span
    assert inserts[-1].status.is_ok
    assert inserts[-1].attributes["c2c.batch.rows"] == 4
    outcomes = {
        p.attributes["outcome"]: p.count for p in _points(reader, SINK_INSERT_DURATION.name)
    }
    assert outcomes == {"refused": refused, "written": 1}
    telemetry.shutdown()

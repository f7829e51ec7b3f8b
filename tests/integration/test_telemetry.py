"""Traces start at the producer and travel in Kafka headers; metrics count what moved."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import get_current_span

from c2c.examples import example_raw
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import Telemetry, setup_telemetry
from producers.emitter import EventEmitter
from tests.conftest import read_decoded

pytestmark = pytest.mark.integration


def test_each_event_starts_a_trace_carried_in_its_headers(
    stack: Settings, registry: SchemaRegistry
) -> None:
    spans = InMemorySpanExporter()
    metrics = InMemoryMetricReader()
    telemetry = setup_telemetry(stack, "producer", span_exporter=spans, metric_readers=[metrics])
    emitter = EventEmitter(stack, registry, telemetry=telemetry)
    marker = uuid.uuid4().hex[:8]
    ids = []
    for index in range(3):
        event = example_raw("credential", index)
        event["source_record_id"] = f"TRACE-{marker}-{index}"
        del event["event_id"]
        ids.append(emitter.emit("credential", event))
    assert emitter.flush().ok

    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["produce c2c.raw.credential"] * 3
    by_event = {s.attributes["c2c.event_id"]: s for s in finished}
    assert set(by_event) == set(ids)
    assert len({s.context.trace_id for s in finished}) == 3  # one trace per event

    carried = {
        str(record["event_id"]): get_current_span(Telemetry.extract(headers)).get_span_context()
        for record, headers in read_decoded(
            stack, registry, "c2c.raw.credential", lambda r: str(r["event_id"]) in by_event, 3
        )
    }
    assert set(carried) == set(ids)
    for event_id, span_context in carried.items():
        assert span_context.trace_id == by_event[event_id].context.trace_id
        assert span_context.span_id == by_event[event_id].context.span_id

    data = metrics.get_metrics_data()
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "c2c.events.out"
        for point in metric.data.data_points
    ]
    assert sum(p.value for p in points) == 3
    assert points[0].attributes == {"topic": "c2c.raw.credential", "stage": "producer"}
    telemetry.shutdown()


def test_none_exporter_is_a_no_op(stack: Settings) -> None:
    telemetry = setup_telemetry(stack.model_copy(update={"otel_exporter": "none"}), "producer")
    with telemetry.tracer.start_as_current_span("x"):
        assert telemetry.inject() == []


def test_prometheus_endpoint_serves_the_counters(stack: Settings, registry: SchemaRegistry) -> None:
    import urllib.request

    from tests.conftest import free_port_pair

    port = free_port_pair()
    telemetry = setup_telemetry(stack.model_copy(update={"metrics_port": port}), "producer")
    emitter = EventEmitter(stack, registry, telemetry=telemetry)
    for index in range(2):
        event = example_raw("wage", index)
        event["source_record_id"] = f"PROM-{uuid.uuid4().hex[:8]}"
        del event["event_id"]
        emitter.emit("wage", event)
    assert emitter.flush().ok
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if line.startswith("c2c_events_out_total{")]
    assert lines, text[:2000]
    assert 'topic="c2c.raw.wage"' in lines[0]
    assert 'stage="producer"' in lines[0]
    assert float(lines[0].rsplit(" ", 1)[1]) == 2.0


def _identity_stage(registry: SchemaRegistry, telemetry: Telemetry) -> Any:
    """The identity stage with a fresh resolver, and an encoder for every topic of the
    catalogue (whichever it writes)."""
    from c2c.serde import AvroDecoder
    from c2c.topics import CATALOGUE, get_topic
    from streams.identity.resolver import IdentifierHasher, Resolver
    from streams.resolution import RAW_TOPICS, IdentityStage

    decoders: dict[str, AvroDecoder] = {t: registry.decoder(get_topic(t)) for t in RAW_TOPICS}
    encoders = {t.name: registry.encoder(t) for t in CATALOGUE if t.schema}
    return IdentityStage(Resolver(IdentifierHasher(b"s")), decoders, encoders, telemetry)


@pytest.mark.parametrize("path", ["one resolver", "shards"])
def test_the_identity_stage_continues_the_producers_trace(
    stack: Settings, registry: SchemaRegistry, path: str
) -> None:
    """``shards``: through the resolver on two shards (``IdentityStage.process_sharded``),
    whose steps run in the decider."""
    from c2c.topics import get_topic
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sharding import ShardedResolver
    from streams.resolution import Incoming, forwarding_headers

    spans = InMemorySpanExporter()
    telemetry = setup_telemetry(stack, "pipeline", span_exporter=spans)
    event = example_raw("credential", 0)
    with telemetry.tracer.start_as_current_span("produce c2c.raw.credential") as produced:
        headers = telemetry.inject()
    raw = Incoming(
        "c2c.raw.credential",
        2,
        41,
        b"k",
        registry.encoder(get_topic("c2c.raw.credential")).encode(event),
        headers,
    )
    stage = _identity_stage(registry, telemetry)
    # through the intake topic, as the worker does: the headers travel with the bytes
    forwarded = Incoming("c2c.identity.intake", 0, 7, b"k", raw.value, forwarding_headers(raw))
    if path == "shards":
        [done] = stage.process_sharded([forwarded], ShardedResolver(IdentifierHasher(b"s"), 2))
    else:
        done = stage.process(forwarded)
    assert done.outcome == "linked"
    [resolved] = [s for s in spans.get_finished_spans() if s.name == "identity.resolve"]
    trace_id = produced.get_span_context().trace_id
    assert resolved.context.trace_id == trace_id
    assert resolved.parent is not None
    assert resolved.parent.span_id == produced.get_span_context().span_id
    assert resolved.attributes["messaging.source.name"] == "c2c.raw.credential"
    assert resolved.attributes["messaging.kafka.message.offset"] == 41
    for out in done.outgoing:  # the sink continues the same trace from these headers
        carried = get_current_span(Telemetry.extract(out.headers)).get_span_context()
        assert carried.trace_id == trace_id
        assert carried.span_id == resolved.context.span_id
    telemetry.shutdown()


def _raw_messages(stack: Settings, topic: str, keys: set[bytes]) -> list[Any]:
    """The messages of ``topic`` whose key is in ``keys``, read from the start."""
    consumer = Consumer(stack.kafka_config(**{"group.id": f"test-{uuid.uuid4()}"}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[Any] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(found) < len(keys):
        for message in consumer.consume(1000, 1.0):
            if message.error() is None and message.key() in keys:
                found.append(message)
    consumer.close()
    return found


def test_one_trace_per_event_from_the_producer_through_identity_to_the_sink(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    """Producer, identity stage and sink, each as it runs in its process, share one span
    exporter: every event's spans are one trace, and its sink span points to the insert."""
    from streams.resolution import Incoming, forwarding_headers
    from tests.integration.sink_thread import sink_in_thread

    spans = InMemorySpanExporter()
    telemetry = setup_telemetry(stack, "pipeline", span_exporter=spans)
    with sink_in_thread(stack, registry, tmp_path, telemetry, sink_batch_wait_s=0.2) as (sink, _):
        # 1. the producer: one trace per event
        emitter = EventEmitter(stack, registry, telemetry=telemetry)
        marker = uuid.uuid4().hex[:8]
        keys = set()
        for index in range(3):
            event = example_raw("credential", index)
            event["source_record_id"] = f"TRACE3-{marker}-{index}"
            event["person"] = {**event["person"], "source_person_id": f"P-{marker}-{index}"}
            del event["event_id"]
            emitter.emit("credential", event)
            keys.add(f"P-{marker}-{index}".encode())
        assert emitter.flush().ok

        # 2. the identity stage, through the intake topic as the worker runs it
        stage = _identity_stage(registry, telemetry)
        producer = Producer(stack.kafka_config(acks="all"))
        raws = _raw_messages(stack, "c2c.raw.credential", keys)
        assert len(raws) == 3
        for message in raws:
            raw = Incoming(
                "c2c.raw.credential",
                message.partition(),
                message.offset(),
                message.key(),
                message.value(),
                list(message.headers() or []),
            )
            forwarded = Incoming(
                "c2c.identity.intake", 0, 0, raw.key, raw.value, forwarding_headers(raw)
            )
            for out in stage.process(forwarded).outgoing:
                producer.produce(out.topic, key=out.key, value=out.value, headers=out.headers)
        assert producer.flush(30) == 0

        # 3. the sink writes them: 3 linked events and 3 identity changes (PERSON_CREATED),
        # maybe in separate batches
        deadline = time.monotonic() + 60
        while sink.counts["messages"] < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sink.counts["messages"] == 6
        assert sink.counts["facts"] == 3

    finished = spans.get_finished_spans()
    produced = {s.context.trace_id: s for s in finished if s.name == "produce c2c.raw.credential"}
    resolved = {s.context.trace_id: s for s in finished if s.name == "identity.resolve"}
    written = [s for s in finished if s.name == "sink.write"]
    inserts = {s.context.span_id: s for s in finished if s.name == "sink.insert"}
    assert len(resolved) == 3  # each event: its own trace, continued by the identity stage
    assert resolved.keys() <= produced.keys()
    for trace_id in resolved:
        assert resolved[trace_id].parent.span_id == produced[trace_id].context.span_id
        sunk = [s for s in written if s.context.trace_id == trace_id]
        # the linked event and its identity change, both children of the resolution
        assert sorted(s.attributes["messaging.source.name"] for s in sunk) == [
            "c2c.identity.changes",
            "c2c.linked.credential",
        ]
        for span in sunk:
            assert span.parent.span_id == resolved[trace_id].context.span_id
            assert span.links
            assert all(link.context.span_id in inserts for link in span.links)
            insert = inserts[span.links[-1].context.span_id]
            assert insert.status.is_ok
            assert insert.attributes["c2c.batch.rows"] >= 1
            assert insert.context.trace_id != trace_id  # the batch has a trace of its own
    telemetry.shutdown()

"""`c2c status` sees backlogs, drains and dead letters as they happen."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from cli.sink_process import SinkProcess
from cli.status import status_report
from tests.conftest import c2c_json, free_port_pair

pytestmark = pytest.mark.integration


def _status_json(env: dict[str, str], *, expect: int = 0) -> dict[str, Any]:
    """`c2c status --json --all` from another process, as an operator runs it; its exit
    status must be ``expect``."""
    report: dict[str, Any] = c2c_json("status", "--all", expect=expect, env=env)
    return report


def _backlog(stack: Settings, registry: SchemaRegistry, topic: str, count: int) -> None:
    encoder = registry.encoder(get_topic(topic))
    producer = Producer(stack.kafka_config(acks="all"))
    for i in range(count):
        heartbeat = {
            "heartbeat_id": str(uuid.uuid4()),
            "sent_at": datetime.now(UTC),
            "origin": f"test_status {i}",
        }
        producer.produce(topic, key=str(i).encode(), value=encoder.encode(heartbeat))
    assert producer.flush(30) == 0


def test_status_reports_lag_while_a_backlog_exists_and_zero_once_drained(
    stack: Settings, registry: SchemaRegistry
) -> None:
    topic = "c2c.ops.heartbeat"  # one partition: offsets are easy to reason about
    group = f"test-status-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(stack.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.commit(offsets=[TopicPartition(topic, 0, high)], asynchronous=False)

    _backlog(stack, registry, topic, 25)

    def lag() -> int:
        report = status_report(stack, sample_s=0)
        found = [g for g in report.groups if g.group == group]
        assert found, [g.group for g in report.groups]
        return found[0].lag

    assert lag() == 25
    consumer.commit(offsets=[TopicPartition(topic, 0, high + 10)], asynchronous=False)
    assert lag() == 15
    consumer.commit(offsets=[TopicPartition(topic, 0, high + 25)], asynchronous=False)
    assert lag() == 0
    consumer.close()

    report = _status_json(dict(os.environ))
    assert {s["name"]: s["up"] for s in report["services"]}["kafka"] is True
    groups = {g["group"]: g["lag"] for g in report["groups"]}
    assert groups[group] == 0
    heartbeat = next(t for t in report["topics"] if t["topic"] == topic)
    assert heartbeat["messages"] >= 25


def test_status_json_shows_the_sinks_backlog_and_zero_once_it_drained(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    """The sink's own consumer group, from another process: lag while it is stopped and
    events arrive, 0 once it has written them; freshness read from ClickHouse while the
    sink is down, and from the sink while it holds embedded ClickHouse."""
    port = free_port_pair()
    settings = stack.model_copy(
        update={"clickhouse_url": f"chdb://{tmp_path / 'ch'}", "clickhouse_database": "status"}
    )
    env = {
        **os.environ,
        "C2C_CLICKHOUSE_URL": settings.clickhouse_dsn,
        "C2C_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "C2C_SINK_WEB_PORT": str(port),
    }

    def status() -> dict[str, Any]:
        return _status_json(env)

    group = f"test-status-sink-{uuid.uuid4().hex[:8]}"
    persons = [f"c2c-status-{uuid.uuid4().hex[:8]}-{i}" for i in range(8)]
    encoder = registry.encoder(get_topic("c2c.linked.wage"))
    producer = Producer(stack.kafka_config(acks="all"))

    def publish() -> None:  # the same keys each time: the same partitions
        for index, person in enumerate(persons):
            event = example_linked("wage", index)
            event["event_id"] = str(uuid.uuid4())
            event["person_id"] = person
            producer.produce("c2c.linked.wage", key=person.encode(), value=encoder.encode(event))
        assert producer.flush(30) == 0

    sink = SinkProcess(settings, tmp_path / "sink.log", port=port, group=group)
    try:
        sink.start()
        publish()
        sink.caught_up(len(persons))
        sink.stop()

        publish()  # a backlog: nobody in the group reads
        report = status()
        lags = {g["group"]: g["lag"] for g in report["groups"]}
        assert lags[group] == len(persons)
        assert report["sink"]["source"] == "clickhouse"
        assert report["sink"]["freshness_s"] >= 0

        sink = SinkProcess(settings, tmp_path / "sink.log", port=port, group=group)
        sink.start()
        sink.caught_up(len(persons))
        report = status()
        lags = {g["group"]: g["lag"] for g in report["groups"]}
        assert lags[group] == 0
        assert report["sink"]["source"] == "sink"
        assert report["sink"]["freshness_s"] >= 0
    finally:
        sink.kill()


def test_status_counts_dead_letters_and_names_the_last_without_its_values(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    from producers.files import produce_file

    before = status_report(stack, sample_s=0).dead_letters
    extract = tmp_path / "edd.csv"
    extract.write_text(
        "WageRecordID,SSN,FirstName,LastName,EmployerAccountNo,NAICS,YearQuarter,Wages\n"
        "EDD-1,123456789,A,LEE,0012345678,722511,2025Q1,100.00\n"
        "EDD-2,98765X321,B,KIM,0012345678,722511,2025Q1,200.00\n"
    )
    summary = produce_file(stack, "edd", extract)
    assert summary.rejected == 1
    report = status_report(stack, sample_s=0)
    assert report.dead_letters == before + 1
    last = report.last_dead_letter
    assert last is not None
    assert last["error_code"] == "row.invalid"
    assert last["where"] == f"{extract}:3"
    assert "98765X321" not in json.dumps(report.to_dict(), default=str)


def test_status_counts_records_held_for_identity_review(
    stack: Settings, registry: SchemaRegistry
) -> None:
    from streams.linking import review_record

    before = status_report(stack, sample_s=0).reviews
    encoder = registry.encoder(get_topic("c2c.identity.review"))
    producer = Producer(stack.kafka_config(acks="all"))
    record = review_record(
        reason="no trusted identifier and no birth date: a name alone is not enough",
        provider="ccc",
        event_id=str(uuid.uuid4()),
        source_topic="c2c.raw.enrollment",
        source_partition=0,
        source_offset=7,
        raw_value=b"\x00raw",
    )
    producer.produce("c2c.identity.review", value=encoder.encode(record))
    assert producer.flush(30) == 0
    report = status_report(stack, sample_s=0)
    assert report.reviews == before + 1
    assert report.last_review is not None
    assert report.last_review["reason"] == record["reason"]
    assert report.last_review["provider"] == "ccc"
    assert report.last_review["where"] == "c2c.raw.enrollment[0]@7"
    assert set(report.last_review) == {"received_at", "reason", "provider", "where"}  # no value


def _member(stack: Settings, group: str, topic: str) -> Consumer:
    """A consumer that joins ``group`` on ``topic`` and then reads nothing: stuck."""
    consumer = Consumer(
        stack.kafka_config(
            **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    for _ in range(100):  # until the group has given it its partition
        consumer.poll(0.1)
        if consumer.assignment():
            break
    assert consumer.assignment()
    return consumer


def test_status_names_a_consumer_that_has_lag_and_does_not_move(
    stack: Settings, registry: SchemaRegistry
) -> None:
    from observability.status import Stage, collect_status

    topic = "c2c.ops.heartbeat"
    group = f"test-stall-{uuid.uuid4().hex[:8]}"
    stuck = _member(stack, group, topic)
    try:
        position = stuck.position(stuck.assignment())[0].offset
        _backlog(stack, registry, topic, 5)
        # never committed: shown with what it holds (it used to be left out); where this
        # group starts is not known, so it is not counted as lag
        report = status_report(stack, sample_s=0)
        lag = next(g for g in report.groups if g.group == group)
        low, high = stuck.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert lag.uncommitted == {f"{topic}[0]": high - low}
        assert lag.lag == 0
        assert lag.members == 1
        assert position < 0  # nothing read, nothing committed
        stage = Stage("test stage", group, "http://127.0.0.1:9/health/ready", start="earliest")
        report = collect_status(
            stack,
            services=lambda: [{"name": "kafka", "up": True}],
            freshness=lambda: (None, "clickhouse"),
            stages=[stage],
            sample_s=1.0,
        )
        assert next(g for g in report.groups if g.group == group).lag == high - low
        [problem] = [p for p in report.problems if group in p]
        assert problem.startswith(f"test stage (group {group}) has lag {high - low}")
        assert "did not move in 1.0 s" in problem
        assert "no answer at http://127.0.0.1:9/health/ready" in problem
    finally:
        stuck.close()


@contextlib.contextmanager
def _not_ready_page() -> Iterator[int]:
    """A web port whose /health/ready says 503 not ready, with a reason; yields its port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotReady(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps({"ready": False, "reasons": ["ClickHouse: disk full"]}).encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def test_status_raises_a_stage_that_says_it_is_not_ready_with_its_reasons(
    stack: Settings,
) -> None:
    from observability.status import Stage, collect_status

    with _not_ready_page() as port:
        url = f"http://127.0.0.1:{port}/health/ready"
        report = collect_status(
            stack,
            services=lambda: [{"name": "kafka", "up": True}],
            freshness=lambda: (None, "clickhouse"),
            stages=[Stage("sink", f"nobody-{uuid.uuid4().hex[:8]}", url)],
            sample_s=0.2,
        )
    assert "sink is not ready: ClickHouse: disk full" in report.problems


def test_status_exits_3_with_a_service_down_and_4_with_a_problem(
    stack: Settings, registry: SchemaRegistry
) -> None:
    dead = free_port_pair()
    down = _status_json(
        {**os.environ, "C2C_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{dead}/apis/ccompat/v7"},
        expect=3,
    )
    assert {s["name"]: s["up"] for s in down["services"]}["schema_registry"] is False

    with _not_ready_page() as port:  # the sink's page says it waits on ClickHouse
        report = _status_json({**os.environ, "C2C_SINK_WEB_PORT": str(port)}, expect=4)
    assert "sink is not ready: ClickHouse: disk full" in report["problems"]

    topic = "c2c.ops.heartbeat"
    group = f"test-no-members-{uuid.uuid4().hex[:8]}"
    member = _member(stack, group, topic)  # a group that had a member once, and committed
    low, _high = member.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    member.commit(offsets=[TopicPartition(topic, 0, low)], asynchronous=False)
    member.close()
    assert group in {g["group"] for g in _status_json(dict(os.environ))["groups"]}  # --all
    # without --all, groups without members are left out
    result = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert group not in {g["group"] for g in json.loads(result.stdout)["groups"]}

"""Linked events decoded by ClickHouse (C2C_SINK_DECODE=clickhouse, sinks/wire.py) give the
same tables as decoded in the sink (python), and a message cut short or too long among them
is a dead letter while the rest are written, with no row read from shifted bytes. Kafka,
the registry and ClickHouse are real."""

from __future__ import annotations

import io
import re
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from c2c.clickhouse import connect
from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.settings import Settings
from c2c.topics import get_topic
from sinks.migrate import migrate
from sinks.rows import DIM_PERSON_COLUMNS, FACT_TABLES, columns
from sinks.sink import Sink
from sinks.wire import WIRE_TABLES, WireFormat, wire_schema
from sinks.writer import TableWriter

pytestmark = pytest.mark.integration

_KINDS = {topic: topic.rsplit(".", 1)[1] for topic in FACT_TABLES}


def _event(kind: str, index: int, run: str) -> dict[str, Any]:
    """A linked event of ``kind`` with a spread of missing values."""
    event = example_linked(kind, index)
    event["event_id"] = str(uuid.uuid4())
    event["person_id"] = f"{run}-{index % 23:04d}"
    attributes = event["attributes"]
    if index % 5 == 1:
        attributes["demographics"] = None
    if index % 7 == 2:
        attributes["sex"] = None
        attributes["birth_year"] = None
    if index % 3 == 0 and attributes["demographics"] is not None:
        attributes["demographics"]["county_fips"] = None
        attributes["demographics"]["homeless"] = None
    for name, value in list(event["facts"].items()):
        if index % 4 == 3 and value is not None and name in ("district_id", "program_cip"):
            event["facts"][name] = None
    return event


def _publish(
    stack: Settings, registry: SchemaRegistry, run: str, per_kind: int
) -> tuple[dict[tuple[str, int], int], dict[str, set[str]], list[tuple[str, int]]]:
    """Publish ``per_kind`` events of every linked kind, some damaged (cut short, or with
    bytes after the end, one of them the last of its partition); (first offset per
    partition, event ids sent whole per fact table, (topic, offset) of the damaged)."""
    producer = Producer(stack.kafka_config())
    first: dict[tuple[str, int], int] = {}
    damaged_at: list[tuple[str, int]] = []
    sent: dict[str, set[str]] = {table: set() for table in FACT_TABLES.values()}

    def delivered(damaged: bool) -> Any:
        def report(error: Any, message: Any) -> None:
            assert error is None, error
            where = (message.topic(), message.partition())
            first[where] = min(message.offset(), first.get(where, 1 << 62))
            if damaged:
                damaged_at.append((message.topic(), message.offset()))

        return report

    for topic, kind in _KINDS.items():
        encoder = registry.encoder(get_topic(topic))
        for index in range(per_kind):
            event = _event(kind, index, run)
            data = encoder.encode(event)
            if index in (17, 40):
                data = data[:-3]  # cut short
            elif index == 29:
                data += b"\x02\x04"  # too long
            elif index == per_kind - 1:  # too long by bytes that read as booleans: only the
                data += b"\x01\x00"  # separator's pattern tells (the last of its partition)
            else:
                sent[FACT_TABLES[topic]].add(event["event_id"])
            # one key: one partition, so the damaged messages sit among the others
            producer.produce(
                topic, data, key=run.encode(), on_delivery=delivered(data != encoder.encode(event))
            )
    assert producer.flush(30) == 0
    return first, sent, damaged_at


def _sink_tables(
    stack: Settings, registry: SchemaRegistry, folder: Path, decode: str, first: Any, total: int
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, int]]:
    """Run a sink (``decode``) over what was published from ``first``; every fact table's
    and dim_person's rows (FINAL, sorted; not ingested_at), and the sink's counts."""
    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{folder / 'ch'}",
            "clickhouse_database": "wire",
            "sink_batch_rows": 20,
            "sink_batch_wait_s": 0.3,
            "sink_start": "latest",
            "sink_decode": decode,
        }
    )
    client = connect(settings)
    try:
        migrate(client, min_cell=11)
        group = f"test-sink-wire-{uuid.uuid4().hex[:10]}"
        committer = Consumer(stack.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            offsets = [TopicPartition(t, p, o) for (t, p), o in first.items()]
            committer.commit(offsets=offsets, asynchronous=False)
        finally:
            committer.close()
        sink = Sink(settings, registry, client, group_id=group)
        stop = threading.Event()
        worker = threading.Thread(target=sink.run, args=(stop,), name="sink", daemon=True)
        worker.start()
        try:
            deadline = time.monotonic() + 120
            done = lambda: sink.counts["facts"] + sink.consumer.decoding_counts["dead_letter"]  # noqa: E731
            while done() < total and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            worker.join(timeout=60)
        assert done() >= total, (decode, dict(sink.counts))
        tables = {}
        with sink.lock:
            for table in FACT_TABLES.values():
                names = ", ".join(columns(table))
                tables[table] = client.query(
                    f"SELECT {names} FROM {table} FINAL ORDER BY event_id"
                ).result_rows
            tables["dim_person"] = client.query(
                f"SELECT {', '.join(DIM_PERSON_COLUMNS)} FROM dim_person FINAL ORDER BY person_id"
            ).result_rows
        counts = {**sink.counts, **sink.consumer.decoding_counts}
        return tables, counts
    finally:
        client.close()


def test_clickhouse_decodes_linked_events_as_the_sink_does_and_refuses_damaged_ones(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    run = f"wire-{uuid.uuid4().hex[:8]}"
    per_kind = 120
    first, sent, damaged = _publish(stack, registry, run, per_kind)
    total = per_kind * len(_KINDS)
    assert len(damaged) == 4 * len(_KINDS)
    found = {
        decode: _sink_tables(stack, registry, tmp_path / decode, decode, first, total)
        for decode in ("clickhouse", "python")
    }
    (wire, wire_counts), (python, python_counts) = found["clickhouse"], found["python"]
    # ClickHouse decoded the whole messages (each table's batches were refused once, for
    # its damaged messages, then decoded in the sink); the python sink never tried
    assert wire_counts["facts_wire"] > 0, wire_counts
    assert python_counts.get("facts_wire", 0) == 0
    assert wire_counts["wire.refused"] > 0
    for counts in (wire_counts, python_counts):
        assert counts["dead_letter"] == len(damaged), counts
        assert counts["facts"] == total - len(damaged), counts
        # every refusal was of a batch with damaged messages, decoded in the sink after it
        assert counts.get("clickhouse_errors", 0) == counts.get("wire.refused", 0), counts
    for table in FACT_TABLES.values():
        assert {str(row[0]) for row in wire[table]} == sent[table], table  # nothing shifted
        assert wire[table] == python[table], table
    assert wire["dim_person"] == python["dim_person"]
    assert len(wire["dim_person"]) == 23


def _shape(kind: str, *, enums: bool = False) -> str:
    """A column type without its layout; with ``enums``, as a wire table has it: enums as
    String, times in UTC."""
    kind = re.sub(r"\s+", " ", kind).replace("( ", "(")
    if enums:
        kind = re.sub(r"Enum8\([^)]*\)", "String", kind)
        kind = kind.replace("DateTime64(3)", "DateTime64(3, 'UTC')")
    return kind


def test_wire_tables_are_shaped_as_their_containers(tmp_path: Path) -> None:
    """Each wire table has the columns ClickHouse reads from its container's writer schema
    (enums as String, times in UTC): a linked schema changed without a migration fails."""
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="w"))
    try:
        migrate(client, min_cell=11)
        registry_schemas = SchemaRegistry(Settings()).library
        for topic, table in FACT_TABLES.items():
            schema = wire_schema(registry_schemas.resolve(get_topic(topic).schema))
            with tempfile.NamedTemporaryFile(suffix=".avro", dir=tmp_path) as file:
                buffer = io.BytesIO()
                fastavro.writer(buffer, fastavro.parse_schema(schema), [], codec="null")
                file.write(buffer.getvalue())
                file.flush()
                inferred = client.query(
                    f"DESCRIBE file('{file.name}', 'Avro')",
                    settings={"schema_inference_make_columns_nullable": 0},
                ).result_rows
            expected = [(name, _shape(kind, enums=True)) for name, kind, *_ in inferred]
            actual = client.query(f"DESCRIBE TABLE {WIRE_TABLES[table]}").result_rows
            assert [(name, _shape(kind)) for name, kind, *_ in actual] == expected, table
    finally:
        client.close()


def test_a_value_out_of_its_columns_range_refuses_the_container(tmp_path: Path) -> None:
    """A quarter of 300 (UInt8) or a completion in 1960 (Date) is not wrapped or clamped by
    the views: the insert is refused and writes nothing (the sink then decodes the batch
    itself)."""
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="w"))
    try:
        migrate(client, min_cell=11)
        writer = TableWriter(client)
        library = SchemaLibrary()
        cases = {
            "c2c.linked.wage": ("quarter", 300),
            "c2c.linked.completion": ("completion_date", date(1960, 1, 1)),
        }
        for topic, (name, bad) in cases.items():
            table = FACT_TABLES[topic]
            schema = library.resolve(get_topic(topic).schema)
            encoder = AvroEncoder(schema, 42)
            kind = topic.rsplit(".", 1)[1]
            events = [example_linked(kind, index) for index in range(3)]
            good = WireFormat(schema).container([encoder.encode(e) for e in events])
            writer.insert_container(WIRE_TABLES[table], good)
            events[1]["facts"][name] = bad
            damaged = WireFormat(schema).container([encoder.encode(e) for e in events])
            with pytest.raises(Exception, match=r"out of its column|cannot be safely converted"):
                writer.insert_container(WIRE_TABLES[table], damaged)
            assert client.query(f"SELECT count() FROM {table}").result_rows[0][0] == 3, table
            persons = client.query("SELECT count() FROM dim_person").result_rows[0][0]
            assert persons == 3 * (1 + list(cases).index(topic)), persons
    finally:
        client.close()

"""The ClickHouse sink: linked events, identity changes and opt-out decisions in; fact rows,
person map and person dimension out, opted-out persons' rows removed.

It reads the linked topics, ``c2c.identity.changes`` and ``c2c.identity.optouts``
(consumer group ``c2c-sink``), batches rows by size (one table's insert reaching
``C2C_SINK_BATCH_ROWS``) and by time (``C2C_SINK_BATCH_WAIT_S``), inserts each batch
(sinks/writer.py), and commits Kafka offsets only after ClickHouse took the whole batch.
While ClickHouse refuses, it pauses its partitions, retries with exponential backoff and
then resumes with the same batch: nothing is acknowledged that was not written. A crash
after an insert and before the commit replays the batch; fact tables are ReplacingMergeTree
keyed by event id, so the copies collapse (readers use FINAL), and the person map is
idempotent. Messages that do not decode go to the dead-letter topic (stage "sink").
Opt-out decisions remove the person's rows from every table after the batch is written,
with an audit row each, and rows published before an opt-out are never written again
(sinks/optouts.py).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message

from c2c.consuming import Decoder, DecodingConsumer
from c2c.registry import SchemaRegistry
from c2c.serde import frame
from c2c.settings import Settings
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, get_topic
from observability.sink import SinkObserver
from observability.telemetry import Telemetry, setup_telemetry
from sinks.batch import Batch, BatchBuilder, add_linked, add_row
from sinks.consumer import SinkConsumer
from sinks.optouts import (
    AUDIT_COLUMNS,
    OPTOUT_PERSON_COLUMNS,
    OptOutFilter,
    audit_row,
    count_statement,
    delete_statement,
    removed_per_decision,
)
from sinks.rows import (
    DIM_PERSON_COLUMNS,
    FACT_MEMO,
    FACT_TABLES,
    PERSON_MAP_COLUMNS,
    ChangeReader,
    PersonMap,
    RowReader,
    columns,
    dim_person_of,
    fact_paths,
)
from sinks.wire import WIRE_TABLES, WireFormat, person_finder, person_found
from sinks.writer import TableWriter

__all__ = [
    "SINK_GROUP",
    "Batch",
    "Sink",
    "add_linked",
    "add_row",
    "readers",
    "write_batch",
]

SINK_GROUP = "c2c-sink"
log = logging.getLogger(__name__)
_APPLIED_KEPT = 10_000  # decisions whose time from read to applied is kept for /optouts
# How long one poll of Kafka waits at most: a batch still waits C2C_SINK_BATCH_WAIT_S to
# fill, but an opt-out decision read meanwhile is applied at once (librdkafka's batch
# consume returns only when it has max_messages or its timeout passed).
_POLL_S = 0.02
_COLLECT_ALL_S = 60.0  # how often the loop runs a full garbage collection (see Sink.run)


def _fact_reader(registry: SchemaRegistry, topic: str, paths: tuple[str, ...]) -> RowReader:
    chosen = get_topic(topic)
    return RowReader(
        registry.library.resolve(chosen.schema),
        registry.schema_id(chosen),
        registry.decoder(chosen),
        paths,
        FACT_MEMO,
    )


def readers(registry: SchemaRegistry) -> dict[str, Decoder]:
    """The sink's decoder of each topic it reads: linked events and identity changes
    straight to rows (fact rows in :func:`sinks.rows.columns` order, changes in
    CHANGE_PATHS order, by a :class:`sinks.rows.ChangeReader`), opt-out decisions as
    records."""
    found: dict[str, Decoder] = {
        topic: _fact_reader(registry, topic, fact_paths(table))
        for topic, table in FACT_TABLES.items()
    }
    chosen = get_topic(CHANGES_TOPIC)
    found[CHANGES_TOPIC] = ChangeReader(
        registry.library.resolve(chosen.schema),
        registry.schema_id(chosen),
        registry.decoder(chosen),
    )
    found[OPTOUT_DECISIONS_TOPIC] = registry.decoder(get_topic(OPTOUT_DECISIONS_TOPIC))
    return found


def write_batch(target: Any, batch: Batch, formats: Mapping[str, WireFormat] | None = None) -> None:
    """Insert ``batch``, one column-oriented insert per table, through ``target``: a
    :class:`sinks.writer.TableWriter` (the sink's, which keeps each table's insert
    context), or a clickhouse-connect client; the wire messages of a fact table as one
    container (``formats``: each fact table's) into its wire table."""
    writer = target if isinstance(target, TableWriter) else TableWriter(target)
    for table, messages in batch.wire.items():
        if messages:
            assert formats is not None, "wire messages need their tables' formats"
            container = formats[table].container([m.value() or b"" for m in messages])
            writer.insert_container(WIRE_TABLES[table], container)
    for table, rows in batch.facts.items():
        writer.insert(table, columns(table), rows)
    writer.insert("person_map", PERSON_MAP_COLUMNS, batch.merges)
    writer.insert("dim_person", DIM_PERSON_COLUMNS, map(dim_person_of, batch.persons.values()))
    writer.insert("optout_person", OPTOUT_PERSON_COLUMNS, batch.optout_persons)


class Sink:
    """See the module docstring. ``client`` is a clickhouse-connect client (any thread may
    call :meth:`query` while :meth:`run` works: both go through one lock)."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        client: Any,
        *,
        group_id: str = SINK_GROUP,
        sleep: Callable[[float], None] = time.sleep,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self._writer = TableWriter(client)
        self.lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.last_insert_s: float | None = None
        self.newest_row_time: datetime | None = None
        self.clickhouse_error: str | None = None
        # decision id -> seconds from reading the decision to its rows removed and audited
        self.optout_applied_s: dict[str, float] = {}
        self._sleep = sleep
        decoders = readers(registry)
        self.consumer = SinkConsumer(settings, registry, decoders, group_id=group_id)
        # linked messages framed with their reader schema go to ClickHouse as they are
        # (sinks/wire.py), with C2C_SINK_DECODE=clickhouse: each topic's person finder
        # (which checks the frame), each table's container format
        persons: dict[str, Callable[[bytes], str | None]] = {}
        self._formats: dict[str, WireFormat] = {}
        if settings.sink_decode == "clickhouse":
            for topic, table in FACT_TABLES.items():
                chosen = get_topic(topic)
                schema = registry.library.resolve(chosen.schema)
                if person_found(schema):  # else every message is decoded here
                    header = frame(registry.schema_id(chosen), b"")
                    persons[topic] = person_finder(header)
                    self._formats[table] = WireFormat(schema)
        # when the last batch was written (time.time()), with this process's CPU seconds
        # then (time.process_time()): with positioned_at, how fast it reads a backlog
        self.written_at: tuple[float, float] | None = None
        with self.lock:
            known = client.query("SELECT person_id, survivor_id FROM person_map FINAL")
            out = client.query("SELECT person_id, opted_out_at FROM optout_person FINAL")
            audited = client.query("SELECT DISTINCT decision_id FROM optout_audit")
        self._audited = {str(row[0]) for row in audited.result_rows}
        # traces and metrics (observability/sink.py); from settings unless given
        telemetry = telemetry if telemetry is not None else setup_telemetry(settings, "sink")
        self.builder = BatchBuilder(
            decoders,
            person_map=PersonMap((str(a), str(b)) for a, b in known.result_rows),
            optouts=OptOutFilter((str(p), at) for p, at in out.result_rows),
            wire=persons,
            batch_rows=settings.sink_batch_rows,
            tracing=telemetry.tracing,
        )
        self._observed = SinkObserver(
            telemetry,
            group=group_id,
            counts=(*self._parts_counts(), self.consumer.decoding_counts),
            lag=self.consumer.lag,
            newest_row_time=lambda: self.newest_row_time,
        )

    # -- what the web port, the CLI and tests read -----------------------------------------
    def _parts_counts(self) -> tuple[Mapping[str, int], ...]:
        return (self._counts, self.consumer.counts, self.builder.counts)

    @property
    def counts(self) -> Counter[str]:
        """What the sink and its parts counted, as one Counter (a copy: /metrics/counts)."""
        total: Counter[str] = Counter()
        for counts in self._parts_counts():
            total.update(dict(counts))  # a copy first: the loop may count meanwhile
        return total

    @property
    def connected(self) -> bool:
        return self.consumer.connected

    @property
    def positioned(self) -> bool:
        """Every assigned partition has a read position."""
        return self.consumer.positioned

    @property
    def positioned_at(self) -> tuple[float, float] | None:
        """When reading began (time.time()), with this process's CPU seconds then."""
        return self.consumer.positioned_at

    def lag(self) -> dict[str, int]:
        """Messages not yet written, per assigned partition ("topic[partition]")."""
        return self.consumer.lag()

    # -- reading ---------------------------------------------------------------------------
    def _take(self, batch: Batch, messages: list[Message]) -> int:
        """Add one fetch's ``messages`` to ``batch``; how many there were, errors and dead
        letters aside (those go to the consumer, what was read to the observer)."""
        taken = self.builder.take(batch, messages)
        self.consumer.skip_errors(taken.errors)
        self.consumer.send_dead_letters(taken.dead_letters)
        for message in taken.traced:
            self._observed.received(DecodingConsumer.decoded(cast(Message, message), None))
        self._observed.received_untraced(taken.untraced)
        return taken.added

    # -- writing ---------------------------------------------------------------------------
    def _insert(self, batch: Batch) -> None:
        with self.lock, self._observed.inserting(batch):
            write_batch(self._writer, batch, self._formats)
            if batch.decisions:
                self._apply(batch)

    def _apply(self, batch: Batch) -> None:
        """Remove the rows of the batch's opted-out persons from every table, with one
        count query and one DELETE per table that holds any, for all its decisions at
        once; one audit row per decision (a replayed decision removes again, and is not
        audited twice)."""
        ids = sorted({p for d in batch.decisions if d["opted_out"] for p in d["person_ids"]})
        found: list[tuple[str, str, int]] = []
        if ids:
            found = self.client.query(count_statement(), parameters={"ids": ids}).result_rows
        for table in sorted({str(table) for table, _person, _rows in found}):
            chosen = sorted({str(p) for t, p, _rows in found if t == table})
            self.client.command(delete_statement(table), parameters={"ids": chosen})
        applied_at = datetime.now(UTC)
        audit = []
        audited = set(self._audited)  # a decision read twice in one batch: one audit row
        removed = removed_per_decision(batch.decisions, found)
        for decision, rows_removed in zip(batch.decisions, removed, strict=True):
            self._counts["optout.rows_removed"] += sum(rows_removed.values())
            decision_id = str(decision["decision_id"])
            if decision_id not in audited:
                audited.add(decision_id)
                audit.append(audit_row(decision, rows_removed, applied_at))
        if audit:
            self.client.insert("optout_audit", audit, column_names=list(AUDIT_COLUMNS))
        done = time.monotonic()
        for decision, read_at in zip(batch.decisions, batch.decisions_read, strict=True):
            decision_id = str(decision["decision_id"])
            if decision_id not in self._audited:
                self._audited.add(decision_id)
                self._counts["optout.audited"] += 1
            self.optout_applied_s[decision_id] = done - read_at
            while len(self.optout_applied_s) > _APPLIED_KEPT:
                del self.optout_applied_s[next(iter(self.optout_applied_s))]

    def _write(self, batch: Batch, stop: threading.Event) -> bool:
        """Insert ``batch`` until ClickHouse takes it (True) or ``stop`` is set (False)."""
        delay = 0.5
        # a few wire messages of a table cost more as a container (two views, two parts)
        # than decoded here: a steady stream's batches are decoded here
        self.consumer.send_dead_letters(self.builder.decide_paths(batch))
        while True:
            started = time.perf_counter()
            try:
                self._insert(batch)
            except Exception as exc:  # clickhouse-connect and chdb raise many types
                self.clickhouse_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                self._counts["clickhouse_errors"] += 1
                if any(batch.wire.values()):
                    # ClickHouse may have refused a wire message: decode them all here,
                    # which names a bad one (a dead letter), and try again at once; a
                    # refusal after that is ClickHouse's own, and waits as below
                    log.warning(
                        "ClickHouse refused a batch of linked messages as they came (%s); "
                        "decoding them in the sink and retrying",
                        exc,
                    )
                    self._counts["wire.refused"] += 1
                    self.consumer.send_dead_letters(self.builder.unwire(batch))
                    continue
                log.warning("ClickHouse refused a batch (%s); retrying in %.1f s", exc, delay)
                if not self.consumer.hold(delay, stop, self._sleep):
                    return False
                delay = min(delay * 2, 30.0)
                continue
            self.last_insert_s = time.perf_counter() - started
            self.clickhouse_error = None
            self.consumer.resume()
            break
        self.consumer.commit()  # offsets only now, after ClickHouse has every row
        self.written_at = (time.time(), time.process_time())
        self._counts["rows"] += batch.rows
        self._counts["facts"] += batch.facts_count
        self._counts["facts_wire"] += sum(map(len, batch.wire.values()))
        self._counts["batches"] += 1
        self._counts["messages"] += batch.messages
        self.newest_row_time = datetime.now(UTC)
        self._observed.written(batch)
        return True

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, *, idle_stop_s: float | None = None) -> None:
        """Consume, batch and write until ``stop`` is set (or, with ``idle_stop_s``, until
        nothing arrived for that long and the last batch is written).

        The garbage collector's automatic runs are off meanwhile (the whole process's,
        restored on return): a batch holds up to hundreds of thousands of rows, lists the
        collector would traverse again and again as they age, though they hold no cycles
        and are freed with their batch. The loop collects instead, at points where no
        batch is held: the young generations after every batch written (or every second
        while none is open), everything every minute (at the next such point)."""
        stop = stop or threading.Event()
        size = self.settings.sink_batch_rows
        wait = self.settings.sink_batch_wait_s
        batch = Batch()
        last_message = time.monotonic()
        collecting = gc.isenabled()
        gc.disable()
        collected = collected_all = last_message
        after_full = False  # the batch written last was full: a backlog is being read
        try:
            while not stop.is_set():
                messages = self.consumer.consume(size, min(wait, _POLL_S))
                got = self._take(batch, messages) if messages else 0
                now = time.monotonic()
                if got:
                    last_message = now
                # full when one table's insert has C2C_SINK_BATCH_ROWS: a backlog is written
                # in inserts of that size, not of that size shared by the five fact tables
                full = batch.largest >= size
                # an opt-out does not wait for the batch to fill: its rows go at once
                due = batch.decisions or (batch.messages and now - batch.started >= wait)
                # nor does the rest of a backlog (the batch before was full), once every
                # partition is read to its end: no more rows are coming to gather. A steady
                # stream's batches, and a backlog smaller than a batch, wait as before.
                if after_full and not (full or due) and batch.messages and len(messages) < size:
                    due = self.consumer.caught_up()
                if full or due:
                    if not self._write(batch, stop):
                        return
                    after_full = full
                    batch = Batch()
                    now = time.monotonic()
                elif not batch.messages:
                    batch.started = now
                # only where no batch is held: a collection while one is open would traverse
                # (and promote, to be traversed again) every row read into it so far
                if not batch.messages and (full or due or now - collected >= 1.0):
                    messages.clear()  # taken: freed now, not traversed (20,000 a fetch)
                    if now - collected_all >= _COLLECT_ALL_S:
                        gc.collect()
                        collected_all = now
                    else:
                        gc.collect(1)
                    collected = now
                self.consumer.refresh_lag()
                if (
                    idle_stop_s is not None
                    and not batch.messages
                    and now - last_message > idle_stop_s
                ):
                    return
        finally:
            if collecting:
                gc.enable()
            self.consumer.close()

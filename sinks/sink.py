"""The ClickHouse sink: linked events, identity changes and opt-out decisions in; fact rows,
person map and person dimension out, opted-out persons' rows removed.

It reads the linked topics, ``c2c.identity.changes`` and ``c2c.identity.optouts``
(consumer group ``c2c-sink``), batches rows by size (one table's insert reaching
``C2C_SINK_BATCH_ROWS``) and by time (``C2C_SINK_BATCH_WAIT_S``), inserts each batch
(sinks/writer.py), and commits Kafka offsets only after ClickHouse took the whole batch.
While ClickHouse refuses, it pauses its partitions, retries with exponential backoff and
then resumes with the same batch: nothing is acknowledged that was not written. A crash
after an insert and before the commit replays the batch, and a restarted worker publishes
events again: each batch's event ids are looked up before it is written, so a fact table
holds one row an event (sinks/dedupe.py; fact tables are also ReplacingMergeTree keyed by
event id, read FINAL), and the person map is idempotent. Messages that do not decode go
to the dead-letter topic (stage "sink").
Opt-out decisions remove the person's rows from every table after the batch is written,
with an audit row each, and rows published before an opt-out are never written again
(sinks/optouts.py).

:class:`Sink` wires its parts and runs the loop: the consumer (sinks/consumer.py), the batch
builder (sinks/batch.py, no Kafka or ClickHouse inside), the writer and its retry policy
(sinks/writer.py, sinks/retry.py), the opt-outs' removal (sinks/optout_removal.py) and
garbage collection between batches (sinks/gc_control.py). Beside its group, each sink
follows the changes and decisions partitions the group gave to other sinks
(sinks/side_reader.py), so that several sinks in one group write what one sink writes.
"""

from __future__ import annotations

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
from c2c.telemetry import Telemetry, setup_telemetry
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, get_topic
from sinks.batch import Batch, BatchBuilder, add_linked, add_row
from sinks.consumer import SinkConsumer
from sinks.dedupe import FactDedupe
from sinks.gc_control import BetweenBatches
from sinks.migrate import cluster_schema
from sinks.observer import SinkObserver
from sinks.optout_removal import OptOutRemoval
from sinks.optouts import OptOutFilter, request_key
from sinks.refusal import RefusedRow, salvage
from sinks.retry import RetryingWriter
from sinks.rows import FACT_MEMO, FACT_TABLES, ChangeReader, PersonMap, RowReader, fact_paths
from sinks.side_reader import SideReader
from sinks.wire import WireFormat, person_finder, person_found
from sinks.writer import TableWriter, write_batch

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
# How long one poll of Kafka waits at most: a batch still waits C2C_SINK_BATCH_WAIT_S to
# fill, but an opt-out decision read meanwhile is applied at once (librdkafka's batch
# consume returns only when it has max_messages or its timeout passed).
_POLL_S = 0.02


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


def _wire_paths(
    registry: SchemaRegistry,
) -> tuple[dict[str, Callable[[bytes], str | None]], dict[str, WireFormat]]:
    """With C2C_SINK_DECODE=clickhouse, linked messages framed with their reader schema go
    to ClickHouse as they are (sinks/wire.py): each linked topic's person finder (which
    checks the frame) and each fact table's container format, for the topics whose schema
    lays the person id out as the finder assumes (the others are decoded here)."""
    persons: dict[str, Callable[[bytes], str | None]] = {}
    formats: dict[str, WireFormat] = {}
    for topic, table in FACT_TABLES.items():
        chosen = get_topic(topic)
        schema = registry.library.resolve(chosen.schema)
        if person_found(schema):
            persons[topic] = person_finder(frame(registry.schema_id(chosen), b""))
            formats[table] = WireFormat(schema)
    return persons, formats


class Sink:
    """See the module docstring. ``client`` is a clickhouse-connect client (any thread may
    call :meth:`query` while :meth:`run` works: both go through one lock).

    Its parts: :attr:`consumer` (Kafka, sinks/consumer.py), :attr:`builder` (batches,
    sinks/batch.py), :attr:`writer` (ClickHouse until it takes a batch, sinks/retry.py) and
    :attr:`removal` (opt-outs applied, sinks/optout_removal.py), each counting its own;
    the sink counts the batches it wrote and committed (``rows``, ``facts``,
    ``facts_wire``, ``batches``, ``messages``, ``side_written``: of those messages, the
    side reader's)."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        client: Any,
        *,
        group_id: str = SINK_GROUP,
        sleep: Callable[[float], None] = time.sleep,
        telemetry: Telemetry | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        # ``lock``: one shared by sinks that share ``client`` (sinks in threads of one
        # process over one embedded ClickHouse: tests/integration/test_several_sinks.py)
        self.lock = lock if lock is not None else threading.Lock()
        self.newest_row_time: datetime | None = None
        # when the last batch was written (time.time()), with this process's CPU seconds
        # then (time.process_time()): with positioned_at, how fast it reads a backlog
        self.written_at: tuple[float, float] | None = None
        self._counts: Counter[str] = Counter()
        decoders = readers(registry)
        self.consumer = SinkConsumer(settings, registry, decoders, group_id=group_id)
        # the changes and decisions of the partitions the group gives to other sinks
        self.side = SideReader(settings, group_id=group_id, committed=self.consumer.committed)
        self.consumer.on_owned = self.side.follow
        persons, self._formats = (
            _wire_paths(registry) if settings.sink_decode == "clickhouse" else ({}, {})
        )
        with self.lock:
            known = client.query("SELECT person_id, survivor_id FROM person_map FINAL")
            out = client.query("SELECT person_id, opted_out_at FROM optout_person FINAL")
            audited = client.query("SELECT DISTINCT decision_id FROM optout_audit")
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
        cluster = (
            cluster_schema(settings.clickhouse_cluster, settings.clickhouse_database)
            if settings.clickhouse_cluster
            else None
        )
        self.removal = OptOutRemoval(
            client,
            (str(row[0]) for row in audited.result_rows),
            key=request_key(settings.identity_secret.get_secret_value().encode()),
            cluster=cluster,
        )
        # each event's fact row written once, across replays (None: C2C_SINK_DEDUPE off)
        self.dedupe = (
            FactDedupe(client, cluster=cluster, window_s=settings.sink_dedupe_window_s)
            if settings.sink_dedupe
            else None
        )
        self._tables = TableWriter(client)
        self.writer = RetryingWriter(
            self._insert,
            consumer=self.consumer,
            builder=self.builder,
            salvage=self._salvage,
            sleep=sleep,
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
        return (
            self._counts,
            self.consumer.counts,
            self.builder.counts,
            self.writer.counts,
            self.removal.counts,
            *([self.dedupe.counts] if self.dedupe is not None else []),
        )

    @property
    def counts(self) -> Counter[str]:
        """What the sink and its parts counted (see the class docstring), as one Counter
        (a copy: /metrics/counts)."""
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

    def side_lag(self) -> dict[str, int]:
        """Messages not yet read, per partition followed beside the group (another
        sink's changes and decisions: sinks/side_reader.py); asks the broker."""
        return self.side.lag()

    @property
    def clickhouse_error(self) -> str | None:
        """Why ClickHouse refused the batch being written, None when it takes them."""
        return self.writer.clickhouse_error

    @property
    def last_insert_s(self) -> float | None:
        return self.writer.last_insert_s

    @property
    def optout_applied_s(self) -> dict[str, float]:
        """Decision id -> seconds from reading the decision to its rows removed and audited."""
        return self.removal.applied_s

    # -- reading and writing ---------------------------------------------------------------
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

    def _insert(self, batch: Batch) -> None:
        """One attempt at ``batch``: every table's insert, then its opt-out removals (and
        after them the rows of its opted-out persons it still holds: admitted after a
        revocation), in one insert span under the lock; raises what ClickHouse raised."""
        with self.lock, self._observed.inserting(batch):
            if not batch.decisions:
                self._write_once(batch)
                return
            first, late = self.builder.after_decisions(batch)
            self._write_once(first)
            self.removal.apply(batch)
            if late is not None:  # admitted after a revocation: written after the removal
                self._write_once(late)

    def _write_once(self, batch: Batch) -> None:
        """Write ``batch`` without the fact rows ClickHouse holds already (sinks/dedupe.py;
        taken out of it in place: an attempt after a refusal looks again)."""
        if self.dedupe is not None:
            self.dedupe.apply(batch)
        write_batch(self._tables, batch, self._formats)

    def _salvage(self, batch: Batch) -> list[RefusedRow]:
        """The rows of ``batch`` ClickHouse refuses for their data, taken out of it
        (sinks/refusal.py), under the lock. The halves it writes while searching leave out
        the copies ClickHouse holds (sinks/dedupe.py): ``batch`` itself is looked up first,
        not only the copy of it a batch with decisions writes first (after_decisions)."""
        with self.lock:
            if self.dedupe is not None:
                self.dedupe.apply(batch)
            return salvage(self._tables.insert, batch)

    def _write(self, batch: Batch, stop: threading.Event) -> bool:
        """Write ``batch`` until ClickHouse takes it, then commit its offsets (True);
        False if ``stop`` was set first (nothing committed)."""
        self.consumer.send_dead_letters(self.builder.decide_paths(batch))
        # copies left out because ClickHouse holds them count as written (``facts``: linked
        # events handled, which callers wait for)
        skipped = self.dedupe.counts["dedupe.skipped"] if self.dedupe is not None else 0
        if not self.writer.write(batch, stop):
            return False
        if self.dedupe is not None:
            skipped = self.dedupe.counts["dedupe.skipped"] - skipped
        self.consumer.commit()  # offsets only now, after ClickHouse has every row
        self.written_at = (time.time(), time.process_time())
        self._counts["rows"] += batch.rows
        self._counts["facts"] += batch.facts_count + skipped
        self._counts["facts_wire"] += sum(map(len, batch.wire.values()))
        self._counts["batches"] += 1
        self._counts["messages"] += batch.messages
        self._counts["side_written"] += batch.side
        self.newest_row_time = datetime.now(UTC)
        self._observed.written(batch)
        return True

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, *, idle_stop_s: float | None = None) -> None:
        """Consume, batch and write until ``stop`` is set (or, with ``idle_stop_s``, until
        nothing arrived for that long and the last batch is written). The garbage
        collector runs only between batches meanwhile (sinks/gc_control.py)."""
        stop = stop or threading.Event()
        size = self.settings.sink_batch_rows
        wait = self.settings.sink_batch_wait_s
        batch = Batch()
        last_message = time.monotonic()
        after_full = False  # the batch written last was full: a backlog is being read
        # the consumers closed on leaving
        with self.consumer, self.side, BetweenBatches() as collector:
            while not stop.is_set():
                messages = self.consumer.consume(size, min(wait, _POLL_S))
                got = self._take(batch, messages) if messages else 0
                # other sinks' changes and decisions (none while alone in the group)
                side = self.side.consume(size)
                if side:
                    got += self.builder.take_side(batch, side)
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
                # only where no batch is held: a collection would traverse every row in it
                if not batch.messages and collector.due(now, written=bool(full or due)):
                    messages.clear()  # taken: freed now, not traversed (20,000 a fetch)
                    collector.collect(now)
                self.consumer.refresh_lag()
                if (
                    idle_stop_s is not None
                    and not batch.messages
                    and now - last_message > idle_stop_s
                ):
                    return

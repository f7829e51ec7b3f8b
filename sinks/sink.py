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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from c2c.consuming import Decoder, DecodingConsumer
from c2c.deadletter import DeadLetterPublisher
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError, frame
from c2c.settings import Settings
from c2c.telemetry import Telemetry, setup_telemetry
from c2c.topics import CHANGE_COUNTS, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, get_topic
from sinks.observer import SinkObserver
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
    fact_row,
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
# A table's wire messages go to ClickHouse as a container only when a batch has at least
# this many of them (or half of C2C_SINK_BATCH_ROWS, if less), else they are decoded here:
# a container's insert writes two parts (the fact table's and dim_person's) where decoded
# rows share one dim_person insert per batch, which at 1,000 events/s (about 100 rows a
# table a batch) cost the sink more CPU than the decoding it saved.
_WIRE_MIN_ROWS = 1_000
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


def add_row(batch: Batch, table: str, row: list[Any]) -> None:
    """Add a linked event's fact row (as a RowReader reads it, or fact_row builds it) to
    ``batch``, and the row as its person's if it is their latest event so far."""
    rows = batch.facts.get(table)
    if rows is None:
        rows = batch.facts[table] = []
    rows.append(row)
    latest = batch.persons.get(row[3])
    if latest is None or latest[1] <= row[1]:  # the person's latest event
        batch.persons[row[3]] = row


@dataclass
class Batch:
    """Rows waiting for one insert, per table."""

    facts: dict[str, list[list[Any]]] = field(default_factory=dict)
    merges: list[list[Any]] = field(default_factory=list)
    # person id -> the fact row of the person's latest event (dim_person_of picks
    # the person dimension's row out of it when the batch is written)
    persons: dict[str, list[Any]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    decisions_read: list[float] = field(default_factory=list)  # monotonic, when each was read
    # fact table -> linked messages ClickHouse decodes (sinks/wire.py), and their persons
    wire: dict[str, list[Message]] = field(default_factory=dict)
    wire_persons: set[str] = field(default_factory=set)
    optout_persons: list[list[Any]] = field(default_factory=list)
    messages: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def facts_count(self) -> int:
        """Fact rows, decoded here or by ClickHouse."""
        return sum(map(len, self.facts.values())) + sum(map(len, self.wire.values()))

    @property
    def rows(self) -> int:
        return self.facts_count + len(self.merges)

    @property
    def largest(self) -> int:
        """Rows of the largest insert the batch makes (one per table)."""
        return max(
            len(self.merges),
            len(self.persons),
            *map(len, self.facts.values()),
            *map(len, self.wire.values()),
            0,
        )


def add_linked(batch: Batch, topic: str, event: dict[str, Any]) -> None:
    """Add one decoded linked event's fact row and person row to ``batch`` (the sink
    itself reads rows straight from the wire, :class:`sinks.rows.RowReader`; a batch
    holds rows of one form)."""
    table, row = fact_row(topic, event)
    add_row(batch, table, row)


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
        self.counts: Counter[str] = Counter()
        self.last_insert_s: float | None = None
        self.newest_row_time: datetime | None = None
        self.clickhouse_error: str | None = None
        # decision id -> seconds from reading the decision to its rows removed and audited
        self.optout_applied_s: dict[str, float] = {}
        self.connected = False
        self.positioned = False  # every assigned partition has a read position
        self._lag: dict[str, int] = {}
        self._start: dict[tuple[str, int], int] = {}  # where reading began, per partition
        self._lag_checked = 0.0
        self._paused = False  # partitions paused while ClickHouse refuses a batch
        self._sleep = sleep
        topics = [*FACT_TABLES, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC]
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": settings.sink_start,
                    "max.poll.interval.ms": 600_000,
                    # fetches wait at the broker as every consumer's do (Settings.kafka_config)
                }
            )
        )
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._dead_letters = DeadLetterPublisher(settings, registry)
        decoders = readers(registry)
        self._decoding = DecodingConsumer(
            self._consumer, decoders, self._dead_letters, stage="sink"
        )
        # what _take reads each topic with: linked topics' (table, row reader), the changes'
        # reader, and the opt-out decisions' decoder
        self._linked = {
            topic: (table, decoders[topic].decode) for topic, table in FACT_TABLES.items()
        }
        # linked messages framed with their reader schema go to ClickHouse as they are
        # (sinks/wire.py), with C2C_SINK_DECODE=clickhouse: each topic's person finder
        # (which checks the frame), each table's container format
        self._persons: dict[str, Callable[[bytes], str | None]] = {}
        self._wire_min = min(_WIRE_MIN_ROWS, max(1, settings.sink_batch_rows // 2))
        self._formats: dict[str, WireFormat] = {}
        if settings.sink_decode == "clickhouse":
            for topic, table in FACT_TABLES.items():
                chosen = get_topic(topic)
                schema = registry.library.resolve(chosen.schema)
                if person_found(schema):  # else every message is decoded here
                    header = frame(registry.schema_id(chosen), b"")
                    self._persons[topic] = person_finder(header)
                    self._formats[table] = WireFormat(schema)
        changes = decoders[CHANGES_TOPIC]
        assert isinstance(changes, ChangeReader)
        self._changes = changes
        self._decisions = decoders[OPTOUT_DECISIONS_TOPIC]
        # when reading began and the last batch was written (time.time()), with this
        # process's CPU seconds then (time.process_time()): how fast it reads a backlog
        self.positioned_at: tuple[float, float] | None = None
        self.written_at: tuple[float, float] | None = None
        # traces and metrics (observability/sink.py); from settings unless given
        self._observed = SinkObserver(
            telemetry if telemetry is not None else setup_telemetry(settings, "sink"),
            group=group_id,
            counts=(self.counts, self._decoding.counts),
            lag=self.lag,
            newest_row_time=lambda: self.newest_row_time,
        )
        with self.lock:
            known = client.query("SELECT person_id, survivor_id FROM person_map FINAL")
            out = client.query("SELECT person_id, opted_out_at FROM optout_person FINAL")
            audited = client.query("SELECT DISTINCT decision_id FROM optout_audit")
        self.person_map = PersonMap((str(a), str(b)) for a, b in known.result_rows)
        self.optouts = OptOutFilter((str(p), at) for p, at in out.result_rows)
        self._audited = {str(row[0]) for row in audited.result_rows}

    # -- reading ---------------------------------------------------------------------------
    def _take(self, batch: Batch, messages: list[Message]) -> int:
        """Add one fetch's ``messages`` to ``batch``; how many there were, errors aside.
        A linked event becomes its fact row (see sinks.rows.RowReader) unless its person
        opted out after it was published; an identity change is counted, and a merge's
        applied to the person map; an opt-out decision is decoded and applied. What does
        not decode is a dead letter (c2c.consuming). One loop, without a c2c.consuming
        Decoded per message: at tens of thousands of messages a second, every step of it
        counts."""
        persons = batch.persons
        # each linked topic's row reader and the list its table's rows go to; its frame
        # and the list its wire messages go to (None: all are decoded here)
        linked = {
            topic: (
                read,
                batch.facts.setdefault(table, []).append,
                self._persons.get(topic),
                batch.wire.setdefault(table, []).append,
            )
            for topic, (table, read) in self._linked.items()
        }
        wire_persons = batch.wire_persons
        changes, counts, decoding = self._changes, self.counts, self._decoding
        out_at, admits = self.optouts.opted_out_at, self.optouts.admits
        # a message with trace context goes to the observer as it is read, the others are
        # counted per topic (all the observer does with them)
        traced = self._observed.telemetry.tracing
        untraced = dict.fromkeys(self._decoding.topics, 0)
        counted, kinds = changes.counted, dict.fromkeys(changes.types, 0)
        skipped = 0  # errors and dead letters: the others are taken
        for message in messages:
            if message.error() is not None:
                decoding.skip_error(message)
                skipped += 1
                continue
            topic = message.topic() or ""
            raw = message.value() or b""
            chosen = linked.get(topic)
            if chosen is not None:
                read, append, person_of, wire = chosen
                # framed with the reader schema and its person found: ClickHouse decodes it
                # (sinks/wire.py); else it is read into its row here
                row = None
                person = person_of(raw) if person_of is not None else None
                if person is None:
                    try:
                        row = read(raw)
                    except SerdeError as exc:
                        decoding.dead_letter(message, exc)
                        skipped += 1
                        continue
                    person = row[3]
                # the filter's rule, asked only of an opted-out person's row (the look-up
                # alone is the dictionary's own: no call of ours for every row)
                if out_at(person) is not None and not admits(
                    person, max(0, message.timestamp()[1])
                ):
                    counts["optout.not_written"] += 1  # published before they opted out
                elif row is None:
                    wire(message)
                    wire_persons.add(person)
                else:
                    append(row)
                    # dim_person: the person's latest event, add_row's rule (inline here,
                    # where every step counts; the wire views take the same)
                    latest = persons.get(person)
                    if latest is None or latest[1] <= row[1]:
                        persons[person] = row
            elif topic == CHANGES_TOPIC:
                kind = counted(raw)
                if kind is not None:
                    kinds[kind] += 1  # only counted: no need to decode it
                else:
                    try:
                        change = changes.decode(raw)
                    except SerdeError as exc:
                        decoding.dead_letter(message, exc)
                        skipped += 1
                        continue
                    self._change(batch, change)
            else:
                try:
                    decision = self._decisions.decode(raw)
                except SerdeError as exc:
                    decoding.dead_letter(message, exc)
                    skipped += 1
                    continue
                self._decision(batch, decision)
            if traced and message.headers():
                self._observed.received(decoding.decoded(message, None))
            else:
                untraced[topic] += 1
        self._observed.received_untraced({topic: n for topic, n in untraced.items() if n})
        taken = len(messages) - skipped
        batch.messages += taken
        decoding.counts["decoded"] += taken
        for kind, n in kinds.items():
            if n:
                counts[CHANGE_COUNTS[kind]] += n
        return taken

    def _change(self, batch: Batch, change: list[Any]) -> None:
        """An identity change (sinks.rows.CHANGE_PATHS order): a merge re-points persons."""
        change_type, person_id, previous, changed_at = change
        if change_type == "PERSONS_MERGED" and previous:
            batch.merges += self.person_map.merge(previous, person_id, changed_at)
        self.counts[CHANGE_COUNTS[change_type]] += 1

    def _decision(self, batch: Batch, value: dict[str, Any]) -> None:
        """An opt-out decision: its persons' rows are removed once the batch is written."""
        batch.decisions.append(value)
        batch.decisions_read.append(time.monotonic())
        batch.optout_persons += self.optouts.apply(value)
        self.counts[f"optout.{str(value['cause']).lower()}"] += 1

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
            self.counts["optout.rows_removed"] += sum(rows_removed.values())
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
                self.counts["optout.audited"] += 1
            self.optout_applied_s[decision_id] = done - read_at
            while len(self.optout_applied_s) > _APPLIED_KEPT:
                del self.optout_applied_s[next(iter(self.optout_applied_s))]

    def _write(self, batch: Batch, stop: threading.Event) -> bool:
        """Insert ``batch`` until ClickHouse takes it (True) or ``stop`` is set (False)."""
        delay = 0.5
        # a few wire messages of a table cost more as a container (two views, two parts)
        # than decoded here: a steady stream's batches are decoded here
        self._unwire(batch, below=self._wire_min)
        while True:
            started = time.perf_counter()
            try:
                self._insert(batch)
            except Exception as exc:  # clickhouse-connect and chdb raise many types
                self.clickhouse_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                self.counts["clickhouse_errors"] += 1
                if any(batch.wire.values()):
                    # ClickHouse may have refused a wire message: decode them all here,
                    # which names a bad one (a dead letter), and try again at once; a
                    # refusal after that is ClickHouse's own, and waits as below
                    log.warning(
                        "ClickHouse refused a batch of linked messages as they came (%s); "
                        "decoding them in the sink and retrying",
                        exc,
                    )
                    self.counts["wire.refused"] += 1
                    self._unwire(batch)
                    continue
                log.warning("ClickHouse refused a batch (%s); retrying in %.1f s", exc, delay)
                if not self._paused:
                    self._consumer.pause(self._consumer.assignment())
                    self._paused = True
                waited = 0.0
                while waited < delay:  # keep the group membership alive while waiting
                    if stop.is_set():
                        return False
                    self._keep_alive()
                    self._sleep(0.1)
                    waited += 0.1
                    if time.monotonic() - self._lag_checked > 1.0:  # operators see the lag
                        self._refresh_lag()
                delay = min(delay * 2, 30.0)
                continue
            self.last_insert_s = time.perf_counter() - started
            self.clickhouse_error = None
            if self._paused:
                self._consumer.resume(self._consumer.assignment())
                self._paused = False
            break
        self._decoding.commit()  # offsets only now, after ClickHouse has every row
        self.written_at = (time.time(), time.process_time())
        self.counts["rows"] += batch.rows
        self.counts["facts"] += batch.facts_count
        self.counts["facts_wire"] += sum(map(len, batch.wire.values()))
        self.counts["batches"] += 1
        self.counts["messages"] += batch.messages
        self.newest_row_time = datetime.now(UTC)
        self._observed.written(batch)
        return True

    def _unwire(self, batch: Batch, below: int | None = None) -> None:
        """Decode ``batch``'s wire messages into rows (only tables with fewer than
        ``below`` of them, if given), as messages framed otherwise are: what does not
        decode is a dead letter (and no longer taken), the rest are written the usual
        way."""
        for table, messages in list(batch.wire.items()):
            if below is not None and len(messages) >= below:
                continue
            del batch.wire[table]
            for message in messages:
                _table, read = self._linked[str(message.topic())]
                try:
                    row = read(message.value() or b"")
                except SerdeError as exc:
                    self._decoding.dead_letter(message, exc)
                    self._decoding.counts["decoded"] -= 1
                    batch.messages -= 1
                    continue
                add_row(batch, table, row)
        if not batch.wire:
            batch.wire_persons.clear()

    def _keep_alive(self) -> None:
        """Serve the group's callbacks while paused. Every assigned partition is paused
        (partitions assigned meanwhile too, in :meth:`_on_assign`), so nothing arrives; a
        message that does is put back to be read again after the pause, never dropped."""
        message = self._consumer.poll(0)
        if message is not None and message.error() is None:
            where = TopicPartition(
                str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            )
            self._consumer.seek(where)
            self._consumer.pause([where])

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        # Where reading starts is fixed here, at assignment, so that "latest" means the end
        # as it is now: whatever is published once `positioned` is true will be read.
        committed = consumer.committed(partitions, timeout=10)
        for tp, done in zip(partitions, committed, strict=True):
            if done.offset >= 0:
                tp.offset = done.offset
            else:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                tp.offset = high if self.settings.sink_start == "latest" else low
            self._start[(tp.topic, tp.partition)] = tp.offset
        consumer.assign(partitions)
        if self._paused:  # assigned while ClickHouse refuses: wait with the others
            consumer.pause(partitions)
        self.counts["assignments"] += 1
        log.info("sink assigned %d partition(s)", len(partitions))
        self.connected = bool(partitions)
        self.positioned = bool(partitions)
        if partitions and self.positioned_at is None:
            self.positioned_at = (time.time(), time.process_time())

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        self.counts["revocations"] += 1
        log.info("sink lost %d partition(s)", len(partitions))

    def lag(self) -> dict[str, int]:
        """Messages not yet written, per assigned partition ("topic[partition]")."""
        return dict(self._lag)

    def _refresh_lag(self) -> None:
        """Lag per partition: the high-water mark the last fetch brought back (asked of the
        broker only for a partition not fetched yet) minus the committed offset."""
        assigned = self._consumer.assignment()
        self.connected = bool(assigned)
        lag = {}
        try:
            committed = self._consumer.committed(assigned, timeout=5)
            for tp, position in zip(assigned, committed, strict=True):
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=5)
                # not committed yet: nothing written since reading began where it began
                start = self._start.get((tp.topic, tp.partition), low)
                done = position.offset if position.offset >= 0 else start
                lag[f"{tp.topic}[{tp.partition}]"] = max(0, high - done)
        except KafkaException as exc:  # the broker was slow to answer: keep the last figures
            log.warning("could not measure the sink's lag: %s", exc)
        else:
            self._lag = lag
        finally:
            self._lag_checked = time.monotonic()

    def _caught_up(self) -> bool:
        """Whether every assigned partition is read to the end the last fetch of it saw
        (its high-water mark then): nothing more to read now."""
        consumer = self._consumer
        try:
            for tp in consumer.position(consumer.assignment()):
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                offset = tp.offset if tp.offset >= 0 else self._start.get((tp.topic, tp.partition))
                if high < 0 or offset is None or offset < high:
                    return False
        except KafkaException:  # not known yet: the batch waits its time
            return False
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
                messages = self._decoding.consume(size, min(wait, _POLL_S))
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
                    due = self._caught_up()
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
                if now - self._lag_checked > 1.0:
                    self._refresh_lag()
                if (
                    idle_stop_s is not None
                    and not batch.messages
                    and now - last_message > idle_stop_s
                ):
                    return
        finally:
            if collecting:
                gc.enable()
            self._consumer.close()
            self._dead_letters.flush()

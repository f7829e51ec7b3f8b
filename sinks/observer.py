"""What the ClickHouse sink reports: one trace span per event it writes, one span per insert,
and its metrics. The sink (sinks/sink.py) calls :class:`SinkObserver` at four points:
built, a message read, an insert attempt, a batch written.

Tracing. Each linked event or identity change arrives with the W3C context of its
``identity.resolve`` span in its headers. The sink writes events in batches of thousands, so
it records:

- ``sink.insert``: one span per insert attempt of a batch (CLIENT, ClickHouse), with the
  rows and messages it carried; a refused attempt ends with an error status.
- ``sink.write``: one span per event, a child of the event's own context, from the moment
  the sink read it until its batch was in ClickHouse and its offset committed, linked to
  the ``sink.insert`` attempts of its batch.

Why both, rather than only the batch span with a link to each event's context (the
OpenTelemetry messaging conventions' batch pattern): a linked span starts a trace of its
own, so the event's trace would end at the identity stage; and a batch holds up to
``C2C_SINK_BATCH_ROWS`` (20,000) events while the SDK keeps 128 links per span by default.
So every event's trace runs producer -> identity -> sink, and each event points to the one
insert that wrote it. Events whose context is missing or not sampled get no span (sampling
is decided once, at the producer), so an unsampled pipeline pays nothing per event.

Metrics: messages in per topic, batch size and duration, insert duration per attempt, rows
per table, consumer lag per partition, freshness, and the sink's counts (dead letters,
ClickHouse errors, identity changes applied, ``optout.*``) by the catalogue's rules.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind

from c2c.consuming import Decoded
from c2c.metrics import (
    BATCH_DURATION,
    BATCH_SIZE,
    CONSUMER_LAG,
    EVENTS_IN,
    SINK_FRESHNESS,
    SINK_INSERT_DURATION,
    SINK_ROWS,
    Attributes,
    lag_observations,
)
from c2c.telemetry import Telemetry

__all__ = ["SinkObserver"]

STAGE = "sink"
_ROW_BUCKETS = (10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ObservedBatch(Protocol):
    """What the observer reads of the sink's batch (sinks.batch.Batch)."""

    facts: dict[str, list[list[Any]]]
    merges: list[list[Any]]
    persons: dict[str, list[Any]]
    wire: dict[str, list[Any]]  # fact table -> messages ClickHouse decodes
    wire_persons: set[str]
    messages: int
    started: float

    @property
    def rows(self) -> int: ...


class _Pending:
    """An event read with a sampled trace context, waiting for its batch to be written."""

    __slots__ = ("context", "offset", "partition", "read_ns", "topic")

    def __init__(self, decoded: Decoded, context: SpanContext, read_ns: int) -> None:
        self.topic = decoded.topic
        self.partition = decoded.partition
        self.offset = decoded.offset
        self.context = context
        self.read_ns = read_ns


class SinkObserver:
    """See the module docstring. ``counts`` are the counters of the sink's parts, each
    written by its part alone (read, and added up, when metrics are collected), ``lag`` its
    lag per partition, ``newest_row_time`` when it last wrote."""

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        group: str,
        counts: Sequence[Mapping[str, int]],
        lag: Callable[[], Mapping[str, int]],
        newest_row_time: Callable[[], datetime | None],
    ) -> None:
        self.telemetry = telemetry
        self._tracer = telemetry.tracer
        self._tracing = telemetry.tracing
        self._in: Counter[str] = Counter()  # messages written, by topic
        self._reading: Counter[str] = Counter()  # the batch being built, by topic
        self._rows: Counter[str] = Counter()
        self._pending: list[_Pending] = []
        self._attempts: list[SpanContext] = []
        metrics = telemetry.metrics
        self._batch_size = metrics.histogram(BATCH_SIZE, _ROW_BUCKETS)
        self._batch_duration = metrics.histogram(BATCH_DURATION, _SECONDS_BUCKETS)
        self._insert_duration = metrics.histogram(SINK_INSERT_DURATION, _SECONDS_BUCKETS)
        metrics.observe(
            EVENTS_IN,
            lambda: [(float(n), {"topic": t, "stage": STAGE}) for t, n in dict(self._in).items()],
        )
        metrics.observe(
            SINK_ROWS, lambda: [(float(n), {"table": t}) for t, n in dict(self._rows).items()]
        )
        metrics.observe(CONSUMER_LAG, lambda: lag_observations(group, lag()))

        def freshness() -> list[tuple[float, Attributes]]:
            newest = newest_row_time()
            if newest is None:
                return []
            return [((datetime.now(UTC) - newest).total_seconds(), {})]

        metrics.observe(SINK_FRESHNESS, freshness)

        def merged() -> Counter[str]:
            total: Counter[str] = Counter()
            for each in counts:
                total.update(dict(each))
            return total

        metrics.observe_counts(STAGE, merged, zeros=("dead_letter", "clickhouse_errors"))

    def received(self, decoded: Decoded) -> None:
        """A message was read and added to the batch being built."""
        self._reading[decoded.topic] += 1
        if not self._tracing or not decoded.headers:
            return
        context = trace.get_current_span(Telemetry.extract(decoded.headers)).get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            self._pending.append(_Pending(decoded, context, time.time_ns()))

    def received_untraced(self, counts: Mapping[str, int]) -> None:
        """Messages without trace context (``counts`` per topic) were read and added to
        the batch being built: what :meth:`received` does for each, all at once."""
        self._reading.update(counts)

    @contextlib.contextmanager
    def inserting(self, batch: ObservedBatch) -> Iterator[None]:
        """Around one insert attempt of ``batch``: its span and its duration."""
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            "sink.insert",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "clickhouse",
                "db.operation.name": "INSERT",
                "c2c.stage": STAGE,
                "c2c.batch.rows": batch.rows,
                "c2c.batch.messages": batch.messages,
            },
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            self._attempts.append(span.get_span_context())
            try:
                yield
            except Exception:
                self._insert_duration.record(time.perf_counter() - started, {"outcome": "refused"})
                raise
        self._insert_duration.record(time.perf_counter() - started, {"outcome": "written"})

    def written(self, batch: ObservedBatch) -> None:
        """``batch`` is in ClickHouse and its offsets are committed."""
        self._batch_size.record(batch.messages, {"stage": STAGE})
        self._batch_duration.record(time.monotonic() - batch.started, {"stage": STAGE})
        for table, rows in batch.facts.items():
            self._rows[table] += len(rows)
        for table, messages in batch.wire.items():
            self._rows[table] += len(messages)
        self._rows["person_map"] += len(batch.merges)
        self._rows["dim_person"] += len(batch.persons.keys() | batch.wire_persons)
        self._in.update(self._reading)
        self._reading = Counter()
        if self._pending:
            self._trace_events()
        self._pending = []
        self._attempts = []

    def _trace_events(self) -> None:
        links = [Link(attempt) for attempt in self._attempts if attempt.is_valid]
        end = time.time_ns()
        for event in self._pending:
            span = self._tracer.start_span(
                "sink.write",
                context=trace.set_span_in_context(trace.NonRecordingSpan(event.context)),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.source.name": event.topic,
                    "messaging.kafka.source.partition": event.partition,
                    "messaging.kafka.message.offset": event.offset,
                    "c2c.stage": STAGE,
                },
                links=links,
                start_time=event.read_ns,
            )
            span.end(end_time=end)

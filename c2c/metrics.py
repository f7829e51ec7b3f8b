"""The metrics every stage exports: one catalogue, declared as data, and the instruments of
one process made from it.

:data:`METRICS` names each metric once (OpenTelemetry name, kind, unit, attributes); the
Grafana dashboards and the tests refer to these names as Prometheus renders them
(:attr:`MetricSpec.prometheus_name`). :class:`Instruments` makes a process's instruments
from the catalogue, each once per meter.

Per-event figures are counted in plain :class:`collections.Counter` objects that the
stages already keep (``IdentityStage.counts``, ``Sink.counts``) and exported through
observable instruments read at collection time, so the hot loops pay a dict increment
rather than an OpenTelemetry measurement (about 10 us each here). :func:`count_observations`
says which counted key feeds which metric, so a new count named by the same rules (for
example the opt-out stage's ``optout.*``) is exported without code here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation

__all__ = [
    "BATCH_DURATION",
    "BATCH_SIZE",
    "CLICKHOUSE_ERRORS",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "EVENTS_FAILED",
    "EVENTS_IN",
    "EVENTS_OUT",
    "IDENTITY_CHANGES",
    "METRICS",
    "OPTOUTS",
    "REVIEWS",
    "ROWS_REJECTED",
    "SINK_FRESHNESS",
    "SINK_INSERT_DURATION",
    "SINK_ROWS",
    "Instruments",
    "MetricSpec",
    "count_observations",
    "lag_observations",
]

Kind = Literal["counter", "histogram", "gauge"]
Attributes = Mapping[str, str | int]
# A source of observed values: called at collection time, yields (value, attributes).
Source = Callable[[], Iterable[tuple[float, Attributes]]]

_PROMETHEUS_UNITS = {"s": "seconds", "1": ""}


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its OpenTelemetry name, kind, unit, meaning and attribute names."""

    name: str
    kind: Kind
    description: str
    attributes: tuple[str, ...] = ()
    unit: str = "1"

    @property
    def prometheus_name(self) -> str:
        """The name Prometheus shows (the OpenTelemetry exporter's rules: dots become
        underscores, the unit is appended, counters end in ``_total``)."""
        name = self.name.replace(".", "_")
        unit = _PROMETHEUS_UNITS.get(self.unit, "")
        if unit and not name.endswith(f"_{unit}"):
            name = f"{name}_{unit}"
        return f"{name}_total" if self.kind == "counter" else name


EVENTS_IN = MetricSpec(
    "c2c.events.in", "counter", "Messages a stage read and finished, by topic", ("topic", "stage")
)
EVENTS_OUT = MetricSpec(
    "c2c.events.out", "counter", "Events handed to Kafka, by topic and stage", ("topic", "stage")
)
EVENTS_FAILED = MetricSpec(
    "c2c.events.failed", "counter", "Events Kafka did not acknowledge", ("topic", "stage")
)
ROWS_REJECTED = MetricSpec(
    "c2c.rows.rejected", "counter", "Rows rejected at the producer", ("source", "code")
)
BATCH_DURATION = MetricSpec(
    "c2c.batch.duration",
    "histogram",
    "Seconds from a stage taking a batch to its output confirmed (Kafka acknowledged, or "
    "ClickHouse took it and offsets were committed)",
    ("stage",),
    unit="s",
)
BATCH_SIZE = MetricSpec(
    "c2c.batch.size", "histogram", "Messages per batch a stage finished", ("stage",)
)
CONSUMER_LAG = MetricSpec(
    "c2c.consumer.lag",
    "gauge",
    "Messages not yet processed, per consumer group and partition, as the consumer sees it",
    ("group", "topic", "partition"),
)
DEAD_LETTERS = MetricSpec(
    "c2c.dead_letters", "counter", "Messages sent to the dead-letter topic", ("stage",)
)
REVIEWS = MetricSpec("c2c.reviews", "counter", "Records held for identity review", ("stage",))
IDENTITY_CHANGES = MetricSpec(
    "c2c.identity.changes",
    "counter",
    "Identity changes (PERSON_CREATED, RECORD_LINKED, PERSONS_MERGED): made by the identity "
    "stage, applied by the sink",
    ("stage", "change_type"),
)
OPTOUTS = MetricSpec(
    "c2c.optouts",
    "counter",
    "Opt-out actions, by stage and kind (the stages' optout.* counts)",
    ("stage", "kind"),
)
SINK_ROWS = MetricSpec("c2c.sink.rows", "counter", "Rows written to ClickHouse", ("table",))
SINK_INSERT_DURATION = MetricSpec(
    "c2c.sink.insert.duration",
    "histogram",
    "Seconds per ClickHouse insert attempt of one batch (all its tables)",
    ("outcome",),
    unit="s",
)
CLICKHOUSE_ERRORS = MetricSpec(
    "c2c.sink.clickhouse.errors", "counter", "Batch inserts ClickHouse refused", ()
)
SINK_FRESHNESS = MetricSpec(
    "c2c.sink.freshness",
    "gauge",
    "Seconds since the sink last wrote rows to ClickHouse",
    (),
    unit="s",
)

METRICS: tuple[MetricSpec, ...] = (
    EVENTS_IN,
    EVENTS_OUT,
    EVENTS_FAILED,
    ROWS_REJECTED,
    BATCH_DURATION,
    BATCH_SIZE,
    CONSUMER_LAG,
    DEAD_LETTERS,
    REVIEWS,
    IDENTITY_CHANGES,
    OPTOUTS,
    SINK_ROWS,
    SINK_INSERT_DURATION,
    CLICKHOUSE_ERRORS,
    SINK_FRESHNESS,
)

# Counted key (exact, or prefix ending in ".") -> metric, and the attribute the rest of the
# key goes to. Keys that match no rule (linked, rows, batches...) are not exported: they
# are exported otherwise (events in and out, rows per table) or are internal.
_COUNT_RULES: tuple[tuple[str, MetricSpec, str | None], ...] = (
    ("dead_letter", DEAD_LETTERS, None),
    ("review", REVIEWS, None),
    ("clickhouse_errors", CLICKHOUSE_ERRORS, None),
    ("change.", IDENTITY_CHANGES, "change_type"),
    ("optout.", OPTOUTS, "kind"),
)


def count_observations(
    stage: str, counts: Mapping[str, int]
) -> dict[MetricSpec, list[tuple[float, dict[str, str | int]]]]:
    """The metric values a stage's counts stand for, with their attributes.

    ``dead_letter`` -> c2c.dead_letters, ``review`` -> c2c.reviews, ``clickhouse_errors`` ->
    c2c.sink.clickhouse.errors, ``change.KIND`` -> c2c.identity.changes{change_type=KIND},
    ``optout.KIND`` -> c2c.optouts{kind=KIND}; every metric but ClickHouse errors carries
    ``stage``. Other keys are left out.
    """
    found: dict[MetricSpec, list[tuple[float, dict[str, str | int]]]] = {}
    for key, value in counts.items():
        for match, spec, rest in _COUNT_RULES:
            if rest is None and key != match:
                continue
            if rest is not None and not key.startswith(match):
                continue
            attributes: dict[str, str | int] = {}
            if "stage" in spec.attributes:
                attributes["stage"] = stage
            if rest is not None:
                attributes[rest] = key.removeprefix(match)
            found.setdefault(spec, []).append((float(value), attributes))
            break
    return found


def lag_observations(group: str, lag: Mapping[str, int]) -> list[tuple[float, Attributes]]:
    """c2c.consumer.lag values from a lag map keyed "topic[partition]"."""
    found: list[tuple[float, Attributes]] = []
    for key, value in lag.items():
        topic, _, partition = key.rpartition("[")
        found.append(
            (float(value), {"group": group, "topic": topic, "partition": partition.rstrip("]")})
        )
    return found


class Instruments:
    """The catalogue's instruments on one meter, each made once.

    Counters and histograms are recorded directly; observed metrics (gauges, and counters
    kept elsewhere) take any number of :data:`Source` callables, all read when the
    metrics are collected (a Prometheus scrape or a periodic export).
    """

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._lock = threading.Lock()
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._sources: dict[str, list[Source]] = {}

    def counter(self, spec: MetricSpec) -> Counter:
        with self._lock:
            if spec.name not in self._counters:
                self._counters[spec.name] = self._meter.create_counter(
                    spec.name, unit=spec.unit, description=spec.description
                )
            return self._counters[spec.name]

    def histogram(self, spec: MetricSpec, boundaries: tuple[float, ...] | None = None) -> Histogram:
        with self._lock:
            if spec.name not in self._histograms:
                kwargs: dict[str, Any] = {}
                if boundaries is not None:
                    kwargs["explicit_bucket_boundaries_advisory"] = list(boundaries)
                self._histograms[spec.name] = self._meter.create_histogram(
                    spec.name, unit=spec.unit, description=spec.description, **kwargs
                )
            return self._histograms[spec.name]

    def observe(self, spec: MetricSpec, source: Source) -> None:
        """Report ``source``'s values as ``spec`` (a gauge or an observed counter)."""
        with self._lock:
            sources = self._sources.get(spec.name)
            if sources is not None:
                sources.append(source)
                return
            sources = self._sources[spec.name] = [source]

        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            for each in list(sources):
                for value, attributes in each():
                    yield Observation(value, dict(attributes))

        if spec.kind == "gauge":
            self._meter.create_observable_gauge(
                spec.name, [callback], unit=spec.unit, description=spec.description
            )
        else:
            self._meter.create_observable_counter(
                spec.name, [callback], unit=spec.unit, description=spec.description
            )

    def observe_counts(
        self,
        stage: str,
        counts: Callable[[], Mapping[str, int]],
        *,
        zeros: tuple[str, ...] = (),
    ) -> None:
        """Export a stage's counts by the rules of :func:`count_observations`; the keys in
        ``zeros`` are reported as 0 until counted (so a dead-letter series exists before
        the first dead letter)."""

        def source_of(spec: MetricSpec) -> Source:
            def read() -> list[tuple[float, dict[str, str | int]]]:
                # a copy: the stage's loop may count while a scrape reads
                now = {key: 0 for key in zeros} | dict(counts())
                return count_observations(stage, now).get(spec, [])

            return read

        for spec in {spec for _key, spec, _rest in _COUNT_RULES}:
            self.observe(spec, source_of(spec))

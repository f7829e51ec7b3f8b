"""What the identity worker reports: its metrics, per agent ("stage": ``forward`` for the raw
topics to the intake topic, ``identity`` for resolution).

The worker (streams/app.py) calls :func:`observe_worker` once when it builds its Faust app,
and wraps each batch of each agent in :meth:`WorkerObserver.batch`. Reported: messages in
per topic and out per topic, batch size and duration per stage, consumer lag per partition
(measured every few seconds on the worker's event loop, read at collection time), and the
worker's counts (dead letters, reviews, identity changes, ``optout.*``) by the catalogue's
rules (c2c.metrics). Per message the worker pays dict increments only.

Traces are the identity stage's own (``identity.resolve`` in streams/resolution.py,
continuing the producer's context from the message headers).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from c2c.health import Readiness
from c2c.metrics import (
    BATCH_DURATION,
    BATCH_SIZE,
    CONSUMER_LAG,
    EVENTS_IN,
    EVENTS_OUT,
    lag_observations,
)
from c2c.telemetry import Telemetry

__all__ = ["LAG_INTERVAL_S", "StageBatch", "WorkerObserver", "observe_worker"]

LAG_INTERVAL_S = 2.0
_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
log = logging.getLogger(__name__)


class _Sent(Protocol):
    @property
    def topic(self) -> str: ...


class StageBatch:
    """One batch of one stage: say what it read with :meth:`read`, what it sent with
    :meth:`sent`."""

    def __init__(self, observer: WorkerObserver, stage: str) -> None:
        self._observer = observer
        self._stage = stage
        self.topics: Counter[str] = Counter()  # topic -> messages read in this batch

    def read(self, topic: str) -> None:
        """One message of ``topic`` taken in this batch (a record of a pack counts by the
        raw topic it was published to)."""
        self.topics[topic] += 1

    def sent(self, outgoing: Iterable[_Sent]) -> None:
        """Messages handed to Kafka for this batch (counted as events out per topic)."""
        out = self._observer.out
        for message in outgoing:
            out[(message.topic, self._stage)] += 1


class WorkerObserver:
    """See the module docstring."""

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        group: str,
        counts: Callable[[], Mapping[str, int]] | None,
    ) -> None:
        self.group = group
        self.into: Counter[tuple[str, str]] = Counter()  # (topic, stage) -> messages
        self.out: Counter[tuple[str, str]] = Counter()
        self.lag: dict[str, int] = {}
        metrics = telemetry.metrics
        self._size = metrics.histogram(BATCH_SIZE, _SIZE_BUCKETS)
        self._duration = metrics.histogram(BATCH_DURATION, _SECONDS_BUCKETS)
        metrics.observe(EVENTS_IN, lambda: _flows(self.into))
        metrics.observe(EVENTS_OUT, lambda: _flows(self.out))
        metrics.observe(CONSUMER_LAG, lambda: lag_observations(self.group, dict(self.lag)))
        if counts is not None:  # a forwarder alone has no resolver's counts
            metrics.observe_counts("identity", counts, zeros=("dead_letter", "review"))

    @contextlib.contextmanager
    def batch(self, stage: str) -> Iterator[StageBatch]:
        """Around one batch of ``stage``: once the body finished (its output confirmed), the
        messages it said it :meth:`StageBatch.read` count as in. A batch that raises counts
        nothing (the worker stops; it is read again)."""
        started = time.monotonic()
        batch = StageBatch(self, stage)
        yield batch
        self.done(stage, batch.topics, started)

    def done(
        self,
        stage: str,
        topics: Mapping[str, int],
        started: float,
        *,
        forwarded_to: str | None = None,
    ) -> None:
        """A batch of ``stage`` finished: ``topics`` counts its messages in per topic, and
        with ``forwarded_to`` each went out once to that topic; ``started`` is its
        ``time.monotonic()`` at the start. Safe to call from another thread (the
        forwarder's): a scrape reads copies."""
        into = self.into
        for topic, n in topics.items():
            into[(topic, stage)] += n
        size = sum(topics.values())
        if forwarded_to is not None:
            self.out[(forwarded_to, stage)] += size
        attributes = {"stage": stage}
        self._size.record(size, attributes)
        self._duration.record(time.monotonic() - started, attributes)


def _flows(counter: Counter[tuple[str, str]]) -> list[tuple[float, Mapping[str, str | int]]]:
    return [(float(n), {"topic": t, "stage": s}) for (t, s), n in dict(counter).items()]


def observe_worker(
    app: Any,
    telemetry: Telemetry | None,
    *,
    counts: Mapping[str, int],
    lag: Callable[[], Awaitable[Readiness]],
) -> WorkerObserver:
    """The observer of the Faust ``app`` (group ``app.conf.id``): ``counts`` are the
    worker's counters, ``lag`` its readiness check, run every :data:`LAG_INTERVAL_S` on
    the app's loop for the lag gauge."""
    observer = WorkerObserver(
        telemetry if telemetry is not None else Telemetry.disabled(),
        group=str(app.conf.id),
        counts=lambda: counts,
    )

    if telemetry is None or not telemetry.measuring:
        return observer  # nobody reads the lag gauge

    @app.timer(interval=LAG_INTERVAL_S)
    async def _measure_lag() -> None:
        try:
            observer.lag = dict((await lag()).lag)
        except Exception as exc:  # a slow broker answer: keep the last figures
            log.warning("could not measure the worker's lag: %r", exc)

    return observer

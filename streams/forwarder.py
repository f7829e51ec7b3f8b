"""The forwarder: raw topics in, packs of raw messages out to the intake topic.

It has no state, so it needs nothing of Faust: a librdkafka consumer group
(``<app id>-forward``) spreads the raw topics' partitions over every running forwarder,
and each batch it reads goes, in the order read and bytes untouched, to the intake topic
as a few packs (:mod:`streams.intake`). At least once: the raw offsets of a batch are
committed only after Kafka confirmed every pack of it; any failure to forward ends the
process (:func:`streams.failstop.fail_stop`), and the batch is read again after the
restart. A commit that fails (a rebalance moved the partition) only means the next owner
forwards those messages again; the resolver gives a repeated record the same person.

Where a partition's reading starts is fixed when it is assigned: the group's committed
offset, else the offset the Faust worker group ``legacy_group`` committed when it still
read the raw topics itself (so an upgrade neither re-reads nor skips), else the first or
last offset (``C2C_STREAMS_START``).
"""

from __future__ import annotations

import heapq
import json
import logging
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from c2c.health import readiness
from c2c.kafka import CONSUMER_LIVENESS
from c2c.settings import Settings
from c2c.topics import INTAKE_MAX_MESSAGE_BYTES
from streams.delivery import BatchProducer
from streams.failstop import fail_stop
from streams.intake import RECORDS_PER_PACK, packs
from streams.resolution import INPUT_TOPICS, Incoming

if TYPE_CHECKING:
    from c2c.telemetry import Telemetry
    from streams.observer import WorkerObserver

__all__ = ["Forwarder", "forward_group", "publication_order", "run_alone"]

log = logging.getLogger(__name__)

# Packs go out at once (every batch waits for its deliveries before it commits);
# uncompressed: the packs cross one local broker, and compression would cost the
# forwarder and the resolver a core's time for bytes nobody stores for long.
INTAKE_PRODUCER_CONFIG = {
    "linger.ms": 0,
    "compression.type": "none",
    "message.max.bytes": INTAKE_MAX_MESSAGE_BYTES,
}


# What a fetch of the forwarder's consumer brings of each raw partition at most (a few
# hundred raw messages), not librdkafka's 1 MB, so that one batch holds some of every
# partition with a backlog (publication_order merges them), not the first partition
# alone. Not smaller: a fetch waits for C2C_KAFKA_FETCH_MIN_BYTES or
# C2C_KAFKA_FETCH_WAIT_MAX_MS, so the bytes a fetch may bring bound the rate. With 16 kB
# the forwarder carried about 5,000 raw messages/s from a replay at 15,000-30,000/s, its
# partitions drifting apart (a message forwarded 0.8 s after a later-published one, at the
# median); with 64 kB it keeps up (drift p50 0, p99 0.1 s); 128 kB was no faster.
FETCH_BYTES_PER_PARTITION = 64 * 1024


def forward_group(app_id: str) -> str:
    """The forwarders' consumer group of the worker ``app_id``."""
    return f"{app_id}-forward"


def publication_order(read: list[tuple[int, Incoming]]) -> list[Incoming]:
    """A batch's messages, each partition's in offset order, the partitions merged by
    timestamp: the order their producers published them in, as far as the batch holds it.

    librdkafka hands a batch over partition by partition (a fetch's worth of each), so
    without this one partition's records would all precede another's; resolution works
    best when a person's records arrive in the order they happened. ``read`` is
    (timestamp in ms, message) in the order consumed."""
    by_partition: dict[tuple[str, int], list[tuple[int, int, Incoming]]] = {}
    for seq, (timestamp, message) in enumerate(read):
        by_partition.setdefault((message.topic, message.partition), []).append(
            (timestamp, seq, message)
        )
    if len(by_partition) == 1:
        return [message for _, message in read]
    return [message for _t, _s, message in heapq.merge(*by_partition.values())]


class Forwarder:
    """Forwards the raw topics to ``intake_topic``; :meth:`run` until stopped."""

    def __init__(
        self,
        settings: Settings,
        intake_topic: str,
        *,
        group_id: str,
        legacy_group: str | None = None,
        observer: WorkerObserver | None = None,
    ) -> None:
        self._settings = settings
        self._observer = observer  # metrics of the stage "forward", if measured
        self._intake = intake_topic
        self._legacy_group = legacy_group
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": settings.streams_start,
                    # a forwarder that died is replaced after 10 s, as the Faust worker is
                    **CONSUMER_LIVENESS,
                    # some of every partition a fetch, at the rate the input comes
                    "max.partition.fetch.bytes": FETCH_BYTES_PER_PARTITION,
                }
            )
        )
        self._producer = BatchProducer(
            settings, what=f"forwarding to {intake_topic}", extra_config=INTAKE_PRODUCER_CONFIG
        )
        self.counts: Counter[str] = Counter()
        # (topic, partition) -> next offset to forward, for the partitions assigned here
        self._positions: dict[tuple[str, int], int] = {}
        self._lag: dict[str, int] = {}
        self._lag_checked = 0.0
        self.assigned = False  # received an assignment (possibly empty) from the group

    # -- the group ---------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=10)
        legacy = self._legacy_offsets(
            [tp for tp, done in zip(partitions, committed, strict=True) if done.offset < 0]
        )
        for tp, done in zip(partitions, committed, strict=True):
            if done.offset >= 0:
                tp.offset = done.offset
            elif (tp.topic, tp.partition) in legacy:
                tp.offset = legacy[(tp.topic, tp.partition)]
            else:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                tp.offset = high if self._settings.streams_start == "latest" else low
        consumer.assign(partitions)
        self._positions = {(tp.topic, tp.partition): tp.offset for tp in partitions}
        self.assigned = True
        self.counts["assignments"] += 1
        self._refresh_lag()
        log.info("forwarder assigned %d raw partition(s)", len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
        self.counts["revocations"] += 1

    def _legacy_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Offsets the Faust worker group committed on the raw topics, if any."""
        if not partitions or self._legacy_group is None:
            return {}
        reader = Consumer(
            self._settings.kafka_config(
                **{"group.id": self._legacy_group, "enable.auto.commit": False}
            )
        )
        try:
            found = reader.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10
            )
        finally:
            reader.close()
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    # -- health ------------------------------------------------------------------------
    def lag(self) -> dict[str, int]:
        """Raw messages not yet forwarded, per assigned partition ("topic[partition]"),
        as of the last check (at most half a second old while the loop runs)."""
        return dict(self._lag)

    def _refresh_lag(self) -> None:
        lag = {}
        try:
            for (topic, partition), position in list(self._positions.items()):
                tp = TopicPartition(topic, partition)
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # nothing fetched from it yet: ask the broker
                    _low, high = self._consumer.get_watermark_offsets(tp, timeout=5)
                lag[f"{topic}[{partition}]"] = max(0, high - position)
        except KafkaException as exc:  # the broker was slow to answer: keep the last figures
            log.warning("could not measure the forwarder's lag: %s", exc)
        else:
            self._lag = lag
        finally:
            self._lag_checked = time.monotonic()

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop`` is set; any failure ends the process (fail-stop)."""
        with fail_stop("forwarding raw events to the intake topic"):
            self._consumer.subscribe(
                list(INPUT_TOPICS), on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            size = self._settings.streams_batch_size
            wait = self._settings.streams_batch_wait_s
            try:
                while not stop.is_set():
                    self.forward(self._consumer.consume(size, wait))
                    if time.monotonic() - self._lag_checked > 0.5:
                        self._refresh_lag()
            finally:
                self._consumer.close()

    def forward(self, messages: list[Message]) -> None:
        """Send one batch to the intake topic, wait until Kafka confirmed it, then commit
        its raw offsets. Raises DeliveryError if Kafka did not take all of it."""
        started = time.monotonic()
        read: list[tuple[int, Incoming]] = []
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("forwarder: %s", error)
                self.counts["kafka_error"] += 1
                continue
            topic = str(message.topic())
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            headers = message.headers() or []
            read.append(
                (
                    message.timestamp()[1],
                    Incoming(
                        topic,
                        partition,
                        offset,
                        message.key(),
                        message.value(),
                        list(headers.items()) if isinstance(headers, dict) else headers,
                    ),
                )
            )
            ends[(topic, partition)] = offset + 1
        if not read:
            return
        records = publication_order(read)
        sent = 0
        for value, _count in packs(records, max_records=RECORDS_PER_PACK):
            self._producer.send(self._intake, None, value)
            sent += 1
        self._producer.confirm()
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            # forwarded but not committed: the partition's next owner forwards it again
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("forwarder could not commit raw offsets (%s)", exc)
                self.counts["commit_failed"] += 1
        for tp, end in ends.items():
            if tp in self._positions:
                self._positions[tp] = end
        self.counts["forwarded"] += len(records)
        self.counts["packs"] += sent
        if self._observer is not None:
            topics = Counter(message.topic for message in records)
            self._observer.done("forward", topics, started, forwarded_to=self._intake)


def run_alone(
    settings: Settings, *, app_id: str, intake_topic: str, telemetry: Telemetry | None = None
) -> None:
    """`c2c identity worker --role forward`: a forwarder without Faust, its health pages
    (/health/live, /health/ready, /metrics/counts on C2C_WORKER_WEB_PORT), until SIGTERM or
    SIGINT (the batch in hand is finished first). With ``telemetry``, the stage "forward"'s
    events in and out and batch sizes and durations are exported (its lag is on
    /health/ready)."""
    from streams.observer import WorkerObserver

    group = forward_group(app_id)
    observer = (
        WorkerObserver(telemetry, group=group, counts=None) if telemetry is not None else None
    )
    forwarder = Forwarder(
        settings, intake_topic, group_id=group, legacy_group=app_id, observer=observer
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    server = _serve(forwarder, settings)
    try:
        forwarder.run(stop)
    finally:
        server.shutdown()


def _serve(forwarder: Forwarder, settings: Settings) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet: operators read metrics
            return

        def do_GET(self) -> None:
            path = self.path.rstrip("/")
            status = 200
            body: dict[str, Any] = {}
            if path == "/health/live":
                body = {"live": True}
            elif path == "/health/ready":
                lag = forwarder.lag()
                answer = readiness(
                    connected=forwarder.assigned and bool(lag),
                    recovering=False,
                    lag=lag,
                    max_lag=settings.ready_max_lag,
                )
                status, body = (200 if answer.ready else 503), answer.as_json()
            elif path == "/metrics/counts":
                body = dict(forwarder.counts)
            else:
                status, body = 404, {"error": f"no page {path}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((settings.worker_web_host, settings.worker_web_port), Handler)
    threading.Thread(target=server.serve_forever, name="forwarder-web", daemon=True).start()
    return server

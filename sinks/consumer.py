"""The sink's side of Kafka: its consumer group, where reading starts, pausing while
ClickHouse refuses, lag, dead letters and commits.

:class:`SinkConsumer` owns the confluent-kafka Consumer (subscribed to the topics it has a
decoder for, offsets committed only by :meth:`SinkConsumer.commit`), the dead-letter
publisher, and c2c.consuming's DecodingConsumer over both, whose rules it applies to what
the batch builder (sinks/batch.py) could not take.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from c2c.consuming import Decoder, DecodingConsumer
from c2c.deadletter import DeadLetterPublisher
from c2c.kafka import CONSUMER_LIVENESS, group_refused, not_authorized
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from sinks.batch import DeadLetter, Message

__all__ = ["SinkConsumer"]

log = logging.getLogger(__name__)
_LAG_EVERY_S = 1.0  # how often the lag is measured, reading or held
_HOLD_STEP_S = 0.1  # how often a held consumer serves the group's callbacks


class SinkConsumer:
    """The sink's consumer in group ``group_id`` (see the module docstring), reading the
    topics of ``decoders`` from C2C_SINK_START where the group has no offset.

    ``counts``: ``assignments`` and ``revocations``; :attr:`decoding_counts`: the
    DecodingConsumer's (``kafka_error``, ``dead_letter``). ``connected`` and
    ``positioned`` (every assigned partition has a read position) are its health;
    ``positioned_at``: when reading began (time.time()) with this process's CPU seconds
    then (time.process_time()), once it did."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        decoders: Mapping[str, Decoder],
        *,
        group_id: str,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.connected = False
        self.positioned = False
        self.positioned_at: tuple[float, float] | None = None
        self._start_at = settings.sink_start
        self._settings = settings
        self._group_id = group_id
        self._lag: dict[str, int] = {}
        self._start: dict[tuple[str, int], int] = {}  # where reading began, per partition
        self._lag_checked = 0.0
        self._paused = False  # partitions paused while ClickHouse refuses a batch
        # the partitions the group assigned to this sink, and who is told when they change
        # (the sink's side reader follows the others: sinks/side_reader.py)
        self.owned: set[tuple[str, int]] = set()
        self.on_owned: Callable[[set[tuple[str, int]]], None] | None = None
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": settings.sink_start,
                    "max.poll.interval.ms": 600_000,
                    # a sink that died is replaced (or its restart resumes) after 10 s
                    **CONSUMER_LIVENESS,
                    # fetches wait at the broker as every consumer's do (Settings.kafka_config)
                }
            )
        )
        self._consumer.subscribe(
            list(decoders), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._dead_letters = DeadLetterPublisher(settings, registry)
        self._decoding = DecodingConsumer(
            self._consumer, decoders, self._dead_letters, stage="sink", settings=settings
        )

    @property
    def decoding_counts(self) -> Mapping[str, int]:
        """What the DecodingConsumer counted: ``kafka_error`` and ``dead_letter``."""
        return self._decoding.counts

    # -- reading ---------------------------------------------------------------------------
    def consume(self, max_messages: int, timeout_s: float) -> list[KafkaMessage]:
        """The messages of one fetch (errors among them), for the batch builder."""
        return self._decoding.consume(max_messages, timeout_s)

    def skip_errors(self, messages: Iterable[Message]) -> None:
        """Messages whose ``error()`` is set: counted and passed over when Kafka recovers
        from them; KafkaException for a fatal one (c2c.consuming's rules)."""
        for message in messages:
            # the builder's messages are this consumer's own (sinks.batch.Message: what it reads)
            self._decoding.skip_error(cast(KafkaMessage, message))

    def send_dead_letters(self, dead: Iterable[DeadLetter]) -> None:
        """Publish each message that did not decode, with its error, to the dead-letter
        topic; :meth:`commit` waits until they are delivered."""
        for message, error in dead:
            self._decoding.dead_letter(cast(KafkaMessage, message), error)

    def publish_dead_letters(self, records: Iterable[dict[str, Any]]) -> None:
        """Publish dead letters already built (rows ClickHouse refused: sinks/refusal.py),
        counted as ``row_refused``; :meth:`commit` waits until they are delivered."""
        for record in records:
            self._dead_letters.publish(record)
            self.counts["row_refused"] += 1

    def commit(self) -> None:
        """Commit what was consumed so far, once the dead letters are delivered: call it
        only when ClickHouse has every row read."""
        self._decoding.commit()

    def committed(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets of ``partitions`` (-1001 where none)."""
        if not partitions:
            return []
        try:
            return list(self._consumer.committed(partitions, timeout=10))
        except KafkaException as exc:
            if group_refused(self._settings, self._group_id):
                raise not_authorized(
                    self._settings, f"consumer group {self._group_id}", "read"
                ) from exc
            raise

    def close(self) -> None:
        """Leave the group, and deliver the dead letters still queued."""
        self._consumer.close()
        self._dead_letters.flush()

    def __enter__(self) -> SinkConsumer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- holding while ClickHouse refuses --------------------------------------------------
    def hold(self, seconds: float, stop: threading.Event, sleep: Callable[[float], None]) -> bool:
        """Wait ``seconds`` (through ``sleep``) with every assigned partition paused, the
        group's callbacks served and the lag measured meanwhile; False as soon as ``stop``
        is set. The partitions stay paused until :meth:`resume`."""
        if not self._paused:
            self._consumer.pause(self._consumer.assignment())
            self._paused = True
        waited = 0.0
        while waited < seconds:  # keep the group membership alive while waiting
            if stop.is_set():
                return False
            self._keep_alive()
            sleep(_HOLD_STEP_S)
            waited += _HOLD_STEP_S
            self.refresh_lag()  # operators see the lag
        return True

    def resume(self) -> None:
        """Resume the partitions :meth:`hold` paused, if it did."""
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False

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

    # -- the group -------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        # Where reading starts is fixed here, at assignment, so that "latest" means the end
        # as it is now: whatever is published once `positioned` is true will be read.
        committed = consumer.committed(partitions, timeout=10)
        for tp, done in zip(partitions, committed, strict=True):
            if done.offset >= 0:
                tp.offset = done.offset
            else:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                tp.offset = high if self._start_at == "latest" else low
            self._start[(tp.topic, tp.partition)] = tp.offset
        consumer.assign(partitions)
        if self._paused:  # assigned while ClickHouse refuses: wait with the others
            consumer.pause(partitions)
        self.counts["assignments"] += 1
        log.info("sink assigned %d partition(s)", len(partitions))
        self.owned |= {(tp.topic, tp.partition) for tp in partitions}
        if self.on_owned is not None:
            self.on_owned(set(self.owned))
        self.connected = bool(partitions)
        self.positioned = bool(partitions)
        if partitions and self.positioned_at is None:
            self.positioned_at = (time.time(), time.process_time())

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        self.counts["revocations"] += 1
        log.info("sink lost %d partition(s)", len(partitions))
        # told at the next assignment (an eager rebalance revokes everything first)
        self.owned -= {(tp.topic, tp.partition) for tp in partitions}

    # -- lag -------------------------------------------------------------------------------
    def lag(self) -> dict[str, int]:
        """Messages not yet written, per assigned partition ("topic[partition]")."""
        return dict(self._lag)

    def refresh_lag(self) -> None:
        """Measure the lag again if the last measure is more than a second old: per
        partition, the high-water mark the last fetch brought back (asked of the broker
        only for a partition not fetched yet) minus the committed offset."""
        if time.monotonic() - self._lag_checked <= _LAG_EVERY_S:
            return
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

    def caught_up(self) -> bool:
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

"""What a sink reads beside its consumer group: the identity changes and opt-out decisions
of the partitions the group gave to other sinks.

Several sinks in one group split the linked topics between them, and with them the
changes (6 partitions) and the decisions (1 partition). A sink must still know every
merge (the person map is transitive: a merge read by one sink re-points ids another sink
saw absorbed) and every opt-out decision (its own rows of the person, written before it
read the decision, are its to remove; rows it reads later are its to leave out). So each
sink follows, with a :class:`SideReader`, every partition of those two topics that the
group did not assign to it: a consumer of its own, assigned partitions (no group
membership), that never commits. Alone in its group a sink follows nothing here.

Where it starts: where the group had committed when the sink started (read before the
sink loads the person map and the opt-outs from ClickHouse, which hold every merge and
decision before those offsets), or by ``C2C_SINK_START`` where the group had committed
nothing. So a partition followed after a rebalance is read from there, also the part this
sink read itself through the group before it lost the partition: a merge or a decision
applied again changes nothing more (sinks.rows.PersonMap.merge, the filter's maximum,
a removal that finds no rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from c2c.settings import Settings
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC

__all__ = ["SIDE_TOPICS", "SideReader"]

log = logging.getLogger(__name__)

SIDE_TOPICS = (CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC)

# the group's committed offsets of the partitions given (confluent-kafka's committed())
Committed = Callable[[list[TopicPartition]], list[TopicPartition]]


class SideReader:
    """Follows the partitions of :data:`SIDE_TOPICS` that the sink's group gave to other
    sinks (see the module docstring). ``committed``: the group's committed offsets;
    ``group_id``: the sink's group (this consumer's own id is derived from it, and never
    commits or joins)."""

    def __init__(self, settings: Settings, *, group_id: str, committed: Committed) -> None:
        self._start_at = settings.sink_start
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"{group_id}-side",  # never joined, never committed
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                }
            )
        )
        self._partitions: list[tuple[str, int]] | None = None
        self.assigned: set[tuple[str, int]] = set()
        self._start: dict[tuple[str, int], int] = {}  # where each followed partition began
        # the group's committed offsets now, before the sink loads what ClickHouse holds
        self._committed_at_start = {
            (tp.topic, tp.partition): tp.offset
            for tp in committed([TopicPartition(t, p) for t, p in self._all()])
        }

    def _all(self) -> list[tuple[str, int]]:
        if self._partitions is None:
            found: list[tuple[str, int]] = []
            for topic in SIDE_TOPICS:
                meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
                if meta.error is not None:
                    raise KafkaException(meta.error)
                found += [(topic, p) for p in sorted(meta.partitions)]
            self._partitions = found
        return self._partitions

    def follow(self, owned: Iterable[tuple[str, int]]) -> None:
        """Follow every partition of the side topics not in ``owned`` (the group's
        assignment to this sink); a partition newly followed starts as the module
        docstring says, one still followed keeps its position."""
        others = set(self._all()) - set(owned)
        added = sorted(others - self.assigned)
        if not added and others == self.assigned:
            return
        dropped = [TopicPartition(t, p) for t, p in sorted(self.assigned - others)]
        if dropped:
            self._consumer.incremental_unassign(dropped)
        if added:
            starts = self._starts(added)
            self._consumer.incremental_assign(starts)
        self.assigned = others
        log.info("sink follows %d side partition(s) of other sinks", len(others))

    def _starts(self, partitions: list[tuple[str, int]]) -> list[TopicPartition]:
        starts = []
        for topic, partition in partitions:
            tp = TopicPartition(topic, partition)
            offset = self._committed_at_start.get((topic, partition), -1)
            if offset < 0:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                offset = high if self._start_at == "latest" else low
            tp.offset = offset
            self._start[(topic, partition)] = offset
            starts.append(tp)
        return starts

    def consume(self, max_messages: int) -> list[KafkaMessage]:
        """What arrived on the followed partitions (none followed: nothing), without
        waiting; Kafka's errors among them are logged and left out."""
        if not self.assigned:
            return []
        messages = self._consumer.consume(max_messages, 0)
        kept = []
        for message in messages:
            if message.error() is not None:
                log.warning("sink side reader: %s", message.error())
                continue
            kept.append(message)
        return kept

    def lag(self) -> dict[str, int]:
        """Messages not yet read, per followed partition ("topic[partition]")."""
        found: dict[str, int] = {}
        if not self.assigned:
            return found
        positions = self._consumer.position(
            [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        )
        for tp in positions:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            # not read yet: where it began
            at = tp.offset if tp.offset >= 0 else self._start.get((tp.topic, tp.partition), 0)
            found[f"{tp.topic}[{tp.partition}]"] = max(0, high - at)
        return found

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> SideReader:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

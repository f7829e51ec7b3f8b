"""Where the resolve agent stands in the intake, and the holes Faust leaves in it.

The intake is the order (streams/README.md): every message must be resolved once, in offset
order, and no offset may be committed before its message was resolved. Faust breaks both
around rebalances. Its stream skips, and acknowledges, messages it fetched before a
rebalance or while its flow was stopped (``faust.streams``, ``skipped_value``). Its commit
then either stops at the hole for good (a group that lags forever: tests/integration/
test_failover.py delivered intake offsets 104-167, then 170 on) or, for a hole of one
message just after the committed offset, commits over it (``Consumer._new_offset`` lets
``min(acked) - committed`` be 1), and the message is never resolved.

:class:`IntakeCursor` is plain bookkeeping, no Kafka: the agent asks it about each message
(:meth:`IntakeCursor.hole`), resolves only the next one or a replay, skips what lies
beyond a hole and asks the consumer to read from the hole again
(:meth:`IntakeCursor.refetch`, then a timer, :meth:`IntakeCursor.due`, until it is
filled); and the consumer never commits past :meth:`IntakeCursor.resolved_up_to`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from c2c.errors import C2CError

__all__ = ["REFETCHES", "REFETCH_AFTER_S", "IntakeCursor", "IntakeGap"]

Partition = tuple[str, int]  # (topic, partition)

# A hole asked for is given this long to be filled before it is asked for once more. A
# read asked for while Faust still hands the stream messages it fetched before can be
# lost: Faust's read offset moves past the hole again with them, and it drops the
# messages read again as seen (test_failover, CI: offsets 136 on asked for, 305 alone came)
REFETCH_AFTER_S = 3.0
# Asked for this many times and still not filled: the worker stops (IntakeGap)
REFETCHES = 5


class IntakeGap(C2CError):
    """A hole in the intake that reading it again did not fill (:data:`REFETCHES` times,
    :data:`REFETCH_AFTER_S` apart): the worker stops (fail-stop) before acknowledging
    anything more, and the restart reads from the committed offset, which never passed
    the hole."""

    code = "worker.intake_gap"

    def __init__(self, partition: Partition, expected: int, offset: int, times: int) -> None:
        topic, number = partition
        super().__init__(
            f"intake offsets skipped: {topic}[{number}] delivered offset {offset} where "
            f"{expected} was next, and reading from {expected} again ({times} times) did not "
            "bring it; stopping so that a restart reads from the committed offset"
        )
        self.expected = expected
        self.offset = offset


@dataclass
class _Refetch:
    offset: int  # the hole: where to read from
    beyond: int  # the message delivered instead
    asked_at: float
    times: int


@dataclass
class IntakeCursor:
    """Per intake partition, the next offset to resolve: where the consumer sought after
    a rebalance (:meth:`sought`), then one past the last message resolved."""

    positions: dict[Partition, int] = field(default_factory=dict)
    _refetching: dict[Partition, _Refetch] = field(default_factory=dict)
    holes: int = 0  # messages delivered beyond a hole (skipped, read again)

    def hole(self, partition: Partition, offset: int) -> int | None:
        """The offset that must come first when the message at ``offset`` lies beyond
        the next one (Faust skipped those between: do not resolve it); None when it may
        be resolved: the next one, or one again (a replay after a seek)."""
        expected = self.positions.get(partition)
        if expected is not None and offset > expected:
            self.holes += 1
            return expected
        return None

    def resolved(self, partition: Partition, offset: int) -> None:
        """The message at ``offset`` was resolved (it was not beyond a hole; a replay
        leaves the position where it is)."""
        if offset + 1 > self.positions.get(partition, -1):
            self.positions[partition] = offset + 1
            self._refetching.pop(partition, None)

    def refetch(self, partition: Partition, expected: int, offset: int, now: float) -> bool:
        """Whether to ask the consumer to read ``partition`` from ``expected`` (a message
        at ``offset`` came instead): the first time this hole is seen. Asking again is
        :meth:`due`'s."""
        asked = self._refetching.get(partition)
        if asked is None or asked.offset != expected:
            self._refetching[partition] = _Refetch(expected, offset, now, 1)
            return True
        return False

    def due(self, now: float) -> list[tuple[Partition, int]]:
        """The holes asked for at least :data:`REFETCH_AFTER_S` ago and still not filled,
        each as (partition, offset to read from), counted as asked again: for a timer, as
        no batch may come to ask (every message Faust had was beyond the hole).
        :class:`IntakeGap` for one asked :data:`REFETCHES` times in vain."""
        out = []
        for partition, asked in self._refetching.items():
            if now - asked.asked_at < REFETCH_AFTER_S:
                continue
            if asked.times >= REFETCHES:
                raise IntakeGap(partition, asked.offset, asked.beyond, asked.times)
            asked.asked_at, asked.times = now, asked.times + 1
            out.append((partition, asked.offset))
        return out

    def resolved_up_to(self, partition: Partition) -> int | None:
        """The offset below which every message of ``partition`` was resolved since the
        consumer sought (None: not known yet): the most the consumer may commit."""
        return self.positions.get(partition)

    def forget(self) -> None:
        """At a rebalance: what was read before says nothing of where the next batch
        starts (:meth:`sought` says it)."""
        self.positions.clear()
        self._refetching.clear()

    def sought(self, offsets: Mapping[Partition, int]) -> None:
        """The consumer sought each partition of ``offsets`` to its committed offset (or
        the log's start): the next message of each must be there."""
        self.positions.update(offsets)

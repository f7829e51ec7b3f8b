"""The identity worker's decider (streams/README.md, "The decider in the worker"): with
``C2C_STREAMS_RESOLVER=shards`` the worker holding the intake decides each batch as one
epoch of the sharded resolver, over the shard hosts (``c2c identity shard-host``), and
logs it before the shards apply it.

A batch's order: decide (:meth:`WorkerDecider.decide`: the stage's steps run in the
decider over the epoch's view), log (confirmed: the epoch's resolutions and writes, the
intake position after the batch, every message the batch publishes with its time, and the
operators' decisions table's writes), apply on the shards, publish, commit the intake
offsets. A worker that takes the intake over (:meth:`WorkerDecider.resume`) sends the
logged epoch's writes to the shards again, publishes its messages again (the same event
and decision ids, the same times: the sink keeps one row an event), writes its decisions
again, and leaves out every intake message before the logged position: deciding them
again would link them to the persons they created the first time. Until the worker says
they are published (:meth:`WorkerDecider.published`), the messages a resume gave are
logged again with each epoch, so a worker lost again before publishing them leaves
them to the next.

No Kafka here beyond what it is given: the shards (``ShardedResolver(over=...)``) and the
log (:class:`~streams.decider_log.DeciderLog`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from streams.identity.resolver import Resolution
from streams.identity.sharding import Decider, EpochWrites, ShardedResolver, apply_again
from streams.resolution import IdentityStage, Incoming, Outgoing, Processed

__all__ = ["EpochLog", "Published", "WorkerDecider"]

# the whole batch is one epoch: the intake position logged with an epoch is the batch's end
_ONE_EPOCH = 2**62


class Published(NamedTuple):
    """A message's results as the worker publishes them: when it was resolved (epoch
    milliseconds, the messages' create time) and the messages."""

    resolved_ms: int
    outgoing: list[Outgoing]


class EpochLog(Protocol):
    """What the decider's log does for the worker (:class:`~streams.decider_log.DeciderLog`)."""

    def resume(self, decider: Decider) -> Any: ...

    def record(
        self,
        resolutions: list[Resolution],
        writes: EpochWrites,
        taken: int,
        next_number: int,
        extra: Any = None,
    ) -> None: ...


class WorkerDecider:
    """The identity stage's batches decided through ``sharded`` and logged in ``log``.
    :meth:`resume` first (once, before any batch)."""

    def __init__(self, stage: IdentityStage, sharded: ShardedResolver, log: EpochLog) -> None:
        self.stage = stage
        self.sharded = sharded
        sharded.epoch = _ONE_EPOCH
        self.log = log
        # intake partition -> the offset after the last message an epoch decided
        self.position: dict[int, int] = {}
        # the operators' decisions table writes not yet taken (take_decisions)
        self._decisions: dict[str, dict[str, Any] | None] = {}
        # messages a resume gave, not yet known published: logged with every epoch until
        # the worker says they are (published())
        self._unpublished: list[Published] = []

    def resume(self) -> list[Published]:
        """Take up where the log leaves off: the decider's merges and next number, the
        separations the stage restored (from the decisions table) as the decider's, the
        logged epoch's writes sent to the shards again, its decisions pending again (the
        next batch writes them); the messages it published, to publish again first."""
        resumed = self.log.resume(self.sharded.decider)
        # the decider reads the separations an operator made; the stage restored them
        self.sharded.decider.state.apart = self.stage.state.apart
        if resumed.pending is not None:
            apply_again(self.sharded.shards, resumed.pending)
        extra: Mapping[str, Any] = resumed.extra or {}
        self.position = {int(p): int(o) for p, o in extra.get("position", {}).items()}
        self.stage.decisions.replay(extra.get("decisions", {}))
        self._unpublished = [
            Published(ms, [Outgoing(*message) for message in outgoing])
            for ms, outgoing in extra.get("published", [])
        ]
        return list(self._unpublished)

    @property
    def unpublished(self) -> list[Published]:
        """The messages :meth:`resume` gave that the worker has not yet said are published:
        to publish with the next batch's (each epoch logs them again until then)."""
        return self._unpublished

    def published(self) -> None:
        """The worker has confirmed the messages :meth:`resume` gave (and every batch's so
        far) published: epochs no longer log them again."""
        self._unpublished = []

    def take_decisions(self) -> dict[str, dict[str, Any] | None]:
        """The operators' decisions table's writes of the batches decided since the last
        call (None: delete the key), for the worker to write; forgotten here."""
        taken, self._decisions = self._decisions, {}
        return taken

    def decided_before(self, partition: int, offset: int) -> bool:
        """Whether an epoch already decided intake message ``offset`` of ``partition``
        (logged: the worker before took it; it is published again by :meth:`resume`)."""
        return offset < self.position.get(partition, 0)

    def decide(self, messages: Sequence[Incoming], position: Mapping[int, int]) -> list[Processed]:
        """What each of ``messages`` (a batch's records, in order) produces, decided as one
        epoch and logged, with ``position`` (intake partition -> the offset after the
        batch's last message), before the shards apply it, with the messages a resume
        gave that are not yet published. The batch's operators' decisions table writes are
        kept for :meth:`take_decisions`."""
        after = {**self.position, **position}

        def logged(
            resolutions: list[Resolution], writes: EpochWrites, taken: int, done: list[Processed]
        ) -> None:
            decisions = self.stage.decisions.drain()
            made = [*self._unpublished, *(Published(p.resolved_ms, p.outgoing) for p in done)]
            published = [(p.resolved_ms, [tuple(m) for m in p.outgoing]) for p in made]
            extra = {"position": after, "published": published, "decisions": decisions}
            # no resolutions: the messages published are what a successor sends again (the
            # resolutions were a third of the log's pickling, measured)
            self.log.record([], writes, taken, self.sharded.decider.state.next_number, extra)
            self._decisions.update(decisions)

        processed = self.stage.process_sharded(messages, self.sharded, decided=logged)
        # messages with no epoch item (dead letters only) log nothing: made again if read again
        self._decisions.update(self.stage.decisions.drain())
        self.position = after
        return processed

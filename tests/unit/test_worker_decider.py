"""The identity worker's decider (streams/worker_decider.py) over shards in this process:
batches decided as epochs and logged publish what the stage publishes over one resolver,
and a decider lost after logging an epoch, with none, some or all of the shards having
applied it, is taken over by a new one that publishes the lost epoch's messages again,
leaves its intake messages out, and goes on to the same bytes. The log here keeps what
:class:`streams.decider_log.DeciderLog` keeps on Kafka, in memory
(tests/integration/test_crashes.py runs the worker with the real one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from c2c.topics import OPERATOR_DECISIONS_TOPIC
from streams.decider_log import Resumed, logged_epoch
from streams.identity.resolver import IdentifierHasher, Resolution
from streams.identity.sharding import Decider, EpochWrites, LocalShards, Shard, ShardedResolver
from streams.resolution import IdentityStage, Incoming, Processed
from streams.worker_decider import Published, WorkerDecider
from tests.unit.test_operator_decisions import FLOOR
from tests.unit.test_stage_sharded import fix_time, seen, stage_over, synth_messages, with_decisions

_HASHER = IdentifierHasher(b"decisions")


class _MemoryLog:
    """The decider's log as :class:`~streams.decider_log.DeciderLog` keeps it: every
    merge, and the last epoch whole."""

    def __init__(self) -> None:
        self.merges: dict[str, str] = {}
        self.last: tuple[Any, ...] | None = None
        self.epochs = 0

    def resume(self, decider: Decider) -> Resumed:
        if self.last is None:
            decider.resume(1, self.merges, {})
            return Resumed(0, [], None)
        done, next_number, resolutions, writes, extra = self.last
        decider.resume(next_number, self.merges, writes.persons)
        return Resumed(done, resolutions, writes, extra)

    def record(
        self,
        resolutions: list[Resolution],
        writes: EpochWrites,
        taken: int,
        next_number: int,
        extra: Any = None,
    ) -> None:
        self.epochs += 1
        done = taken + (self.last[0] if self.last is not None else 0)
        self.last = (done, next_number, resolutions, writes, extra)
        for absorbed, survivor in writes.merges.items():
            if survivor is None:
                self.merges.pop(absorbed, None)
            else:
                self.merges[absorbed] = survivor


class _Lost(Exception):
    """The decider's process lost, mid-batch."""


class _Losing(LocalShards):
    """Shards in this process whose decider is lost when it sends the ``at``-th apply,
    after ``reached`` of the shards have applied it."""

    def __init__(self, shards: Sequence[Shard], at: int, reached: int) -> None:
        super().__init__(shards)
        self.at, self.reached, self.applies = at, reached, 0

    def send(self, method: str, arguments: Sequence[tuple[Any, ...]]) -> None:
        if method == "apply":
            self.applies += 1
            if self.applies == self.at:
                for shard, args in list(zip(self.shards, arguments, strict=True))[: self.reached]:
                    shard.apply(*args)
                raise _Lost
        super().send(method, arguments)


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> list[Incoming]:
    return with_decisions(synth_messages(tmp_path_factory.mktemp("worker")), lag=25)


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_time(monkeypatch)


def _batches(count: int, size: int) -> list[range]:
    return [range(at, min(at + size, count)) for at in range(0, count, size)]


class _Worker:
    """What the worker keeps across its decider's loss: the operators' decisions table,
    and what it published, per intake offset (one message an offset here)."""

    def __init__(self) -> None:
        self.table: dict[str, dict[str, Any]] = {}
        self.published: dict[int, list[Any]] = {}
        self.republished: list[Published] = []
        self.last_decisions: dict[str, dict[str, Any] | None] = {}

    def decider(self, shards: LocalShards, log: _MemoryLog) -> WorkerDecider:
        stage: IdentityStage = stage_over()
        stage.decisions.restore(self.table.items())
        sharded = ShardedResolver(_HASHER, shards.count, review_floor=FLOOR, over=shards)
        decider = WorkerDecider(stage, sharded, log)
        self.republished += decider.resume()
        return decider

    def run(self, decider: WorkerDecider, messages: list[Incoming], batch: range) -> None:
        """One batch: decided, its decisions written, published (what a resume gave too)."""
        taken = [at for at in batch if not decider.decided_before(0, at)]
        if not taken:
            return
        processed = decider.decide([messages[at] for at in taken], {0: taken[-1] + 1})
        for at, done in zip(taken, processed, strict=True):
            self.published[at] = _bytes(done)
        self.last_decisions = decider.take_decisions()
        for key, value in self.last_decisions.items():
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        decider.published()


def _bytes(done: Processed) -> list[Any]:
    return [(m.topic, m.key, m.value) for m in done.outgoing]


@pytest.mark.parametrize("shards", [1, 3])
def test_batches_decided_and_logged_publish_what_one_resolver_publishes(
    messages: list[Incoming], shards: int
) -> None:
    one = stage_over()
    expected = [seen(one.process(m)) for m in messages]
    log = _MemoryLog()
    worker = _Worker()
    local = LocalShards([Shard(_HASHER, review_floor=FLOOR) for _ in range(shards)])
    decider = worker.decider(local, log)
    assert worker.republished == []
    batches = _batches(len(messages), 500)
    for batch in batches:
        worker.run(decider, messages, batch)
    assert log.epochs == len(batches)  # one epoch a batch
    assert [worker.published[at] for at in range(len(messages))] == [e[1] for e in expected]
    assert decider.stage.counts == one.counts
    assert decider.position == {0: len(messages)}


@pytest.mark.parametrize(("shards", "reached"), [(2, 0), (2, 1), (3, 3)])
def test_a_decider_lost_after_logging_is_taken_over_with_the_same_bytes(
    messages: list[Incoming], shards: int, reached: int
) -> None:
    one = stage_over()
    expected = [_bytes(one.process(m)) for m in messages]
    log = _MemoryLog()
    worker = _Worker()
    shard_states = [Shard(_HASHER, review_floor=FLOOR) for _ in range(shards)]
    batches = _batches(len(messages), 400)
    lost_at = 4  # the fourth batch: its epoch logged, then the decider lost
    decider = worker.decider(_Losing(shard_states, lost_at, reached), log)
    # the intake's committed offset: up to the batch before the one lost
    for batch in batches[: lost_at - 1]:
        worker.run(decider, messages, batch)
    committed = batches[lost_at - 2].stop
    with pytest.raises(_Lost):
        worker.run(decider, messages, batches[lost_at - 1])
    lost = batches[lost_at - 1]
    assert committed == lost.start
    assert lost.start not in worker.published  # decided and logged, never published
    # a new decider over the same shards (their state as the loss left it) and the
    # same table; the intake read again from the committed offset
    successor = worker.decider(LocalShards(shard_states), log)
    again = [m for p in worker.republished for m in [(o.topic, o.key, o.value) for o in p.outgoing]]
    assert again == [m for at in lost for m in expected[at]]  # the lost epoch's, in order
    # batches of 300 from the committed offset: the second straddles the lost epoch's end
    for batch in _batches(len(messages) - committed, 300):
        worker.run(successor, messages, range(batch.start + committed, batch.stop + committed))
    assert all(at not in worker.published for at in lost)  # left out: decided before
    for at in lost:
        worker.published[at] = expected[at]  # published again from the log, as asserted
    assert [worker.published[at] for at in range(len(messages))] == expected


def test_the_log_keeps_the_epoch_s_decisions_for_a_successor(messages: list[Incoming]) -> None:
    """An operator's decision applied in a lost epoch: the table may not have it; the
    successor takes it from the log (pending, to be written) and applies it."""
    log = _MemoryLog()
    worker = _Worker()
    local = LocalShards([Shard(_HASHER, review_floor=FLOOR) for _ in range(2)])
    decider = worker.decider(local, log)
    decided = [at for at, m in enumerate(messages) if m.topic == OPERATOR_DECISIONS_TOPIC]
    assert decided
    at = 0
    for last in decided:  # up to a batch whose decision was applied (not stale)
        worker.run(decider, messages, range(at, last + 1))
        at = last + 1
        if any(k.startswith("decision:") for k in worker.last_decisions):
            break
    written = dict(worker.last_decisions)
    assert any(k.startswith("decision:") for k in written)
    table_before = {k: v for k, v in worker.table.items() if k not in written}
    worker.table = table_before  # the table lost the batch's writes
    successor = _Worker()
    successor.table = table_before
    taken_over = successor.decider(LocalShards(local.shards), log)
    assert taken_over.stage.decisions.pending == written
    assert {k[len("decision:") :] for k in written if k.startswith("decision:")} <= (
        taken_over.stage.decisions.applied
    )


def test_resuming_an_empty_log_decides_from_the_start() -> None:
    log = _MemoryLog()
    worker = _Worker()
    decider = worker.decider(LocalShards([Shard(_HASHER, review_floor=FLOOR)]), log)
    assert decider.position == {}
    assert not decider.decided_before(0, 0)
    assert worker.republished == []


def test_an_earlier_deciders_epoch_without_extra_resumes() -> None:
    """A log written by ``c2c identity resolve`` (no extra): nothing to publish again, no
    position."""
    log = _MemoryLog()
    log.last = (0, 1, [], EpochWrites(), None)
    worker = _Worker()
    decider = worker.decider(LocalShards([Shard(_HASHER, review_floor=FLOOR)]), log)
    assert worker.republished == []
    assert decider.position == {}


def test_replayed_decisions_keep_and_lift_separations() -> None:
    """The log's decisions table writes, replayed: a separation kept, then lifted (a
    LINK over an earlier SEPARATE), each pending again for the table."""
    stage = stage_over()
    decisions = stage.decisions
    decisions.replay({"apart:P000001:P000002": {"review": True}, "decision:d1": {"x": 1}})
    assert stage.state.apart == {"P000001": {"P000002"}, "P000002": {"P000001"}}
    assert "d1" in decisions.applied
    assert decisions.drain() == {
        "apart:P000001:P000002": {"review": True},
        "decision:d1": {"x": 1},
    }
    decisions.replay({"apart:P000001:P000002": None})
    assert stage.state.apart == {"P000001": set(), "P000002": set()}
    assert decisions.drain() == {"apart:P000001:P000002": None}


def test_a_decider_lost_again_right_after_a_takeover_leaves_both_epochs_to_the_next(
    messages: list[Incoming],
) -> None:
    """The successor logs its first epoch and is lost before publishing anything: the
    lost epoch's messages it was to publish again are in its epoch's log too, so the
    third decider publishes both epochs' messages, in order."""
    one = stage_over()
    expected = [_bytes(one.process(m)) for m in messages]
    log = _MemoryLog()
    worker = _Worker()
    shard_states = [Shard(_HASHER, review_floor=FLOOR) for _ in range(2)]
    batches = _batches(len(messages), 400)
    first = worker.decider(_Losing(shard_states, 3, 1), log)
    for batch in batches[:2]:
        worker.run(first, messages, batch)
    with pytest.raises(_Lost):
        worker.run(first, messages, batches[2])
    # the successor's first apply is the lost epoch's again, its second its own epoch's
    second = worker.decider(_Losing(shard_states, 2, 0), log)
    assert len(worker.republished) == len(batches[2])
    worker.republished = []  # never published: the successor is lost too
    with pytest.raises(_Lost):
        worker.run(second, messages, batches[3])
    third = worker.decider(LocalShards(shard_states), log)
    again = [[(o.topic, o.key, o.value) for o in p.outgoing] for p in worker.republished]
    assert again == [expected[at] for at in [*batches[2], *batches[3]]]
    for at in [*batches[2], *batches[3]]:
        worker.published[at] = expected[at]
    for batch in batches[2:]:
        worker.run(third, messages, batch)
    assert [worker.published[at] for at in range(len(messages))] == expected


def test_an_earlier_deciders_logged_epoch_reads_with_no_extra() -> None:
    """``c2c identity resolve``'s log, before the worker's extra: four parts."""
    writes = EpochWrites()
    assert logged_epoch((3, 7, [], writes)) == (3, 7, [], writes, None)
    assert logged_epoch((3, 7, [], writes, {"position": {0: 9}}))[4] == {"position": {0: 9}}
    with pytest.raises(ValueError, match="4 or 5 parts"):
        logged_epoch((3, 7))

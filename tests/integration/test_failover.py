"""A lost worker's partitions move to the worker that is left: two identity workers share
one group (each with a state folder of its own, one standby replica of the resolver's
tables; the resolver's state in memory, or on disk); the one holding the resolver's shard
(the intake partition) is killed (SIGKILL) mid-replay and never started again. The other
takes over the shard and the raw partitions the lost one forwarded, and once everything is
drained ClickHouse holds what a clean run of one worker holds: nothing lost, nothing
published twice that the sink kept twice, the same persons (test_crashes._compare asserts
the same guarantees as after a restart). Should the worker left stop on a hole Faust left
in the intake that reading it again did not fill (streams/cursor.py), it is started
again, as a supervisor would."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from cli.pipeline_run import PipelineRun, wait_for
from cli.worker_process import RAW_PARTITIONS, WorkerProcess
from streams.failstop import EXIT_CODE
from tests.integration.test_crashes import _compare, _crashed_and_clean, _synth

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("state", ["memory", "disk", "shards"])
def test_a_lost_workers_shard_moves_to_the_worker_left(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, state: str
) -> None:
    """``state``: where the workers keep the resolver's state (C2C_STREAMS_STATE); or
    ``shards``: the workers decide over two shard hosts (state on disk), and the worker
    left takes the decider over from its log (streams/worker_decider.py)."""
    sharded = (2, 2) if state == "shards" else None
    kept = "disk" if sharded else state
    synth = tmp_path / "synth"
    events = _synth(synth, people=300)
    moved: dict[str, float] = {}
    left: list[WorkerProcess] = []

    def lose_the_resolving_worker(run: PipelineRun) -> None:
        wait_for(
            lambda: any(w.handled() >= events // 4 for w in run.workers),
            "a worker resolving",
            run.worker,
        )
        holder = max(run.workers, key=lambda w: w.handled())
        (survivor,) = (w for w in run.workers if w is not holder)
        moved["survivor_before"] = survivor.handled()
        run.lose(holder)
        lost_at = time.monotonic()
        # the shard moved: the survivor resolves, and forwards every raw partition
        seen: dict[str, int] = {}

        def moved_over() -> bool:
            run.revive()  # a fail-stop of the worker left (below) starts it again
            seen["handled"], seen["raw"] = survivor.handled(), survivor.raw_partitions()
            return seen["handled"] > moved["survivor_before"] and seen["raw"] == RAW_PARTITIONS

        try:
            wait_for(
                moved_over, "the worker left resolving and forwarding every raw partition", survivor
            )
        except AssertionError as exc:  # what it last showed: which of the two never came
            raise AssertionError(
                f"{exc}; the worker left last showed {seen.get('handled')} records resolved "
                f"(before the loss {moved['survivor_before']}) and {seen.get('raw')} of "
                f"{RAW_PARTITIONS} raw partitions"
            ) from exc
        moved["survivor_after"] = survivor.handled()
        left.append(survivor)
        moved["seconds_to_move"] = round(time.monotonic() - lost_at, 1)

    crashed, clean, replays = _crashed_and_clean(
        stack,
        registry,
        synth,
        tmp_path,
        lose_the_resolving_worker,
        events,
        sharded=sharded,
        environment={"C2C_STREAMS_STATE": kept},
        # INFO: each batch's intake offsets and outcomes in the workers' logs, so that a
        # failure says which worker resolved (or skipped) what
        crashed_environment={"C2C_STREAMS_STANDBY_REPLICAS": "1", "C2C_LOG_LEVEL": "INFO"},
        crashed_workers=2,
    )
    print(f"failover, state in {state}: {events:,} events; the worker left resolved {moved}")
    # the standby had resolved nothing before it took the shard over
    assert moved["survivor_before"] == 0
    # The loss, and at most a restart of the worker left for each hole Faust left in the
    # intake that reading it again did not fill (streams/cursor.py: IntakeGap)
    assert crashed.kills[0] == "worker lost", crashed.kills
    restarts = crashed.kills[1:]
    logs = "".join(child.log.read_text() for child in left[0].children)
    print(f"holes Faust left, read again: {logs.count('was next (Faust skipped')}")
    if restarts:
        print(f"the worker left stopped and was started again: {restarts}")
        assert all(k.endswith(f"exited {EXIT_CODE}") for k in restarts), restarts
        assert logs.count("intake offsets skipped") >= len(restarts), restarts
    if sharded:  # the worker left resumed the decider where the lost one's log left it
        assert "resumed from its log: epoch 0," not in logs, logs[-3000:]
        assert "resumed from its log: epoch" in logs
    _compare(stack, registry, crashed, clean, replays, synth)

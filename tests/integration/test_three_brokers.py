"""A broker lost from a three-node cluster loses and duplicates nothing: a private stack of
its own (`c2c services up` with C2C_KAFKA_BROKERS=3: three KRaft nodes, each a broker and a
controller, topics with replication factor 3 and min.insync.replicas 2), a replay of a
small synth through a worker and a sink, one node killed (SIGKILL) in the middle of it.
While it is down `c2c status` names it and the under-replicated partitions (exit 3, a
service down); once it is started again and everything is drained, ClickHouse holds after
FINAL every fact event the replay published once, none of a person whose opt-out stands."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.kafka import cluster_brokers
from c2c.settings import Settings
from cli.demo import declare_synth_horizons
from cli.pipeline_run import PipelineRun, assert_opt_outs_hold, opted_out_events, wait_for
from cli.status import SERVICE_DOWN
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from services import services_down
from sinks.rows import FACT_TABLES
from tests.conftest import private_stack_env, run_c2c

pytestmark = pytest.mark.integration

_BROKERS = 3
_KILLED = 2  # the node killed: not the first of the bootstrap list
_RATE = 300  # events a second: a replay of several seconds, long enough for a kill in it


@pytest.fixture(scope="module")
def cluster(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A stack of its own with a three-node Kafka (small heaps: three JVMs on this
    machine), topics created and schemas registered: (its settings, its environment)."""
    for _attempt in range(3):
        data = tmp_path_factory.mktemp("brokers3")
        env = private_stack_env(data, settings, brokers=_BROKERS)
        env.update({"C2C_CLICKHOUSE_URL": f"chdb://{data / 'ch'}", "C2C_KAFKA_HEAP": "384m"})
        up = run_c2c(env, "services", "up", check=False, timeout_s=600)
        # a free port may be taken by another process before a node binds it (`up` stops
        # what it started when one fails): take other ports
        if "Address already in use" not in up.stderr:
            break
    stack = Settings(
        **{k.removeprefix("C2C_").lower(): v for k, v in env.items() if k[:4] == "C2C_"}
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        for command in (("topics", "create"), ("schemas", "register")):
            run_c2c(env, *command, timeout_s=300)
        yield stack, env
    finally:
        services_down(stack)


def test_a_broker_killed_mid_replay_loses_and_duplicates_nothing(
    cluster: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    stack, env = cluster
    assert len(stack.kafka_bootstrap.split(",")) == _BROKERS
    assert cluster_brokers(stack) == _BROKERS
    synth = tmp_path / "synth"
    synthesize(
        SynthConfig(people=200, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.02),
        NoiseConfig(),
        synth,
    )
    events = [event for _source, event in mapped_events(synth)]
    facts = {str(e["event_id"]) for e in events if "request_id" not in e}

    run = PipelineRun.create(stack, tmp_path, "brokers3", tmp_path / "ch")
    declare_synth_horizons(run.settings, synth)  # else every outcome table is empty
    replayed: list[Any] = []
    try:
        run.begin()
        replaying = threading.Thread(
            target=lambda: replayed.append(_replay(stack, synth)), name="replay"
        )
        replaying.start()
        wait_for(lambda: run.worker.handled() >= len(events) // 4, "worker at work", run.worker)
        run.kill_broker(_KILLED)
        status = _status_while_down(env, run)
        run.restart_broker(_KILLED)
        replaying.join()
        run.drain()
        run.stop()
    finally:
        run.kill()

    # the replay published every event, with one node of three down for part of it
    assert replayed, "the replay did not finish"
    assert not isinstance(replayed[0], BaseException), replayed
    assert sum(summary.published for summary in replayed[0]) == len(events)
    assert f"broker {_KILLED}" in run.kills
    print(f"\nc2c status while node {_KILLED} was down: {status['problems']}")
    print(f"processes started again after exiting: {run.kills}")

    out, revoked = opted_out_events(synth)
    client = connect(run.settings)
    stored: Counter[str] = Counter()
    before_final = 0
    for table in FACT_TABLES.values():
        database = run.settings.clickhouse_database
        rows = client.query(f"SELECT event_id FROM {database}.{table} FINAL").result_rows
        stored.update(str(row[0]) for row in rows)
        before_final += client.query(
            f"SELECT count() - uniqExact(event_id) FROM {database}.{table}"
        ).result_rows[0][0]
    print(f"fact rows duplicated before FINAL (merged away by FINAL): {before_final}")
    duplicated = {event: n for event, n in stored.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} event(s) twice after FINAL: {list(duplicated)[:5]}"
    # a revoked opt-out's events may be kept or not (which depends on the grouping)
    lost = facts - out - revoked - set(stored)
    assert not lost, f"{len(lost)} published event(s) not in ClickHouse: {sorted(lost)[:5]}"
    # privacy first: of the opted-out people's events, only ones linkage missed, and few
    missed = assert_opt_outs_hold(synth, stored, "three brokers")
    extra = set(stored) - (facts - out) - missed
    assert not extra, f"{len(extra)} event(s) in ClickHouse not published or opted out"


def _replay(stack: Settings, synth: Path) -> Any:
    """The replay's summaries, or the exception it raised (a thread's is not re-raised)."""
    try:
        return replay(stack, synth, rate=_RATE)
    except BaseException as exc:  # reported by the test's assertion
        return exc


def _status_while_down(env: dict[str, str], run: PipelineRun) -> dict[str, Any]:
    """`c2c status --json` once it reports the killed node down and partitions
    under-replicated (the controller fences a node that stops heartbeating after
    broker.session.timeout.ms, 9 s, and shrinks its partitions' in-sync replicas), with the
    run's worker and sink pages; its exit status must be SERVICE_DOWN."""
    status_env = {
        **env,
        "C2C_WORKER_WEB_PORT": str(run.worker.children[-1].port),
        "C2C_SINK_WEB_PORT": str(run.sink.port),
    }
    seen: dict[str, Any] = {}

    def reported() -> bool:
        result = run_c2c(status_env, "status", "--json", check=False, timeout_s=120)
        assert result.returncode == SERVICE_DOWN, result.stdout[-2000:] + result.stderr[-2000:]
        report = json.loads(result.stdout)
        down = [row["name"] for row in report["services"] if not row["up"]]
        seen.update(report)
        return (
            down == [f"kafka-{_KILLED}"]
            and bool(report["under_replicated"])
            and any("under-replicated" in p for p in report["problems"])
            and any(f"node {_KILLED} down" in p for p in report["problems"])
        )

    wait_for(reported, f"c2c status reporting node {_KILLED} down", run.worker, 120)
    return seen

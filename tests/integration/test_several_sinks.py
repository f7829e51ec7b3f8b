"""Several sinks in one consumer group write what one sink writes (sinks/side_reader.py).

One identity worker replays a synth folder with opt-outs while three groups of sinks read
what it publishes, live: one sink alone, two sinks in one group and three in another, each
group into its own database. Every database holds one row an event before FINAL. After
FINAL, the two- and three-sink databases hold the same fact rows and the same persons (the
person map) as the one-sink database, each decision is audited once, and no event of a
person whose opt-out stands (synth's truth) is in any (but for a record linkage missed:
cli.pipeline_run.assert_opt_outs_hold).

How ClickHouse is shared: embedded chdb opens a path in one process only, so the sinks run
as threads of this process, all writing through clients of one chdb path under one lock
(as a ClickHouse server would serialise nothing for them, but chdb's client is not to be
called from two threads at once). Each sink has its own Kafka consumers, so the group's
assignment, the split of the linked topics and the side readers are Kafka's, as between
processes; deletes by one sink reach rows another wrote, as on a server.

Events of a person whose opt-out was revoked are compared apart: one re-admitted after
the revocation can be deleted by a sink that reads the opt-out late (sinks/README.md,
"Open: a re-admitted event can be deleted"), and with several sinks each one applies the
decision itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from c2c.child import commit_ends, committed_lag, free_port_pair
from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import Telemetry
from c2c.topics import OPTOUT_DECISIONS_TOPIC, get_topic
from cli.demo import declare_synth_horizons
from cli.pipeline_run import (
    assert_opt_outs_hold,
    clickhouse_snapshot,
    opted_out_events,
    wait_for,
)
from cli.sink_process import SINK_TOPICS, SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from services import services_down, services_up
from sinks.migrate import migrate
from sinks.sink import Sink
from tests.conftest import read_decoded

pytestmark = pytest.mark.integration

_RATE = 800  # events a second, as the crash tests replay
_PARTITIONS = sum(get_topic(t).partitions for t in SINK_TOPICS)


@contextmanager
def _sinks(
    stack: Settings,
    registry: SchemaRegistry,
    ch: Path,
    database: str,
    n: int,
    lock: Any,
    group: str,
) -> Iterator[list[Sink]]:
    """``n`` sinks in consumer group ``group`` (where it committed nothing: from the
    end), in threads, writing ``database`` of the chdb at ``ch`` under ``lock``; every
    partition assigned once they are yielded. Stopped on leaving."""
    chosen = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{ch}",
            "clickhouse_database": database,
            "sink_start": "latest",
        }
    )
    clients = []
    sinks = []
    stop = threading.Event()
    threads = []
    try:
        for _ in range(n):
            with lock:
                client = connect(chosen)
                clients.append(client)
                migrate(client, min_cell=11)
            sink = Sink(
                chosen, registry, client, group_id=group, telemetry=Telemetry.disabled(), lock=lock
            )
            sinks.append(sink)
            thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
            thread.start()
            threads.append(thread)

        def settled() -> bool:
            owned = [len(s.consumer.owned) for s in sinks]
            return all(owned) and sum(owned) == _PARTITIONS and all(s.positioned for s in sinks)

        _wait(settled, f"{n} sinks assigned every partition", 120)
        yield sinks
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for client in clients:
            with lock:
                client.close()


def _wait(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Poll ``check`` every 0.2 s until it holds; AssertionError naming ``what`` if not
    within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not in {timeout_s} s"
        time.sleep(0.2)


def _done(stack: Settings, group: str, sinks: list[Sink]) -> bool:
    """The group committed everything published, and each sink wrote everything its side
    reader read, having read it all."""
    if committed_lag(stack, group, SINK_TOPICS) != 0:
        return False
    for sink in sinks:
        counts = sink.counts
        if any(sink.side_lag().values()):
            return False
        if counts["side.changes"] + counts["side.decisions"] != counts["side_written"]:
            return False
    return True


def _drain(stack: Settings, group: str, sinks: list[Sink]) -> list[Counter[str]]:
    """Wait until ``sinks`` of ``group`` are done (:func:`_done`); what each counted of
    the side reader's and of the decisions it read through the group."""
    _wait(lambda: _done(stack, group, sinks), f"{len(sinks)} sink(s) of {group} done", 300)
    return [
        Counter({k: v for k, v in sink.counts.items() if k.startswith(("side", "optout."))})
        for sink in sinks
    ]


_CAUSES = ("optout.requested", "optout.revoked", "optout.merged", "optout.shared_id")


# run name -> sinks in its group
_RUNS = {"one": 1, "two": 2, "three": 3}


def test_two_and_three_sinks_write_what_one_sink_writes(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    synth = _synth_with_optouts(tmp_path)

    ch = tmp_path / "ch"
    lock = threading.Lock()
    for database in _RUNS:  # outcome tables need the horizons
        declare_synth_horizons(
            stack.model_copy(
                update={"clickhouse_url": f"chdb://{ch}", "clickhouse_database": database}
            ),
            synth,
        )
    groups = {name: f"test-sinks-{name}-{uuid.uuid4().hex[:8]}" for name in _RUNS}
    for group in groups.values():  # every group starts where the run begins (no earlier
        # offsets count in committed_lag)
        commit_ends(stack, group, SINK_TOPICS)
    app_id = f"c2c-several-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        stack.model_copy(update={"data_dir": tmp_path / "worker"}),
        tmp_path / "worker.log",
        port=free_port_pair(),
        app_id=app_id,
        intake=f"c2c.identity.intake.{app_id}",
    )
    side: dict[str, list[Counter[str]]] = {}
    with ExitStack() as live:
        running = {
            name: live.enter_context(_sinks(stack, registry, ch, name, n, lock, groups[name]))
            for name, n in _RUNS.items()
        }
        worker.begin_here()  # after every sink was assigned: they read it all, live
        worker.start()
        try:
            replay(stack, synth, rate=_RATE)
            wait_for(lambda: worker.committed_lag() == 0, "worker drained", worker, 300)
        finally:
            worker.stop()
        for name, sinks in running.items():
            side[name] = _drain(stack, groups[name], sinks)
    client = connect(
        stack.model_copy(update={"clickhouse_url": f"chdb://{ch}", "clickhouse_database": "one"})
    )
    _compare_runs(client, stack, registry, side, synth)


def _compare_runs(
    client: Any,
    stack: Settings,
    registry: SchemaRegistry,
    side: dict[str, list[Counter[str]]],
    synth: Path,
) -> None:
    """Read every run's tables and audit through ``client`` (closed after) and the revoked
    persons from the decisions topic, then :func:`_compare` them."""
    revoked = {
        str(person)
        for record, _headers in read_decoded(
            stack, registry, OPTOUT_DECISIONS_TOPIC, lambda r: not r["opted_out"], 0
        )
        for person in record["person_ids"]
    }
    try:
        seen = {name: clickhouse_snapshot(client, name) for name in _RUNS}
        audited = {
            name: client.query(
                f"SELECT decision_id, count() FROM {name}.optout_audit GROUP BY decision_id"
            ).result_rows
            for name in _RUNS
        }
    finally:
        client.close()
    _compare(seen, audited, side, synth, revoked)


def _compare(
    seen: dict[str, Any],
    audited: dict[str, Any],
    side: dict[str, list[Counter[str]]],
    synth: Path,
    revoked: set[str],
) -> None:
    """The two- and three-sink runs against the one-sink run (see the module docstring)."""
    one = seen["one"]
    apart = {  # events of persons whose opt-out was revoked: see the module docstring
        e for rows in one["facts"].values() for e, (who, _row) in rows.items() if who in revoked
    }
    total = sum(len(rows) for rows in one["facts"].values())
    print(f"\nfact rows (one sink): {total}; revoked persons' events apart: {len(apart)}")
    print(f"side reads per run and sink: {side}")
    assert total > 0
    assert len(audited["one"]) > 0, "the one-sink run audited no decision"
    for name, n in _RUNS.items():
        run = seen[name]
        # privacy first: no event of a person whose opt-out stands, in any database (but
        # for a record linkage missed: assert_opt_outs_hold)
        assert_opt_outs_hold(synth, {e for rows in run["facts"].values() for e in rows}, name)
        # each decision audited once, by the sink that owns the decisions partition
        assert all(count == 1 for _d, count in audited[name]), (name, audited[name])
        assert {d for d, _c in audited[name]} == {d for d, _c in audited["one"]}, name
        assert run["audit"] == one["audit"], name
        # one row an event before FINAL too, however many sinks wrote (sinks/dedupe.py)
        assert run["duplicates"] == dict.fromkeys(run["duplicates"], 0), (name, run["duplicates"])
        if n == 1:
            continue
        # every sink read every decision: through the group, or beside it from another's
        # partition (or both, around a rebalance)
        for counts in side[name]:
            read = counts["side.decisions"] + sum(counts[c] for c in _CAUSES)
            assert read >= len(audited["one"]), (name, side[name])
        assert sum(c["side.decisions"] for c in side[name]) > 0, (name, side[name])
        for table, rows in one["facts"].items():
            mine = {e: r for e, r in run["facts"][table].items() if e not in apart}
            theirs = {e: r for e, r in rows.items() if e not in apart}
            assert mine.keys() == theirs.keys(), (name, table, len(mine), len(theirs))
            changed = [e for e in mine if mine[e][1] != theirs[e][1]]
            assert not changed, (name, table, changed[:5])
        persons = {
            k: {frozenset(g - apart) for g in seen[k]["persons"]} - {frozenset()}
            for k in ("one", name)
        }
        assert persons[name] == persons["one"], name  # the person map: the same persons


def _synth_with_optouts(tmp_path: Path) -> Path:
    """A synth with opt-outs that stand (and, most seeds, a revocation among them): its
    folder."""
    for attempt in range(30):
        synth = tmp_path / f"synth-{attempt}"
        synthesize(
            SynthConfig(people=300, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.03),
            NoiseConfig(),
            synth,
        )
        opted_out, _revoked = opted_out_events(synth)
        if opted_out:
            return synth
    raise AssertionError("no standing opt-out in 30 seeds")


def _processes_done(stack: Settings, group: str, sinks: list[SinkProcess]) -> list[Counter[str]]:
    """Wait until the group committed everything published and each sink process lags
    nowhere and wrote everything its side reader read, with its counts of facts, side reads
    and decisions still over two polls 2 s apart (a process's side-reader lag is not on its
    pages); what each counted of the side reader's and of the decisions."""

    def kept(counts: dict[str, Any]) -> Counter[str]:
        return Counter(
            {
                k: int(v)
                for k, v in counts.items()
                if k.startswith(("side", "optout.")) or k in ("facts", "side_written")
            }
        )

    before: list[Counter[str]] = []
    state: tuple[Any, ...] = ()
    deadline = time.monotonic() + 300
    while True:
        counts = [kept(sink.counts()) for sink in sinks]
        lags = [sink.page("/health/ready").get("total_lag") for sink in sinks]
        committed = committed_lag(stack, group, SINK_TOPICS)
        settled = (
            committed == 0
            and all(lag == 0 for lag in lags)
            and all(c["side.changes"] + c["side.decisions"] == c["side_written"] for c in counts)
        )
        if settled and counts == before:
            break
        state = (committed, lags, counts)
        assert time.monotonic() < deadline, f"{group} not done: {state}"
        before = counts if settled else []
        time.sleep(2)
    return [
        Counter({k: v for k, v in c.items() if k.startswith(("side", "optout."))}) for c in counts
    ]


def test_sink_processes_on_a_clickhouse_server_write_what_one_sink_writes(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    """The same runs as above, each sink a `c2c sink run` process, all writing one ClickHouse
    server (C2C_CLICKHOUSE_SERVE: services/clickhouse_server.py) of this test's own."""
    synth = _synth_with_optouts(tmp_path)
    server = stack.model_copy(
        update={
            "clickhouse_url": f"http://127.0.0.1:{free_port_pair()}",
            "clickhouse_serve": True,
            "data_dir": tmp_path / "server",
        }
    )
    started = services_up(server, ["clickhouse"])
    assert started == ["clickhouse"]
    try:
        databases = {
            name: server.model_copy(update={"clickhouse_database": name, "sink_start": "latest"})
            for name in _RUNS
        }
        for chosen in databases.values():  # migrated once each, and the outcome horizons
            declare_synth_horizons(chosen, synth)
        groups = {name: f"test-sinkprocs-{name}-{uuid.uuid4().hex[:8]}" for name in _RUNS}
        for group in groups.values():
            commit_ends(stack, group, SINK_TOPICS)
        app_id = f"c2c-sinkprocs-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(
            stack.model_copy(update={"data_dir": tmp_path / "worker"}),
            tmp_path / "worker.log",
            port=free_port_pair(),
            app_id=app_id,
            intake=f"c2c.identity.intake.{app_id}",
        )
        running: dict[str, list[SinkProcess]] = {}
        side: dict[str, list[Counter[str]]] = {}
        try:
            for name, n in _RUNS.items():
                running[name] = []
                for i in range(n):
                    sink = SinkProcess(
                        databases[name],
                        tmp_path / f"sink-{name}-{i}.log",
                        port=free_port_pair(),
                        group=groups[name],
                    )
                    running[name].append(sink)
                    sink.start()
            for sinks in running.values():  # each assigned and positioned after the joins
                for sink in sinks:
                    sink.wait(
                        lambda ready, _c: (
                            "reasons" in ready
                            and not [r for r in ready["reasons"] if "lag more than" not in r]
                        ),
                        "reading",
                        120,
                    )
            worker.begin_here()
            worker.start()
            try:
                replay(stack, synth, rate=_RATE)
                wait_for(lambda: worker.committed_lag() == 0, "worker drained", worker, 300)
            finally:
                worker.stop()
            for name, sinks in running.items():
                side[name] = _processes_done(stack, groups[name], sinks)
        finally:
            for sinks in running.values():
                for sink in sinks:
                    sink.stop()
        _compare_runs(connect(databases["one"]), stack, registry, side, synth)
    finally:
        services_down(server, ["clickhouse"])

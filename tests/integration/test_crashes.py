"""Crashes lose and duplicate nothing: the identity worker and the sink are killed (SIGKILL)
twice each during a paced replay and started again with the same groups and state; once all
is drained, ClickHouse holds what a clean run of the same synth folder holds.

Asserted (what the project guarantees): one row an event in every fact table before FINAL
in both runs (sinks/dedupe.py: the sink looks each batch's event ids up before writing it);
after FINAL, the same fact rows (event ids and their
columns), apart from a revoked person's re-admitted events (see _compare_facts), and
those only the crashed run holds must have been published after its revocation (see
_compare: a backlog's intake order brings earlier events after it); no event
of a person whose opt-out stands (synth's truth) in either run; the same opt-out requests
and revocations decided; and, where the crash left the events grouped into
the same persons, the same number of persons and the same outcome tables. Bounded (see
_compare): events grouped otherwise, and linked events published again under an id that
does not lead to their first copy's survivor through the published merges
(streams/README.md, "Found (issue #19)": a kill between a merging batch's state and its
results lost the merge; a batch's merges are now sent again after a restart, and the bound
stays for a kill in the middle of a changelog flush). Measured and printed
(`pytest -s`): linked events published more than once and how many of those under another
person id."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC
from cli.demo import declare_synth_horizons
from cli.pipeline_run import (
    OUTCOME_TABLES,
    PipelineRun,
    assert_opt_outs_hold,
    clickhouse_snapshot,
    opted_out_events,
    republished,
    wait_for,
)
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from services.kafka import KafkaService
from sinks.rows import FACT_TABLES
from streams.identity.evaluation import grouping_difference, read_assignments
from tests.conftest import read_decoded

pytestmark = pytest.mark.integration

_NEVER = 2**63  # a time after every publication
_RESUMED = re.compile(r"resumed from its log: epoch (\d+)")
_REVIEWS = re.compile(r"(\d+) possible_match")
_RATE = 800  # events a second: a replay of ~20 s, long enough for kills while it runs


@pytest.mark.parametrize("resolver", ["one", "shards"])
def test_killed_worker_and_sink_give_what_a_clean_run_gives(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, resolver: str
) -> None:
    """``shards``: the worker decides each batch over two shard hosts
    (streams/worker_decider.py) and logs it; a worker killed is taken over from its log.
    Possible matches are held for review there (the decisions table written each batch,
    and logged with it)."""
    sharded = (2, 2) if resolver == "shards" else None
    environment = {"C2C_IDENTITY_REVIEW_MIN_WEIGHT": "10"} if sharded else None
    # opt-outs to audit, and a revocation among them (a tenth of synth's opt-outs are
    # revoked): the events it re-admits must outlive the opt-out read again after a crash
    for _attempt in range(30):
        synth = tmp_path / f"synth-{_attempt}"
        synthesize(
            SynthConfig(people=400, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.02),
            NoiseConfig(),
            synth,
        )
        events = [e for _s, e in mapped_events(synth)]
        if any(e.get("action") == "REVOKED" for e in events):
            break
    assert any(e.get("action") == "REVOKED" for e in events), "no revocation in 30 seeds"

    crashed, clean, replays = _crashed_and_clean(
        stack,
        registry,
        synth,
        tmp_path,
        lambda run: _kill_worker_and_sink(run, len(events)),
        len(events),
        sharded=sharded,
        environment=environment,
        crashed_environment={"C2C_LOG_LEVEL": "INFO"} if environment else None,
    )
    assert crashed.kills.count("worker") >= 2
    assert crashed.kills.count("sink") >= 2
    if sharded:
        # each worker killed was taken over from the decider's log its epochs left
        logged = crashed.worker.children[-1].log.read_text()
        resumed = [int(e) for e in _RESUMED.findall(logged)]
        reviews = sum(int(n) for n in _REVIEWS.findall(logged))
        print(f"  decider resumed at epochs {resumed}; {reviews} held for review")
        assert len(resumed) >= 3, resumed
        assert all(e > 0 for e in resumed[1:]), resumed
        assert reviews > 0  # the decisions table was written through the shards
    _compare(stack, registry, crashed, clean, replays, synth)


def test_killed_broker_gives_what_a_clean_run_gives(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    broker = KafkaService(stack)
    # the broker must be ours to kill: a remote one fails the test, it is not skipped
    assert broker.local, f"C2C_KAFKA_BOOTSTRAP={stack.kafka_bootstrap} is not a local broker"
    synth = tmp_path / "synth"
    events = _synth(synth, people=300)

    def kill_broker(run: PipelineRun) -> None:
        wait_for(lambda: run.worker.handled() >= events // 4, "worker at work", run.worker)
        run.kill_broker_and_restart()

    crashed, clean, replays = _crashed_and_clean(
        stack, registry, synth, tmp_path, kill_broker, events
    )
    assert "broker" in crashed.kills
    _compare(stack, registry, crashed, clean, replays, synth)


def test_a_shard_host_killed_while_the_worker_decides_gives_what_a_clean_run_gives(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    """Through the shards (four on two hosts, a standby copy of each, state on disk): one
    host is killed (SIGKILL) mid-replay and never started again. The host left takes its
    shards over from its standbys; the worker's decider waits on the round in flight
    (answered again by the shard's new holder) and goes on; ClickHouse ends as a clean
    run's."""
    synth = tmp_path / "synth"
    events = _synth(synth, people=300)
    environment = {"C2C_STREAMS_STANDBY_REPLICAS": "1", "C2C_STREAMS_STATE": "disk"}

    def kill_a_host(run: PipelineRun) -> None:
        wait_for(lambda: run.worker.handled() >= events // 4, "worker at work", run.worker)
        assert run.hosts is not None
        run.hosts.kill(0)
        run.kills.append("shard host")

    crashed, clean, replays = _crashed_and_clean(
        stack,
        registry,
        synth,
        tmp_path,
        kill_a_host,
        events,
        sharded=(4, 2),
        environment=environment,
    )
    assert crashed.kills[0] == "shard host", crashed.kills
    assert crashed.hosts is not None
    assert crashed.hosts.held(1) == [0, 1, 2, 3]  # the host left took every shard
    print(f"  the host left took shards from: {crashed.hosts.sources(1)}")
    _compare(stack, registry, crashed, clean, replays, synth)


def _crashed_and_clean(
    stack: Settings,
    registry: SchemaRegistry,
    synth: Path,
    tmp_path: Path,
    crash: Callable[[PipelineRun], None],
    events: int,
    *,
    sharded: tuple[int, int] | None = None,
    environment: dict[str, str] | None = None,
    crashed_environment: dict[str, str] | None = None,
    crashed_workers: int = 1,
) -> tuple[PipelineRun, PipelineRun, dict[str, Any]]:
    """``synth`` replayed through a run ``crash`` is called in, then through a clean one
    of one worker (same ``sharded`` and ``environment``; ``crashed_environment`` and
    ``crashed_workers``: for the crashed run only); the two runs, and what the crashed one
    published more than once (read before the clean run publishes the same events
    again). The runs are named as :func:`_compare` reads them."""
    crashed = _run_pipeline(
        stack,
        synth,
        tmp_path,
        "crashed",
        crash=crash,
        events=events,
        workers=crashed_workers,
        sharded=sharded,
        environment={**(environment or {}), **(crashed_environment or {})} or None,
    )
    replays = _republished(stack, registry, crashed)
    clean = _run_pipeline(
        stack,
        synth,
        tmp_path,
        "clean",
        crash=None,
        events=events,
        sharded=sharded,
        environment=environment,
    )
    return crashed, clean, replays


def _synth(folder: Path, people: int) -> int:
    """A synth of ``people`` (a new seed each run, opt-outs at 2 %) written to ``folder``;
    how many events it holds."""
    synthesize(
        SynthConfig(people=people, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.02),
        NoiseConfig(),
        folder,
    )
    return sum(1 for _ in mapped_events(folder))


def _compare(
    stack: Settings,
    registry: SchemaRegistry,
    crashed: PipelineRun,
    clean: PipelineRun,
    replays: dict[str, Any],
    synth: Path,
) -> None:
    """Print what the crashed run left beside the clean run, and assert what the project
    guarantees (the module docstring)."""

    # persons whose opt-out was revoked, per run: person id -> when (epoch milliseconds)
    revocations = _revocations(stack, registry, crashed, clean)
    revoked = set(revocations["clean"])
    client = connect(crashed.settings)
    try:
        seen = {
            run.name: clickhouse_snapshot(client, run.settings.clickhouse_database)
            for run in (crashed, clean)
        }
    finally:
        client.close()
    a, b = seen["crashed"], seen["clean"]
    apart = {  # the revoked persons' events: see _compare_facts
        e for rows in b["facts"].values() for e, (person, _row) in rows.items() if person in revoked
    }
    # Events of a person whose opt-out the crashed run revoked, that only the crashed run
    # holds. Re-admitted (published after the revocation, so kept): a crash changes the
    # intake's order (the forwarder's backlog), and the request and its revocation can reach
    # the worker before events of the person from an earlier time on a lagging partition;
    # a revocation admits the person's events "from then on" (streams/README.md), so the
    # worker publishes them, where the clean run removed them. Not grouped otherwise:
    # counted apart (issue #19: 3 to 20 such events of ~11,400, in 4 of 4 runs, were
    # counted as persons only the crashed run had). The others (published
    # up to the revocation: a removal that failed) are the revoked persons' extra rows.
    # Covered by the revocation through the event's person id, or through its person's
    # request by synth's truth: a fragment the backlog made after the revocation (a person
    # of its own, or merged after it) is in no decision (2 and 1 events in 2 of 12 runs).
    only_crashed = {
        e: person
        for rows in a["facts"].values()
        for e, (person, _row) in rows.items()
        if not any(e in r for r in b["facts"].values())
    }
    crashed_revoked = {e for e, p in only_crashed.items() if p in revocations["crashed"]}
    requests = _true_requests(synth)
    readmitted = {
        e
        for e, person in only_crashed.items()
        if a["published_ms"][e]
        > min(
            [revocations["crashed"].get(person, _NEVER)]
            + [revocations["crashed requests"].get(r, _NEVER) for r in requests.get(e, ())]
        )
    }
    apart |= crashed_revoked - readmitted
    # the events grouped into persons (apart from the revoked persons' events)
    groups = {
        name: {frozenset(g - apart - readmitted) for g in run["persons"]} - {frozenset()}
        for name, run in seen.items()
    }
    # every event of a person that differs, and the events that moved (a split counted too)
    differ = grouping_difference(groups["crashed"], groups["clean"])
    regrouped = set(differ.regrouped)
    explained = _explain_grouping(
        stack, registry, crashed, clean, seen, apart, readmitted, groups, synth
    )
    facts = _compare_facts(a, b, apart, regrouped, readmitted)
    total = sum(len(rows) for rows in b["facts"].values())
    print(
        f"\ncrash run ({', '.join(crashed.kills)}):\n"
        f"  fact rows beyond one an event before FINAL: {a['duplicates']} "
        f"(clean run: {b['duplicates']})\n"
        f"  linked events published more than once: {replays['twice']}, under another "
        f"person id than the first copy: {replays['other_id']}, whose ids lead to "
        f"different survivors: {replays['other_survivor']} {replays['examples']}\n"
        f"  facts after FINAL: {facts}\n"
        f"  persons: {a['person_count']} (clean run {b['person_count']}); events grouped "
        f"into other persons than in the clean run (revoked persons' events aside): "
        f"{len(regrouped)} of {total} (events moved: {differ.moved}, persons that differ: "
        f"{differ.only_a} against {differ.only_b}); events of a person whose opt-out "
        f"was revoked, re-admitted by the crashed run only (published after its "
        f"revocation): {len(readmitted)}\n"
        f"  {explained}\n"
        f"  outcome tables that differ: {[n for n in OUTCOME_TABLES if a[n] != b[n]]}\n"
        f"  opt-out audit: {sorted(a['audit_persons'].items())} "
        f"(clean run {sorted(b['audit_persons'].items())})"
    )

    # Privacy first: no event of a person whose opt-out stands (synth's truth) that carries
    # an SSN or SSID of the person's request is in ClickHouse after either run, whatever
    # the grouping (an opt-out covers whoever holds the person's SSN or SSID:
    # streams/optouts.py); others only if linkage missed them, and few
    _opted_out, revoked_truth = opted_out_events(synth)
    missed = {
        name: sorted(
            assert_opt_outs_hold(
                synth, {e for rows in run["facts"].values() for e in rows}, f"the {name} run"
            )
        )
        for name, run in seen.items()
    }
    print(f"  opted-out people's events in ClickHouse that linkage missed: {missed}")
    # nothing duplicated before FINAL either: neither the sink's replay of what it wrote
    # before its crash nor the worker's copies published again (sinks/dedupe.py)
    no_copies = dict.fromkeys(FACT_TABLES.values(), 0)
    assert a["duplicates"] == no_copies, a["duplicates"]
    assert b["duplicates"] == no_copies, b["duplicates"]
    # Should be 0 ("a replayed message resolves to the current survivor of the person it was
    # first published under"); seen at 55 and 450 of ~11,000 events: open, see the docstring
    assert replays["other_survivor"] <= 0.01 * total, replays["examples"]
    assert facts["lost"] == facts["extra"] == facts["changed"] == 0, facts
    # revoked_lost is printed, not asserted: see _compare_facts
    assert facts["revoked_extra"] == facts["revoked_changed"] == 0, facts
    assert a["audit"] == b["audit"]
    # Linkage is incremental, so it depends on the order of the intake, which a crash
    # changes: a forwarder started again (or reconnected to a broker started again) reads
    # a backlog, and a batch of it holds each raw partition up to a different time, so
    # records reach the resolver in another order than in a clean run (a wage record
    # before the records that make it matchable starts a person of its own). The project
    # guarantees the same ids for the same intake, not for another order: a few events
    # may be grouped otherwise, never many.
    # What an opt-out removes follows the linkage: the events of a person the crashed run
    # linked otherwise may stay, or go, with the person (their differences: regrouped_*).
    assert len(regrouped) <= 0.01 * total, (len(regrouped), total)
    # a re-admitted event is one of a person whose opt-out was revoked (synth's truth):
    # never one of a person whose opt-out stands, whatever the grouping
    assert readmitted <= revoked_truth, sorted(readmitted - revoked_truth)
    if not regrouped and facts["revoked_lost"] == 0 and not readmitted:
        # outcomes are computed from the facts and their persons: equal above
        assert a["person_count"] == b["person_count"]
        assert any(b[name] for name in OUTCOME_TABLES)  # the horizons are declared
        for name in OUTCOME_TABLES:
            assert a[name] == b[name], name


def _revocations(
    stack: Settings, registry: SchemaRegistry, crashed: PipelineRun, clean: PipelineRun
) -> dict[str, dict[str, int]]:
    """Per run, the person ids a revocation covered -> when the latest was decided (epoch
    milliseconds), and (``"<run> requests"``) each revoked request id -> the same. The
    crashed run's are the decisions read from its start that the clean run (which
    published after it) did not publish."""

    def read(start: dict[tuple[str, int], int]) -> Counter[tuple[str, int, tuple[str, ...]]]:
        return Counter(
            (
                str(record["request_id"]),
                int(record["decided_at"].timestamp() * 1000),
                tuple(str(p) for p in record["person_ids"]),
            )
            for record, _headers in read_decoded(
                stack,
                registry,
                OPTOUT_DECISIONS_TOPIC,
                lambda r: not r["opted_out"],
                0,
                start=start,
            )
        )

    clean_ones = read(clean.start)
    runs = {"crashed": read(crashed.start) - clean_ones, "clean": clean_ones}
    out: dict[str, dict[str, int]] = {}
    for name, decisions in runs.items():
        out[name], out[f"{name} requests"] = {}, {}
        for request, at, persons in decisions:
            out[f"{name} requests"][request] = max(out[f"{name} requests"].get(request, 0), at)
            for person in persons:
                out[name][person] = max(out[name].get(person, 0), at)
    return out


def _true_requests(synth: Path) -> dict[str, set[str]]:
    """Event id -> the opt-out request ids of its person, by synth's truth."""
    truth = read_assignments(synth / "truth" / "records.csv")
    person_of: dict[str, str] = {}
    of_person: dict[str, set[str]] = defaultdict(set)
    for source, event in mapped_events(synth):
        person = truth.get((source, str(event["source_record_id"])), "")
        if "request_id" in event:
            of_person[person].add(str(event["request_id"]))
        else:
            person_of[str(event["event_id"])] = person
    return {e: of_person[p] for e, p in person_of.items() if p in of_person}


def _explain_grouping(
    stack: Settings,
    registry: SchemaRegistry,
    crashed: PipelineRun,
    clean: PipelineRun,
    seen: dict[str, Any],
    apart: set[str],
    readmitted: set[str],
    groups: dict[str, set[frozenset[str]]],
    synth: Path,
) -> str:
    """Write what explains the persons that differ between the runs (each event of them:
    its person id as published and person key in each run, whether it is in ``apart``, its
    person by synth's truth and place in event-time order beside that person's opt-out
    requests and revocations; and the opt-out decisions of both runs) to a JSON file beside the run,
    and return a line that names it."""
    truth = read_assignments(synth / "truth" / "records.csv")
    intake: dict[str, tuple[int, str]] = {}  # event id -> (event-time place, true person)
    requests: dict[str, list[tuple[int, str]]] = defaultdict(list)  # true person -> actions
    for place, (source, event) in enumerate(mapped_events(synth)):
        person = truth.get((source, str(event["source_record_id"])), "")
        if "request_id" in event:
            requests[person].append((place, str(event["action"])))
        else:
            intake[str(event["event_id"])] = (place, person)
    out, revoked_truth = opted_out_events(synth)
    a, b = groups["crashed"], groups["clean"]
    events = sorted({e for g in a ^ b for e in g} | readmitted)
    # the events of revoked people (by the truth) each run holds: a clean run's losses show
    revoked_held = {
        name: {e for rows in run["facts"].values() for e in rows} & revoked_truth
        for name, run in seen.items()
    }

    def side(run: dict[str, Any], event: str) -> dict[str, str] | None:
        for rows in run["facts"].values():
            if event in rows:
                return {
                    "person_id": rows[event][0],
                    "person_key": run["person_keys"][event],
                    "published_ms": str(run["published_ms"][event]),
                }
        return None

    decisions = {
        name: [
            {k: str(v) for k, v in record.items()}
            for record, _headers in read_decoded(
                stack, registry, OPTOUT_DECISIONS_TOPIC, lambda _r: True, 0, start=start
            )
        ]
        for name, start in (("both runs", crashed.start), ("clean run", clean.start))
    }
    path = clean.settings.data_dir.parent / "persons-explained.json"
    path.write_text(
        json.dumps(
            {
                "only_crashed": [sorted(g) for g in a - b],
                "only_clean": [sorted(g) for g in b - a],
                "events": {
                    e: {
                        "crashed": side(seen["crashed"], e),
                        "clean": side(seen["clean"], e),
                        "apart": e in apart,
                        "readmitted": e in readmitted,
                        "truth_person": intake.get(e, (-1, ""))[1],
                        "event_time_place": intake.get(e, (-1, ""))[0],
                        "truth": "opted_out"
                        if e in out
                        else "revoked"
                        if e in revoked_truth
                        else "",
                        "person_optouts": requests.get(intake.get(e, (-1, ""))[1], []),
                    }
                    for e in events
                },
                "revoked_held": {k: sorted(v) for k, v in revoked_held.items()},
                "revoked_truth": sorted(revoked_truth),
                "apart": sorted(apart),
                "readmitted": sorted(readmitted),
                "decisions": decisions,
            },
            indent=1,
        )
    )
    return (
        f"revoked people's events held (synth's truth, {len(revoked_truth)}): "
        f"crashed {len(revoked_held['crashed'])}, clean {len(revoked_held['clean'])}, "
        f"only crashed {len(revoked_held['crashed'] - revoked_held['clean'])}, only clean "
        f"{len(revoked_held['clean'] - revoked_held['crashed'])}, in apart {len(apart)}; "
        f"differing persons' events: {len(events)}; explained in {path}"
    )


def _compare_facts(
    a: dict[str, Any],
    b: dict[str, Any],
    revoked: set[str],
    regrouped: set[str],
    readmitted: set[str],
) -> dict[str, int]:
    """Fact rows (after FINAL) the crashed run ``a`` lost, added or holds with other values
    than the clean run ``b``. Rows of a person whose opt-out was revoked are counted apart
    (``revoked_*``; ``revoked``: their event ids): a crash replays the request and its
    revocation within milliseconds, and the events re-admitted after them were lost three
    ways, now mended (in one sink batch; read before the opt-out from another partition;
    the opt-out read again by a restarted sink: sinks/batch.py, sinks/optouts.py's
    ``superseded``). A fourth remains: an event re-admitted after the revocation and
    written before the sink reads the opt-out (its partition lagging) is deleted with the
    person's earlier rows, since ClickHouse keeps no publication time to delete by
    (sinks/README.md; seen: 2 events in a broker-kill run).
    So are the rows of ``regrouped`` events, linked to other persons than in the clean
    run (``regrouped_*``), and of ``readmitted`` ones, which the crashed run published
    after the revocation of their person's opt-out (``readmitted_*``: see _compare)."""
    counted = Counter[str]()
    for table in FACT_TABLES.values():
        crashed, clean = a["facts"][table], b["facts"][table]
        for event in crashed.keys() | clean.keys():
            prefix = (
                "revoked_"
                if event in revoked
                else "readmitted_"
                if event in readmitted
                else "regrouped_"
                if event in regrouped
                else ""
            )
            if event not in crashed:
                counted[f"{prefix}lost"] += 1
            elif event not in clean:
                counted[f"{prefix}extra"] += 1
            elif crashed[event][1] != clean[event][1]:
                counted[f"{prefix}changed"] += 1
    kinds = [
        f"{p}{k}"
        for p in ("", "revoked_", "readmitted_", "regrouped_")
        for k in ("lost", "extra", "changed")
    ]
    return {k: counted[k] for k in kinds}


def _run_pipeline(
    stack: Settings,
    synth: Path,
    tmp_path: Path,
    name: str,
    *,
    crash: Callable[[PipelineRun], None] | None,
    events: int,
    workers: int = 1,
    environment: dict[str, str] | None = None,
    sharded: tuple[int, int] | None = None,
) -> PipelineRun:
    """Replay ``synth`` at _RATE through a worker (or ``workers`` in one group, with
    ``environment``) and a sink of their own, calling ``crash`` while it runs; return once
    all have committed everything, stopped. A worker or sink that exits (fail-stop, as
    after a broker's crash) is started again, unless the run lost it for good."""
    run = PipelineRun.create(
        stack,
        tmp_path,
        name,
        tmp_path / "ch",
        workers=workers,
        environment=environment,
        sharded=sharded,
    )
    declare_synth_horizons(run.settings, synth)  # else every outcome table is empty
    try:
        run.begin()
        replaying = threading.Thread(target=replay, args=(stack, synth), kwargs={"rate": _RATE})
        replaying.start()
        if crash is not None:
            crash(run)
        replaying.join()
        run.drain()
        run.stop()
    finally:
        run.kill()
    return run


def _kill_worker_and_sink(run: PipelineRun, events: int) -> None:
    """Kill the worker and the sink twice each, at different points of the replay: the
    worker a tenth in, the sink a fifth in, each again once it has done some work since
    its restart. Each is started again at once, with the same group and state."""
    worker, sink = run.worker, run.sink

    def handled_worker(at_least: int) -> Callable[[], bool]:
        return lambda: worker.handled() >= at_least

    def handled_sink(at_least: int) -> Callable[[], bool]:
        return lambda: int(sink.counts().get("facts", 0)) >= at_least

    for target, when in (
        ("worker", handled_worker(events // 10)),
        ("sink", handled_sink(events // 5)),
        ("worker", handled_worker(events // 10)),
        ("sink", handled_sink(events // 10)),
    ):
        wait_for(when, f"{run.name} {target} at work", worker if target == "worker" else sink)
        run.kill_and_restart(target)


def _republished(stack: Settings, registry: SchemaRegistry, run: PipelineRun) -> dict[str, Any]:
    """Linked events the run published more than once, those under another person id than
    their first copy, and of those the ones whose ids lead to different survivors through
    the merges the run published."""
    start = run.start
    ids: dict[str, list[str]] = defaultdict(list)
    for topic in FACT_TABLES:
        for record, _headers in read_decoded(
            stack, registry, topic, lambda _r: True, 0, start=start
        ):
            ids[str(record["event_id"])].append(str(record["person_id"]))
    merges = [
        (str(record["previous_person_id"]), str(record["person_id"]))
        for record, _headers in read_decoded(
            stack,
            registry,
            CHANGES_TOPIC,
            lambda r: r["change_type"] == "PERSONS_MERGED",
            0,
            start=start,
        )
    ]
    return republished(ids, merges)

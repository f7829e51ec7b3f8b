"""Opt-outs through the real pipeline: events published by a provider, resolved by the Faust
identity worker, written by the sink to embedded ClickHouse; then opt-outs, a merge that
spreads one, a revocation, and the audit."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from c2c.clickhouse import connect
from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import OPTOUT_DECISIONS_TOPIC, get_topic
from cli.demo import declare_synth_horizons
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.optouts import request_event, revocation_event
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.audit import read_audit
from sinks.migrate import migrate
from sinks.optouts import request_key
from sinks.rows import FACT_TABLES
from sinks.sink import Sink
from tests.conftest import free_port_pair
from tests.integration.linkage_truth import falsely_merged, truth_persons
from tests.integration.outcome_pages import researcher_table, with_token
from tests.integration.pipeline import Pipeline, running_pipeline, until

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(stack: Settings, registry: SchemaRegistry, tmp_path: Path) -> Iterator[Pipeline]:
    with running_pipeline(stack, registry, tmp_path, "optouts") as running:
        yield running


def _digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


def test_opt_outs_remove_withhold_spread_by_merge_and_revoke(pipeline: Pipeline) -> None:
    p = pipeline
    alice = {
        "source_person_id": f"A{uuid.uuid4().hex[:8]}",
        "ssn": _digits(9),
        "ssid": _digits(10),
        "first_name": "Alicia",
        "last_name": "Quintero",
        "birth_date": date(2001, 4, 9),
    }
    # Bea has a statewide id only; Will's wages carry an SSN and a name only
    bea = {
        "source_person_id": f"B{uuid.uuid4().hex[:8]}",
        "ssn": None,
        "ssid": _digits(10),
        "first_name": "Beatriz",
        "last_name": "Okafor",
        "birth_date": date(2002, 11, 23),
    }
    will_ssn = _digits(9)
    will = {
        "source_person_id": will_ssn,
        "ssn": will_ssn,
        "ssid": None,
        "first_name": "B",
        "last_name": "Okafor",
        "birth_date": None,
    }
    for kind in ("enrollment", "completion", "financial_aid", "wage"):
        p.emit("alice", kind, alice)
    p.emit("bea", "enrollment", bea)
    p.emit("bea", "credential", bea)
    p.emit("will", "wage", will)
    everyone = {e for ids in p.published.values() for e in ids}
    until(lambda: everyone <= p.fact_ids(), "the first events in ClickHouse")
    alice_id = p.person_of(p.published["alice"][0])
    bea_id = p.person_of(p.published["bea"][0])
    will_id = p.person_of(p.published["will"][0])
    assert len({alice_id, bea_id, will_id}) == 3
    assert p.rows_of([alice_id])["dim_person"] >= 1  # one per batch until merged (FINAL: 1)

    # Alice asks to opt out (found by her SSN and name), and so does Will
    asked = request_event(
        {"ssn": alice["ssn"], "first_name": "Alicia", "last_name": "Quintero"},
        requested_by="INDIVIDUAL",
    )
    p.optout(asked)
    p.optout(request_event({"ssn": will_ssn, "first_name": "B", "last_name": "Okafor"}))
    [applied] = until(lambda: p.audit(asked["request_id"]), "Alice's opt-out audited")
    assert applied["cause"] == "REQUESTED"
    assert applied["opted_out"] is True
    assert applied["requested_by"] == "INDIVIDUAL"
    assert applied["rows_removed"]["fact_enrollment"] == 1
    assert applied["rows_removed"]["fact_completion"] == 1
    assert applied["rows_removed"]["fact_financial_aid"] == 1
    assert applied["rows_removed"]["fact_wage"] == 1
    assert applied["rows_removed"]["dim_person"] == 1
    assert applied["decided_at"] <= applied["applied_at"]
    assert set(p.rows_of([alice_id]).values()) == {0}  # gone from every table
    until(lambda: not any(p.rows_of([will_id]).values()), "Will's rows removed")
    assert p.rows_of([bea_id])["fact_enrollment"] == 1  # nobody else's

    # Alice's later events are not published; Bea's are
    p.emit("alice-later", "credential", alice)
    marker = p.emit("bea", "wage", {**bea, "ssn": None})
    until(lambda: marker in p.fact_ids(), "Bea's marker event")
    assert p.published["alice-later"][0] not in p.fact_ids()
    assert set(p.rows_of([alice_id]).values()) == {0}
    assert p.worker.counts().get("withheld", 0) >= 1

    # a record bridging Bea (statewide id) and Will (SSN) merges them: Bea is out too
    p.emit(
        "bridge",
        "enrollment",
        {**bea, "source_person_id": f"C{uuid.uuid4().hex[:6]}", "ssn": will_ssn},
    )
    until(lambda: not any(p.rows_of([bea_id, will_id]).values()), "Bea's rows removed by the merge")
    merged = [
        row
        for row in p.query("SELECT cause, persons FROM optout_audit FINAL WHERE cause = 'MERGED'")
    ]
    assert merged == [("MERGED", 2)]
    assert p.published["bridge"][0] not in p.fact_ids()

    # the revocation re-admits Alice's events from then on; what was removed stays removed
    p.optout(revocation_event(asked["request_id"]))
    until(lambda: len(p.audit(asked["request_id"])) == 2, "the revocation audited")
    revoked = p.audit(asked["request_id"])[1]
    assert revoked["cause"] == "REVOKED"
    assert revoked["opted_out"] is False
    back = p.emit("alice-back", "wage", alice)
    until(lambda: back in p.fact_ids(), "Alice's event after the revocation")
    kept = p.fact_ids()
    assert not set(p.published["alice"]) & kept
    assert p.published["alice-later"][0] not in kept

    # a revocation that names no active request is held for review, not dropped
    reviews = int(p.worker.counts().get("review", 0))
    p.optout(revocation_event(f"NEVER-{uuid.uuid4().hex[:6]}"))
    until(lambda: int(p.worker.counts().get("review", 0)) == reviews + 1, "the review")
    # opt-out audit holds ids and counts, never the identifying fields
    audit_text = str(p.query("SELECT * FROM optout_audit"))
    for value in (alice["ssn"], alice["ssid"], "Quintero", "Okafor", will_ssn, "2001-04-09"):
        assert value not in audit_text
    # nor the request id, which may embed a person's number: it is keyed
    assert asked["request_id"] not in audit_text


def test_outcomes_after_opt_outs_match_the_truth_without_the_opted_out_people(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """synth (with many opt-outs) -> replay -> worker -> sink: the opted-out people's rows
    are gone and the outcomes are those of the people who stayed."""
    synth = tmp_path / "synth"
    config = SynthConfig(people=500, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.06)
    synthesize(config, NoiseConfig(), synth)
    events = [(s, e) for s, e in mapped_events(synth)]
    person_of = truth_persons(synth)
    out = _opted_out(synth)
    assert len(out) >= 10  # the test has opt-outs to check
    linked = [e for s, e in events if s != "optout"]
    of_out = {str(e["event_id"]) for e in linked if person_of[_key(e)] in out}

    settings = stack.model_copy(
        update={"clickhouse_url": f"chdb://{tmp_path / 'ch'}", "clickhouse_database": "e2e"}
    )
    declare_synth_horizons(settings, synth)
    with_token(monkeypatch)
    sink = SinkProcess(settings, tmp_path / "sink.log", port=free_port_pair())
    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    try:
        sink.start()
        worker.start()
        replay(stack, synth)
        counts = worker.drained(len(events))
        # the worker published everything but the withheld events; the sink wrote them
        written = int(counts["linked"])
        assert written + int(counts.get("withheld", 0)) == len(linked)
        sink.caught_up(written)
        until(lambda: sink.counts().get("optout.audited", 0) >= len(out), "opt-outs audited")
        going = researcher_table(sink, "outcome_college_going")
        completion = researcher_table(sink, "outcome_completion")
        # an operator asks what was done, from another process, as `c2c optout status` does
        env = {
            **os.environ,
            "C2C_SINK_WEB_PORT": str(sink.port),
            "C2C_CLICKHOUSE_URL": settings.clickhouse_dsn,
            "C2C_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        }
        asked = subprocess.run(
            [sys.executable, "-m", "cli", "optout", "status", f"OPT-{min(out)}", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        sink.stop()
    finally:
        worker.kill()
        sink.kill()

    assert asked.returncode == 0, asked.stderr
    # the request first; a merge that spread it later would follow under the same id
    status = json.loads(asked.stdout)["decisions"][0]
    assert status["cause"] == "REQUESTED"
    assert status["opted_out"] is True
    client = connect(settings)
    union = " UNION ALL ".join(f"SELECT event_id FROM {t} FINAL" for t in FACT_TABLES.values())
    kept = {str(row[0]) for row in client.query(union).result_rows}
    audits = dict(
        client.query("SELECT cause, count() FROM optout_audit FINAL GROUP BY cause").result_rows
    )
    # a false merge moves a count of persons by one for each person it merged (of those
    # whose rows stand: a merge into an opted-out person left no rows to find it by)
    merged = falsely_merged(client, synth, stack)
    client.close()
    # Every event of an opted-out person is gone, but those the resolver could not link to
    # the person who asked (a wage record whose SSN no other record of theirs carries):
    # they stand under another person id, as unlinked as they were before the opt-out.
    remaining = of_out & kept
    assert len(remaining) <= 0.1 * len(of_out), (len(remaining), len(of_out))
    # The truth's outcomes leave out everyone who ever asked to opt out. Who of them still
    # counts in ClickHouse: the opted-out people some of whose events stand (an opt-out
    # whose own identifying fields were too noisy to find its person, or found only some of
    # their records), and those who revoked, whose events from the revocation on are
    # admitted again. How many there are depends on the seed and on the order the records
    # took; each is allowed for below, and nothing else is.
    true_person = {str(e["event_id"]): person_of[_key(e)] for e in linked}
    revoked = {  # an opt-out's provider is who asked; truth files it under "optout"
        person_of[("optout", str(e["source_record_id"]))]
        for s, e in events
        if s == "optout" and e.get("action") == "REVOKED"
    }
    readmitted = {true_person[i] for i in kept if true_person.get(i) in revoked}
    counted = {true_person[event_id] for event_id in remaining} | readmitted | merged
    assert audits["REQUESTED"] >= len(out)
    # every revocation in the file found its request
    with (synth / "optout.csv").open(newline="") as handle:
        revocations = sum(1 for r in csv.DictReader(handle) if r["Action"] == "REVOKE")
    assert audits.get("REVOKED", 0) == revocations
    truth = json.loads((synth / "truth" / "outcomes_without_optouts.json").read_text())
    everyone = json.loads((synth / "truth" / "outcomes.json").read_text())
    assert truth["college_going"] != everyone["college_going"]  # the opt-outs changed it
    differences = []
    for row in going.rows:
        values = dict(zip(going.columns, row, strict=True))
        if values["breakdown"] != "all":
            continue
        expected = truth["college_going"].get(f"{values['class_year']}|all", {})
        differences.append(abs(values["completers"] - expected.get("completers", 0)))
        # (college-going also needs a K-12 record linked to a college one: 2 for links missed)
        going_off = abs(values["within_12"] - expected.get("within_12", 0))
        assert going_off <= 2 + len(counted), (values, expected, counted)
    # completers come from K-12 records alone: exact, but for the people counted above,
    # each of whom completes once
    assert differences
    assert sum(differences) <= len(counted), (differences, counted)
    # entrants and their awards are records of one college under one student id: exact,
    # with the same allowance: a person counted above is in at most three columns of a
    # segment (entrants, within 150 %, within 8 years), in at most two segments
    off = 0
    for row in completion.rows:
        values = dict(zip(completion.columns, row, strict=True))
        if values["breakdown"] != "all":
            continue
        expected = truth["completion"].get(f"{values['segment']}|{values['entry_year']}", {})
        for column in ("entrants", "within_150", "within_8_years"):
            if values[column] is None or expected.get(column, 0) is None:  # open window
                assert values[column] is expected.get(column, 0), (column, values, expected)
                continue
            off += abs(values[column] - expected.get(column, 0))
    assert completion.rows
    assert off <= 6 * len(counted), (off, counted)


def _key(event: dict[str, Any]) -> tuple[str, str]:
    return str(event["provider"]), str(event["source_record_id"])


def _opted_out(synth: Path) -> set[str]:
    """The true persons whose opt-out stands (asked and never revoked)."""
    with (synth / "truth" / "people.csv").open(newline="") as handle:
        return {r["person_id"] for r in csv.DictReader(handle) if r["opted_out"] == "1"}


@pytest.mark.parametrize("decode", ["python", "clickhouse"])
def test_an_opt_outs_delete_keeps_the_rows_published_after_its_decision(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, decode: str
) -> None:
    """A lagging decisions partition: the sink writes a person's events, one published
    before an opt-out's decision and one after it (following a revocation), and only then
    reads the decision. Its delete removes the earlier row and keeps the later one, by
    the publication time each row holds (decoded by the sink, or by ClickHouse from the
    wire: C2C_SINK_DECODE)."""
    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{tmp_path / 'ch'}",
            "clickhouse_database": "lagging",
            "sink_start": "latest",
            "sink_batch_wait_s": 0.2,
            "sink_batch_rows": 2,  # wire messages go as containers from one (clickhouse)
            "sink_decode": decode,
        }
    )
    client = connect(settings)
    migrate(client, min_cell=settings.suppression_min_cell)
    sink = Sink(settings, registry, client, group_id=f"test-sink-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    producer = Producer(stack.kafka_config())
    try:
        until(lambda: sink.positioned, "the sink to be assigned")
        person = f"P-lag-{uuid.uuid4().hex[:8]}"
        decided = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        decided_ms = int(decided.timestamp() * 1000)
        topic = "c2c.linked.enrollment"
        encoder = registry.encoder(get_topic(topic))
        published = {}  # event id -> when published: a minute before and after the decision
        for index, offset_ms in enumerate((-60_000, 60_000)):
            event = {**example_linked("enrollment", index), "event_id": str(uuid.uuid4())}
            event["person_id"] = person
            published[event["event_id"]] = decided_ms + offset_ms
            producer.produce(
                topic, encoder.encode(event), key=person.encode(), timestamp=decided_ms + offset_ms
            )
        assert producer.flush(30) == 0
        early, late = published

        def stored() -> dict[str, int]:
            with sink.lock:
                rows = client.query(
                    "SELECT toString(event_id), toUnixTimestamp64Milli(published_at) "
                    "FROM fact_enrollment FINAL WHERE person_id = %(p)s",
                    parameters={"p": person},
                ).result_rows
            return {str(event_id): int(at) for event_id, at in rows}

        assert until(lambda: len(stored()) == 2, "both events written") is True
        assert stored() == published  # each row holds its message's Kafka timestamp

        decision = {
            "decision_id": str(uuid.uuid4()),
            "decided_at": decided,
            "requested_at": decided,
            "request_id": f"R-lag-{uuid.uuid4().hex[:8]}",
            "cause": "REQUESTED",
            "requested_by": "OPERATOR",
            "person_id": person,
            "person_ids": [person],
            "opted_out": True,
        }
        decisions = get_topic(OPTOUT_DECISIONS_TOPIC)
        producer.produce(
            OPTOUT_DECISIONS_TOPIC, registry.encoder(decisions).encode(decision), key=b"lag"
        )
        assert producer.flush(30) == 0
        until(lambda: sink.removal.counts["optout.audited"] >= 1, "the decision applied")

        kept = stored()
        assert early not in kept  # published before the decision: removed
        assert kept == {late: published[late]}  # published after it: kept
        with sink.lock:
            secret = settings.identity_secret.get_secret_value().encode()
            [audit] = read_audit(client, decision["request_id"], key=request_key(secret))
        assert audit["rows_removed"]["fact_enrollment"] == 1
    finally:
        stop.set()
        thread.join(timeout=30)
        client.close()

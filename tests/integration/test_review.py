"""`c2c review` against the real broker: a held record is listed without its values, and
shown with them only on request; `link` and `separate` on a possible match go through the
identity worker (a child process) to the sink (in this process, embedded ClickHouse)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from c2c.examples import example_raw
from c2c.kinds import LINKED_KINDS
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import OPERATOR_DECISIONS_TOPIC, get_topic
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.linking import review_record
from tests.conftest import c2c_json, free_port_pair
from tests.integration.pipeline import Pipeline, running_pipeline, until

pytestmark = pytest.mark.integration


def test_a_held_record_is_listed_without_values_and_shown_with_them_on_request(
    stack: Settings, registry: SchemaRegistry
) -> None:
    event = example_raw("enrollment", 5)
    last_name = f"Zq{uuid.uuid4().hex[:8]}"
    event["person"] = {**event["person"], "last_name": last_name, "ssn": None, "ssid": None}
    raw_value = registry.encoder(get_topic("c2c.raw.enrollment")).encode(event)
    record = review_record(
        reason="no trusted identifier and no birth date: a name alone is not enough",
        provider="ccc",
        event_id=str(uuid.uuid4()),
        source_topic="c2c.raw.enrollment",
        source_partition=2,
        source_offset=11,
        raw_value=raw_value,
    )
    producer = Producer(stack.kafka_config(acks="all"))
    producer.produce(
        "c2c.identity.review",
        value=registry.encoder(get_topic("c2c.identity.review")).encode(record),
    )
    assert producer.flush(30) == 0

    listed = c2c_json("review", "list", "--provider", "ccc", "--state", "open")
    (row,) = [r for r in listed if r["review_id"] == str(record["review_id"])]
    assert row["where"] == "c2c.raw.enrollment[2]@11"
    assert row["reason"] == record["reason"]
    assert last_name not in json.dumps(listed)
    shown = c2c_json("review", "show", row["review_id"])
    assert "raw_event" not in shown
    assert last_name not in json.dumps(shown)
    with_values = c2c_json("review", "show", row["review_id"], "--values")
    assert with_values["raw_event"]["person"]["last_name"] == last_name


# -- link and separate through the real pipeline ------------------------------------------

# The possible-match floor the worker runs with here: the pairs below score between it and
# the model's threshold (20 bits), so each second record is held as a possible match.
_FLOOR = "10"


@pytest.fixture(params=["one", "shards"])
def pipeline(
    stack: Settings,
    registry: SchemaRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Pipeline]:
    """The worker's environment: possible matches held; its resolver's state kept in
    memory, so that a restarted worker has only the changelogs to rebuild it from. Or
    (``shards``) deciding over two shard hosts (streams/worker_decider.py), its decisions
    table in RocksDB: reviews, decisions and separations restored from it and the
    decider's log."""
    monkeypatch.setenv("C2C_IDENTITY_REVIEW_MIN_WEIGHT", _FLOOR)
    sharded = None
    if request.param == "shards":
        sharded = (2, 2)
        monkeypatch.setenv("C2C_STREAMS_RESOLVER", "shards")
        monkeypatch.setenv("C2C_STREAMS_SHARDS", "2")
    else:
        monkeypatch.setenv("C2C_STREAMS_STORE", "memory")
    with running_pipeline(stack, registry, tmp_path, "reviews", sharded=sharded) as running:
        yield running


def _pair(tag: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Two records of one name that score close, below the threshold (the second's day and
    month swapped, and no SSID or ZIP on it), and a record that matches both (the first's
    SSID with the second's birth date)."""
    year, month = random.randint(1990, 2005), random.randint(1, 9)
    day = random.choice([d for d in range(1, 13) if d != month])
    first = {
        "source_person_id": f"{tag}A{uuid.uuid4().hex[:8]}",
        "ssid": "".join(random.choice("0123456789") for _ in range(10)),
        "ssn": None,
        "first_name": "Maria",
        "last_name": "Garcia",
        "birth_date": date(year, month, day),
        "sex": "FEMALE",
        "zip": "90011",
    }
    second = {
        **first,
        "source_person_id": f"{tag}B{uuid.uuid4().hex[:8]}",
        "ssid": None,
        "zip": None,
        "birth_date": date(year, day, month),
    }
    bridge = {**second, "source_person_id": f"{tag}C{uuid.uuid4().hex[:8]}", "ssid": first["ssid"]}
    return first, second, bridge


def _persons(p: Pipeline, event_ids: list[str]) -> set[str]:
    """The current persons (after merges and splits) of these events, as the sink's
    ``*_current`` view counts them."""
    rows = p.query(
        "SELECT DISTINCT person_key FROM enrollment_current WHERE event_id IN %(ids)s",
        ids=event_ids,
    )
    return {str(row[0]) for row in rows}


def _current_persons(p: Pipeline, person_ids: list[str]) -> set[str]:
    """The current persons (person_key) of every fact row published under these ids."""
    union = " UNION ALL ".join(
        f"SELECT person_key FROM {kind.current_view} WHERE person_id IN %(ids)s"
        for kind in LINKED_KINDS
    )
    return {
        str(row[0]) for row in p.query(f"SELECT DISTINCT person_key FROM ({union})", ids=person_ids)
    }


def test_a_possible_match_from_a_synth_is_linked_into_one_person_downstream(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    p = pipeline
    began = datetime.now(UTC)
    synth = tmp_path / "synth"
    # 300 people: enough possible matches that some stand apart once every merge is in (80
    # gave none now and then)
    synthesize(SynthConfig(people=300, seed=int(uuid.uuid4().int % 10**6)), NoiseConfig(), synth)
    events = list(mapped_events(synth))
    replay(p.worker.settings, synth)
    counts = p.worker.drained(len(events))
    assert counts.get("possible_match", 0) >= 1
    # the sink has written everything the worker published, every merge applied
    until(lambda: p.sink.lag() and not any(p.sink.lag().values()), "the sink to catch up")
    merges = int(counts.get("change.PERSONS_MERGED", 0))
    until(lambda: p.sink.counts.get("change.PERSONS_MERGED", 0) >= merges, "the synth's merges")
    merged = {str(r[0]) for r in p.query("SELECT person_id FROM person_map FINAL")}

    def still_apart(row: dict[str, Any]) -> bool:
        # both persons as the review saw them: neither merged into anyone since, and each
        # with rows of its own (not an opted-out person, whose rows are withheld)
        pair = {row["person_id"], row["candidate_person_id"]}
        return not (pair & merged) and _current_persons(p, list(pair)) == pair

    matches = [
        r
        for r in c2c_json("review", "list", "--state", "open")
        if datetime.fromisoformat(r["received_at"]) >= began and "person_id" in r and still_apart(r)
    ]
    assert matches, "the synth gave no possible match whose persons stand as they were"
    review = matches[0]
    pair = [review["person_id"], review["candidate_person_id"]]
    assert review["event_id"] in p.fact_ids()
    shown = json.dumps(c2c_json("review", "show", review["review_id"]))
    assert "raw_event" not in shown
    linked = c2c_json("review", "link", review["review_id"], "--reason", "same person")
    assert [linked["person_id"], linked["candidate_person_id"]] == pair
    until(lambda: len(_current_persons(p, pair)) == 1, "the link applied by the sink")
    assert _current_persons(p, pair) == {min(pair, key=lambda pid: int(pid[1:]))}


def _review_of(person_ids: set[str]) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for row in c2c_json("review", "list", "--state", "open"):
            if {row.get("person_id"), row.get("candidate_person_id")} == person_ids:
                return dict(row)
        return None

    review: dict[str, Any] = until(found, f"the possible match of {sorted(person_ids)}")
    return review


def test_link_and_separate_are_identity_changes_applied_downstream(
    pipeline: Pipeline, registry: SchemaRegistry
) -> None:
    p = pipeline
    first, second, _bridge = _pair("L")
    a = p.emit("first", "enrollment", first)
    b = p.emit("second", "enrollment", second)
    until(lambda: {a, b} <= p.fact_ids(), "both records in ClickHouse")
    persons = {p.person_of(a), p.person_of(b)}
    assert len(persons) == 2  # close, but not linked on its own
    review = _review_of(persons)
    assert review["comparison"]["birth_date"] == "swapped"
    assert 10 <= review["match_weight"] < 20
    shown = c2c_json("review", "show", review["review_id"])
    assert "Garcia" not in json.dumps(shown)
    assert "raw_event" not in shown

    # an operator links them: one person in the sink's tables
    linked = c2c_json("review", "link", review["review_id"], "--reason", "same student")
    assert {linked["person_id"], linked["candidate_person_id"]} == persons
    assert "Garcia" not in json.dumps(linked)
    assert "Maria" not in json.dumps(linked)
    until(lambda: len(_persons(p, [a, b])) == 1, "the link applied by the sink")
    assert _persons(p, [a, b]) == {min(persons)}
    (listed,) = [r for r in c2c_json("review", "list") if r["review_id"] == review["review_id"]]
    assert listed["state"] == "link"

    # then separates them again: the record is split back to its own person
    c2c_json("review", "separate", review["review_id"], "--reason", "twins, checked")
    until(lambda: len(_persons(p, [a, b])) == 2, "the split applied by the sink")
    assert _persons(p, [a, b]) == persons

    # a review the worker does not hold: a dead letter with its reason, and no crash
    unknown = {
        "decision_id": str(uuid.uuid4()),
        "decided_at": datetime.now(UTC),
        "action": "LINK",
        "review_id": str(uuid.uuid4()),
        "person_id": min(persons),
        "candidate_person_id": max(persons),
        "operator": "test",
        "reason": "no such review",
    }
    producer = Producer(p.worker.settings.kafka_config(acks="all"))
    producer.produce(
        OPERATOR_DECISIONS_TOPIC,
        value=registry.encoder(get_topic(OPERATOR_DECISIONS_TOPIC)).encode(unknown),
    )
    assert producer.flush(30) == 0
    letters = until(
        lambda: [
            row
            for row in c2c_json("deadletters", "list", "--code", "decision.unknown_review")
            if row["where"].startswith(OPERATOR_DECISIONS_TOPIC)
        ],
        "the unknown decision's dead letter",
    )
    assert letters
    assert p.worker.counts()["dead_letter"] >= 1

    # a record held unresolved (a name alone) is not a possible match: refused, exit 1
    alone = p.emit(
        "alone",
        "enrollment",
        {**second, "source_person_id": f"N{uuid.uuid4().hex[:8]}", "birth_date": None},
    )
    held = until(
        lambda: [r for r in c2c_json("review", "list") if r["event_id"] == alone],
        "the record held for review",
    )
    assert "person_id" not in held[0]
    refused = c2c_json("review", "link", held[0]["review_id"], "--reason", "x", expect=1)
    assert refused["error"]["code"] == "review.not_a_match"


def test_separated_persons_stay_two_after_a_worker_restart(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    p = pipeline
    first, second, bridge = _pair("S")
    a = p.emit("first", "enrollment", first)
    b = p.emit("second", "enrollment", second)
    until(lambda: {a, b} <= p.fact_ids(), "both records in ClickHouse")
    persons = {p.person_of(a), p.person_of(b)}
    review = _review_of(persons)
    separated = c2c_json("review", "separate", review["review_id"], "--reason", "not the same")
    assert separated["decision"] == "separate"
    until(
        lambda: p.worker.counts().get("decision.separated", 0) >= 1,
        "the worker to apply the separation",
    )
    # without a decision, a record that matches both merges them (the control) ...
    c_first, c_second, c_bridge = _pair("K")
    control = [p.emit("control", "enrollment", r) for r in (c_first, c_second, c_bridge)]
    until(lambda: set(control) <= p.fact_ids(), "the control records in ClickHouse")
    until(lambda: len(_persons(p, control)) == 1, "the control pair merged by the bridge")
    # ... and after the separation it goes to one of them
    c = p.emit("bridge", "enrollment", bridge)
    until(lambda: c in p.fact_ids(), "the bridging record in ClickHouse")
    assert p.person_of(c) in persons
    assert _persons(p, [a, b]) == persons

    # the worker stopped and started again on the same group and intake, its state in
    # memory: rebuilt from the changelogs, the separation holds
    old = p.worker
    old.stop()
    p.worker = WorkerProcess(
        old.settings,
        tmp_path / "worker-2.log",
        port=free_port_pair(),
        app_id=old.app_id,
        intake=old.intake,
    )
    p.worker.start()
    again = p.emit(
        "bridge", "enrollment", {**bridge, "source_person_id": f"SD{uuid.uuid4().hex[:8]}"}
    )
    until(lambda: again in p.fact_ids(), "a second bridging record in ClickHouse")
    assert p.person_of(again) in persons
    assert _persons(p, [a, b, c, again]) == persons
    assert p.worker.counts().get("change.PERSONS_MERGED", 0) == 0

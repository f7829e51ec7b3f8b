"""Operators' decisions on possible matches (streams/identity/operator_decisions.py), the
resolver's possible matches and separations, the stage that applies decisions, and the
sink's re-keying of a split: plain code, no Kafka."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest

from c2c.examples import example_raw
from c2c.offline_codecs import OfflineCodecs
from c2c.topics import (
    CHANGES_TOPIC,
    DEAD_LETTER_TOPIC,
    OPERATOR_DECISIONS_TOPIC,
    REVIEW_TOPIC,
)
from sinks.rows import PersonMap
from streams.identity.operator_decisions import DecisionError, OperatorDecisions, rekeyed_value
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.resolution import INPUT_TOPICS, IdentityStage, Incoming

FLOOR = 10.0  # bits: the pairs below score between it and the threshold (20)


def _person(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(
        ("source_person_id", "ssn", "ssid", "itin", "first_name", "last_name", "birth_date")
    )
    base.update({"sex": "FEMALE", "zip": None, **fields})
    return base


# A: an SSID and a full record. B: the same name with day and month swapped, no SSID, no
# ZIP: close to A, below the threshold. BRIDGE: A's SSID with B's birth date: it matches
# both, so without a separation it merges them.
A = _person(
    source_person_id="A1",
    ssid="1234567890",
    first_name="Maria",
    last_name="Garcia",
    birth_date=datetime.date(2007, 3, 4),
    zip="90011",
)
B = _person(
    source_person_id="B1",
    first_name="Maria",
    last_name="Garcia",
    birth_date=datetime.date(2007, 4, 3),
)
BRIDGE = _person(
    source_person_id="C1",
    ssid="1234567890",
    first_name="Maria",
    last_name="Garcia",
    birth_date=datetime.date(2007, 4, 3),
)


def _resolver(floor: float | None = FLOOR) -> Resolver:
    return Resolver(IdentifierHasher(b"decisions"), review_floor=floor)


def _decision(action: str, review_id: str, a: str, b: str, **extra: Any) -> dict[str, Any]:
    return {
        "decision_id": str(uuid.uuid4()),
        "decided_at": datetime.datetime.now(datetime.UTC),
        "action": action,
        "review_id": review_id,
        "person_id": a,
        "candidate_person_id": b,
        "operator": "tester",
        "reason": "checked the records",
        **extra,
    }


def _possible_match(resolver: Resolver, decisions: OperatorDecisions) -> tuple[str, str, str]:
    """Resolve A then B; B's possible match with A remembered as a review: (review id, B's
    person, A's person)."""
    first = resolver.resolve("k12", A)
    second = resolver.resolve("ccc", B)
    assert first.person_id is not None
    assert second.person_id is not None
    assert second.near is not None
    hashed = resolver.hasher.source_id("ccc", "B1")
    review_id = str(uuid.uuid4())
    decisions.possible_match(
        review_id, second.person_id, second.near, resolver.identity(B), ("ccc", hashed)
    )
    return review_id, second.person_id, first.person_id


def test_a_candidate_between_the_floor_and_the_threshold_is_a_possible_match() -> None:
    resolver = _resolver()
    first = resolver.resolve("k12", A)
    second = resolver.resolve("ccc", B)
    assert second.person_id != first.person_id  # not linked on its own
    assert second.near is not None
    assert second.near.person_id == first.person_id
    assert FLOOR <= second.near.weight < resolver.model.threshold
    assert dict(second.near.levels)["birth_date"] == "swapped"
    # without a floor, nothing is held, and the ids are the same
    plain = _resolver(None)
    assert plain.resolve("k12", A).person_id == first.person_id
    again = plain.resolve("ccc", B)
    assert again.near is None
    assert again.person_id == second.person_id


def test_link_merges_under_the_lowest_id_once() -> None:
    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    decision = _decision("LINK", review_id, b, a)
    applied = decisions.apply(decision)
    survivor, absorbed = sorted((a, b))
    assert applied.what == "linked"
    [change] = applied.changes
    assert (change.change_type, change.person_id, change.previous_person_id, change.rule) == (
        "PERSONS_MERGED",
        survivor,
        absorbed,
        "OPERATOR",
    )
    assert resolver.state.root(absorbed) == survivor
    assert decisions.apply(decision).changes == ()  # the same decision again
    assert decisions.apply(_decision("LINK", review_id, b, a)).what == "unchanged"
    # B's source resolves to the survivor from now on
    assert resolver.resolve("ccc", B).person_id == survivor


def test_separate_keeps_them_apart_against_a_record_that_matches_both() -> None:
    # without a decision, the bridging record merges the two
    control = _resolver()
    control_decisions = OperatorDecisions(control)
    _review, cb, ca = _possible_match(control, control_decisions)
    assert control.state.root(ca) != control.state.root(cb)
    control.resolve("csu", BRIDGE)
    assert control.state.root(ca) == control.state.root(cb)

    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    applied = decisions.apply(_decision("SEPARATE", review_id, b, a))
    assert (applied.what, applied.changes) == ("separated", ())
    bridged = resolver.resolve("csu", BRIDGE)
    assert bridged.person_id in (a, b)
    assert resolver.state.root(a) != resolver.state.root(b)
    assert not any(c.change_type == "PERSONS_MERGED" for c in bridged.changes)
    # no possible match between them is held again
    assert resolver.resolve("ccc", {**B, "source_person_id": "B2"}).near is None


def test_separate_after_a_link_splits_the_record_back_to_its_person() -> None:
    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    decisions.apply(_decision("LINK", review_id, b, a))
    survivor = min(a, b)
    separate = _decision("SEPARATE", review_id, b, a)
    applied = decisions.apply(separate)
    assert applied.what == "split"
    assert applied.sources == {("ccc", resolver.hasher.source_id("ccc", "B1")): b}
    [change] = applied.changes
    assert (change.change_type, change.person_id, change.previous_person_id) == (
        "PERSON_SPLIT",
        max(a, b),
        survivor,
    )
    state = resolver.state
    assert state.root(a) == a
    assert state.root(b) == b
    assert resolver.identity(B) in state.profiles[b]
    assert resolver.identity(B) not in state.profiles[a]
    # B's source finds B's person again, and a record matching both merges nothing
    assert resolver.resolve("ccc", B).person_id == b
    resolver.resolve("csu", BRIDGE)
    assert state.root(a) != state.root(b)
    assert decisions.apply(separate).what == "unchanged"


def test_unknown_mismatched_and_stale_decisions_are_refused_with_their_reason() -> None:
    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    with pytest.raises(DecisionError) as unknown:
        decisions.apply(_decision("LINK", str(uuid.uuid4()), b, a))
    assert unknown.value.code == "decision.unknown_review"
    with pytest.raises(DecisionError) as mismatch:
        decisions.apply(_decision("LINK", review_id, a, b))
    assert mismatch.value.code == "decision.mismatch"
    with pytest.raises(DecisionError) as invalid:
        decisions.apply(_decision("MAYBE", review_id, b, a))
    assert invalid.value.code == "decision.invalid"
    # B's person merged into a third person since: the link is stale
    third = resolver.resolve("uc", _person(first_name="Ana", last_name="Ruiz", ssid="5555555555"))
    assert third.person_id is not None
    resolver._merge(b, third.person_id)
    with pytest.raises(DecisionError) as stale:
        decisions.apply(_decision("LINK", review_id, b, a))
    assert stale.value.code == "decision.stale"
    assert b in str(stale.value)


def test_what_is_kept_restores_the_decisions_and_separations() -> None:
    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    separate = _decision("SEPARATE", review_id, b, a)
    decisions.apply(separate)
    kept = decisions.drain()
    assert set(kept) == {f"review:{review_id}", f"decision:{separate['decision_id']}"} | {
        f"apart:{min(a, b)}:{max(a, b)}"
    }
    assert decisions.drain() == {}
    # a worker started again: the same state, the table's values
    restarted = _resolver()
    restarted.state = resolver.state.__class__.restore(
        [(pid, resolver.state.snapshot(pid)) for pid in (a, b)], resolver.state.sources.items()
    )
    again = OperatorDecisions(restarted)
    again.restore((key, value) for key, value in kept.items() if value is not None)
    assert again.apply(separate).what == "unchanged"
    restarted.resolve("csu", BRIDGE)
    assert restarted.state.root(a) != restarted.state.root(b)
    # a link lifts the separation (its key deleted)
    linked = again.apply(_decision("LINK", review_id, b, a))
    assert linked.what == "linked"
    assert again.drain()[f"apart:{min(a, b)}:{max(a, b)}"] is None


_CODECS = OfflineCodecs(300)
_ENCODERS = _CODECS.encoders
_decoder = _CODECS.decoder


def _raw(person: dict[str, Any], offset: int) -> Incoming:
    event = example_raw("enrollment", offset)
    event["event_id"] = str(uuid.uuid4())
    event["person"] = {**event["person"], **person}
    value = _ENCODERS["c2c.raw.enrollment"].encode(event)
    return Incoming("c2c.raw.enrollment", 0, offset, None, value)


def test_the_stage_holds_a_possible_match_and_applies_a_decision_on_it() -> None:
    decoders = {name: _decoder(name) for name in INPUT_TOPICS}
    stage = IdentityStage(_resolver(), decoders, _ENCODERS)
    stage.process(_raw(A, 1))
    done = stage.process(_raw(B, 2))
    assert done.outcome == "linked"
    [review] = [o for o in done.outgoing if o.topic == REVIEW_TOPIC]
    held = _decoder(REVIEW_TOPIC).decode(review.value)
    assert held["candidate_person_id"] != held["person_id"]
    assert held["comparison"]["birth_date"] == "swapped"
    assert "Garcia" not in held["reason"]
    assert "Maria" not in held["reason"]
    assert stage.counts["possible_match"] == 1

    def decide(action: str, review_id: str) -> Any:
        record = _decision(action, review_id, held["person_id"], held["candidate_person_id"])
        value = _ENCODERS[OPERATOR_DECISIONS_TOPIC].encode(record)
        return stage.process(Incoming(OPERATOR_DECISIONS_TOPIC, 0, 0, None, value))

    linked = decide("LINK", str(held["review_id"]))
    assert linked.outcome == "decision"
    [change] = [_decoder(CHANGES_TOPIC).decode(o.value) for o in linked.outgoing]
    assert change["change_type"] == "PERSONS_MERGED"
    assert change["rule"] == "OPERATOR"
    assert linked.persons == {held["person_id"], held["candidate_person_id"]}
    refused = decide("LINK", str(uuid.uuid4()))
    assert refused.outcome == "dead_letter"
    [letter] = [_decoder(DEAD_LETTER_TOPIC).decode(o.value) for o in refused.outgoing]
    assert letter["error_code"] == "decision.unknown_review"
    assert stage.counts["decision.linked"] == 1
    assert stage.counts["decision"] == 1


def test_the_sink_counts_a_split_person_under_itself_again() -> None:
    at = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)
    people = PersonMap()
    assert people.merge("P2", "P1", at) == [["P2", "P1", at]]
    assert people.split("P2", at) == [["P2", "P2", at]]
    assert people.current("P2") == "P2"
    assert people.split("P2", at) == []  # not merged: nothing to write
    # read back from person_map at a restart, the split row leaves it on its own
    again = PersonMap([("P2", "P2"), ("P3", "P1")])
    assert again.current("P2") == "P2"
    assert again.current("P3") == "P1"
    assert again.merge("P2", "P1", at) == [["P2", "P1", at]]


def test_a_kept_review_is_rekeyed_as_if_hashed_under_every_key() -> None:
    old = Resolver(IdentifierHasher(b"first-key"), review_floor=FLOOR)
    decisions = OperatorDecisions(old)
    review_id, _b, _a = _possible_match(old, decisions)
    kept = decisions.drain()[f"review:{review_id}"]
    assert kept is not None
    chain = IdentifierHasher(b"first-key", b"second-key")
    moved = rekeyed_value(kept, lambda digest: chain.rekey(digest, 1))
    assert moved["identity"] == Resolver(chain).identity(B).to_json()
    assert moved["source"] == ["ccc", chain.source_id("ccc", "B1")]
    assert rekeyed_value({"review": True}, lambda d: d) == {"review": True}


def test_a_split_leaves_ids_merged_into_the_record_person_with_the_survivor() -> None:
    resolver = _resolver()
    decisions = OperatorDecisions(resolver)
    review_id, b, a = _possible_match(resolver, decisions)
    other = resolver.resolve("uc", _person(first_name="Ana", last_name="Ruiz", ssid="5555555555"))
    assert other.person_id is not None
    resolver._merge(other.person_id, b)  # merged into the record's person before the link
    decisions.apply(_decision("LINK", review_id, b, a))
    applied = decisions.apply(_decision("SEPARATE", review_id, b, a))
    assert applied.what == "split"
    state = resolver.state
    assert state.root(b) == b
    assert state.root(other.person_id) == a  # as the sink's person_map keeps it
    assert other.person_id in state.members(a)
    assert other.person_id not in state.members(b)

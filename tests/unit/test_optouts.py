"""Opt-out decisions in the identity zone, without Kafka: requests, merges, revocations,
and their survival through the state's snapshots."""

from __future__ import annotations

import datetime
import json
from typing import Any

from c2c.examples import example_raw
from c2c.topics import OPTOUT_DECISIONS_TOPIC
from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
from streams.optouts import OptOuts, decision_record
from streams.resolution import OPTOUT_TOPIC, Incoming
from tests.unit.test_identity import MARIA, _person
from tests.unit.test_identity_fuzz import DECODERS, ENCODERS, _stage

SECRET = b"test-secret"
WAGES = _person(source_person_id="555443333", ssn="555443333", first_name="M", last_name="GARCIA")
BRIDGE = {**MARIA, "source_person_id": "C9", "ssn": "555443333"}
AT = datetime.datetime(2025, 5, 1, 12, 0, tzinfo=datetime.UTC)


def _request(request_id: str, person: dict[str, Any], event_id: str = "e-req") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": AT,
        "request_id": request_id,
        "action": "REQUESTED",
        "requested_by": "INDIVIDUAL",
        "person": person,
    }


def _revocation(request_id: str, event_id: str = "e-rev") -> dict[str, Any]:
    later = AT + datetime.timedelta(days=30)
    return {"event_id": event_id, "event_time": later, "request_id": request_id}


def test_a_request_opts_its_person_out_and_names_every_id() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    maria = resolver.resolve("k12", MARIA).person_id
    other = resolver.resolve("edd", WAGES).person_id
    assert maria
    assert other
    assert maria != other
    optouts = OptOuts(resolver.state)
    resolved = resolver.resolve("other", {**MARIA, "source_person_id": "OPT-1"})
    assert resolved.person_id == maria
    decision = optouts.request(maria, _request("OPT-1", MARIA))
    assert decision.opted_out
    assert decision.cause == "REQUESTED"
    assert decision.person_ids == (maria,)
    assert optouts.opted_out(maria)
    assert not optouts.opted_out(other)
    record = decision_record(decision, AT)
    assert record["request_id"] == "OPT-1"
    assert record["person_ids"] == [maria]
    assert record["requested_at"] == AT
    # nothing identifying leaves in the decision
    text = json.dumps(record, default=str)
    for value in ("García", "Garcia", "1234567890", "2007-03-04", "90011"):
        assert value not in text


def test_a_merge_with_an_opted_out_person_opts_the_merged_person_out() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    maria = resolver.resolve("k12", MARIA).person_id
    wages = resolver.resolve("edd", WAGES).person_id
    assert maria
    assert wages
    optouts = OptOuts(resolver.state)
    # the wage-only person opts out; then a record bridges them with Maria's K-12 person
    optouts.request(wages, _request("OPT-W", WAGES))
    assert not optouts.opted_out(maria)
    bridge = resolver.resolve("ccc", BRIDGE)
    assert bridge.person_id == maria  # lowest id survives
    assert optouts.opted_out(maria)
    assert optouts.opted_out(wages)
    spread = optouts.after_merge(maria, {"event_id": "e-bridge", "event_time": AT})
    assert spread is not None
    assert spread.cause == "MERGED"
    assert spread.opted_out
    assert spread.request.request_id == "OPT-W"
    assert spread.person_ids == (maria, wages)
    # a merge of two persons neither of whom opted out decides nothing
    fresh = Resolver(IdentifierHasher(SECRET))
    fresh.resolve("k12", MARIA)
    fresh.resolve("edd", WAGES)
    survivor = fresh.resolve("ccc", BRIDGE).person_id
    assert survivor is not None
    assert OptOuts(fresh.state).after_merge(survivor, {"event_id": "x"}) is None


def test_a_revocation_readmits_only_when_no_request_is_left() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    maria = resolver.resolve("k12", MARIA).person_id
    assert maria
    optouts = OptOuts(resolver.state)
    optouts.request(maria, _request("OPT-1", MARIA))
    optouts.request(maria, _request("OPT-2", MARIA, event_id="e-req2"))
    first = optouts.revoke(_revocation("OPT-1"))
    assert first is not None
    assert first.cause == "REVOKED"
    assert first.opted_out  # OPT-2 still stands
    assert optouts.opted_out(maria)
    second = optouts.revoke(_revocation("OPT-2", event_id="e-rev2"))
    assert second is not None
    assert not second.opted_out
    assert not optouts.opted_out(maria)
    assert optouts.revoke(_revocation("OPT-2", event_id="e-rev3")) is None  # already revoked
    assert optouts.revoke(_revocation("NEVER")) is None


def test_an_opt_out_before_the_person_appears_applies_when_they_do() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    optouts = OptOuts(resolver.state)
    early = resolver.resolve("other", {**MARIA, "source_person_id": "OPT-1"})
    assert early.person_id is not None
    optouts.request(early.person_id, _request("OPT-1", MARIA))
    later = resolver.resolve("k12", MARIA)
    assert later.person_id == early.person_id
    assert optouts.opted_out(later.person_id)


def test_decision_ids_repeat_for_the_same_event() -> None:
    def run() -> list[str]:
        resolver = Resolver(IdentifierHasher(SECRET))
        person = resolver.resolve("k12", MARIA).person_id
        assert person
        optouts = OptOuts(resolver.state)
        made = optouts.request(person, _request("OPT-1", MARIA))
        revoked = optouts.revoke(_revocation("OPT-1"))
        assert revoked is not None
        return [made.decision_id, revoked.decision_id]

    first, again = run(), run()
    assert first == again
    assert first[0] != first[1]


def test_opt_outs_survive_snapshots_and_restore() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    maria = resolver.resolve("k12", MARIA).person_id
    wages = resolver.resolve("edd", WAGES).person_id
    assert maria
    assert wages
    OptOuts(resolver.state).request(wages, _request("OPT-W", WAGES))
    resolver.resolve("ccc", BRIDGE)
    state = resolver.state
    persons = [(pid, json.loads(json.dumps(state.snapshot(pid)))) for pid in (maria, wages)]
    restored = IdentityState.restore(persons, state.sources.items())
    optouts = OptOuts(restored)
    assert optouts.opted_out(maria)
    assert optouts.opted_out(wages)
    assert restored.members(maria) == (maria, wages)
    assert restored.optout_requests == {"OPT-W": maria}
    revoked = optouts.revoke(_revocation("OPT-W"))
    assert revoked is not None
    assert not revoked.opted_out
    assert revoked.person_ids == (maria, wages)
    # a person without opt-outs keeps the snapshot it had before opt-outs existed
    assert set(Resolver(IdentifierHasher(SECRET)).state.snapshot("P1")) == {"profile", "trusted"}


# A wage record whose name agrees with nobody's: filed under its SSN, a person of its own.
STRANGER_WAGES = _person(
    source_person_id="555443333", ssn="555443333", first_name="R", last_name="CRX"
)


def test_an_opt_out_covers_whoever_holds_the_persons_ssn() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    optouts = OptOuts(resolver.state)
    maria = resolver.resolve("k12", MARIA).person_id
    wages = resolver.resolve("edd", STRANGER_WAGES).person_id
    assert maria
    assert wages
    assert maria != wages
    assert optouts.cover(wages, {"event_id": "e-w"}) == []  # nobody is out yet
    # the request carries the SSN too, and resolves to Maria alone (the wage name disagrees)
    request = {**MARIA, "source_person_id": "OPT-1", "ssn": "555443333"}
    resolved = resolver.resolve("other", request)
    assert resolved.person_id == maria
    decision = optouts.request(maria, _request("OPT-1", request))
    assert decision.person_ids == (maria,)
    assert not optouts.opted_out(wages)
    assert optouts.withheld(wages)
    covered = optouts.cover(maria, _request("OPT-1", request))
    # keyed by Maria (ordered with her request and revocation), removing the wage person's
    assert [(d.cause, d.person_id, d.person_ids, d.opted_out) for d in covered] == [
        ("SHARED_ID", maria, (wages,), True)
    ]
    assert covered[0].request.request_id == "OPT-1"
    assert decision_record(covered[0], AT)["cause"] == "SHARED_ID"
    # the next wage record is withheld; its person was announced once, not once a record
    again = resolver.resolve("edd", STRANGER_WAGES).person_id
    assert again == wages
    assert optouts.withheld(again)
    assert optouts.cover(again, {"event_id": "e-w2"}) == []
    # a revocation lifts the cover with the request
    assert optouts.revoke(_revocation("OPT-1")) is not None
    assert not optouts.withheld(wages)
    assert not optouts.withheld(maria)


def test_a_person_who_takes_an_opted_out_ssn_later_is_covered_when_they_do() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    optouts = OptOuts(resolver.state)
    request = {**MARIA, "source_person_id": "OPT-1", "ssn": "555443333"}
    maria = resolver.resolve("other", request).person_id
    assert maria
    optouts.request(maria, _request("OPT-1", request))
    # a wage-only person with that SSN arrives after the request: covered on arrival
    wages = resolver.resolve("edd", STRANGER_WAGES).person_id
    assert wages
    assert wages != maria
    assert optouts.withheld(wages)
    covered = optouts.cover(wages, {"event_id": "e-w"})
    assert [(d.cause, d.person_id, d.person_ids) for d in covered] == [
        ("SHARED_ID", maria, (wages,))
    ]
    # nobody else's SSN: not covered
    other = resolver.resolve(
        "edd", _person(source_person_id="111223333", ssn="111223333", first_name="A", last_name="B")
    ).person_id
    assert other
    assert not optouts.withheld(other)
    assert optouts.cover(other, {"event_id": "e-o"}) == []


def test_the_identity_stage_withholds_a_covered_persons_records_and_removes_theirs() -> None:

    stage = _stage()
    wage = example_raw("wage", 1)
    wage["person"] = {**wage["person"], "ssn": "555443333", "source_person_id": "555443333"}
    wage["person"].update(first_name="R", last_name="CRX")

    def fed(topic: str, event: dict[str, Any], offset: int) -> Any:
        value = ENCODERS[topic].encode(event)
        return stage.process(Incoming(topic, 0, offset, None, value))

    assert fed("c2c.raw.wage", wage, 0).outcome == "linked"
    request = {
        "event_id": "00000000-0000-0000-0000-0000000000a1",
        "event_time": AT,
        "provider": "other",
        "source_record_id": "OPT-1",
        "request_id": "R1",
        "action": "REQUESTED",
        "requested_by": "INDIVIDUAL",
        "person": {**MARIA, "ssn": "555443333", "source_person_id": "OPT-1"},
    }
    done = fed(OPTOUT_TOPIC, request, 1)
    assert done.outcome == "optout"
    decisions = [
        DECODERS[OPTOUT_DECISIONS_TOPIC].decode(out.value)
        for out in done.outgoing
        if out.topic == OPTOUT_DECISIONS_TOPIC
    ]
    assert [d["cause"] for d in decisions] == ["REQUESTED", "SHARED_ID"]
    # the covering decision names the wage person's ids, keyed by the requester
    assert decisions[1]["person_id"] == decisions[0]["person_id"]
    assert decisions[1]["person_ids"] != decisions[0]["person_ids"]
    again = fed("c2c.raw.wage", {**wage, "event_id": "00000000-0000-0000-0000-0000000000b2"}, 2)
    assert again.outcome == "withheld"
    assert not [out for out in again.outgoing if out.topic.startswith("c2c.linked.")]

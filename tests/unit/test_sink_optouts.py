"""The sink's opt-out rules and the operator's opt-out events, without services."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from c2c.validation import validate
from producers.mapping import MODELS
from producers.optouts import OptOutInputError, request_event, revocation_event
from sinks.optouts import (
    PERSON_TABLES,
    OptOutFilter,
    audit_row,
    count_statement,
    delete_statement,
    removal_times,
    removed_per_decision,
    request_key,
    request_ref,
    superseded,
)

AT = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def _decision(opted_out: bool, at: datetime.datetime = AT) -> dict[str, object]:
    return {
        "decision_id": "d1",
        "request_id": "R1",
        "cause": "REQUESTED" if opted_out else "REVOKED",
        "requested_by": "OPERATOR",
        "requested_at": at,
        "decided_at": at,
        "person_id": "P1",
        "person_ids": ["P1", "P7"],
        "opted_out": opted_out,
    }


def _ms(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_rows_published_up_to_the_opt_out_are_never_written_later_ones_are() -> None:
    rules = OptOutFilter()
    assert rules.admits("P7", _ms(AT))
    written = rules.apply(_decision(True))
    assert written == [["P1", AT], ["P7", AT]]
    before = _ms(AT - datetime.timedelta(seconds=5))
    assert not rules.admits("P7", before)
    assert not rules.admits("P1", _ms(AT))  # the same millisecond: published before it
    # the resolver publishes nothing of theirs after the decision but after a revocation
    assert rules.admits("P1", _ms(AT) + 1)
    assert rules.admits("P2", before)  # somebody else
    # what the sink asks of each row first: when (if ever) its person opted out
    assert (rules.opted_out_at("P1"), rules.opted_out_at("P2")) == (_ms(AT), None)
    # a revocation changes nothing here: what was removed stays removed
    assert rules.apply(_decision(False, AT + datetime.timedelta(days=1))) == []
    assert not rules.admits("P1", before)


def test_the_filter_is_rebuilt_from_what_was_written() -> None:
    later = AT + datetime.timedelta(days=2)
    rules = OptOutFilter([("P1", AT), ("P1", later)])
    assert not rules.admits("P1", _ms(later))  # the latest opt-out counts
    assert rules.opted_out_at("P1") == _ms(later)
    assert len(rules) == 1


def test_statements_and_audit_rows() -> None:
    assert count_statement(("fact_wage", "dim_person")) == (
        "SELECT 'fact_wage', person_id, uniqExact(event_id) FROM fact_wage "
        "WHERE person_id IN %(ids)s AND toUnixTimestamp64Milli(published_at) "
        "<= transform(person_id, %(ids)s, %(upto)s, 0) GROUP BY person_id UNION ALL "
        "SELECT 'dim_person', person_id, uniqExact(person_id) FROM dim_person "
        "WHERE person_id IN %(ids)s GROUP BY person_id"
    )
    assert count_statement().count("UNION ALL") == len(PERSON_TABLES) - 1
    assert delete_statement("dim_person") == (
        "DELETE FROM dim_person WHERE person_id IN %(ids)s "
        "SETTINGS lightweight_delete_mode = 'lightweight_update'"
    )
    key = request_key(b"secret")
    row = audit_row(_decision(True), {"fact_wage": 3}, AT, key=key)
    keyed = request_ref(key, "R1")
    assert row == ["d1", keyed, "REQUESTED", "OPERATOR", AT, AT, AT, True, 2, {"fact_wage": 3}]
    # the audit holds the request id keyed: not it, nor its unkeyed hash, nor under another key
    assert keyed not in ("R1", hashlib.sha256(b"R1").hexdigest()[:32])
    assert keyed != request_ref(request_key(b"another secret"), "R1")


def test_a_fact_tables_delete_takes_each_persons_rows_published_up_to_its_decision() -> None:
    """A row published after the decision follows a revocation (the resolver publishes
    nothing of an opted-out person): the delete keeps it, even when it was written before
    the sink read the decision (its decisions partition lagging)."""
    from clickhouse_connect.driver.binding import finalize_query

    later = AT + datetime.timedelta(hours=1)
    decisions = [
        _decision(True),  # P1 and P7
        {**_decision(True, later), "decision_id": "d2", "person_ids": ["P7", "P9"]},
        {**_decision(True, later), "decision_id": "d3", "person_ids": ["P4"]},  # superseded
        {**_decision(False, later), "decision_id": "d4", "person_ids": ["P5"]},  # a revocation
    ]
    upto = removal_times(decisions, [False, False, True, False])
    assert upto == {"P1": _ms(AT), "P7": _ms(later), "P9": _ms(later)}  # each its latest

    ids = sorted(upto)
    bound = finalize_query(
        delete_statement("fact_enrollment"), {"ids": ids, "upto": [upto[p] for p in ids]}
    )
    assert bound == (
        "DELETE FROM fact_enrollment WHERE person_id IN ['P1', 'P7', 'P9'] "
        "AND toUnixTimestamp64Milli(published_at) <= transform(person_id, "
        f"['P1', 'P7', 'P9'], [{_ms(AT)}, {_ms(later)}, {_ms(later)}], 0) "
        "SETTINGS lightweight_delete_mode = 'lightweight_update'"
    )
    for table in PERSON_TABLES:  # the fact tables by publication time, the others by person
        assert ("published_at" in delete_statement(table)) == table.startswith("fact_")


def test_an_operator_request_is_a_valid_opt_out_event() -> None:
    event = request_event(
        {"ssn": "123456789", "first_name": "Ana", "last_name": "Ruiz", "nickname": "x"},
        at=AT,
    )
    assert event["action"] == "REQUESTED"
    assert event["person"]["source_person_id"] == event["request_id"]
    assert "nickname" not in event["person"]
    event_id = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    validate(MODELS["optout"], {**event, "event_id": event_id}, where="operator request")
    revoked = revocation_event(event["request_id"], at=AT)
    assert revoked["request_id"] == event["request_id"]
    assert revoked["action"] == "REVOKED"


@pytest.mark.parametrize(
    "person",
    [
        {"ssn": "123456789"},  # an identifier alone: SSNs are sometimes shared
        {"first_name": "Ana", "last_name": "Ruiz"},  # a name alone
        {},
    ],
)
def test_an_operator_request_must_identify_the_person(person: dict[str, str]) -> None:
    with pytest.raises(OptOutInputError, match="needs a first and last name"):
        request_event(person)
    with pytest.raises(OptOutInputError, match="names the request id"):
        revocation_event(" ")


def test_rows_removed_are_told_per_decision_from_one_count_of_the_batch() -> None:
    first = _decision(True)  # P1 and P7
    spread = {**_decision(True), "decision_id": "d2", "person_ids": ["P1", "P9"]}
    revoked = {**_decision(False), "decision_id": "d3"}
    found = [("fact_wage", "P1", 3), ("dim_person", "P1", 1), ("fact_wage", "P9", 2)]
    [one, two, three] = removed_per_decision([first, spread, revoked], found)
    assert (one["fact_wage"], one["dim_person"], one["person_map"]) == (3, 1, 0)
    assert set(one) == set(PERSON_TABLES)
    # P1's rows were counted for the first decision: the second removes only P9's
    assert (two["fact_wage"], two["dim_person"]) == (2, 0)
    assert three == {}


def test_an_opt_out_read_again_after_its_revocation_removes_nothing() -> None:
    """A sink started again after a crash reads again an opt-out whose revocation it had
    applied: removing now would delete what the person published after the revocation."""
    later = AT + datetime.timedelta(seconds=5)
    out, revoke = _decision(True), _decision(False, at=later)
    again = {**out, "request_id": "R2"}  # another request: nothing revoked it
    assert superseded([out, revoke, again], {"R1": later}) == [True, False, False]
    # a revocation applied before the opt-out does not touch it (a request made anew)
    assert superseded([out], {"R1": AT - datetime.timedelta(seconds=1)}) == [False]
    assert superseded([out], {}) == [False]

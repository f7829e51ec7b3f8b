"""What leaves the identity zone carries no PII and fits the linked schemas."""

from __future__ import annotations

import datetime
import uuid

import c2c.events as events
from c2c.examples import RAW_KINDS, example_raw
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.topics import get_topic
from c2c.validation import validate
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.linking import LINKED_TOPICS, change_id, identity_change_records, linked_event

LINKED_MODELS = {
    "c2c.linked.enrollment": events.LinkedEnrollment,
    "c2c.linked.completion": events.LinkedCompletion,
    "c2c.linked.financial_aid": events.LinkedFinancialAid,
    "c2c.linked.wage": events.LinkedWage,
    "c2c.linked.credential": events.LinkedCredential,
}


def test_linked_events_validate_encode_and_hold_no_identifying_values() -> None:
    library = SchemaLibrary()
    for kind in RAW_KINDS:
        raw = example_raw(kind, 7)
        topic, linked = linked_event(f"c2c.raw.{kind}", raw, "P0000000042")
        assert topic == LINKED_TOPICS[f"c2c.raw.{kind}"]
        validate(LINKED_MODELS[topic], linked, where=kind)
        AvroEncoder(library.resolve(get_topic(topic).schema), 1).encode(linked)
        text = repr(linked)
        person = raw["person"]
        for value in (
            person["ssn"],
            person["ssid"],
            person["first_name"],
            person["last_name"],
            person["zip"],
            person["source_person_id"],
            raw["source_record_id"],
        ):
            assert value not in text, (kind, value)
        assert linked["attributes"]["birth_year"] == person["birth_date"].year
        assert repr(person["birth_date"]) not in text


def test_identity_changes_fit_the_schema_and_are_stable_for_a_replayed_event() -> None:
    resolver = Resolver(IdentifierHasher(b"k"))
    raw = example_raw("enrollment", 3)
    resolution = resolver.resolve(raw["provider"], raw["person"])
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    first = identity_change_records(
        resolution.changes, provider=raw["provider"], source_event_id=raw["event_id"], at=at
    )
    again = identity_change_records(
        resolution.changes, provider=raw["provider"], source_event_id=raw["event_id"], at=at
    )
    assert first == again
    assert [r["change_type"] for r in first] == ["PERSON_CREATED"]
    schema = SchemaLibrary().resolve("org.c2cstream.linked.IdentityChange")
    for record in first:
        validate(events.IdentityChange, record, where="change")
        AvroEncoder(schema, 1).encode(record)


def test_review_records_fit_the_schema_and_name_no_values() -> None:
    from streams.linking import review_record

    resolver = Resolver(IdentifierHasher(b"k"))
    raw = example_raw("enrollment", 4)
    raw["person"] = {"source_person_id": "", "first_name": "Ana", "last_name": "Lee"}
    resolution = resolver.resolve(raw["provider"], raw["person"])
    assert resolution.person_id is None
    record = review_record(
        reason=str(resolution.review_reason),
        provider=raw["provider"],
        event_id=raw["event_id"],
        source_topic="c2c.raw.enrollment",
        source_partition=2,
        source_offset=41,
        raw_value=b"\x00\x00\x00\x00\x05",
    )
    validate(events.NeedsReview, record, where="review")
    AvroEncoder(SchemaLibrary().resolve("org.c2cstream.identity.NeedsReview"), 1).encode(record)
    assert "Ana" not in record["reason"]
    assert "Lee" not in record["reason"]
    again = review_record(
        reason=record["reason"],
        provider=raw["provider"],
        event_id=raw["event_id"],
        source_topic="c2c.raw.enrollment",
        source_partition=2,
        source_offset=41,
        raw_value=b"",
    )
    assert again["review_id"] == record["review_id"]


def test_change_ids_are_the_uuid5_of_their_seed() -> None:
    for seed in ("", "e1|0|PERSON_CREATED|P000001", "é|9|PERSONS_MERGED|P1", "x" * 500):
        expected = uuid.uuid5(uuid.NAMESPACE_URL, f"c2c-identity-change:{seed}")
        assert change_id(seed) == str(expected)

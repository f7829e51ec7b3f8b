"""`c2c review list|show` against the real broker: a held record is listed without its
values, and shown with them only on request."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from c2c.examples import example_raw
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from streams.linking import review_record
from tests.conftest import c2c_json

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

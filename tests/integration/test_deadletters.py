"""`c2c deadletters` against the real stack: dead letters made by the real stages (the
producer's rejected row, the identity worker's message it could not read) are listed,
shown, replayed after the fix, discarded, and every decision is on the audit topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from c2c.kafka import end_offsets, read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import AUDIT_TOPIC, get_topic
from cli.worker_process import WorkerProcess
from observability.deadletters import REPLAY_HEADER
from producers.files import produce_file
from tests.conftest import c2c_json, free_port_pair, read_decoded

pytestmark = pytest.mark.integration

HEADER = "WageRecordID,SSN,FirstName,LastName,EmployerAccountNo,NAICS,YearQuarter,Wages\n"


def _audit(stack: Settings, registry: SchemaRegistry, subject: str) -> list[dict[str, Any]]:
    return [
        record
        for record, _headers in read_decoded(
            stack, registry, AUDIT_TOPIC, lambda r: r["subject"] == subject, 1
        )
    ]


def test_a_rejected_row_is_listed_shown_refused_for_replay_and_discarded_with_an_audit(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    extract = tmp_path / "edd.csv"
    extract.write_text(HEADER + "EDD-9,98765X321,B,KIM,0012345678,722511,2025Q1,200.00\n")
    assert produce_file(stack, "edd", extract).rejected == 1

    listed = c2c_json("deadletters", "list", "--stage", "producer:edd", "--since", since)
    mine = [row for row in listed if row["where"] == f"{extract}:2"]
    assert len(mine) == 1
    assert mine[0]["error_code"] == "row.invalid"
    assert mine[0]["state"] == "open"
    assert "98765X321" not in json.dumps(listed)  # list never shows values
    letter_id = mine[0]["dead_letter_id"]

    shown = c2c_json("deadletters", "show", letter_id)
    assert shown["replayable"] is False
    assert shown["source_line"] == 2
    assert "original_value" not in shown
    assert "98765X321" in c2c_json("deadletters", "show", letter_id, "--value")["original_value"]

    refused = c2c_json("deadletters", "replay", letter_id, expect=1)
    assert refused["error"]["code"] == "deadletter.not_replayable"

    operator = f"op-{uuid.uuid4().hex[:6]}"
    c2c_json("deadletters", "discard", letter_id, "--note", "test row", "--operator", operator)
    assert c2c_json("deadletters", "show", letter_id)["state"] == "discarded"
    again = c2c_json("deadletters", "discard", letter_id, "--note", "twice", expect=1)
    assert again["error"]["code"] == "deadletter.decided"
    (action,) = _audit(stack, registry, letter_id)
    assert action["action"] == "deadletter.discard"
    assert action["operator"] == operator
    assert action["note"] == "test row"
    assert action["target"] is None


def test_a_misrouted_message_the_worker_dead_lettered_is_replayed_to_its_topic_and_linked(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    # a real wage event, as the producer encodes it, taken back from its topic before any
    # worker of this test reads it; then published to the enrollment topic by mistake
    ssn = f"7{uuid.uuid4().int % 10**8:08d}"
    extract = tmp_path / "edd.csv"
    extract.write_text(HEADER + f"EDD-R1,{ssn},ANA,RUIZ,0012345678,722511,2025Q1,300.00\n")
    before = end_offsets(stack, ["c2c.raw.wage"])
    assert produce_file(stack, "edd", extract).published == 1
    (message,) = [
        m for m in read_to_end(stack, ["c2c.raw.wage"], since=before) if m.value() is not None
    ]
    key, value = message.key(), message.value()
    assert value is not None
    event_id = str(registry.decoder(get_topic("c2c.raw.wage")).decode(value)["event_id"])

    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    try:
        worker.start()
        dead_before = end_offsets(stack, ["c2c.deadletter"])
        producer = Producer(stack.kafka_config(acks="all"))
        producer.produce("c2c.raw.enrollment", key=key, value=value)
        assert producer.flush(30) == 0
        worker.drained(1)

        listed = c2c_json("deadletters", "list", "--topic", "c2c.raw.enrollment", "--state", "open")
        ids = {
            str(r["dead_letter_id"])
            for r, _h in read_decoded(
                stack,
                registry,
                "c2c.deadletter",
                lambda r: r["stage"] == "identity" and r["original_value"] == value,
                1,
                start=dead_before,
            )
        }
        (letter_id,) = ids
        (row,) = [r for r in listed if r["dead_letter_id"] == letter_id]
        assert row["stage"] == "identity"
        assert row["error_code"].startswith("serde.")
        shown = c2c_json("deadletters", "show", letter_id)
        assert shown["replayable"] is True
        assert shown["source_topic"] == "c2c.raw.enrollment"

        linked_before = end_offsets(stack, ["c2c.linked.wage"])
        operator = f"op-{uuid.uuid4().hex[:6]}"
        (action,) = c2c_json(
            "deadletters",
            "replay",
            letter_id,
            "--to",
            "c2c.raw.wage",
            "--note",
            "sent to the enrollment topic by mistake",
            "--operator",
            operator,
        )
        assert action["target"].startswith("c2c.raw.wage[")
        worker.drained(2)

        # the same bytes reached the wage topic, with the dead letter named in a header
        partition, offset = action["target"].removeprefix("c2c.raw.wage[").split("]@")
        replayed = [
            m
            for m in read_to_end(stack, ["c2c.raw.wage"])
            if m.partition() == int(partition) and m.offset() == int(offset)
        ]
        assert [m.value() for m in replayed] == [value]
        assert dict(replayed[0].headers() or [])[REPLAY_HEADER] == letter_id.encode()
        # and the worker linked it
        linked = read_decoded(
            stack,
            registry,
            "c2c.linked.wage",
            lambda r: str(r["event_id"]) == event_id,
            1,
            start=linked_before,
        )
        assert len(linked) == 1

        (audited,) = _audit(stack, registry, letter_id)
        assert audited["action"] == "deadletter.replay"
        assert audited["operator"] == operator
        assert audited["target"] == action["target"]
        assert c2c_json("deadletters", "show", letter_id)["state"] == "replayed"
        assert letter_id not in {
            r["dead_letter_id"]
            for r in c2c_json(
                "deadletters", "list", "--topic", "c2c.raw.enrollment", "--state", "open"
            )
        }
    finally:
        worker.kill()


def test_a_stopped_group_is_moved_past_a_poison_message_which_is_kept_and_audited(
    stack: Settings, registry: SchemaRegistry
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic, group = "c2c.ops.heartbeat", f"c2c-test-stuck-{uuid.uuid4().hex[:8]}"
    poison = b"not a heartbeat " + uuid.uuid4().bytes
    producer = Producer(stack.kafka_config(acks="all"))
    partition = 0  # named: the topic may have several, and the key would choose one
    producer.produce(topic, key=b"poison", value=poison, partition=partition)
    assert producer.flush(30) == 0
    offset = end_offsets(stack, [topic])[(topic, partition)] - 1
    member = Consumer(stack.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    member.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    member.subscribe([topic])
    member.poll(5)  # a member now: the group is active
    place = ["--topic", topic, "--partition", str(partition), "--offset", str(offset)]
    try:
        active = c2c_json("deadletters", "skip", "--group", group, *place, "--note", "x", expect=1)
        assert active["error"]["code"] == "deadletter.group_active"
    finally:
        member.close()
    # an offset the group does not stand at (after the poison: before it may be -1 on a
    # fresh stack, where the poison is the first message)
    wrong = ["--topic", topic, "--partition", str(partition), "--offset", str(offset + 1)]
    elsewhere = c2c_json("deadletters", "skip", "--group", group, *wrong, "--note", "x", expect=1)
    assert elsewhere["error"]["code"] == "deadletter.not_stuck"

    operator = f"op-{uuid.uuid4().hex[:6]}"
    action = c2c_json(
        "deadletters", "skip", "--group", group, *place, "--note", "poison", "--operator", operator
    )
    assert action["action"] == "deadletter.skip"
    assert action["operator"] == operator
    reader = Consumer(stack.kafka_config(**{"group.id": group}))
    try:
        (committed,) = reader.committed([TopicPartition(topic, partition)], timeout=10)
    finally:
        reader.close()
    assert committed.offset == offset + 1
    shown = c2c_json("deadletters", "show", action["subject"], "--value")
    assert shown["error_code"] == "operator.skipped"
    assert shown["source_offset"] == offset
    assert shown["replayable"] is True
    assert shown["state"] == "open"  # kept for a replay once the consumer is fixed
    ((kept, _headers),) = read_decoded(
        stack,
        registry,
        "c2c.deadletter",
        lambda r: str(r["dead_letter_id"]) == action["subject"],
        1,
    )
    assert kept["original_value"] == poison
    (audited,) = _audit(stack, registry, action["subject"])
    assert audited["target"] == f"group {group} {topic}[{partition}] moved to {offset + 1}"

"""What a replay does not send again (streams.resolution.Processed.once), and how the
worker keeps it with a batch's state until the next batch (unconfirmed_chunks): plain code,
no Kafka."""

from __future__ import annotations

from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC
from streams.resolution import (
    INPUT_TOPICS,
    IdentityStage,
    Outgoing,
    unconfirmed_chunks,
    unconfirmed_messages,
)
from tests.unit.test_operator_decisions import _ENCODERS, BRIDGE, A, B, _decoder, _raw, _resolver


def test_a_merge_is_sent_once_and_its_replay_does_not_make_it_again() -> None:
    """A batch whose state was confirmed but whose results were not (a worker killed in
    between): replayed on that state, its bridging record links to the survivor without a
    merge, so the merge must come from what the batch kept."""
    stage = IdentityStage(_resolver(None), {t: _decoder(t) for t in INPUT_TOPICS}, _ENCODERS)
    first, second = stage.process(_raw(A, 1)), stage.process(_raw(B, 2))
    assert first.once == second.once == []  # a new person, a link: a replay makes them again
    bridge = _raw(BRIDGE, 3)
    merged = stage.process(bridge)
    changes = [_decoder(CHANGES_TOPIC).decode(o.value) for o in merged.once]
    assert [c["change_type"] for c in changes] == ["PERSONS_MERGED"]
    assert all(o in merged.outgoing for o in merged.once)

    replayed = stage.process(bridge)  # the same record, on the state that holds the merge
    assert replayed.once == []
    again = [
        _decoder(CHANGES_TOPIC).decode(o.value)
        for o in replayed.outgoing
        if o.topic == CHANGES_TOPIC
    ]
    assert "PERSONS_MERGED" not in [c["change_type"] for c in again]
    assert {c["person_id"] for c in again} == {changes[0]["person_id"]}

    # what the batch kept reads back as the same messages (headers are not kept)
    [chunk] = unconfirmed_chunks(merged.once)
    assert unconfirmed_messages(chunk) == [o._replace(headers=()) for o in merged.once]


def test_unconfirmed_messages_are_cut_into_chunks_in_order() -> None:
    messages = [
        Outgoing(CHANGES_TOPIC, f"P{n:010d}".encode(), bytes([n % 256]) * 300) for n in range(40)
    ] + [Outgoing(OPTOUT_DECISIONS_TOPIC, None, b"\x00\xff" * 10)]
    chunks = unconfirmed_chunks(messages, limit=2_000)
    assert len(chunks) > 5
    assert all(len(chunk) <= 2_000 + 500 for chunk in chunks)
    assert [m for chunk in chunks for m in unconfirmed_messages(chunk)] == messages
    assert unconfirmed_chunks([]) == []

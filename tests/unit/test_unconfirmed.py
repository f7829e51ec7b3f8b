"""What a replay does not send again (streams.resolution.Processed.once), and how the
worker keeps it with a batch's state until the next batch (unconfirmed_chunks): plain code,
no Kafka."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC
from cli.pipeline_run import republished
from producers.files import in_time_order, open_folder
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.linking import LINKED_TOPICS
from streams.resolution import (
    INPUT_TOPICS,
    IdentityStage,
    Incoming,
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


def _replayed_after_a_kill(
    messages: list[Any], batch: int, killed: int, resend: bool
) -> dict[str, Any]:
    """The worker's loop over ``messages`` in batches of ``batch``, offsets committed after
    every third batch, killed once batch ``killed``'s state was kept and before its results
    were sent; restarted on that state from the last commit (sending the batch's
    ``once`` messages again first, if ``resend``). What :func:`republished` finds of the
    linked events published more than once."""
    stage = IdentityStage(_resolver(None), {t: _decoder(t) for t in INPUT_TOPICS}, _ENCODERS)
    copies: dict[str, list[str]] = defaultdict(list)
    merges: list[tuple[str, str]] = []

    decoders = {t: _decoder(t) for t in (CHANGES_TOPIC, *LINKED_TOPICS.values())}

    def publish(outgoing: list[Outgoing]) -> None:
        for message in outgoing:
            if message.topic == CHANGES_TOPIC:
                change = decoders[CHANGES_TOPIC].decode(message.value)
                if change["change_type"] == "PERSONS_MERGED":
                    merges.append((change["previous_person_id"], change["person_id"]))
            elif message.topic in LINKED_TOPICS.values():
                linked = decoders[message.topic].decode(message.value)
                copies[str(linked["event_id"])].append(str(linked["person_id"]))

    batches = [messages[at : at + batch] for at in range(0, len(messages), batch)]
    for number, taken in enumerate(batches[: killed + 1]):
        processed = [stage.process(message) for message in taken]
        if number < killed:
            for done in processed:
                publish(done.outgoing)
    kept = [message for done in processed for message in done.once]
    if resend:
        publish(kept)
    for taken in batches[killed - killed % 3 :]:
        for message in taken:
            publish(stage.process(message).outgoing)
    return republished(copies, merges)


def test_events_replayed_after_a_kill_between_state_and_results_keep_their_survivor(
    tmp_path: Any,
) -> None:
    """The cause of replayed events under an unrelated person (issue #19), on synth's
    records: killed after a merging batch's state and before its results, the replay links
    the absorbed person's earlier events (published, not committed) to the survivor, and
    only the kept merges, sent again, join the two ids."""
    synthesize(SynthConfig(people=120, seed=4), NoiseConfig(), tmp_path)
    messages = [
        Incoming(outcome.topic, 0, at, None, _ENCODERS[outcome.topic].encode(outcome.event))
        for at, (_item, _row, outcome) in enumerate(in_time_order(open_folder(tmp_path)))
        if isinstance(outcome, MappedRow)
    ]
    # the batches that merge (the kill points where a merge can be lost)
    stage = IdentityStage(_resolver(None), {t: _decoder(t) for t in INPUT_TOPICS}, _ENCODERS)
    merging = [
        number
        for number, at in enumerate(range(0, len(messages), 40))
        if any(stage.process(message).once for message in messages[at : at + 40])
    ]
    lost = []
    for killed in merging[1:6]:
        before = _replayed_after_a_kill(messages, 40, killed, resend=False)
        after = _replayed_after_a_kill(messages, 40, killed, resend=True)
        assert after["other_survivor"] == 0, (killed, after)
        assert after["twice"] == before["twice"]
        if before["other_survivor"]:
            lost.append(killed)
    assert lost  # the kill points where the merge was lost before

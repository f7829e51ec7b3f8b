"""The identity stage through the resolver on N shards (``IdentityStage.process_sharded``):
every message gives what the stage gives over one resolver, records, opt-out requests and
revocations, reviews of possible matches and operators' decisions on them alike. Plain
code, no Kafka: the shards are in this process (streams/identity/sharding.py)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

import c2c.deadletter
import streams.linking
import streams.resolution
from c2c.topics import OPERATOR_DECISIONS_TOPIC, REVIEW_TOPIC
from producers.files import in_time_order, open_folder
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sharding import ShardedResolver
from streams.resolution import INPUT_TOPICS, IdentityStage, Incoming, Processed
from tests.unit.test_operator_decisions import _ENCODERS, FLOOR, _decision, _decoder, _resolver

_AT = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)


class _Fixed(datetime.datetime):
    """``datetime`` whose ``now`` is one instant: the stage stamps what it publishes."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> _Fixed:  # type: ignore[override]
        return cls.fromtimestamp(_AT.timestamp(), tz)


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_time(monkeypatch)


def fix_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stamp the stage and what it calls put on a message: one instant."""
    monkeypatch.setattr(streams.resolution, "_now_millis", lambda: int(_AT.timestamp() * 1000))
    monkeypatch.setattr(streams.resolution, "datetime", _Fixed)
    monkeypatch.setattr(streams.linking, "datetime", _Fixed)
    monkeypatch.setattr(c2c.deadletter, "datetime", _Fixed)


def stage_over(resolver: Resolver | None = None) -> IdentityStage:
    """A stage over ``resolver`` (default: the decisions tests', with a review floor)."""
    chosen = _resolver() if resolver is None else resolver
    return IdentityStage(chosen, {t: _decoder(t) for t in INPUT_TOPICS}, _ENCODERS)


def _sharded(shards: int, epoch: int) -> ShardedResolver:
    return ShardedResolver(IdentifierHasher(b"decisions"), shards, review_floor=FLOOR, epoch=epoch)


def synth_messages(folder: Path) -> list[Incoming]:
    """Synth's events (records, opt-out requests and revocations) as raw messages."""
    synthesize(SynthConfig(people=150, seed=1, optout_rate=0.3), NoiseConfig(), folder)
    return [
        Incoming(outcome.topic, 0, at, None, _ENCODERS[outcome.topic].encode(outcome.event))
        for at, (_item, _row, outcome) in enumerate(in_time_order(open_folder(folder)))
        if isinstance(outcome, MappedRow)
    ]


def with_decisions(
    messages: list[Incoming], lag: int, stage: IdentityStage | None = None
) -> list[Incoming]:
    """``messages`` with an operator's decision on each possible match one resolver's stage
    held for review, ``lag`` messages after it: LINK and SEPARATE in turn. (A decision
    whose review the run with the decisions does not hold is a dead letter, alike.)"""
    stage = stage_over() if stage is None else stage
    reviews = _decoder(REVIEW_TOPIC)
    due: dict[int, list[dict[str, Any]]] = {}
    for at, message in enumerate(messages):
        for outgoing in stage.process(message).outgoing:
            if outgoing.topic != REVIEW_TOPIC:
                continue
            review = reviews.decode(outgoing.value)
            if review.get("candidate_person_id") is None:
                continue
            action = "LINK" if sum(map(len, due.values())) % 2 == 0 else "SEPARATE"
            decision = _decision(
                action,
                str(review["review_id"]),
                str(review["person_id"]),
                str(review["candidate_person_id"]),
            )
            due.setdefault(at + lag, []).append(decision)
    encode = _ENCODERS[OPERATOR_DECISIONS_TOPIC].encode
    out: list[Incoming] = []
    decided = 0  # the decisions topic's offsets
    for at, message in enumerate(messages):
        out.append(message)
        for decision in due.get(at, []):
            out.append(Incoming(OPERATOR_DECISIONS_TOPIC, 0, decided, None, encode(decision)))
            decided += 1
    return out


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> list[Incoming]:
    return with_decisions(synth_messages(tmp_path_factory.mktemp("stage")), lag=25)


def seen(processed: Processed) -> tuple[Any, ...]:
    """What a message produced, to compare: outcome, messages (bytes), persons, sources."""
    return (
        processed.outcome,
        [(m.topic, m.key, m.value) for m in processed.outgoing],
        sorted(processed.persons),
        processed.sources,
        [(m.topic, m.key, m.value) for m in processed.once],
    )


@pytest.mark.parametrize(("shards", "epoch"), [(1, 1), (2, 40), (3, 7), (2, 5000)])
def test_the_stage_through_the_shards_publishes_what_it_publishes_over_one_resolver(
    messages: list[Incoming], shards: int, epoch: int
) -> None:
    one = stage_over()
    expected = [one.process(message) for message in messages]
    stage = stage_over()
    got = stage.process_sharded(messages, _sharded(shards, epoch))
    assert len(got) == len(expected)
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert seen(mine) == seen(theirs), f"message {at}: {messages[at].topic}"
    assert stage.counts == one.counts
    # every kind of step ran: opt-outs requested, covered and revoked, reviews, decisions
    counts = one.counts
    for kind in (
        *("linked", "withheld", "optout", "decision", "dead_letter", "possible_match"),
        *("optout.requested", "optout.revoked", "optout.shared_id"),
        *("decision.linked", "decision.separated", "decision.split"),
    ):
        assert counts[kind] > 0, kind
    # the stage's own resolver is left as it was: the state is the shards'
    assert not stage.state.profiles


def test_a_message_the_stage_cannot_read_is_a_dead_letter_in_its_place(
    messages: list[Incoming],
) -> None:
    broken = Incoming(messages[0].topic, 0, 1, None, b"\x00not avro")
    batch = [messages[0], broken, messages[1]]
    got = stage_over().process_sharded(batch, _sharded(2, 2))
    assert [p.outcome for p in got][1] == "dead_letter"
    one = stage_over()
    expected = [one.process(m) for m in batch]
    assert [seen(p) for p in got] == [seen(p) for p in expected]

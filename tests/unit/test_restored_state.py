"""A worker killed after any batch restarts on the state a worker that never stopped holds
(issue #19: events grouped otherwise after a crash): the changelogs' snapshots and source
ids, read back by IdentityState.restore (or applied as a tail, as the on-disk store does),
compared field by field with the running IdentityState. Plain code, no Kafka."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from producers.files import in_time_order, open_folder
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.durable import apply_person, apply_source
from streams.identity.resolver import (
    _MAX_BLOCK_SCAN,
    _MAX_PROFILE,
    IdentityState,
    Resolver,
    blocking_keys,
)
from streams.identity.snapshots import SnapshotEncoder, decode_snapshot
from streams.resolution import INPUT_TOPICS, IdentityStage, Incoming
from tests.unit.test_operator_decisions import _ENCODERS, _decoder, _resolver


def _differences(running: IdentityState, restored: IdentityState) -> dict[str, Any]:
    """Where ``restored`` would resolve otherwise than ``running``: each field that
    differs, with an example. Blocks are compared as the resolver reads them (the persons
    each key's last candidates stand for, in any order); source ids and absorbed lists up
    to merges."""
    found: dict[str, Any] = {}
    for name in ("next_number", "profiles", "trusted", "merged_into", "optouts", "apart"):
        ours, theirs = getattr(running, name), getattr(restored, name)
        if ours != theirs:
            if isinstance(ours, dict):
                keys = sorted(k for k in {*ours, *theirs} if ours.get(k) != theirs.get(k))
                found[name] = (len(keys), keys[0], ours.get(keys[0]), theirs.get(keys[0]))
            else:
                found[name] = (ours, theirs)
    if running.optout_requests != restored.optout_requests:
        found["optout_requests"] = True
    if {k: sorted(v) for k, v in running.absorbed.items() if v} != {
        k: sorted(v) for k, v in restored.absorbed.items() if v
    }:
        found["absorbed"] = True
    ours_sources = {k: running.root(v) for k, v in running.sources.items()}
    if ours_sources != {k: restored.root(v) for k, v in restored.sources.items()}:
        found["sources"] = True

    def seen(state: IdentityState, key: str) -> list[str]:
        # the persons scored (matches do not depend on their order, ties go to the oldest)
        return sorted({state.root(p) for p in state.candidates(key)})

    blocks = sorted(
        k for k in {*running.blocks, *restored.blocks} if seen(running, k) != seen(restored, k)
    )
    if blocks:
        found["blocks"] = (
            len(blocks),
            blocks[0],
            seen(running, blocks[0]),
            seen(restored, blocks[0]),
        )
    return found


def test_a_restart_after_any_batch_restores_the_state_that_never_stopped(tmp_path: Path) -> None:
    """Synth's records through IdentityStage in batches; after each, the persons the batch
    changed and the new source ids written as the worker writes them (streams/app.py), and
    the state restored from everything written so far (a kill after that batch) and kept
    by applying each batch's writes as a tail (the on-disk store): both equal the running
    state. Before the fix a profile's dropped identity left its person in blocks a restart
    does not rebuild (and a merged person's id stayed in its blocks, in filing order)."""
    synthesize(SynthConfig(people=300, seed=12, optout_rate=0.02), NoiseConfig(), tmp_path)
    messages = [
        Incoming(outcome.topic, 0, at, None, _ENCODERS[outcome.topic].encode(outcome.event))
        for at, (_item, _row, outcome) in enumerate(in_time_order(open_folder(tmp_path)))
        if isinstance(outcome, MappedRow)
    ]
    stage = IdentityStage(_resolver(None), {t: _decoder(t) for t in INPUT_TOPICS}, _ENCODERS)
    encoder = SnapshotEncoder()
    persons: dict[str, dict[str, Any]] = {}
    sources: dict[tuple[str, str], str] = {}
    tail = IdentityState()
    differing: dict[int, dict[str, Any]] = {}
    for at in range(0, len(messages), 200):
        changed: set[str] = set()
        seen: dict[tuple[str, str], str] = {}
        for message in messages[at : at + 200]:
            processed = stage.process(message)
            changed.update(processed.persons)
            seen.update(processed.sources)
        written = {p: decode_snapshot(encoder.encode(stage.state, p)) for p in changed}
        persons.update(written)
        sources.update(seen)
        for person_id in sorted(written, key=lambda p: int(p[1:])):
            apply_person(tail, person_id, written[person_id])
        for key, person_id in seen.items():
            apply_source(tail, key, person_id)
        restored = IdentityState.restore(persons.items(), sources.items())
        for how, state in (("restored", restored), ("tail", tail)):
            found = _differences(stage.state, state)
            if found:
                differing[at] = {how: found}
    assert len(messages) > 8_000
    assert not differing, (len(differing), next(iter(differing.items())))


def _pupil(first: str, last: str, number: int) -> dict[str, Any]:
    return {
        "first_name": first,
        "last_name": last,
        "birth_date": datetime.date(2001, 5, 4),
        "ssn": f"{number:09d}",
        "source_person_id": "S1",
    }


def test_a_profiles_dropped_identity_leaves_its_blocks_as_a_restart_does() -> None:
    """A person whose profile dropped its oldest identity is no longer filed under that
    identity's own keys, in memory as after a restart: a record that only those keys find
    resolves the same either way."""
    resolver = Resolver(_resolver(None).hasher)
    first = resolver.resolve("cde", _pupil("Ana", "Quist", 123456780))
    for n in range(_MAX_PROFILE):  # the same source, SSN and name, other birth dates
        resolver.resolve(
            "cde",
            {**_pupil("Ana", "Quist", 123456780), "birth_date": datetime.date(1990 + n, 1, 1)},
        )
    person = first.person_id
    assert person is not None
    assert len(resolver.state.profiles[person]) == _MAX_PROFILE
    restored = IdentityState.restore(
        [(p, resolver.state.snapshot(p)) for p in resolver.state.profiles],
        resolver.state.sources.items(),
    )
    assert _differences(resolver.state, restored) == {}
    dropped = resolver.identity(_pupil("Ana", "Quist", 123456780))
    assert dropped not in resolver.state.profiles[person]
    only = set(blocking_keys(dropped)).difference(
        *(blocking_keys(kept) for kept in resolver.state.profiles[person])
    )
    assert only  # its birth date's blocks
    assert not any(person in resolver.state.blocks.get(key, []) for key in only)


def test_blocks_hold_live_persons_in_id_order_whatever_the_filing_order() -> None:
    state = IdentityState()
    for person_id in ("P0000000003", "P0000000001", "P0000000002", "P0000000001"):
        state.file("k", person_id)
    assert state.blocks["k"] == ["P0000000001", "P0000000002", "P0000000003"]
    many = [f"P{n:010d}" for n in range(_MAX_BLOCK_SCAN + 5, 0, -1)]
    for person_id in many:
        state.file("m", person_id)
    assert state.candidates("m") == sorted(many)[-_MAX_BLOCK_SCAN:]

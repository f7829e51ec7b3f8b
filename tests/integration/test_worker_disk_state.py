"""A worker with its resolver state on disk (C2C_STREAMS_STATE=disk, streams/durable.py):
restarted after a clean stop and after a kill -9, it keeps its store and reads only the
changelogs' tail; started without its store (a new machine), it rebuilds it from the
tables; and it gives every event the person a resolver that never stopped gives."""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from c2c.kafka import end_offsets, read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.app import changelog_topics
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.intake import records_of
from streams.linking import LINKED_TOPICS
from streams.resolution import RAW_TOPICS, Incoming, source_of
from tests.conftest import free_port_pair

pytestmark = pytest.mark.integration

FIRST = ("k12", "ccc", "csac")


def test_a_disk_state_worker_restarts_from_its_store_and_the_changelog_tail(
    stack: Settings,
    registry: SchemaRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("C2C_STREAMS_STATE", "disk")
    synth = tmp_path / "synth"
    config = SynthConfig(people=200, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.0)
    synthesize(config, NoiseConfig(), synth)
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    for extract in synth.glob("*.csv"):
        shutil.copy(extract, (first if extract.stem in FIRST else second) / extract.name)
    events = {str(e["event_id"]): (s, e) for s, e in mapped_events(synth)}
    first_count = sum(1 for s, _ in events.values() if s in FIRST)
    before = end_offsets(stack, LINKED_TOPICS.values())

    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    changelogs = [t.name for t in changelog_topics(worker.app_id)][:2]  # persons, sources
    try:
        worker.start()
        replay(stack, first)
        counts = worker.drained(first_count)
        assert counts["state_rebuilds"] == 1  # a new store: built from the (empty) tables
        worker.stop()
        written = sum(end_offsets(stack, changelogs).values())
        assert written > 100

        # a clean stop kept the store: the restart reads no changelog tail, rebuilds nothing
        worker.start()
        replay(stack, second)
        counts = worker.drained(len(events) - first_count)
        assert counts.get("state_rebuilds", 0) == 0
        assert counts.get("state_tail_messages", 0) == 0

        # killed (-9) after its batches: the store is kept; what it had not written to its
        # files is read again from the changelog's tail, never the whole changelog
        at_kill = sum(end_offsets(stack, changelogs).values())
        worker.kill()
        worker.start()
        replay(stack, first)  # again: the same events, which must keep their persons
        counts = worker.drained(first_count)
        assert counts.get("state_rebuilds", 0) == 0
        assert counts["state_tail_messages"] < at_kill

        # a new machine (the store gone, the tables kept): rebuilt from the tables, one
        # person at a time (streams/durable.py's sort on disk), and the same events again
        # keep their persons
        worker.stop()
        store = stack.data_dir / "streams" / worker.app_id / "identity-state"
        assert store.is_dir(), store
        shutil.rmtree(store)
        worker.start()
        replay(stack, second)
        counts = worker.drained(len(events) - first_count)
        assert counts["state_rebuilds"] == 1
        assert not store.with_name("identity-state.sorting").exists()
    finally:
        worker.kill()

    decoders = {t: registry.decoder(get_topic(t)) for t in LINKED_TOPICS.values()}
    published: dict[str, set[str]] = defaultdict(set)
    for message in read_to_end(stack, decoders, since=before):
        value = decoders[str(message.topic())].decode(message.value() or b"")
        if str(value["event_id"]) in events:
            published[str(value["event_id"])].add(value["person_id"])
    assert set(published) == set(events)

    # one resolver that never stopped, fed the intake in the order the worker took it,
    # gives each event the person the worker published, up to merges: an intake batch
    # resolved again after the kill (its offset not yet committed) names the survivor of a
    # merge decided after it was first resolved
    raw_decoders = {t: registry.decoder(get_topic(t)) for t in RAW_TOPICS}
    resolver = Resolver(IdentifierHasher(stack.identity_secret.get_secret_value().encode()))
    never_stopped: dict[str, set[str]] = defaultdict(set)
    for message in read_to_end(stack, [str(worker.intake)]):
        for record in records_of(
            Incoming(
                str(message.topic()),
                int(message.partition() or 0),
                int(message.offset() or 0),
                message.key(),
                message.value(),
                list(message.headers() or []),
            )
        ):
            incoming = source_of(record)
            if incoming.topic not in raw_decoders or incoming.value is None:
                continue
            raw = raw_decoders[incoming.topic].decode(incoming.value)
            resolution = resolver.resolve(str(raw["provider"]), raw["person"])
            if resolution.person_id is not None:
                never_stopped[str(raw["event_id"])].add(resolution.person_id)
    assert set(never_stopped) == set(published)
    for event_id, ids in published.items():
        survivors = {resolver.state.root(p) for p in ids}
        assert survivors == {resolver.state.root(p) for p in never_stopped[event_id]}, event_id
        assert len(survivors) == 1, (event_id, ids)

"""The worker's tables across the upgrades to binary person snapshots and to hashed source
ids: a changelog the JSON worker wrote (source ids in clear) loads, its clear source ids are
re-keyed and deleted, and the worker goes on giving the ids one resolver that never stopped
would give."""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from c2c.kafka import Offsets, end_offsets, ensure_topics, read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import Topic, get_topic
from cli.worker_process import WorkerProcess
from producers.files import in_time_order, mapped_events, open_folder, replay
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sealing import SEALED, Sealer
from streams.identity.snapshots import MAGIC, decode_snapshot
from streams.intake import records_of
from streams.linking import LINKED_TOPICS
from streams.resolution import OPTOUT_TOPIC, RAW_TOPICS, Incoming, source_of
from streams.tables import parse_source_key, source_key
from tests.conftest import free_port_pair

FIRST = ("k12", "ccc", "csac")  # resolved by "the JSON worker"; the rest by this one


def _two_folders(tmp_path: Path, people: int) -> tuple[Path, Path]:
    """A synth population's extracts in two folders: FIRST's, then the others'."""
    synth, first, second = tmp_path / "synth", tmp_path / "first", tmp_path / "second"
    synthesize(
        SynthConfig(people=people, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.0),
        NoiseConfig(),
        synth,
    )
    for folder in (first, second):
        folder.mkdir()
    for extract in synth.glob("*.csv"):
        shutil.copy(extract, (first if extract.stem in FIRST else second) / extract.name)
    return first, second


def _assert_ids_go_on(
    stack: Settings,
    registry: SchemaRegistry,
    resolver: Resolver,
    intake: str,
    later: set[str],
    before: Offsets,
) -> None:
    """The events ``later`` were published (after ``before``) under the ids ``resolver``
    gives them, fed the worker's ``intake`` in its order."""
    raw_decoders = {t: registry.decoder(get_topic(t)) for t in RAW_TOPICS}
    expected: dict[str, str] = {}
    for message in read_to_end(stack, [intake]):
        packed = Incoming(
            str(message.topic()), 0, int(message.offset() or 0), message.key(), message.value()
        )
        for record in records_of(packed):
            incoming = source_of(record)
            raw = raw_decoders[incoming.topic].decode(incoming.value or b"")
            resolution = resolver.resolve(str(raw["provider"]), raw["person"])
            if resolution.person_id is not None:
                expected[str(raw["event_id"])] = resolution.person_id
    decoders = {t: registry.decoder(get_topic(t)) for t in LINKED_TOPICS.values()}
    published = {}
    for message in read_to_end(stack, list(decoders), since=before):
        value = decoders[str(message.topic())].decode(message.value() or b"")
        if str(value["event_id"]) in later:
            published[str(value["event_id"])] = value["person_id"]
    assert set(published) == later
    assert published == {event_id: expected[event_id] for event_id in later}


def test_a_changelog_of_json_snapshots_loads_and_ids_go_on(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    first, second = _two_folders(tmp_path, 150)

    # The worker before this format: its tables' changelogs, as Faust wrote them (JSON keys
    # and values), for what it resolved of the first folder.
    resolver = Resolver(IdentifierHasher(stack.identity_secret.get_secret_value().encode()))
    persons: dict[str, bytes] = {}
    sources: dict[str, bytes] = {}
    for _item, _row, outcome in in_time_order(open_folder(first)):
        if not isinstance(outcome, MappedRow) or outcome.topic == OPTOUT_TOPIC:
            continue
        resolution = resolver.resolve(outcome.event["provider"], outcome.event["person"])
        for person_id in resolution.touched:
            persons[person_id] = json.dumps(resolver.state.snapshot(person_id)).encode()
        if resolution.new_source is not None:
            # that worker kept the source's person id in clear (edd's is the SSN)
            provider, clear = outcome.event["provider"], outcome.event["person"]["source_person_id"]
            sources[f"{provider}\x1f{clear}"] = json.dumps(resolution.person_id).encode()
    assert persons
    assert sources
    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair(), split=True)
    changelogs = {
        f"{worker.app_id}-identity-persons-changelog": persons,
        f"{worker.app_id}-identity-sources-changelog": sources,
    }
    ensure_topics(
        stack,
        [
            Topic(name, "", "identity", "changelog", 1, {"cleanup.policy": "compact"})
            for name in changelogs
        ],
    )
    producer = Producer(stack.kafka_config())
    for topic, values in changelogs.items():
        for key, value in values.items():
            producer.produce(topic, value, json.dumps(key).encode(), 0)
    assert producer.flush(30) == 0

    # what the stack held before (other tests', benches') is not read again below
    before = end_offsets(stack, list(LINKED_TOPICS.values()))
    try:
        worker.start()
        replay(stack, second)
        later = {str(e["event_id"]) for s, e in mapped_events(second)}
        worker.drained(len(later))
    finally:
        worker.stop()

    # Every event of the second folder under the id the resolver that never stopped gives
    # it, fed the intake in the worker's order.
    _assert_ids_go_on(stack, registry, resolver, str(worker.intake), later, before)

    # What the new worker wrote of persons is binary; what it read of the JSON, unchanged.
    written = [
        (json.loads(m.key() or b""), m.value() or b"")
        for m in read_to_end(stack, [f"{worker.app_id}-identity-persons-changelog"])
    ]
    assert [value for _key, value in written[: len(persons)]] == list(persons.values())
    assert len(written) > len(persons)
    # ... and sealed (streams/identity/sealing.py): binary inside, no name in clear
    sealer = Sealer(stack.identity_secrets(), stack.identity_key_version)
    for key, value in written[len(persons) :]:
        assert value.startswith(SEALED)
        assert sealer.open(key, value).startswith(MAGIC)

    # Every clear source id the old worker wrote is deleted (a tombstone, which compaction
    # keeps only until delete.retention.ms) and kept again under its keyed hash.
    latest: dict[str, bytes | None] = {}
    for m in read_to_end(stack, [f"{worker.app_id}-identity-sources-changelog"]):
        latest[json.loads(m.key() or b"")] = m.value()
    for key, value in sources.items():
        assert latest[key] is None, key
        provider, _, clear = key.partition("\x1f")
        hashed = source_key(provider, resolver.hasher.source_id(provider, clear))
        assert latest[hashed] == value, key
    assert all(parse_source_key(key).keys == 1 for key, v in latest.items() if v is not None)


def test_a_new_key_version_rekeys_the_tables_and_ids_go_on(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker restarted with a new identity secret (key version 2, the first one listed
    as previous) re-keys and re-seals its tables and links as a worker that always had both
    keys would."""
    first, second = _two_folders(tmp_path, 120)
    old = stack.identity_secret.get_secret_value()
    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    try:
        worker.start()
        replay(stack, first)
        worker.drained(sum(1 for _ in mapped_events(first)))
    finally:
        worker.stop()
    persons_topic = f"{worker.app_id}-identity-persons-changelog"
    sources_topic = f"{worker.app_id}-identity-sources-changelog"
    before = end_offsets(stack, [persons_topic, sources_topic, *LINKED_TOPICS.values()])

    new = secrets.token_urlsafe(32)
    monkeypatch.setenv("C2C_IDENTITY_SECRET", new)
    monkeypatch.setenv("C2C_IDENTITY_KEY_VERSION", "2")
    monkeypatch.setenv("C2C_IDENTITY_PREVIOUS_SECRETS", json.dumps({"1": old}))
    rotated = WorkerProcess(
        stack,
        tmp_path / "rotated.log",
        port=free_port_pair(),
        app_id=worker.app_id,
        intake=worker.intake,
    )
    later = {str(e["event_id"]) for _s, e in mapped_events(second)}
    try:
        rotated.start()
        replay(stack, second)
        rotated.drained(len(later))
    finally:
        rotated.stop()

    # the ids a resolver holding both keys from the start gives, fed the intake in order
    resolver = Resolver(IdentifierHasher(old.encode(), new.encode()))
    _assert_ids_go_on(stack, registry, resolver, str(worker.intake), later, before)

    # every person and source id kept is under key version 2 now
    sealer = Sealer({1: old.encode(), 2: new.encode()}, 2)
    latest: dict[str, bytes | None] = {}
    for m in read_to_end(stack, [persons_topic]):
        latest[json.loads(m.key() or b"")] = m.value()
    assert latest
    for key, value in latest.items():
        assert value is not None
        assert sealer.version(value) == 2, key
        assert decode_snapshot(sealer.open(key, value)) == resolver.state.snapshot(key)
    kept: dict[str, bytes | None] = {}
    for m in read_to_end(stack, [sources_topic]):
        kept[json.loads(m.key() or b"")] = m.value()
    assert {parse_source_key(k).keys for k, v in kept.items() if v is not None} == {2}
    assert all(parse_source_key(k).keys == 1 for k, v in kept.items() if v is None)

"""The sharded resolver's rounds over Kafka (streams/shards.py): two `c2c identity
shard-host` processes share four shards through the group's assignment; the decider, in
this process, resolves synth's records through them in epochs. One host is killed
(SIGKILL) mid-run and never started again: its shards move to the host left, which takes
them from its standby copies (one a shard) or, with none, from the shards' changelog.
Later the host left is stopped and started again: it takes its shards from its stores on
disk, or from the changelog with its state in memory; no apply call is replayed.
Every record resolves exactly as one in-process :class:`Resolver` resolves it (ids,
changes, merges, possible matches), and no identifier or name of the records rests in
clear on the shard topics or in the hosts' stores (sealed, block keys hashed)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from c2c.errors import ConfigError, ServiceError
from c2c.kafka import read_to_end
from c2c.settings import Settings
from cli.shard_hosts import ShardHosts
from streams.decider_log import DeciderLog, Resumed
from streams.identity.matching import Identity, load_model
from streams.identity.resolver import IdentifierHasher, Resolution, Resolver
from streams.identity.sealing import Sealer
from streams.identity.sharding import (
    Decider,
    EpochWrites,
    ScoreRequest,
    ShardedResolver,
    epochs_of,
    resolve_epochs,
)
from streams.shards import KafkaShards, shard_topics
from tests.at_rest import Found, Wanted, vocabulary

pytestmark = pytest.mark.integration

SHARDS = 4
EPOCH = 400
FLOOR = 6.0  # possible matches are compared too


def _synth(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    from producers.files import mapped_events
    from producers.synth import SynthConfig, synthesize
    from producers.synth.profiles import profile

    chosen = profile("realistic")
    synthesize(chosen.config(SynthConfig(people=150, seed=11)), chosen.noise, folder)
    return [(e["provider"], e["person"]) for _, e in mapped_events(folder)]


@pytest.mark.parametrize(("state", "standbys"), [("memory", 0), ("disk", 1)])
def test_shards_over_kafka_resolve_as_one_resolver_through_a_lost_and_a_restarted_host(
    stack: Settings, tmp_path: Path, state: str, standbys: int
) -> None:
    """``state``: where the hosts keep their shards' state (C2C_STREAMS_STATE);
    ``standbys``: standby copies of each shard (C2C_STREAMS_STANDBY_REPLICAS)."""
    records = _synth(tmp_path / "synth")
    app_id = f"c2c-identity-{uuid.uuid4().hex[:10]}"
    hosts = ShardHosts(
        stack,
        app_id,
        SHARDS,
        2,
        tmp_path / "hosts",
        environment={
            "C2C_IDENTITY_REVIEW_MIN_WEIGHT": str(FLOOR),
            "C2C_STREAMS_STATE": state,
            "C2C_STREAMS_STANDBY_REPLICAS": str(standbys),
        },
    )
    try:
        hosts.wait_settled()  # both in the group, each holding shards: a kill moves some
        if standbys:  # each host keeps a standby of the other's shards
            hosts.wait(
                lambda: hosts.standbys(0) == hosts.held(1) and hosts.standbys(1) == hosts.held(0),
                "each host a standby of the other's shards",
            )
        secrets = stack.identity_secrets()
        hasher = IdentifierHasher(*secrets.values())
        model = load_model(stack.identity_model)
        one = Resolver(hasher, model, review_floor=FLOOR)
        expected = [one.resolve(provider, person) for provider, person in records]

        shards = KafkaShards(stack, app_id, SHARDS, Sealer(secrets, stack.identity_key_version))
        decider = Decider(hasher, model, review_floor=FLOOR)
        epochs = list(epochs_of(records, EPOCH))
        assert len(epochs) >= 9, len(records)
        got = []
        lost_shards = hosts.held(0)
        for at, resolution in enumerate(resolve_epochs(shards, decider, epochs)):
            got.append(resolution)
            if at == 3 * EPOCH:  # three epochs applied: the lost host's shards hold state
                hosts.kill(0)
            if at == 7 * EPOCH:  # the host left, stopped and started again
                before = len(hosts.rebuilt(1))
                took_from = hosts.sources(1)
                hosts.restart(1)
        shards.close()
        assert len(got) == len(expected)
        for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
            assert mine == theirs, f"record {at} of {len(records)}: {records[at]}"
        # the host left took the lost host's shards and rebuilt them from their apply calls
        assert hosts.held(1) == list(range(SHARDS)), hosts.tails()
        rebuilt = hosts.rebuilt(1)
        took_over, restarted = rebuilt[before - 1], rebuilt[-1]
        assert took_over[0] == lost_shards, hosts.tails()
        # from its standbys, else the shards' changelog: no apply call had to be replayed
        # (each was in the changelog before the lost host committed past it)
        expected_from = "standby" if standbys else "changelog"
        assert {took_from[s] for s in lost_shards} == {expected_from}, hosts.tails()
        assert took_over[1] == 0
        # started again: from its stores on disk, else the changelog
        assert restarted[0] == list(range(SHARDS)), hosts.tails()
        started_from = "store" if state == "disk" else "changelog"
        assert set(hosts.sources(1).values()) == {started_from}, hosts.tails()
        assert restarted[1] == 0
        merges = sum(1 for r in got for c in r.changes if c.change_type == "PERSONS_MERGED")
        print(
            f"state in {state}: {len(records)} records in {len(epochs)} epochs on {SHARDS} "
            f"shards; host 0 (shards {lost_shards}) killed after 3, host 1 restarted after 7; "
            f"{merges} merges; host 1 rebuilt (shards, apply calls): {rebuilt}"
        )
        assert merges > 0  # the records exercise merges, not only links
    finally:
        hosts.stop()
    # nothing of the records rests in clear: not on the three topics, not in the stores
    found = _scanned(stack, app_id, records)
    assert found.outside([]) == {}
    assert found.scanned["topic"] > 100_000  # (the scan read the topics)
    if state == "disk":
        assert found.scanned["rocksdb"] > 10_000


def test_a_decider_lost_mid_epoch_resumes_from_its_log_on_kafka(
    stack: Settings, tmp_path: Path
) -> None:
    """The decider logs each epoch (streams/shards.py, ``DeciderLog``) before the shards
    are sent its writes, and is lost right after logging epoch 5. A new decider, with a
    ``KafkaShards`` of its own, resumes from the log: the logged epoch's resolutions, its
    writes sent again, the records after it. Every record resolves as one resolver
    resolves it, and a third decider would resume at the run's end."""
    records = _synth(tmp_path / "synth")
    app_id = f"c2c-identity-{uuid.uuid4().hex[:10]}"
    hosts = ShardHosts(stack, app_id, 2, 2, tmp_path / "hosts")
    secrets = stack.identity_secrets()
    hasher = IdentifierHasher(*secrets.values())
    model = load_model(stack.identity_model)
    sealer = Sealer(secrets, stack.identity_key_version)
    one = Resolver(hasher, model)
    expected = [one.resolve(provider, person) for provider, person in records]

    class Lost(Exception):
        pass

    try:
        hosts.wait_settled()
        with pytest.raises(ConfigError, match="has 2 partitions and 3 shards"):
            KafkaShards(stack, app_id, 3, sealer)  # the count is the topics'
        # a round a shard cannot serve (a person it does not hold) is answered with the
        # error's type and place, never its message (a value: unsealed in the headers)
        refusing = KafkaShards(stack, app_id, 2, sealer)
        refusing.send("score", [([ScoreRequest(0, Identity(), "P-gone-9")], []), ([], [])])
        with pytest.raises(ServiceError, match=r"KeyError at \w+\.py:\d+") as refused:
            refusing.receive()
        assert "P-gone-9" not in str(refused.value)
        assert refused.value.code == "identity.shard_failed"
        refusing.close()
        first, log = Decider(hasher, model), DeciderLog(stack, app_id, sealer)
        assert log.resume(first) == Resumed(0, [], None)  # a new log

        def decided(resolutions: list[Resolution], writes: EpochWrites, taken: int) -> None:
            log.record(resolutions, writes, taken, first.state.next_number)
            if log.epoch == 5:
                raise Lost

        shards = KafkaShards(stack, app_id, 2, sealer)
        got: list[Resolution] = []
        running = resolve_epochs(shards, first, epochs_of(records, EPOCH), decided=decided)
        with pytest.raises(Lost):
            got.extend(running)
        shards.close()
        log.close()
        assert len(got) == 4 * EPOCH
        # a sixth epoch's log begun, not whole (a decider lost while writing it): never
        # sent to the shards, so the next decider resumes from the fifth and decides it
        torn = Producer(stack.kafka_config())
        torn.produce(f"{app_id}-shard-decider", b"torn", key="epoch:6:1/2")
        assert torn.flush(10) == 0

        second, log = Decider(hasher, model), DeciderLog(stack, app_id, sealer)
        resumed = log.resume(second)
        assert resumed.done == 5 * EPOCH
        assert log.epoch == 5
        got += resumed.resolutions  # published again: they may not have been
        shards = KafkaShards(stack, app_id, 2, sealer)
        following = epochs_of(records[resumed.done :], EPOCH)
        got += resolve_epochs(
            shards,
            second,
            following,
            decided=lambda r, w, taken: log.record(r, w, taken, second.state.next_number),
            pending=resumed.pending,
        )
        shards.close()
        log.close()
    finally:
        hosts.stop()
    assert len(got) == len(expected)
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"record {at} of {len(records)}: {records[at]}"
    # what a third decider would resume from: the last epoch, the run done
    third = DeciderLog(stack, app_id, sealer)
    resumed = third.resume(Decider(hasher, model))
    assert resumed.done == len(records)
    assert third.epoch == -(-len(records) // EPOCH)


def test_a_sharded_resolve_killed_midway_resumes_to_the_same_ids(
    stack: Settings, tmp_path: Path
) -> None:
    """`c2c identity resolve FOLDER --shards 2` (the decider in its own process) is killed
    with SIGKILL once it has logged three epochs, and run again: it resumes from its log
    and writes the same final ids as `c2c identity resolve` in one process."""
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    synth = tmp_path / "synth"
    _synth(synth)
    app_id = f"c2c-identity-{uuid.uuid4().hex[:10]}"
    hosts = ShardHosts(stack, app_id, 2, 2, tmp_path / "hosts")
    env = {**os.environ, "C2C_DATA_DIR": str(stack.data_dir), **stack.kafka_environment()}
    command = [sys.executable, "-m", "cli", "identity", "resolve", str(synth)]
    sharded = [*command, "--shards", "2", "--app-id", app_id, "--epoch", str(EPOCH)]
    out = tmp_path / "sharded.csv"
    partial = tmp_path / "sharded.csv.partial"
    try:
        hosts.wait_settled()
        with (tmp_path / "first.log").open("w") as log:
            first = subprocess.Popen([*sharded, "--out", str(out)], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 0 and _epochs(partial) >= 3):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run logged no 3 epochs in 120 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert not out.exists()
        again = subprocess.run(
            [*sharded, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "resuming after" in again.stdout, again.stdout
        assert not partial.exists()
    finally:
        hosts.stop()
    alone = tmp_path / "alone.csv"
    done = subprocess.run(
        [*command, "--out", str(alone)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    with out.open() as mine, alone.open() as theirs:
        rows, expected = list(csv.reader(mine)), list(csv.reader(theirs))
    assert len(rows) > 3 * EPOCH
    assert rows == expected


def _epochs(partial: Path) -> int:
    """Epochs' resolutions whole in a `c2c identity resolve --shards` partial file."""
    import pickle

    count = 0
    with partial.open("rb") as handle:
        while True:
            try:
                pickle.load(handle)
            except (EOFError, pickle.UnpicklingError):
                return max(count - 1, 0)  # the first is what an earlier run kept
            count += 1


def _scanned(stack: Settings, app_id: str, records: list[tuple[str, dict[str, Any]]]) -> Found:
    """Every message (keys, values, headers) of ``app_id``'s shard topics and every key
    and value of its hosts' stores, scanned for the records' identifiers and names."""
    from rocksdict import AccessType, Options, Rdict

    wanted = Wanted.of([person for _provider, person in records], vocabulary=vocabulary())
    control = Found()
    control.add("records", repr(records).encode(), wanted)  # the scan finds them where they are
    assert len(control.identifiers["records"]) > 0.9 * len(wanted.identifiers)
    found = Found()
    for message in read_to_end(stack, [t.name for t in shard_topics(app_id, SHARDS)]):
        for part in (message.key(), message.value(), *(v for _k, v in message.headers() or ())):
            found.add("topic", part or b"", wanted)
    stores = stack.data_dir / "streams" / app_id
    for path in (p.parent for p in stores.rglob("CURRENT")):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                found.add("rocksdb", key + value, wanted)
        finally:
            db.close()
    for path in (p for p in stores.rglob("*") if p.is_file()):
        found.add("files", path.read_bytes(), wanted)
    return found


def test_the_stage_through_shard_hosts_publishes_what_it_publishes_over_one_resolver(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity stage's batch through two shard hosts over Kafka
    (``IdentityStage.process_sharded`` over ``KafkaShards``, state on disk): synth's
    records, opt-out requests and revocations, and operators' decisions on its possible
    matches, as epoch items (a revocation and a decision: :class:`Named`, over the wire
    too). Every message publishes the same bytes as through the stage over one resolver."""
    from tests.unit.test_stage_sharded import (
        fix_time,
        seen,
        stage_over,
        synth_messages,
        with_decisions,
    )

    fix_time(monkeypatch)
    app_id = f"c2c-identity-{uuid.uuid4().hex[:10]}"
    hosts = ShardHosts(
        stack,
        app_id,
        2,
        2,
        tmp_path / "hosts",
        environment={"C2C_IDENTITY_REVIEW_MIN_WEIGHT": str(FLOOR), "C2C_STREAMS_STATE": "disk"},
    )
    secrets = stack.identity_secrets()
    hasher = IdentifierHasher(*secrets.values())
    model = load_model(stack.identity_model)

    def resolver() -> Resolver:
        return Resolver(hasher, model, review_floor=FLOOR)

    messages = with_decisions(synth_messages(tmp_path / "synth"), 25, stage_over(resolver()))
    one = stage_over(resolver())
    expected = [one.process(message) for message in messages]
    assert one.counts["decision.linked"] > 0
    assert one.counts["optout.revoked"] > 0
    try:
        hosts.wait_settled()
        kafka = KafkaShards(stack, app_id, 2, Sealer(secrets, stack.identity_key_version))
        sharded = ShardedResolver(hasher, 2, model, FLOOR, epoch=EPOCH, over=kafka)
        stage = stage_over(resolver())
        got = stage.process_sharded(messages, sharded)
        kafka.close()
    finally:
        hosts.stop()
    assert len(got) == len(expected)
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert seen(mine) == seen(theirs), f"message {at}: {messages[at].topic}"
    assert stage.counts == one.counts

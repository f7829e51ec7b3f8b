"""The sharded resolver's rounds over Kafka (streams/shards.py): two `c2c identity
shard-host` processes share four shards through the group's assignment; the decider, in
this process, resolves synth's records through them in epochs; one host is killed
(SIGKILL) mid-run and never started again. Its shards move to the host left, which rebuilds
them from their apply calls, and every record resolves exactly as one in-process
:class:`Resolver` resolves it (ids, changes, merges, possible matches)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.settings import Settings
from cli.shard_hosts import ShardHosts
from streams.identity.matching import load_model
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sealing import Sealer
from streams.identity.sharding import Decider, epochs_of, resolve_epochs
from streams.shards import KafkaShards

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


def test_shards_over_kafka_resolve_as_one_resolver_through_a_lost_host(
    stack: Settings, tmp_path: Path
) -> None:
    records = _synth(tmp_path / "synth")
    app_id = f"c2c-identity-{uuid.uuid4().hex[:10]}"
    hosts = ShardHosts(
        stack,
        app_id,
        SHARDS,
        2,
        tmp_path / "hosts",
        environment={"C2C_IDENTITY_REVIEW_MIN_WEIGHT": str(FLOOR)},
    )
    try:
        hosts.wait_settled()  # both in the group, each holding shards: a kill moves some
        secrets = stack.identity_secrets()
        hasher = IdentifierHasher(*secrets.values())
        model = load_model(stack.identity_model)
        one = Resolver(hasher, model, review_floor=FLOOR)
        expected = [one.resolve(provider, person) for provider, person in records]

        shards = KafkaShards(stack, app_id, SHARDS, Sealer(secrets, stack.identity_key_version))
        decider = Decider(hasher, model, review_floor=FLOOR)
        epochs = list(epochs_of(records, EPOCH))
        assert len(epochs) >= 6, len(records)
        got = []
        lost_shards = hosts.held(0)
        for at, resolution in enumerate(resolve_epochs(shards, decider, epochs)):
            got.append(resolution)
            if at == 3 * EPOCH:  # three epochs applied: the lost host's shards hold state
                hosts.kill(0)
        shards.close()
        assert len(got) == len(expected)
        for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
            assert mine == theirs, f"record {at} of {len(records)}: {records[at]}"
        # the host left took the lost host's shards and rebuilt them from their apply calls
        assert hosts.held(1) == list(range(SHARDS)), hosts.tails()
        rebuilt = hosts.rebuilt(1)
        assert rebuilt[-1][0] == lost_shards, hosts.tails()
        assert rebuilt[-1][1] >= 3 * len(lost_shards)
        merges = sum(1 for r in got for c in r.changes if c.change_type == "PERSONS_MERGED")
        print(
            f"{len(records)} records in {len(epochs)} epochs on {SHARDS} shards; host 0 "
            f"(shards {lost_shards}) killed after 3; {merges} merges; rebuilt: {rebuilt}"
        )
        assert merges > 0  # the records exercise merges, not only links
    finally:
        hosts.stop()

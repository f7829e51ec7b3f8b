"""The worker's state on disk (streams/durable.py): a kept store brought to the changelog's
end by its tail alone gives the ids of a state that never stopped, nothing rests in clear,
and a store left mid-batch or written under other keys is not taken as consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from bench.scale import generate
from streams.durable import DurableState, StaleStore, apply_tail, in_id_order
from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
from streams.identity.sealing import Sealer
from streams.identity.snapshots import encode_snapshot
from streams.tables import source_key

SECRET = b"test-durable-state-secret"
SEALER = Sealer({1: SECRET}, 1)
TOPIC = "persons-changelog"


def _sealed(state: IdentityState, person_ids: set[str]) -> dict[str, bytes | None]:
    return {p: SEALER.seal(p, encode_snapshot(state.snapshot(p))) for p in person_ids}


def _durable(path: Path, keys: str = "1:1") -> DurableState:
    return DurableState(path, SEALER, SECRET, keys=keys, cache_bytes=0)


def test_a_kept_store_and_its_tail_give_the_ids_of_a_state_that_never_stopped(
    tmp_path: Path,
) -> None:
    records = list(generate(7_500, seed=11))
    first, rest, more = records[:4_000], records[4_000:6_000], records[6_000:]
    live = Resolver(IdentifierHasher(SECRET))
    changed: set[str] = set()
    for provider, person in first:
        changed.update(live.resolve(provider, person).touched)
    # the store as a worker left it: the state of the first records, offsets committed
    durable = _durable(tmp_path / "state")
    durable.reset()
    durable.store.state.load(
        sorted(((p, live.state.snapshot(p)) for p in changed), key=lambda x: int(x[0][1:])),
        live.state.sources.items(),
    )
    durable.commit({(TOPIC, 0): 100}, next_offsets=True)
    durable.store.flush()
    durable.store.db.close()

    # another worker went on: its changes are the tail
    tail_persons: set[str] = set()
    tail_sources: dict[str, str] = {}
    for provider, person in rest:
        resolution = live.resolve(provider, person)
        tail_persons.update(resolution.touched)
    for (provider, hashed), pid in live.state.sources.items():
        tail_sources[source_key(provider, hashed, 1)] = pid

    reopened = _durable(tmp_path / "state")
    assert reopened.consistent_with({(TOPIC, 0): 180}) == {(TOPIC, 0): 100}
    reopened.begin()
    apply_tail(
        reopened.store.state,
        _sealed(live.state, tail_persons),
        tail_sources,
        sealer=SEALER,
        key_version=1,
        keys=1,
    )
    reopened.commit({(TOPIC, 0): 180}, next_offsets=True)
    kept = Resolver(IdentifierHasher(SECRET), state=reopened.store.state)
    expected = [live.resolve(p, person).person_id for p, person in more]
    assert [kept.resolve(p, person).person_id for p, person in more] == expected
    assert kept.state.next_number == live.state.next_number
    reopened.store.flush()
    reopened.store.db.close()

    # nothing in clear: no name, no block key, no source id in the files or values
    db = Rdict(str(tmp_path / "state"), options=Options(raw_mode=True))
    blob = b"".join(bytes(k) + bytes(v) for k, v in db.items())
    block_keys = [bytes(k) for k, _v in db.items() if bytes(k).startswith(b"blocks:")]
    db.close()
    names = {str(person.get("last_name") or "").upper() for _p, person in records}
    names.discard("")
    # (names of 6 letters or more: a shorter one turns up in random ciphertext)
    found = [n for n in names if len(n) >= 6 and (n.encode() in blob or n.lower().encode() in blob)]
    assert not found, found[:5]
    # block keys (names and birth dates in them) are keyed hashes
    assert block_keys
    assert all(re.fullmatch(rb"blocks:[0-9a-f]{40}", key) for key in block_keys)


def test_a_store_left_mid_batch_or_under_other_keys_is_not_consistent(tmp_path: Path) -> None:
    durable = _durable(tmp_path / "state")
    with pytest.raises(StaleStore, match="no committed state"):
        durable.consistent_with({(TOPIC, 0): 5})
    durable.commit({(TOPIC, 0): 4})
    assert durable.consistent_with({(TOPIC, 0): 9}) == {(TOPIC, 0): 5}
    with pytest.raises(StaleStore, match="past its end"):
        durable.consistent_with({(TOPIC, 0): 3})  # the changelog was recreated
    durable.begin()  # a batch began and never committed
    with pytest.raises(StaleStore):
        durable.consistent_with({(TOPIC, 0): 9})
    durable.commit({(TOPIC, 0): 4})
    durable.store.flush()
    durable.store.db.close()
    rotated = _durable(tmp_path / "state", keys="2:2")
    with pytest.raises(StaleStore):
        rotated.consistent_with({(TOPIC, 0): 9})


def test_a_tail_value_sealed_under_another_key_is_stale(tmp_path: Path) -> None:
    state = IdentityState()
    unsealed: dict[str, bytes | None] = {"P0000000001": b'{"profile": [], "trusted": {}}'}
    with pytest.raises(StaleStore):
        apply_tail(state, unsealed, {}, sealer=SEALER, key_version=1, keys=1)


def test_a_rebuild_on_disk_one_person_at_a_time_equals_the_state_restored_in_memory(
    tmp_path: Path,
) -> None:
    live = Resolver(IdentifierHasher(SECRET))
    touched: set[str] = set()
    for provider, person in generate(20_000, seed=5):
        touched.update(live.resolve(provider, person).touched)
    snapshots = {p: live.state.snapshot(p) for p in touched}
    expected = IdentityState.restore(snapshots.items(), live.state.sources.items())
    assert expected.merged_into, "the records merged no one: nothing of the merges tested"

    # the table's order is not the ids' order: the sort on disk puts them in it
    sealed = sorted(_sealed(live.state, touched).items(), reverse=True)
    durable = _durable(tmp_path / "state")
    store = durable.reset()
    in_order = list(in_id_order(((p, v) for p, v in sealed if v), tmp_path / "sorting"))
    assert [p for p, _ in in_order] == sorted(touched, key=lambda p: int(p[1:]))
    assert not (tmp_path / "sorting").exists()
    store.state.load(
        ((p, snapshots[p]) for p, _value in in_order), iter(live.state.sources.items())
    )
    # a cache of no bytes: the rebuild wrote its values back as it went
    assert store.tables["blocks"].evictions > 0
    store.flush()
    for name in ("profiles", "trusted", "merged_into", "absorbed", "sources", "optouts"):
        assert dict(getattr(store.state, name).items()) == dict(getattr(expected, name)), name
    assert store.state.next_number == expected.next_number
    # (the store's block keys are keyed hashes: looked up by the keys in clear)
    assert len(store.state.blocks) == len(expected.blocks)
    for key, persons in expected.blocks.items():
        assert list(store.state.blocks[key]) == list(persons), key

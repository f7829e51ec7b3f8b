"""The resolver's state on disk (streams/identity/store.py) gives the ids the in-memory
state gives, through evictions from its cache and a close and reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scale import generate
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.store import MIN_CACHE_ENTRIES, open_state

SECRET = b"test-identity-store-secret"
RECORDS = 75_000


def _ids_in_memory(records: list[tuple[str, dict]]) -> list[str | None]:
    resolver = Resolver(IdentifierHasher(SECRET))
    ids = [resolver.resolve(provider, person).person_id for provider, person in records]
    return [resolver.state.root(pid) if pid else None for pid in ids]


def test_the_store_gives_the_in_memory_ids_through_evictions_and_a_reopen(
    tmp_path: Path,
) -> None:
    records = list(generate(RECORDS, seed=7))
    expected = _ids_in_memory(records)
    half = len(records) // 2

    store = open_state(tmp_path / "state", cache_entries=MIN_CACHE_ENTRIES)
    resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
    ids = [resolver.resolve(p, person).person_id for p, person in records[:half]]
    # the cache is smaller than what the state holds: values were written back and read again
    evicted = {name: table.evictions for name, table in store.tables.items()}
    store.close()

    store = open_state(tmp_path / "state", cache_entries=MIN_CACHE_ENTRIES)
    resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
    ids += [resolver.resolve(p, person).person_id for p, person in records[half:]]
    assert [store.state.root(pid) if pid else None for pid in ids] == expected
    # the cache held less than the state: blocks and profiles were written back and read
    for name in ("blocks", "profiles"):
        assert evicted[name] + store.tables[name].evictions > 0, name
    store.flush()
    persons = {pid for pid in expected if pid}
    assert set(store.state.profiles) == persons
    store.close()


def test_a_cache_too_small_to_hold_a_records_candidates_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_entries 100 is below"):
        open_state(tmp_path / "state", cache_entries=100)

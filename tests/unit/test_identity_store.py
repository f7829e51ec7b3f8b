"""The resolver's state on disk (streams/identity/store.py) gives the ids the in-memory
state gives, through evictions from its cache, commits in several batches and a close and
reopen; its cache keeps to its bytes, and what did not change is not written again; every
change the resolver and the opt-outs make in place reaches the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scale import generate
from streams.identity import store as store_module
from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
from streams.identity.store import STATE_MAPS, DiskState, open_state
from streams.optouts import OptOuts

SECRET = b"test-identity-store-secret"
RECORDS = 75_000


def _ids_in_memory(records: list[tuple[str, dict]]) -> list[str | None]:
    resolver = Resolver(IdentifierHasher(SECRET))
    ids = [resolver.resolve(provider, person).person_id for provider, person in records]
    return [resolver.state.root(pid) if pid else None for pid in ids]


def test_the_store_gives_the_in_memory_ids_through_evictions_and_a_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every commit in many batches
    monkeypatch.setattr(store_module, "COMMIT_CHUNK_BYTES", 4_096)
    records = list(generate(RECORDS, seed=7))
    expected = _ids_in_memory(records)
    half = len(records) // 2

    store = open_state(tmp_path / "state", cache_bytes=0)
    resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
    ids = []
    for at, (p, person) in enumerate(records[:half]):
        ids.append(resolver.resolve(p, person).person_id)
        if at % 5_000 == 0:
            store.commit()
    # the cache is smaller than what the state holds: values were written back and read again
    evicted = {name: table.evictions for name, table in store.tables.items()}
    store.close()

    store = open_state(tmp_path / "state", cache_bytes=0)
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


def test_the_cache_keeps_to_its_bytes_and_writes_only_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = 64  # (a smaller state than the real floor needs to overflow it)
    monkeypatch.setattr(store_module, "MIN_CACHE_ENTRIES", floor)
    store = open_state(tmp_path / "state", cache_bytes=20_000)
    resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
    for provider, person in generate(10_000, seed=3):
        resolver.resolve(provider, person)
    store.flush()
    profiles = store.tables["profiles"]
    persons = list(profiles)
    assert len(persons) > 4 * floor
    # within its bytes, or at the values it keeps whatever their size
    assert profiles.cached_bytes <= 20_000 or len(profiles.cache) == floor
    assert len(profiles.cache) < len(persons)
    # read again, every profile, none changed: none written, though many left the cache
    writes, evictions = profiles.writes, profiles.evictions
    lengths = [len(profiles[pid]) for pid in persons]
    store.flush()
    assert profiles.evictions > evictions
    assert profiles.writes == writes
    # changed, one is written once
    profiles[persons[0]].append(profiles[persons[0]][0])
    store.flush()
    assert profiles.writes == writes + 1
    store.close()
    store = open_state(tmp_path / "state", cache_bytes=0)
    assert len(store.state.profiles[persons[0]]) == lengths[0] + 1
    assert [len(store.state.profiles[pid]) for pid in persons[1:]] == lengths[1:]
    store.close()


def _work(state: IdentityState, records: list[tuple[str, dict]], at: int) -> None:
    """Resolve ``records`` (the ``at``-th onward of the run) into ``state``, with opt-outs
    requested and revoked on the way: every way the worker changes the state."""
    resolver = Resolver(IdentifierHasher(SECRET), state=state)
    optouts = OptOuts(state)
    for n, (provider, person) in enumerate(records, start=at):
        person_id = resolver.resolve(provider, person).person_id
        if person_id is None:
            continue
        if n % 97 == 0:  # an opt-out: a dict set in a dict, and a request's holder
            optouts.request(person_id, {"request_id": f"r{n}", "requested_by": "test"})
        if n % 97 == 40:  # one revoked: popped out of the nested dict in place
            optouts.revoke({"request_id": f"r{n - 40}"})


def test_every_change_in_place_reaches_the_store(tmp_path: Path) -> None:
    # only the values marked dirty are written: a change that did not mark its key would
    # be missing after a reopen (blocks appended to, profiles cut, trusted sets grown,
    # merges' absorbed lists extended, opt-outs set and popped in nested dicts)
    records = list(generate(30_000, seed=11))
    memory = IdentityState()
    _work(memory, records, 0)

    path = tmp_path / "state"
    evictions = dict.fromkeys(STATE_MAPS, 0)
    third = len(records) // 3
    for start in range(0, len(records), third):
        store = open_state(path, cache_bytes=0, key_secret=SECRET)
        part = records[start : start + third]
        for at in range(0, len(part), 1_000):
            _work(store.state, part[at : at + 1_000], start + at)
            store.commit()
        for name, table in store.tables.items():
            evictions[name] += table.evictions
        store.close()
    # the cache held fewer blocks than the state: written back and read again (every map is
    # read back after each reopen)
    assert evictions["blocks"] > 0, evictions

    store = open_state(path, cache_bytes=0, key_secret=SECRET)
    assert store.state.next_number == memory.next_number
    for name in STATE_MAPS:
        expected = getattr(memory, name)
        table = store.tables[name]
        assert len(table) == len(expected), name
        assert {key: table[key] for key in expected} == expected, name
    # the run went through merges and opt-outs kept and withdrawn
    assert memory.absorbed
    assert memory.optouts
    assert memory.optout_requests
    store.close()


def test_each_cached_entry_counts_its_overhead_so_small_values_fill_the_cache_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a map of small values (source ids, merges) counted by their pickle alone held many
    # times its bytes in Python objects and kept filling as records grew (bench/RESULTS.md,
    # 2026-12-07): each entry now counts ENTRY_BYTES more, so the entries are bounded too
    floor = 16
    monkeypatch.setattr(store_module, "MIN_CACHE_ENTRIES", floor)
    capacity = 100_000
    records = list(generate(10_000, seed=5))
    held = {}
    for entry_bytes in (0, store_module.ENTRY_BYTES):
        store = open_state(
            tmp_path / str(entry_bytes), cache_bytes=capacity, entry_bytes=entry_bytes
        )
        resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
        for provider, person in records:
            resolver.resolve(provider, person)
        store.commit()
        for name, table in store.tables.items():
            assert table.cached_bytes <= capacity or len(table.cache) == floor, name
            assert table.cached_bytes >= len(table.cache) * entry_bytes, name
        held[entry_bytes] = len(store.tables["sources"].cache)
        store.close()
    assert held[store_module.ENTRY_BYTES] <= capacity // store_module.ENTRY_BYTES
    assert held[0] > 4 * held[store_module.ENTRY_BYTES]


def test_a_negative_entry_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="entry_bytes -1 is negative"):
        open_state(tmp_path / "state", entry_bytes=-1)


def _rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if "VmRSS" in line)


def test_a_commit_gives_the_heaps_free_memory_back(tmp_path: Path) -> None:
    # the cache's churn leaves the C heap with free memory that glibc keeps resident (it
    # gives back only the heap's top): each commit trims it (bench/RESULTS.md, 2026-12-07)
    store = open_state(tmp_path / "state")
    store.commit()
    churn = [bytes(1_000) + bytes([at % 256]) for at in range(60_000)]  # malloc, not pymalloc
    kept = bytes(1_000) + b"the heap's top stays in use"
    before = _rss_bytes()
    del churn
    freed = _rss_bytes()
    store.commit()
    after = _rss_bytes()
    assert kept
    # freeing gave back little (below the heap's top); the commit gave back most of 60 MB
    assert before - freed < 20 * 1024**2
    assert freed - after > 30 * 1024**2
    store.close()


def _decided(store: DiskState, records: list[tuple[str, dict]], *, prefetch: bool) -> list:
    """Every resolution of ``records``, an epoch of 100 at a time, their store reads
    prefetched together or not; committed every 1,000, the cache's bound checked after each
    prefetch."""
    resolver = Resolver(IdentifierHasher(SECRET), state=store.state)
    resolutions = []
    for start in range(0, len(records), 100):
        prepared = [
            resolver.prepare(provider, person, probe=False)
            for provider, person in records[start : start + 100]
        ]
        if prefetch:
            prepared = store.prefetch(prepared)
            for name, table in store.tables.items():
                held = len(table.cache) <= store_module.MIN_CACHE_ENTRIES
                assert table.cached_bytes <= table.room()[0] * 2 or held, name
        resolutions += [resolver.decide(record) for record in prepared]
        if (start + 100) % 1_000 == 0:
            store.commit()
    return resolutions


def test_a_prefetched_store_resolves_and_keeps_what_an_unprefetched_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a prefetch reads an epoch's values together (RocksDB multi-gets) before its records
    # are decided: the resolutions (ids, changes, rules, weights) and the state kept are the
    # same, through evictions of values prefetched and changed, and the ids the in-memory
    # state gives
    # (a floor that 30,000 records' profiles overflow, above what one record holds)
    monkeypatch.setattr(store_module, "MIN_CACHE_ENTRIES", 512)
    records = list(generate(30_000, seed=13))
    resolutions, kept, reads = {}, {}, {}
    for prefetch in (False, True):
        store = open_state(tmp_path / str(prefetch), cache_bytes=1_000_000)
        resolutions[prefetch] = _decided(store, records, prefetch=prefetch)
        reads[prefetch] = {
            name: (table.reads, table.prefetched, table.evictions)
            for name, table in store.tables.items()
        }
        roots = [
            store.state.root(r.person_id) if r.person_id else None for r in resolutions[prefetch]
        ]
        assert roots == _ids_in_memory(records)
        store.flush()
        kept[prefetch] = {
            name: {key: table[key] for key in table} for name, table in store.tables.items()
        }
        kept[prefetch]["next_number"] = {"": store.state.next_number}
        store.close()
    assert resolutions[True] == resolutions[False]
    assert kept[True] == kept[False]
    assert kept[False]["merged_into"]  # (the run went through merges)
    # the cache held fewer values than the state: prefetched values left it, and most reads
    # were prefetched
    for name in ("blocks", "profiles"):
        singles, prefetched, evictions = reads[True][name]
        assert evictions > 0, name
        assert prefetched > 0, name
        assert singles < reads[False][name][0] / 4, (name, reads)

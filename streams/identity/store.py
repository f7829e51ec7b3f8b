"""The resolver's state on disk: RocksDB behind a bounded in-memory cache.

:class:`~streams.identity.resolver.IdentityState` keeps persons, profiles, blocks, source
ids, merges and opt-outs in dicts, so its memory grows with the people it knows (about
0.6 kB a record, bench/scale.py). :func:`open_state` gives an ``IdentityState`` whose maps are
:class:`CachedTable`\\ s instead: each key's value lives in one RocksDB database (one key
prefix per map), and about ``cache_bytes`` of each map's values (pickled) are held in
memory, the least recently used written back when others are read. The resolver uses it
unchanged: it reads values, mutates them in place (a profile appended to, a block extended)
and sets keys, which a write-back cache keeps right, since every cached value that changed is
written back when it leaves the cache and at :meth:`DiskState.commit`: a value read is a
tracked list, set or dict whose in-place changes mark its key dirty, and only the dirty
values are pickled, sealed and written (a value only read costs nothing at a commit).

The same records in the same order give the same ids as the in-memory state
(tests/unit/test_identity_store.py). Given a :class:`~streams.identity.sealing.Sealer` and a
key secret (the worker's ``C2C_STREAMS_STATE=disk``: streams/durable.py), nothing rests in
clear: values are sealed as the Faust tables' are, and block keys (which hold names) are
keyed hashes. :meth:`DiskState.commit` writes what changed since the last commit and a few
metadata values (the changelog offsets the state reflects), in batches of a few MB.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import itertools
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any, cast

from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from streams.identity.resolver import _MAX_BLOCK_SCAN, IdentityState, Prepared, probe_keys
from streams.identity.sealing import Sealer

__all__ = [
    "BLOCK_CACHE_BYTES",
    "COMMIT_CHUNK_BYTES",
    "ENTRY_BYTES",
    "MIN_CACHE_ENTRIES",
    "PREFETCH_CHUNK",
    "STATE_MAPS",
    "CachedTable",
    "DiskState",
    "open_state",
]

# A value the resolver holds while it resolves one record must not leave the cache before
# the record is done (a change to it after it was written back would be lost): one record
# loads at most its probe keys' blocks (about 20) and 64 persons from each.
MIN_CACHE_ENTRIES = 2_048

# What each cached entry costs beyond its value's pickled size (measured 2026-12-07 with
# bench.scale's records: about 500 bytes an entry for a source id or a block's ids, 270-350
# for a merge, an absorbed list or an opt-out): its key, the cache's order, its size and
# store key kept, the value's Python objects beyond their pickle. Counting it bounds a map's
# entries as well as its bytes: counted as pickled size alone, a map of small values (source
# ids, merges) held ten to twenty times its bytes in objects and kept filling for a million
# records and more (RSS rising from 500,000 records to 1.5 million, bench/RESULTS.md).
ENTRY_BYTES = 512

# steps of a merge chain a prefetch follows (a chain is as long as the merges its person went
# through since: IdentityState.root)
_MAX_MERGE_STEPS = 4
# keys a prefetch reads in one RocksDB multi-get (a chunk's values are counted before the next
# chunk is read, so a prefetch stops at its share of the cache)
PREFETCH_CHUNK = 256

_MISSING = object()
_ABSENT = object()  # cached: the store holds no value for the key
# RocksDB's block cache (its default: 32 MB), indexes and filters included, partitioned
# (open_state). Kept outside it, whole, in each open table, they grew with the store (1.5
# to 3 MB a million records, bench/RESULTS.md 2026-12-07); put in a cache this size whole,
# they were evicted and read again, and the resolver took 2.5 times the CPU
BLOCK_CACHE_BYTES = 16 * 1024**2
# A commit is written in batches of about this many bytes (the last one with the metadata):
# one batch of everything changed would hold it all in memory twice at once
COMMIT_CHUNK_BYTES = 4 * 1024**2
_NEXT_NUMBER = b"meta:next_number"
_META = b"meta:"
# the maps of IdentityState kept on disk, each under its own key prefix
STATE_MAPS = (
    "profiles",
    "blocks",
    "sources",
    "merged_into",
    "trusted",
    "optouts",
    "optout_requests",
    "absorbed",
)


def _heap_trimmer() -> Callable[[], object]:
    """What gives the C heap's free memory back to the system after a commit: glibc's
    ``malloc_trim(0)`` (a no-op elsewhere). The cache's churn (values unpickled, evicted,
    pickled again) and RocksDB's memtables leave the allocator's arenas with tens of MB free
    that it keeps resident, more as the run goes on (bench/RESULTS.md, 2026-12-07)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_trim_heap = _heap_trimmer()


def _source_key(key: Any) -> bytes:
    provider, hashed = key
    return f"{provider}\x1f{hashed}".encode()


def _source_from(raw: bytes) -> tuple[str, str]:
    provider, _, hashed = raw.decode().partition("\x1f")
    return provider, hashed


class _Tracked:
    """What a value read from a :class:`CachedTable` is made of: a list, set or dict
    whose every in-place change marks its key dirty in the table (``dirty``), so that a
    commit writes what changed and nothing else. Pickled as the plain container."""

    __slots__ = ()
    _dirty: set[Any]
    _key: Any


def _marking(base: type, names: tuple[str, ...]) -> dict[str, Any]:
    """Methods of a subclass of ``base`` that mark the value dirty, then do as ``base``."""

    def wrap(name: str) -> Any:
        method = getattr(base, name)

        def marked(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._dirty.add(self._key)
            return method(self, *args, **kwargs)

        marked.__name__ = name
        return marked

    return {name: wrap(name) for name in names}


class _List(_Tracked, list):
    __slots__ = ("_dirty", "_key")

    def __reduce_ex__(self, protocol: Any) -> Any:
        return list, (list(self),)


class _Set(_Tracked, set):
    __slots__ = ("_dirty", "_key")

    def __reduce_ex__(self, protocol: Any) -> Any:
        return set, (set(self),)


class _Dict(_Tracked, dict):
    __slots__ = ("_dirty", "_key")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._dirty.add(self._key)
        dict.__setitem__(self, key, _track(value, self._dirty, self._key))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        self.update(other)
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        return dict, (dict(self),)


# every method of list, set and dict that changes the container in place (a dict's setting
# ones are _Dict's own: they track the value set)
_CHANGING = {
    _List: (
        "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
        "__setitem__", "__delitem__", "__iadd__", "__imul__",
    ),
    _Set: (
        "add", "discard", "remove", "pop", "clear", "update", "difference_update",
        "intersection_update", "symmetric_difference_update", "__ior__", "__iand__",
        "__isub__", "__ixor__",
    ),
    _Dict: ("__delitem__", "pop", "popitem", "clear"),
}  # fmt: skip
for _tracked_kind, _names in _CHANGING.items():
    for _name, _method in _marking(_tracked_kind.__mro__[2], _names).items():
        setattr(_tracked_kind, _name, _method)


def _track(value: Any, dirty: set[Any], key: Any) -> Any:
    """``value`` as kept in a table's cache under ``key``: a list, set or dict (a dict's
    values too) made a tracked one that marks ``key`` in ``dirty`` when changed in place.
    A list's or set's items are not changed in place (ids, identities, hashes)."""
    kind = type(value)
    if kind in (_List, _Set, _Dict) and value._dirty is dirty and value._key == key:
        return value
    if isinstance(value, list):
        tracked: Any = _List(value)
    elif isinstance(value, set):
        tracked = _Set(value)
    elif isinstance(value, dict):
        tracked = _Dict()
        tracked._dirty, tracked._key = dirty, key
        for inner, item in value.items():
            dict.__setitem__(tracked, inner, _track(item, dirty, key))
        return tracked
    else:
        return value  # a str, a number, an immutable tuple
    tracked._dirty, tracked._key = dirty, key
    return tracked


class CachedTable(MutableMapping[Any, Any]):
    """One map of the state: values in ``db`` under ``prefix``, pickled; the most recently
    used in :attr:`cache`, about ``capacity`` bytes of them (each entry counted as its
    value's pickled size and ``entry_bytes`` more: :data:`ENTRY_BYTES`; never fewer than
    :data:`MIN_CACHE_ENTRIES` values), written back when they leave it or at
    :meth:`flush` if they changed. A key the store does not hold is cached as absent too
    (most look-ups of blocks and merges find nothing).

    A value read from it may be changed in place (the resolver appends to profiles and
    blocks): it is the cached object, a tracked list, set or dict (:func:`_track`) whose
    changes mark its key dirty, and its new form is what is written back. Only values set
    or changed since they were last written are pickled and written: reading costs nothing
    at a commit. Each key's store key (a keyed hash, for blocks) is kept with its entry."""

    def __init__(
        self,
        db: Rdict,
        prefix: str,
        capacity: int,
        *,
        encode: Callable[[Any], bytes] = lambda key: str(key).encode(),
        decode: Callable[[bytes], Any] = bytes.decode,
        sealer: Sealer | None = None,
        entry_bytes: int = ENTRY_BYTES,
    ) -> None:
        self._db = db
        # what each entry is counted as beyond its value's pickled size (a cached absence:
        # this alone)
        self.entry_bytes = entry_bytes
        self._sealer = sealer
        # keys set or changed in place since they were last written: the values to write
        self.dirty: set[Any] = set()
        self._prefix = prefix.encode() + b":"
        self._capacity = capacity
        self._encode = encode
        self._decode = decode
        self.cache: OrderedDict[Any, Any] = OrderedDict()
        # key -> its value's pickled size as last known (cached keys only)
        self._kept: dict[Any, int] = {}  # (ENTRY_BYTES included)
        # key -> its store key (computed once while cached: block keys are keyed hashes)
        self._at: dict[Any, bytes] = {}
        # the cached entries' counted sizes (pickled size as last known + entry_bytes)
        self.cached_bytes = 0
        self.evictions = 0  # values that left the cache
        self.writes = 0  # values written to the store (changed ones only)
        self.reads = 0  # keys read one at a time (cache misses)
        self.prefetched = 0  # keys read by :meth:`prefetch`
        self.read_s = 0.0  # seconds (wall) in both kinds of read, unpickling included

    def _key(self, key: Any) -> bytes:
        at = self._at.get(key)
        if at is None:
            at = self._prefix + self._encode(key)
            if key in self._kept:
                self._at[key] = at
        return at

    def _size(self, key: Any, pickled: int) -> None:
        """Count ``key``'s cached entry as ``pickled`` bytes of value and
        :attr:`entry_bytes` of the rest."""
        size = pickled + self.entry_bytes
        self.cached_bytes += size - self._kept.get(key, 0)
        self._kept[key] = size

    def changed(self, key: Any, value: Any) -> bytes:
        """The bytes to store for the cached, changed ``value`` of ``key`` (sealed if the
        table seals)."""
        raw = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        self._size(key, len(raw))
        self.writes += 1
        if self._sealer is None:
            return raw
        return self._sealer.seal(self._key(key).hex(), raw)

    def _load(self, key: Any) -> Any:
        cached = self.cache.get(key, _MISSING)
        if cached is not _MISSING:
            self.cache.move_to_end(key)
            return _MISSING if cached is _ABSENT else cached
        return self._read(key)

    def _read(self, key: Any) -> Any:
        """The value of ``key`` (not cached) from the store, cached (_MISSING: none)."""
        started = time.perf_counter()
        at = self._prefix + self._encode(key)
        value = self._cached_from(key, at, self._db.get(at))
        self._evict()
        self.reads += 1
        self.read_s += time.perf_counter() - started
        return value

    def _cached_from(self, key: Any, at: bytes, raw: bytes | None) -> Any:
        """Cache ``raw``, the stored value of ``key`` (not cached; None: there is none) at
        store key ``at``, as the cache holds it (_MISSING: none); the cache not yet evicted."""
        self._at[key] = at
        if raw is None:
            self.cache[key] = _ABSENT
            self._size(key, 0)
            return _MISSING
        plain = raw if self._sealer is None else self._sealer.open(at.hex(), raw)
        value = _track(pickle.loads(plain), self.dirty, key)
        self.cache[key] = value
        self._size(key, len(plain))
        return value

    def peek(self, key: Any, default: Any = None) -> Any:
        """The cached value of ``key`` (``default`` if it is not cached or the store holds
        none), without reading the store or changing the cache's order: for planning a
        :meth:`prefetch`, not for the resolver."""
        value = self.cache.get(key, _ABSENT)
        return default if value is _ABSENT else value

    def room(self) -> tuple[int, int]:
        """What a :meth:`prefetch` may bring in: (bytes, entries), half of what the cache
        holds (its bytes, or :data:`MIN_CACHE_ENTRIES` values whatever their size), the
        other half left to the values the resolver reads and makes meanwhile."""
        return self._capacity // 2, MIN_CACHE_ENTRIES // 2

    def prefetch(self, keys: Iterable[Any], room: tuple[int, int] | None = None) -> int:
        """Read into the cache, in RocksDB multi-gets of :data:`PREFETCH_CHUNK` keys, the
        values of ``keys`` (in the order given, the first needed first) that it does not
        hold, as a miss would read each, until they fill ``room`` (bytes, entries; default
        :meth:`room`; each chunk asks for what is left of it, at their mean size): the rest
        are not read. What is read counts toward the cache's bytes like any value, and the
        least recently used leave it as they do after a miss. Returns
        how many keys were read. Call it between records, never while one is resolved (a
        value the resolver holds could be evicted)."""
        started = time.perf_counter()
        room_bytes, room_entries = self.room() if room is None else room
        cache = self.cache
        wanted = [key for key in dict.fromkeys(keys) if key not in cache]
        loaded = read = 0
        # an entry's counted size as the cache's mean, then as those read so far: a chunk
        # asks for what is left of the room, so that a prefetch passes it by little
        mean = max(self.cached_bytes // max(len(cache), 1), self.entry_bytes, 1)
        while read < len(wanted) and (loaded < room_bytes or read < room_entries):
            left = max(room_entries - read, (room_bytes - loaded) // mean, 1)
            chunk = wanted[read : read + min(left, PREFETCH_CHUNK)]
            places = [self._prefix + self._encode(key) for key in chunk]
            # (a list of keys: RocksDB's MultiGet, a list of values or None back)
            found = cast(list[bytes | None], self._db.get(cast(list[Any], places)))
            for key, at, raw in zip(chunk, places, found, strict=True):
                self._cached_from(key, at, raw)
                loaded += self._kept[key]
                # each value in as one leaves, as a miss does: Python reuses the memory the
                # one evicted freed (evicted after the whole chunk, unpickling took 1.6x the
                # time: new memory; bench/RESULTS.md 2026-12-07)
                self._evict()
            read += len(chunk)
            mean = max(loaded // read, 1)
        self._evict()
        self.prefetched += read
        self.read_s += time.perf_counter() - started
        return read

    def _keep(self, key: Any, value: Any) -> None:
        cached = self.cache.get(key, _ABSENT)
        if cached is _ABSENT:
            if key not in self._kept:
                # a new value's size is known when it is first pickled: until then, the mean
                mean = self.cached_bytes // max(len(self.cache), 1)
                self._size(key, max(mean - self.entry_bytes, 0))
        elif type(value) is str and cached == value:
            self.cache.move_to_end(key)  # the same id again: nothing to write
            return
        self.cache[key] = _track(value, self.dirty, key)
        self.cache.move_to_end(key)
        self.dirty.add(key)
        self._evict()

    def _evict(self) -> None:
        while self.cached_bytes > self._capacity and len(self.cache) > MIN_CACHE_ENTRIES:
            old, evicted = self.cache.popitem(last=False)
            self.evictions += 1
            if evicted is not _ABSENT and old in self.dirty:
                self._db.put(self._key(old), self.changed(old, evicted))
            self.dirty.discard(old)
            self._at.pop(old, None)
            self.cached_bytes -= self._kept.pop(old)

    # (the cache's hits inline: these are most of the resolver's calls)
    def __getitem__(self, key: Any) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._read(key)
        else:
            self.cache.move_to_end(key)
        if value is _MISSING or value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._read(key)
        else:
            self.cache.move_to_end(key)
        return default if value is _MISSING or value is _ABSENT else value

    def __contains__(self, key: object) -> bool:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._read(key)
        else:
            self.cache.move_to_end(key)
        return value is not _MISSING and value is not _ABSENT

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = self._load(key)
        if value is _MISSING:
            self._keep(key, default)
            return self.cache[key]
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._keep(key, value)

    def __delitem__(self, key: Any) -> None:
        if self._load(key) is _MISSING:
            raise KeyError(key)
        self.cache[key] = _ABSENT
        self.dirty.discard(key)
        self._size(key, 0)
        self._db.delete(self._key(key))

    def flush(self) -> Iterator[tuple[bytes, bytes]]:
        """(store key, bytes) of every cached value set or changed since it was last
        written, for the caller to write; they stay cached, but the least recently used
        leave if their sizes, now known, are over the cache's bytes (a new value was
        counted at the mean size until pickled)."""
        for key in self.dirty:
            value = self.cache.get(key, _MISSING)
            if value is not _MISSING and value is not _ABSENT:
                yield self._key(key), self.changed(key, value)
        self.dirty.clear()
        self._evict()  # (nothing dirty: nothing written)

    def __iter__(self) -> Iterator[Any]:
        """Every key, in the store's order (the cache written back first by the caller:
        :meth:`DiskState.flush`); for counts and checks, not the resolver's hot path."""
        start = len(self._prefix)
        for key in self._db.keys(from_key=self._prefix):
            raw = cast(bytes, key)  # raw mode: keys are bytes
            if not raw.startswith(self._prefix):
                break
            yield self._decode(raw[start:])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class DiskState:
    """The RocksDB database under an :class:`IdentityState` from :func:`open_state`."""

    def __init__(self, db: Rdict, state: IdentityState, tables: dict[str, CachedTable]) -> None:
        self.db = db
        self.state = state
        self.tables = tables

    def prefetch(self, records: Sequence[Prepared]) -> list[Prepared]:
        """Read into the maps' caches, in a few RocksDB multi-gets (:meth:`CachedTable.prefetch`),
        what resolving ``records`` (:meth:`~streams.identity.resolver.Resolver.prepare`'s,
        in the order they will be decided) will read that the caches do not hold; returns
        ``records``, each that will be compared with its probe keys (for ``decide``, which
        then does not compute them again). Call it before the records are decided, between
        two records. It reads in steps, each from what the one before brought in: the
        records' source ids; the persons those name (their merges, profiles and trusted
        identifiers); the blocks of the probe keys of each record that will be compared;
        the persons those blocks name (their merges, then their survivors' profiles). It
        guesses what ``decide`` will read from the state as it is before the first record
        (a record decided earlier changes it): a wrong guess costs a read, never a result,
        since a prefetch only fills the caches as the misses would. Each map reads at most
        what its cache has room for (:meth:`CachedTable.room`), the first records' values
        first."""
        tables = self.tables
        sources, profiles = tables["sources"], tables["profiles"]
        sources.prefetch(record.source_key for record in records if record.source_key[1])
        known = [
            sources.peek(record.source_key) if record.source_key[1] else None for record in records
        ]
        roots = self._roots([person for person in known if person is not None])
        profiles.prefetch(roots.values())
        tables["trusted"].prefetch(roots.values())
        planned: list[Prepared] = []
        for record, person in zip(records, known, strict=True):
            identity = record.identity
            if person is None and identity.usable() is not None:
                planned.append(record)  # (to review: compared with no one)
                continue
            profile = profiles.peek(roots.get(person, "")) if person is not None else None
            if profile is not None and identity in profile:
                planned.append(record)  # the source's repeat: compared with no one
                continue
            keys = probe_keys(identity) if record.keys is None else record.keys
            planned.append(record._replace(keys=keys))
        probed = [key for record in planned if record.keys is not None for key in record.keys]
        blocks = tables["blocks"]
        blocks.prefetch(probed)
        candidates = dict.fromkeys(
            itertools.chain.from_iterable(
                blocks.peek(key, ())[-_MAX_BLOCK_SCAN:] for key in dict.fromkeys(probed)
            )
        )
        profiles.prefetch(self._roots(list(candidates)).values())
        return planned

    def _roots(self, persons: Sequence[str]) -> dict[str, str]:
        """Each of ``persons``' survivor (:meth:`IdentityState.root`), read in multi-gets
        of their merges, a step of each chain at a time (one or two for most); a person whose
        merge the cache has no room for counts as its own survivor (a guess)."""
        merged_into = self.tables["merged_into"]
        roots = {person: person for person in persons}
        for _ in range(_MAX_MERGE_STEPS):
            merged_into.prefetch(roots.values())
            moved = False
            for person, root in roots.items():
                survivor = merged_into.peek(root)
                if survivor is not None:
                    roots[person] = survivor
                    moved = True
            if not moved:
                break
        return roots

    def meta(self, name: str) -> bytes | None:
        """The metadata value ``name`` written by :meth:`commit` (None if there is none)."""
        raw = self.db.get(_META + name.encode())
        return None if raw is None else bytes(raw)

    def forget(self, name: str) -> None:
        """Delete the metadata value ``name`` (before a write that makes it untrue)."""
        self.db.delete(_META + name.encode())

    def commit(self, meta: dict[str, bytes] | None = None) -> None:
        """Write every value changed since the last commit, then the next person number and
        ``meta`` (name -> bytes), in batches of about :data:`COMMIT_CHUNK_BYTES`. Not synced
        (RocksDB's log is off): a crash loses the commits since the last :meth:`flush`. If
        the commit takes more than one batch, the first deletes ``meta``'s names, so that a
        crash between them leaves no ``meta`` that the values written do not reflect."""
        batch = WriteBatch(raw_mode=True)
        for name in meta or {}:
            batch.delete(_META + name.encode())
        size = 0
        for table in self.tables.values():
            for at, raw in table.flush():
                if size >= COMMIT_CHUNK_BYTES:
                    self.db.write(batch)
                    batch, size = WriteBatch(raw_mode=True), 0
                batch.put(at, raw)
                size += len(at) + len(raw)
        batch.put(_NEXT_NUMBER, str(self.state.next_number).encode())
        for name, value in (meta or {}).items():
            batch.put(_META + name.encode(), value)
        self.db.write(batch)
        _trim_heap()

    def flush(self, meta: dict[str, bytes] | None = None) -> None:
        """:meth:`commit`, then RocksDB's memory written to its files (kept on a crash)."""
        self.commit(meta)
        self.db.flush()

    def close(self) -> None:
        """:meth:`flush`, then close the database."""
        self.flush()
        self.db.close()


def _hashed_key(secret: bytes) -> Callable[[Any], bytes]:
    """Block keys (names and birth dates in them) as keyed hashes under ``secret``."""
    key = hmac.digest(secret, b"c2c identity-state block keys", hashlib.sha256)

    def encode(block: Any) -> bytes:
        return hmac.digest(key, str(block).encode(), hashlib.sha256)[:20].hex().encode()

    return encode


def open_state(
    path: Path,
    cache_bytes: int = 32 * 1024**2,
    *,
    sealer: Sealer | None = None,
    key_secret: bytes | None = None,
    entry_bytes: int = ENTRY_BYTES,
) -> DiskState:
    """An :class:`IdentityState` kept in RocksDB at ``path`` (created if missing; a store
    written before is resumed as it was at its last :meth:`DiskState.commit` that reached
    disk), with about ``cache_bytes`` of each map's values in memory, each counted as its
    pickled size and ``entry_bytes`` more (:data:`ENTRY_BYTES`; Python's objects take
    several times a pickle; at least :data:`MIN_CACHE_ENTRIES` values whatever their
    size), and RocksDB's blocks in :data:`BLOCK_CACHE_BYTES`. With
    ``sealer``, values are
    sealed at rest; with ``key_secret``, block keys are keyed hashes (iterating ``blocks``
    then gives hashes)."""
    if cache_bytes < 0:
        raise ValueError(f"cache_bytes {cache_bytes} is negative: give 0 bytes or more")
    if entry_bytes < 0:
        raise ValueError(f"entry_bytes {entry_bytes} is negative: give 0 bytes or more")
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # one memtable budget for every map: RocksDB's default (64 MB, several) would be most of
    # the memory the cache is bounded to save
    options.set_write_buffer_size(32 * 1024**2)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    # most probes name a block that does not exist: a Bloom filter answers without a read
    table.set_bloom_filter(10, False)
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    # indexes and filters cut in partitions of a few kB, read into the block cache as data
    # blocks are (bounded with it), each table keeping only its small top-level index pinned:
    # kept outside the cache, whole, they grew with the store (bench/RESULTS.md 2026-12-07)
    table.set_index_type(BlockBasedIndexType.two_level_index_search())
    table.set_partition_filters(True)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_top_level_index_and_filter(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    db = Rdict(str(path), options=options)
    # the changelog, not RocksDB's own log, is what a lost machine rebuilds from (the design)
    writes = WriteOptions()
    # (a property at run time; rocksdict's stubs declare a method)
    writes.disable_wal = True  # type: ignore[method-assign,assignment]
    db.set_write_options(writes)
    tables = {
        name: CachedTable(db, name, cache_bytes, sealer=sealer, entry_bytes=entry_bytes)
        for name in STATE_MAPS
    }
    tables["sources"] = CachedTable(
        db,
        "sources",
        cache_bytes,
        encode=_source_key,
        decode=_source_from,
        sealer=sealer,
        entry_bytes=entry_bytes,
    )
    if key_secret is not None:
        tables["blocks"] = CachedTable(
            db,
            "blocks",
            cache_bytes,
            encode=_hashed_key(key_secret),
            decode=bytes.decode,
            sealer=sealer,
            entry_bytes=entry_bytes,
        )
    state = IdentityState(**cast(dict[str, Any], tables))
    raw = db.get(_NEXT_NUMBER)
    state.next_number = int(raw.decode()) if raw is not None else state.next_number
    return DiskState(db, state, tables)

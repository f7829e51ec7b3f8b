"""The resolver's state on disk: RocksDB behind a bounded in-memory cache.

:class:`~streams.identity.resolver.IdentityState` keeps persons, profiles, blocks, source
ids, merges and opt-outs in dicts, so its memory grows with the people it knows (about
0.6 kB a record, bench/scale.py). :func:`open_state` gives an ``IdentityState`` whose maps are
:class:`CachedTable`\\ s instead: each key's value lives in one RocksDB database (one key
prefix per map), and at most ``cache_entries`` values per map are held in memory, the least
recently used written back when another is read. The resolver uses it unchanged: it reads
values, mutates them in place (a profile appended to, a block extended) and sets keys, which
a write-back cache keeps right, since every cached value is written back when it leaves the
cache and at :meth:`DiskState.flush`.

The same records in the same order give the same ids as the in-memory state
(tests/unit/test_identity_store.py). Not built yet: the store is local to the process; the
worker still keeps its Faust tables and rebuilds an in-memory state from them (streams/README,
"Scaling out: the design").
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast

from rocksdict import BlockBasedOptions, Options, Rdict, WriteBatch, WriteOptions

from streams.identity.resolver import IdentityState

__all__ = ["MIN_CACHE_ENTRIES", "CachedTable", "DiskState", "open_state"]

# A value the resolver holds while it resolves one record must not leave the cache before
# the record is done (a change to it after it was written back would be lost): one record
# loads at most its probe keys' blocks (about 20) and 64 persons from each.
MIN_CACHE_ENTRIES = 2_048

_MISSING = object()
_NEXT_NUMBER = b"meta:next_number"
# the maps of IdentityState kept on disk, each under its own key prefix
_MAPS = (
    "profiles",
    "blocks",
    "sources",
    "merged_into",
    "trusted",
    "optouts",
    "optout_requests",
    "absorbed",
)


def _source_key(key: Any) -> bytes:
    provider, hashed = key
    return f"{provider}\x1f{hashed}".encode()


def _source_from(raw: bytes) -> tuple[str, str]:
    provider, _, hashed = raw.decode().partition("\x1f")
    return provider, hashed


class CachedTable(MutableMapping[Any, Any]):
    """One map of the state: values in ``db`` under ``prefix``, pickled; the last
    ``capacity`` used in :attr:`cache`, written back when they leave it or at :meth:`flush`.

    A value read from it may be mutated in place (the resolver appends to profiles and
    blocks): it is the cached object, and its new form is what is written back."""

    def __init__(
        self,
        db: Rdict,
        prefix: str,
        capacity: int,
        *,
        encode: Callable[[Any], bytes] = lambda key: str(key).encode(),
        decode: Callable[[bytes], Any] = bytes.decode,
    ) -> None:
        self._db = db
        self._prefix = prefix.encode() + b":"
        self._capacity = capacity
        self._encode = encode
        self._decode = decode
        self.cache: OrderedDict[Any, Any] = OrderedDict()
        self.evictions = 0  # values written back to leave the cache

    def _key(self, key: Any) -> bytes:
        return self._prefix + self._encode(key)

    def _load(self, key: Any) -> Any:
        cached = self.cache.get(key, _MISSING)
        if cached is not _MISSING:
            self.cache.move_to_end(key)
            return cached
        raw = self._db.get(self._key(key))
        if raw is None:
            return _MISSING
        value = pickle.loads(raw)
        self._keep(key, value)
        return value

    def _keep(self, key: Any, value: Any) -> None:
        self.cache[key] = value
        self.cache.move_to_end(key)
        if len(self.cache) > self._capacity:
            old, evicted = self.cache.popitem(last=False)
            self.evictions += 1
            self._db.put(self._key(old), pickle.dumps(evicted, pickle.HIGHEST_PROTOCOL))

    def __getitem__(self, key: Any) -> Any:
        value = self._load(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._load(key)
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        return self._load(key) is not _MISSING

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = self._load(key)
        if value is _MISSING:
            self._keep(key, default)
            return default
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._keep(key, value)

    def __delitem__(self, key: Any) -> None:
        if self._load(key) is _MISSING:
            raise KeyError(key)
        del self.cache[key]
        self._db.delete(self._key(key))

    def flush(self, batch: WriteBatch) -> None:
        """Add every cached value to ``batch`` (they stay cached)."""
        for key, value in self.cache.items():
            batch.put(self._key(key), pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

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

    def flush(self) -> None:
        """Write every cached value and the next person number to disk, in one batch."""
        batch = WriteBatch(raw_mode=True)
        for table in self.tables.values():
            table.flush(batch)
        batch.put(_NEXT_NUMBER, str(self.state.next_number).encode())
        self.db.write(batch)
        self.db.flush()

    def close(self) -> None:
        """:meth:`flush`, then close the database."""
        self.flush()
        self.db.close()


def open_state(path: Path, cache_entries: int = 200_000) -> DiskState:
    """An :class:`IdentityState` kept in RocksDB at ``path`` (created if missing; a store
    written before is resumed as it was at its last :meth:`DiskState.flush`), with at most
    ``cache_entries`` values of each map in memory (at least :data:`MIN_CACHE_ENTRIES`)."""
    if cache_entries < MIN_CACHE_ENTRIES:
        raise ValueError(
            f"cache_entries {cache_entries} is below {MIN_CACHE_ENTRIES}: a record's candidates "
            "could leave the cache while it is resolved; give a larger cache"
        )
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # one memtable budget for every map: RocksDB's default (64 MB, several) would be most of
    # the memory the cache is bounded to save
    options.set_write_buffer_size(32 * 1024**2)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    # most probes name a block that does not exist: a Bloom filter answers without a read
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    db = Rdict(str(path), options=options)
    # the changelog, not RocksDB's own log, is what a lost machine rebuilds from (the design)
    writes = WriteOptions()
    # (a property at run time; rocksdict's stubs declare a method)
    writes.disable_wal = True  # type: ignore[method-assign,assignment]
    db.set_write_options(writes)
    tables = {
        name: (
            CachedTable(db, name, cache_entries, encode=_source_key, decode=_source_from)
            if name == "sources"
            else CachedTable(db, name, cache_entries)
        )
        for name in _MAPS
    }
    state = IdentityState(**cast(dict[str, Any], tables))
    raw = db.get(_NEXT_NUMBER)
    state.next_number = int(raw.decode()) if raw is not None else state.next_number
    return DiskState(db, state, tables)

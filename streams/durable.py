"""The worker's resolver state on disk (``C2C_STREAMS_STATE=disk``), kept across restarts.

In memory (``C2C_STREAMS_STATE=memory``, the default), the worker rebuilds its resolver
state at every start from every person and source id of its Faust tables: a restart reads
the whole state. On disk, the state is :func:`streams.identity.store.open_state`'s
RocksDB store under ``<data dir>/streams/<app id>/identity-state`` (values sealed, block
keys hashed: nothing in clear), and each batch's commit records in it, in the same write,
the changelog offsets the state reflects (the next offset of each of the tables' changelog
partitions). The changelogs stay the source of truth:

- at start, if the store is there and consistent (its offsets recorded, none beyond a
  changelog's end, written under the same identity keys), only the changelog messages after
  its offsets are read and applied (:func:`apply_person`, :func:`apply_source`): a restart
  reads the tail, whatever the state's size;
- otherwise (a new machine, a store left mid-batch by a crash, a key rotation, a value the
  tail cannot apply) the store is emptied and rebuilt from the tables as the in-memory state
  is, one person at a time in id order (:func:`in_id_order`, a sort on disk), and its
  offsets set to the changelogs' ends.

A commit is not synced to disk at once (RocksDB's own log is off, as the changelog is the
log): a crash loses the last commits whole, and the tail after the last commit that reached
disk is read again. A batch's first write forgets the recorded offsets (:meth:`begin`), so a
store that kept part of a batch is never taken as consistent.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from rocksdict import Options, Rdict

from streams.identity.resolver import IdentityState
from streams.identity.sealing import Sealer
from streams.identity.snapshots import decode_snapshot
from streams.identity.store import DiskState, open_state
from streams.tables import parse_source_key

__all__ = [
    "DurableState",
    "StaleStore",
    "apply_person",
    "apply_source",
    "apply_tail",
    "in_id_order",
]

_OFFSETS = "changelog_offsets"  # {"topic:partition": next offset}
_KEYS = "identity_keys"  # which identity keys the state was written under
# How often a commit is also written to RocksDB's files (a crash reads the tail since)
PERSIST_EVERY_S = 2.0


class StaleStore(Exception):
    """The changelog tail holds something the kept state cannot take as it is (written
    under other keys): the state is rebuilt from the changelogs."""


def _number(person_id: str) -> int:
    return int(person_id[1:]) if person_id[1:].isdigit() else 0


def apply_person(state: IdentityState, person_id: str, snapshot: Mapping[str, Any]) -> None:
    """Make ``state`` hold ``person_id`` as its changelog ``snapshot``
    (:meth:`IdentityState.snapshot`) says, as :meth:`IdentityState.restore` files a person:
    a tombstone merges it into its survivor, a profile replaces the person's and files its
    identities in their blocks. Applying a snapshot twice changes nothing."""
    state.next_number = max(state.next_number, _number(person_id) + 1)
    merged = snapshot.get("merged_into")
    if merged is not None:
        if person_id in state.merged_into:
            return
        state.merged_into[person_id] = str(merged)
        state.unfile(person_id, state.profiles.pop(person_id, []), ())
        state.trusted.pop(person_id, None)
        for request_id in state.optouts.pop(person_id, {}):
            if state.optout_requests.get(request_id) == person_id:
                del state.optout_requests[request_id]
        # (the survivor's own snapshot, in the same tail, carries what it took over)
        moved = state.absorbed.pop(person_id, [])
        state.absorbed.setdefault(state.root(person_id), []).extend([person_id, *moved])
        return
    state.file_person(person_id, snapshot)


def apply_source(state: IdentityState, key: tuple[str, str], person_id: str | None) -> None:
    """Make ``state`` map the source id ``key`` to ``person_id`` (None: forget it)."""
    if person_id is None:
        state.sources.pop(key, None)
    else:
        state.sources[key] = person_id
        # as restore numbers: past every id a source names (its person's snapshot may be lost)
        state.next_number = max(state.next_number, _number(person_id) + 1)


def apply_tail(
    state: IdentityState,
    persons: Mapping[str, bytes | None],
    sources: Mapping[str, Any],
    *,
    sealer: Sealer,
    key_version: int,
    keys: int,
) -> None:
    """Apply the changelogs' tail to ``state``: ``persons`` (person id -> its last sealed
    value in the tail) in id order, as :meth:`IdentityState.restore` files them, then
    ``sources`` (source key -> person id, None for a tombstone). :class:`StaleStore` if the
    tail holds a value sealed under another key version, an unsealed one, a deleted person
    or a source id keyed under another key chain (an earlier worker's: a rebuild re-keys)."""
    for person_id in sorted(persons, key=_number):
        value = persons[person_id]
        if value is None or sealer.version(value) != key_version:
            raise StaleStore(f"the tail's value of {person_id} is not sealed under the current key")
        snapshot = decode_snapshot(sealer.open(person_id, value), where=f"changelog {person_id}")
        apply_person(state, person_id, snapshot)
    for key, person_id in sources.items():
        parsed = parse_source_key(key)
        if parsed.keys != keys:
            if person_id is None:
                continue  # an earlier key's tombstone: the state never held it
            raise StaleStore("the tail holds a source id keyed under another key chain")
        found = None if person_id is None else str(person_id)
        apply_source(state, (parsed.provider, parsed.source_id), found)


def in_id_order(items: Iterable[tuple[str, bytes]], folder: Path) -> Iterator[tuple[str, bytes]]:
    """``items`` (person id, value) in id order (the ids' numbers, as
    :meth:`IdentityState.restore` sorts them), sorted through a temporary RocksDB database
    at ``folder`` instead of in memory (a state rebuilt on disk is never held whole);
    ``folder`` is removed once the last item is read (or the reading stops)."""
    if folder.exists():
        Rdict.destroy(str(folder))
        shutil.rmtree(folder, ignore_errors=True)
    db = Rdict(str(folder), options=Options(raw_mode=True))
    try:
        for person_id, value in items:
            db[_number(person_id).to_bytes(8, "big") + person_id.encode()] = value
        for key, value in db.items():
            yield cast(bytes, key)[8:].decode(), cast(bytes, value)
    finally:
        db.close()
        Rdict.destroy(str(folder))
        shutil.rmtree(folder, ignore_errors=True)


class DurableState:
    """The on-disk store of one worker's resolver state and the changelog offsets it
    reflects. ``keys`` names the identity keys in use (the key chain and the sealing key
    version): a store written under others is rebuilt."""

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        key_secret: bytes,
        keys: str,
        cache_bytes: int = 32 * 1024**2,
    ) -> None:
        self.path = path
        self._sealer = sealer
        self._key_secret = key_secret
        self._keys = keys
        self._cache_bytes = cache_bytes
        self._store: DiskState | None = None
        self._offsets: dict[str, int] = {}
        self._persisted = time.monotonic()

    @property
    def store(self) -> DiskState:
        if self._store is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._store = open_state(
                self.path,
                self._cache_bytes,
                sealer=self._sealer,
                key_secret=self._key_secret,
            )
        return self._store

    def offsets(self) -> dict[tuple[str, int], int] | None:
        """(changelog, partition) -> the next offset the state has not applied, as its
        last commit recorded; None if the store holds no consistent state (missing, left
        mid-batch, or written under other identity keys)."""
        store = self.store
        keys = store.meta(_KEYS)
        raw = store.meta(_OFFSETS)
        if raw is None or keys is None or keys.decode() != self._keys:
            return None
        self._offsets = json.loads(raw)
        places = {}
        for place, offset in self._offsets.items():
            topic, _, partition = place.rpartition(":")
            places[(topic, int(partition))] = int(offset)
        return places

    def consistent_with(self, ends: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The offsets to read the changelogs from (:meth:`offsets`) if the store is
        consistent with changelogs that end at ``ends``; raises :class:`StaleStore` if not
        (an offset past a changelog's end: the changelog was recreated)."""
        offsets = self.offsets()
        if offsets is None:
            raise StaleStore(f"{self.path} holds no committed state")
        for place, offset in offsets.items():
            if place in ends and offset > ends[place]:
                raise StaleStore(
                    f"{self.path} reflects {place[0]}[{place[1]}] up to offset {offset}, past "
                    f"its end {ends.get(place, 0)}"
                )
        return {place: offsets.get(place, 0) for place in ends}

    def reset(self) -> DiskState:
        """An empty store (what was there deleted), to rebuild into."""
        if self._store is not None:
            self._store.db.close()
            self._store = None
        if self.path.exists():
            Rdict.destroy(str(self.path))
            shutil.rmtree(self.path, ignore_errors=True)
        self._offsets = {}
        return self.store

    def begin(self) -> None:
        """Before a batch's first write: the recorded offsets no longer hold."""
        self.store.forget(_OFFSETS)

    def commit(self, written: Mapping[tuple[str, int], int], *, next_offsets: bool = False) -> None:
        """After a batch's changelog is confirmed: its state and the offsets it reflects.
        ``written``: (changelog, partition) -> the last offset written (or, with
        ``next_offsets``, the next offset to read)."""
        for (topic, partition), offset in written.items():
            self._offsets[f"{topic}:{partition}"] = offset if next_offsets else offset + 1
        meta = {_OFFSETS: json.dumps(self._offsets).encode(), _KEYS: self._keys.encode()}
        now = time.monotonic()
        if now - self._persisted >= PERSIST_EVERY_S:
            self.store.flush(meta)
            self._persisted = now
        else:
            self.store.commit(meta)

    def persist(self) -> None:
        """Write RocksDB's memory to its files (at a clean stop: a restart reads no tail)."""
        if self._store is not None:
            self._store.db.flush()

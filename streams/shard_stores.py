"""Each shard's state on disk for a shard host (streams/shards.py): a store per shard
(streams/identity/store.py) with the apply offset it reflects."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from streams.identity.resolver import IdentityState
from streams.identity.sealing import Sealer
from streams.identity.store import DiskState, open_state

__all__ = ["ShardStores"]

log = logging.getLogger(__name__)

_OFFSET = "applies-offset"  # the next apply call (its offset) a store has not applied
_KEYS = "keys"


class ShardStores:
    """Each shard's state on disk (streams/identity/store.py: RocksDB behind a bounded
    cache, values sealed, block keys hashed) under ``root``/<partition>, with the applies
    offset it reflects: a host started again, or given a shard back, replays only the
    apply calls after it. A store without that offset (left mid-commit by a crash: RocksDB's
    log is off) or written under other identity keys (``keys``) is emptied and rebuilt."""

    def __init__(
        self, root: Path, sealer: Sealer, key_secret: bytes, keys: str, cache_bytes: int
    ) -> None:
        self.root = root
        self._sealer, self._key_secret = sealer, key_secret
        self._keys = keys
        self._cache_bytes = cache_bytes
        self._open: dict[int, DiskState] = {}

    def open(self, partition: int) -> tuple[IdentityState, int]:
        """Shard ``partition``'s state and the applies offset it reflects (0: empty)."""
        path = self.root / str(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = self._store(path)
        offset, keys = store.meta(_OFFSET), store.meta(_KEYS)
        if offset is None or keys is None or keys.decode() != self._keys:
            log.info(
                "shard %d: no consistent store (new, or left mid-commit): a new one", partition
            )
            store.db.close()
            shutil.rmtree(path)
            store = self._store(path)
            offset = b"0"
        self._open[partition] = store
        return store.state, int(offset)

    def _store(self, path: Path) -> DiskState:
        return open_state(path, self._cache_bytes, sealer=self._sealer, key_secret=self._key_secret)

    def commit(self, partition: int, offset: int) -> None:
        """Shard ``partition``'s changes written, as reflecting calls up to ``offset``."""
        self._open[partition].commit({_OFFSET: str(offset).encode(), _KEYS: self._keys.encode()})

    def close(self, partition: int) -> None:
        """Shard ``partition``'s store written to its files and closed (it moved)."""
        store = self._open.pop(partition, None)
        if store is not None:
            store.close()

    def close_all(self) -> None:
        for partition in list(self._open):
            self.close(partition)

"""The resolver's writes to its Faust tables, sent through a librdkafka producer of ours.

A Faust table write (``table[key] = value``) stores the value and sends it to the table's
changelog as one message through Faust's producer buffer and aiokafka: about a fifth of
the resolver's CPU at 0.1-0.2 person writes a record (py-spy of the resolver in
bench.end_to_end), in pure Python per message. :class:`TableWriter` does what that write
does, the same bytes to the same places, at librdkafka's cost: the value goes into the
table's store (RocksDB or memory, serialised by the table's own serializers), the same key
and value bytes go to the changelog topic, on the partition of the event being processed,
with a :class:`~streams.delivery.BatchProducer` that tracks offsets (the worker's
changelog producer, confirmed with its results before a batch is acknowledged); once
Kafka confirmed them (:meth:`TableWriter.record_offsets`), the store records the
changelog offset it holds, as Faust does after each send, so that a restart reads only
the changelog written after it.

Recovery is Faust's own: it reads the changelog into the store at start and after a
rebalance, whoever produced the messages.

The ``identity-sources`` table's keys are ``provider``, a unit separator, ``#``, the number
of keys that hashed it, ``:`` and the keyed hash of the source's person id
(:func:`source_key`): no source id is kept in clear,
since some are identifiers (the wage source's is the SSN). Workers before this format
wrote the id in clear; :func:`parse_source_key` tells such a key apart, and the worker
re-keys it and deletes it (a tombstone on the changelog) when it rebuilds its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from faust.types import TP

from streams.delivery import BatchProducer

__all__ = ["SourceKey", "TableWriter", "parse_source_key", "source_key"]

_SOURCE_SEP = "\x1f"
_HASHED = "#"


class SourceKey(NamedTuple):
    """An ``identity-sources`` key read back: the provider, the source id part, and how
    many keys of the hash chain hashed it (:class:`~streams.identity.resolver.
    IdentifierHasher`; 0: a clear id written by a worker before hashing)."""

    provider: str
    source_id: str
    keys: int


def source_key(provider: str, hashed_id: str, keys: int = 1) -> str:
    """The ``identity-sources`` key of ``provider``'s person id, given as its keyed hash
    (:meth:`~streams.identity.resolver.IdentifierHasher.source_id`) made with ``keys``
    keys."""
    return f"{provider}{_SOURCE_SEP}{_HASHED}{keys}:{hashed_id}"


def parse_source_key(key: str) -> SourceKey:
    """What :func:`source_key` (or an earlier worker's ``provider\\x1fid``) wrote."""
    provider, _, rest = key.partition(_SOURCE_SEP)
    keys, colon, digest = rest[1:].partition(":")
    if rest.startswith(_HASHED) and colon and keys.isdigit() and _is_digest(digest):
        return SourceKey(provider, digest, int(keys))
    return SourceKey(provider, rest, 0)


def _is_digest(text: str) -> bool:
    # 32 lower-case hex digits, as IdentifierHasher gives
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


class TableWriter:
    """Writes ``tables``' values to their stores and changelogs; see the module docstring.

    Call :meth:`put` while Faust's current event is the one the write belongs to (a
    RocksDB store files the value under its partition), then the producer's ``confirm``
    and :meth:`record_offsets` before the batch is acknowledged."""

    def __init__(self, producer: BatchProducer, app: Any, tables: Sequence[Any]) -> None:
        """``producer`` must track offsets (``track_offsets=True``); what else it carries
        is only counted against its offsets if it goes to a table's changelog."""
        self._serializers = app.serializers
        self._changelogs = {id(t): t.changelog_topic.get_topic_name() for t in tables}
        self._tables = {t.changelog_topic.get_topic_name(): t for t in tables}
        self._producer = producer

    def put(self, table: Any, key: Any, value: Any, partition: int) -> None:
        """Store ``value`` under ``key`` in ``table`` and queue it for its changelog on
        ``partition`` (the source event's, as Faust's own write does)."""
        table.data[key] = value
        self._producer.send(
            self._changelogs[id(table)],
            self._serializers.dumps_key(table.key_type, key, serializer=table.key_serializer),
            self._serializers.dumps_value(
                table.value_type, value, serializer=table.value_serializer
            ),
            partition=partition,
        )

    def delete(self, table: Any, key: Any, partition: int) -> None:
        """Delete ``key`` from ``table``'s store and queue a tombstone (no value) for its
        changelog, which compaction then rids of every earlier value of the key."""
        if key in table.data:
            del table.data[key]
        self._producer.send(
            self._changelogs[id(table)],
            self._serializers.dumps_key(table.key_type, key, serializer=table.key_serializer),
            None,
            partition=partition,
        )

    def record_offsets(self) -> dict[tuple[str, int], int]:
        """After the producer's ``confirm``: record in each store the last changelog offset
        confirmed since the last call (what Faust keeps in RocksDB so that a restart reads
        only the changelog after it); returns them, (changelog, partition) -> offset."""
        recorded = {}
        for (topic, partition), offset in self._producer.offsets().items():
            table = self._tables.get(topic)
            if table is not None:
                table.data.set_persisted_offset(TP(topic, partition), offset)
                recorded[(topic, partition)] = offset
        return recorded

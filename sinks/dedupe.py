"""Each linked event's fact row written at most once, before FINAL too.

Copies of a linked event reach the sink two ways: the sink replays what it wrote but did
not commit before a crash (the same Kafka offsets), and the identity worker publishes again
what it published after its last commit before a crash (new offsets, perhaps under the
person's current survivor, perhaps in another sink's partition). Before a batch's fact
rows are written, :class:`FactDedupe` asks ClickHouse which of its event ids each fact
table already holds, in one query, and the batch keeps only the copies to write
(:func:`plan`):

- of the copies of one event in the batch, only the one published last;
- a copy whose event is stored under the same person is not written again;
- a copy under another person than the stored one, published after it, replaces it: the
  stored copies are deleted (a lightweight delete, as the opt-out removals are), then it is
  written. So the latest publication wins, as ``ReplacingMergeTree(ingested_at)`` and
  FINAL gave before, and on a cluster the copy on another shard is gone;
- one published before the stored one is not written (the stored one is newer).

It never brings back what an opt-out removed: a removed row is not stored, so a copy of it
is written only if the opt-out filter admitted it (sinks/optouts.py), as without this step.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sinks.batch import Batch
from sinks.cluster import ClusterSchema, cluster_form
from sinks.wire import event_and_person

__all__ = ["Copy", "FactDedupe", "Stored", "delete_statement", "lookup_statement", "plan"]

# ClickHouse parses a query of at most max_query_size bytes (256 KiB by default); an event
# id in the IN list takes 39 (a quoted UUID and a comma)
_BYTES_AN_ID = 40
_QUERY_BYTES = 64 * 1024


class Copy(NamedTuple):
    """A copy of a linked event in a batch: its event id, person id and when it was
    published (epoch ms)."""

    event_id: str
    person_id: str
    published: int


class Stored(NamedTuple):
    """What a fact table holds of an event: the person ids of its copies, and when the
    latest was published (epoch ms; 0 for rows written before migration 0013)."""

    persons: frozenset[str]
    published: int


def plan(copies: Sequence[Copy], stored: Mapping[str, Stored]) -> tuple[list[bool], list[str]]:
    """For ``copies`` (one fact table's, in the batch's order) and what the table holds of
    their events (``stored``): which to write, and the event ids whose stored copies are
    deleted first (the module docstring's rules)."""
    last: dict[str, int] = {}  # event id -> the index of the copy published last
    for index, copy in enumerate(copies):
        before = last.get(copy.event_id)
        if before is None or copies[before].published <= copy.published:
            last[copy.event_id] = index
    write = [False] * len(copies)
    replaced: list[str] = []
    for event, index in last.items():
        copy = copies[index]
        found = stored.get(event)
        if found is None:
            write[index] = True
        elif found.persons != {copy.person_id} and copy.published > found.published:
            write[index] = True
            replaced.append(event)
    return write, sorted(replaced)


def lookup_statement(tables: Sequence[str]) -> str:
    """One query for what each of ``tables`` holds of the event ids of its parameter
    (``ids_0`` for the first table, and so on): (table, event id, person id, latest
    publication) per stored person of an event. The tables are ordered by event id: a
    range read an id."""
    return " UNION ALL ".join(
        f"SELECT '{table}', toString(event_id), person_id, "
        f"toUnixTimestamp64Milli(max(published_at)) FROM {table} "
        f"WHERE event_id IN %(ids_{n})s GROUP BY event_id, person_id"
        for n, table in enumerate(tables)
    )


def delete_statement(table: str) -> str:
    """Remove every copy in ``table`` of the event ids of parameter ``ids``, as a patch part
    (migration 0007; as the opt-out deletes): the copies inserted after it stay."""
    return (
        f"DELETE FROM {table} WHERE event_id IN %(ids)s "
        "SETTINGS lightweight_delete_mode = 'lightweight_update'"
    )


class FactDedupe:
    """Takes out of a batch the fact rows and wire messages that ClickHouse holds already
    (the module docstring), through ``client`` (the caller holds the sink's lock).
    ``cluster``: the schema's cluster, whose deletes run on every shard's local tables;
    None on a single server. ``counts``: ``dedupe.skipped`` (copies not written),
    ``dedupe.replaced`` (stored copies deleted for a later one under another person)."""

    def __init__(self, client: Any, *, cluster: ClusterSchema | None = None) -> None:
        self._client = client
        self._cluster = cluster
        self.counts: Counter[str] = Counter()

    def apply(self, batch: Batch) -> None:
        """Keep in ``batch`` (in place) only the fact rows and wire messages to write, and
        delete the stored copies they replace. Raises what the client raised (nothing is
        taken out then)."""
        copies = _copies(batch)
        tables = [t for t, c in copies.items() if c]
        if not tables:
            return
        stored = self._stored(tables, copies)
        for table in tables:
            write, replaced = plan(copies[table], stored.get(table, {}))
            if replaced:
                delete = delete_statement(table)
                cluster = self._cluster
                for each in [delete] if cluster is None else cluster_form(delete, cluster):
                    self._client.command(each, parameters={"ids": replaced})
                self.counts["dedupe.replaced"] += len(replaced)
            skipped = write.count(False)
            if not skipped:
                continue
            self.counts["dedupe.skipped"] += skipped
            # the copies are the table's rows, then its wire messages (_copies)
            rows = batch.facts.get(table, [])
            rows[:] = [r for r, w in zip(rows, write[: len(rows)], strict=True) if w]
            messages = batch.wire.get(table, [])
            if messages:
                kept = write[len(write) - len(messages) :]
                messages[:] = [m for m, w in zip(messages, kept, strict=True) if w]

    def _stored(
        self, tables: list[str], copies: Mapping[str, list[Copy]]
    ) -> dict[str, dict[str, Stored]]:
        ids = [sorted({c.event_id for c in copies[t]}) for t in tables]
        size = sum(map(len, ids)) * _BYTES_AN_ID + _QUERY_BYTES
        rows = self._client.query(
            lookup_statement(tables),
            parameters={f"ids_{n}": each for n, each in enumerate(ids)},
            settings={"max_query_size": max(size, 262_144)},
        ).result_rows
        persons: dict[tuple[str, str], set[str]] = {}
        latest: dict[tuple[str, str], int] = {}
        for table, event, person, published in rows:
            key = (str(table), str(event))
            persons.setdefault(key, set()).add(str(person))
            latest[key] = max(latest.get(key, 0), int(published))
        stored: dict[str, dict[str, Stored]] = {}
        for (table, event), found in persons.items():
            stored.setdefault(table, {})[event] = Stored(frozenset(found), latest[(table, event)])
        return stored


def _copies(batch: Batch) -> dict[str, list[Copy]]:
    """Each fact table's copies in ``batch``: its decoded rows, then its wire messages."""
    copies: dict[str, list[Copy]] = {}
    for table in {*batch.facts, *batch.wire}:
        rows = batch.facts.get(table, [])
        found = [
            Copy(_event_id(row[0]), str(row[3]), max(0, batch.published.get(id(row), 0)))
            for row in rows
        ]
        for message in batch.wire.get(table, []):
            event, person = event_and_person(message.value() or b"")
            found.append(Copy(event, person, max(0, message.timestamp()[1])))
        copies[table] = found
    return copies


def _event_id(value: Any) -> str:
    """A fact row's event id as ClickHouse's ``toString`` writes it: the sink's row reader
    gives a UUID as its 128-bit integer (sinks.rows), ``fact_row`` as a UUID or text."""
    if isinstance(value, int):
        return str(uuid.UUID(int=value))
    return str(value).lower()

"""Each linked event's fact row written at most once, before FINAL too.

Copies of a linked event reach the sink two ways: the sink replays what it wrote but did
not commit before a crash (the same Kafka offsets), and the identity worker publishes again
what it published after its last commit before a crash (new offsets, perhaps under the
person's current survivor, perhaps in another sink's partition). Before a batch's fact
rows are written, :class:`FactDedupe` asks ClickHouse which of its event ids each fact
table already holds, in one query, and the batch keeps only the copies to write
(:func:`plan`):

- of the copies of one event in the batch, only the one published last;
- a copy published when the stored one was (the sink's own replay) or before it is not
  written again;
- a copy published after the stored one (the worker's, after its restart) replaces it: the
  stored copies are deleted (a lightweight delete, as the opt-out removals are), then it is
  written. So the latest publication wins, as ``ReplacingMergeTree(ingested_at)`` and
  FINAL gave before: its person id, perhaps the survivor's (and on a cluster the copy on
  another shard is gone), and its publication time, which an opt-out's delete goes by. A
  restarted worker decides an opt-out and its revocation again, later than it first
  published the person's re-admitted events; kept with their first time, they would be
  deleted by the opt-out decided again (seen: 1 event in bench.reliability), where their
  copies published after the revocation are kept.

It never brings back what an opt-out removed: a removed row is not stored, so a copy of it
is written only if the opt-out filter admitted it (sinks/optouts.py), as without this step.

The look-up searches only the stored copies published at most ``window`` before the
batch's earliest copy of the table (:func:`lookup_since`; ``C2C_SINK_DEDUPE_WINDOW_S``), so
that its cost follows what was published lately, not the table's size: the fact tables
keep a minmax index of ``published_at`` (migration 0014), and parts whose copies were all
published before that time are not read. The sink's own replay is always found (its
copies were published when the stored ones were); the worker's copies are found when it
republished them within the window of their first publication. A copy published later
than that (a worker down for longer, a file produced again later) finds nothing, and is
written as a second row, which FINAL collapses on one shard, as without this step.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from sinks.batch import Batch
from sinks.cluster import ClusterSchema, cluster_form
from sinks.rows import event_id_text
from sinks.wire import event_and_person

__all__ = [
    "LOOKUP_IDS",
    "Copy",
    "FactDedupe",
    "delete_statement",
    "joined_ids",
    "lookup_since",
    "lookup_statement",
    "plan",
]

# Event ids a look-up query carries at most (1.8 MB of text): a batch of C2C_SINK_BATCH_ROWS
# (20,000 by default) goes in one query a table, as each query reads the window's parts again
LOOKUP_IDS = 50_000
# Ids joined by commas that ClickHouse may read as UUIDs (a wire message's 36 characters
# need not be one: such an id is not stored, and is not looked up)
_UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_JOINED_UUIDS = re.compile(rf"{_UUIDS.pattern}(?:,{_UUIDS.pattern})*")
# the ids of a statement, as an error message quotes them (cut anywhere)
_QUOTED_IDS = re.compile(r"[0-9a-f-]{8,36}(?:,[0-9a-f-]*)+")


class Copy(NamedTuple):
    """A copy of a linked event in a batch: its event id and when it was published (epoch
    ms)."""

    event_id: str
    published: int


def plan(copies: Sequence[Copy], stored: Mapping[str, int]) -> tuple[list[bool], list[str]]:
    """For ``copies`` (one fact table's, in the batch's order) and when the table's stored
    copy of their events was published (``stored``: event id -> epoch ms, the latest of
    its copies; 0 for rows written before migration 0013): which to write, and the event
    ids whose stored copies are deleted first (the module docstring's rules)."""
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
        elif copy.published > found:
            write[index] = True
            replaced.append(event)
    return write, sorted(replaced)


def lookup_since(copies: Sequence[Copy], window_ms: int | None) -> int | None:
    """From when (epoch ms) the look-up of ``copies`` (one table's) searches stored copies:
    ``window_ms`` before the earliest of them. None, every stored copy, when ``window_ms``
    is None or that time is not after 1970 (a copy without a publication time, 0)."""
    if window_ms is None or not copies:
        return None
    if window_ms < 0:
        raise ValueError(f"the look-up's window is {window_ms} ms: it must be 0 or more")
    since = min(copy.published for copy in copies) - window_ms
    return since if since > 0 else None


def lookup_statement(ids: Mapping[str, str], since: Mapping[str, int] | None = None) -> str:
    """One query for what each table of ``ids`` holds of its event ids (UUIDs joined by
    commas, :func:`joined_ids`): (table, event id, when its latest copy was published) per
    stored event, among the copies published from ``since[table]`` (epoch ms,
    :func:`lookup_since`) if given. The tables are ordered by event id: the set of ids
    reads the ranges that may hold them, which are all of them once the ids outnumber the
    granules; the time reads only the parts that hold copies published since (the minmax
    index of migration 0014).

    The ids are one text literal, which ClickHouse splits: a list of literals is parsed an
    id at a time (twice the CPU), and clickhouse-connect escapes a parameter's text a
    character at a time in Python (three quarters of the look-up's CPU, measured at 20,000
    ids). That is safe only for the text :func:`joined_ids` checked."""
    for table, each in ids.items():
        if not _JOINED_UUIDS.fullmatch(each):
            raise ValueError(f"the look-up of {table} was given ids that are not UUIDs")
    bounds = {} if since is None else since
    return " UNION ALL ".join(
        f"SELECT '{table}', toString(event_id), "
        f"toUnixTimestamp64Milli(max(published_at)) FROM {table} "
        f"WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', '{each}')))) "
        + (
            f"AND published_at >= fromUnixTimestamp64Milli(toInt64({int(bounds[table])}), 'UTC') "
            if bounds.get(table) is not None
            else ""
        )
        + "GROUP BY event_id"
        for table, each in ids.items()
    )


def joined_ids(ids: Sequence[str]) -> str:
    """``ids`` joined by commas for :func:`lookup_statement`, leaving out any that is not a
    UUID in lower case (no such id is stored: the column is a UUID's)."""
    joined = ",".join(ids)
    if _JOINED_UUIDS.fullmatch(joined) or not ids:
        return joined
    return ",".join(i for i in ids if _UUIDS.fullmatch(i))


def delete_statement(table: str, ids: str) -> str:
    """Remove every copy in ``table`` of the event ids ``ids`` (:func:`joined_ids`: checked,
    one literal as in :func:`lookup_statement`), as a patch part (migration 0007; as the
    opt-out deletes): the copies inserted after it stay."""
    if not _JOINED_UUIDS.fullmatch(ids):
        raise ValueError(f"the delete from {table} was given ids that are not UUIDs")
    return (
        f"DELETE FROM {table} WHERE event_id IN "
        f"(SELECT toUUID(arrayJoin(splitByChar(',', '{ids}')))) "
        "SETTINGS lightweight_delete_mode = 'lightweight_update'"
    )


class FactDedupe:
    """Takes out of a batch the fact rows and wire messages that ClickHouse holds already
    (the module docstring), through ``client`` (the caller holds the sink's lock).
    ``cluster``: the schema's cluster, whose deletes run on every shard's local tables;
    None on a single server. ``window_s``: how long before a batch's earliest copy the
    stored copies are searched (:func:`lookup_since`); None: every stored copy. ``counts``:
    ``dedupe.skipped`` (copies not written), ``dedupe.replaced`` (events whose stored
    copies were deleted for a later copy)."""

    def __init__(
        self,
        client: Any,
        *,
        cluster: ClusterSchema | None = None,
        window_s: float | None = None,
    ) -> None:
        if window_s is not None and not 0 <= window_s < float("inf"):
            raise ValueError(f"the look-up's window is {window_s} s: it must be 0 or more")
        self._client = client
        self._cluster = cluster
        self._window_ms = None if window_s is None else round(window_s * 1000)
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
            for start in range(0, len(replaced), LOOKUP_IDS):
                delete = delete_statement(table, joined_ids(replaced[start : start + LOOKUP_IDS]))
                cluster = self._cluster
                for each in [delete] if cluster is None else cluster_form(delete, cluster):
                    size = max(len(each) + 1024, 262_144)
                    with _short_errors():
                        self._client.command(each, settings={"max_query_size": size})
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
    ) -> dict[str, dict[str, int]]:
        rows: list[Sequence[Any]] = []
        since = {t: found for t in tables if (found := lookup_since(copies[t], self._window_ms))}
        for query in _queries({t: sorted({c.event_id for c in copies[t]}) for t in tables}):
            ids = {t: joined for t, each in query if (joined := joined_ids(each))}
            if not ids:
                continue
            sql = lookup_statement(ids, since)
            with _short_errors():
                rows += self._client.query(
                    sql, settings={"max_query_size": max(len(sql) + 1024, 262_144)}
                ).result_rows
        stored: dict[str, dict[str, int]] = {}
        for table, event, published in rows:
            stored.setdefault(str(table), {})[str(event)] = int(published)
        return stored


@contextmanager
def _short_errors() -> Iterator[None]:
    """Raise what a statement raised with its ids left out of the message, which quotes the
    statement: the sink shows an error's first 300 characters (``/health/ready``, ``c2c
    status``), where the error's name (``UNKNOWN_TABLE``) must not be lost after ids."""
    try:
        yield
    except Exception as exc:
        short = _QUOTED_IDS.sub("...", str(exc))
        try:
            shorter = type(exc)(short)
        except Exception:  # a type that takes other arguments: raised as it was
            raise exc from None
        raise shorter from exc


def _queries(ids: Mapping[str, list[str]]) -> list[list[tuple[str, list[str]]]]:
    """Each table's ``ids`` in look-up queries of at most :data:`LOOKUP_IDS` ids: for each
    query, (table, its ids) in it."""
    queries: list[list[tuple[str, list[str]]]] = [[]]
    room = LOOKUP_IDS
    for table, each in ids.items():
        for start in range(0, len(each), LOOKUP_IDS):
            part = each[start : start + LOOKUP_IDS]
            if len(part) > room:
                queries.append([])
                room = LOOKUP_IDS
            queries[-1].append((table, part))
            room -= len(part)
    return [query for query in queries if query]


def _copies(batch: Batch) -> dict[str, list[Copy]]:
    """Each fact table's copies in ``batch``: its decoded rows, then its wire messages."""
    copies: dict[str, list[Copy]] = {}
    for table in {*batch.facts, *batch.wire}:
        rows = batch.facts.get(table, [])
        published = batch.published
        found = [Copy(event_id_text(row[0]), max(0, published.get(id(row), 0))) for row in rows]
        for message in batch.wire.get(table, []):
            event, _person = event_and_person(message.value() or b"")
            found.append(Copy(event, max(0, message.timestamp()[1])))
        copies[table] = found
    return copies

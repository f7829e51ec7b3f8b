"""Turning chunks of an extract into encoded messages and rejects, in worker processes.

`c2c produce` spends most of its time per row in Python: reading, parsing, mapping,
validating and encoding. :class:`ChunkEncoder` does all of that for one :class:`Chunk`
and hands back an :class:`EncodedChunk`: the messages (topic, key, Confluent wire-format
value, line) and the rejects (line, reason, code, the row as read), in file order (a chunk
whose last record runs on past it raises producers.reader.RunsOn instead).
:func:`encoding` runs it on ``workers`` processes and yields the chunks in file order,
so the caller (one producer, in the main process) publishes in file order:
one person's events keep their order, and the result is the same whatever ``workers``.

This module knows nothing of Kafka: values are bytes, encoded with schema ids the caller
looked up in the registry (none in a dry run, where nothing is encoded).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder, SerdeError
from c2c.topics import get_topic
from c2c.validation import date_limits
from producers.formats import KIND_TOPICS, get_format
from producers.mapping import DEVELOPMENT_KEY, MappedRow, RowMapper, RowRejected
from producers.reader import Chunk, Extract, SourceRow, read_rows, whole_records
from producers.row_encoder import RowEncode, compile_row_encoder

__all__ = [
    "ChunkEncoder",
    "ChunkPlan",
    "EncodedChunk",
    "Reject",
    "default_workers",
    "encoding",
    "row_outcome",
]

# Rows a chunk holds: large enough that handing chunks between processes costs little per
# row, small enough that the first messages go out early and memory stays bounded.
CHUNK_LINES = 4000


@dataclass(frozen=True)
class ChunkPlan:
    """What a worker needs to encode chunks of one extract (sent to it once).

    ``schemas`` maps each topic to (its schema, its registered id); None in a dry run.
    ``event_ids``: hand back each message's event id too (for trace attributes);
    ``event_times``: and its event time (to merge extracts in time order). ``today``: the
    day the date limits are taken on (c2c.validation.date_limits; None: today), the same
    in every worker.
    """

    source: str
    kind: str
    columns: tuple[str, ...]
    schemas: Mapping[str, tuple[dict[str, Any], int]] | None
    event_ids: bool = False
    event_times: bool = False
    today: datetime.date | None = None
    secret: bytes = DEVELOPMENT_KEY  # keys the event ids: settings.identity_secret


@dataclass(frozen=True)
class Reject:
    """A row that is not published: where it was, why (with ``line N:``), a stable code,
    and the row exactly as read. ``position`` is how many messages of its chunk come
    before it."""

    position: int
    line: int
    reason: str
    code: str
    raw: bytes


@dataclass
class EncodedChunk:
    """A chunk's rows as messages (parallel lists, in file order) and rejects; the chunk
    was ``count`` physical lines from line ``start + 1``, ``size`` characters."""

    index: int
    start: int
    count: int
    size: int
    read: int = 0
    topics: list[str] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    event_times: list[datetime.datetime] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def row_outcome(mapper: RowMapper, row: SourceRow) -> MappedRow | RowRejected:
    """The mapped row, or why it has none: a RowRejected whose message starts with
    ``line N:`` and whose code is row.unreadable or row.invalid."""
    if row.cells is None:
        return RowRejected(f"line {row.line}: {row.problem}", code="row.unreadable")
    try:
        return mapper.for_columns(row.columns)(row.cells, row.raw)
    except RowRejected as exc:
        return RowRejected(f"line {row.line}: {exc.args[0]}", code="row.invalid")


class ChunkEncoder:
    """Reads, maps, validates and encodes chunks of one extract (plain code, no I/O).

    Each row goes through the format's compiled row encoder (producers.row_encoder: the
    same message, several times faster) and, where that does not take it, through the
    reference path (mapper, validator, encoder), which rejects it with its reasons or
    publishes it the same way.
    """

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self.format = get_format(plan.source)
        self.dates = date_limits(plan.today)
        self.mapper = RowMapper(plan.source, self.format, dates=self.dates, secret=plan.secret)
        self.encoders = (
            None
            if plan.schemas is None
            else {topic: AvroEncoder(schema, sid) for topic, (schema, sid) in plan.schemas.items()}
        )
        if plan.schemas is None:  # a dry run: checked with the schemas here, not encoded
            library = SchemaLibrary()
            topics = {KIND_TOPICS[t.kind] for t in self.format.record_types.values()}
            self._schemas = {t: library.resolve(get_topic(t).schema) for t in topics}
            self._ids: dict[str, int] | None = None
        else:
            self._schemas = {topic: schema for topic, (schema, _) in plan.schemas.items()}
            self._ids = {topic: sid for topic, (_, sid) in plan.schemas.items()}
        self._fast: dict[tuple[str, ...], RowEncode | None] = {}

    def row_encoder(self, columns: tuple[str, ...]) -> RowEncode | None:
        """The compiled row encoder for rows with ``columns`` (None: none can be)."""
        try:
            return self._fast[columns]
        except KeyError:
            fast = compile_row_encoder(
                self.format, columns, self._schemas, self._ids, self.dates, secret=self.plan.secret
            )
            self._fast[columns] = fast
            return fast

    def encode(self, chunk: Chunk) -> EncodedChunk:
        """Every row of ``chunk`` as a message or a reject, in order."""
        plan, encoders, mapper = self.plan, self.encoders, self.mapper
        out = EncodedChunk(chunk.index, chunk.start, len(chunk.lines), chunk.size)
        topics, keys, values, lines = out.topics, out.keys, out.values, out.lines
        rejects, ids, times = out.rejects, out.event_ids, out.event_times
        with_ids, with_times = plan.event_ids, plan.event_times
        last_columns: tuple[str, ...] | None = None
        fast: RowEncode | None = None
        add_topic, add_key, add_value, add_line = (
            topics.append,
            keys.append,
            values.append,
            lines.append,
        )
        read = 0
        for row in read_rows(plan.kind, plan.columns, chunk):
            read += 1
            line, raw, cells, _, columns = row
            if cells is not None:
                if columns is not last_columns:  # CSV rows share the header's tuple
                    last_columns = columns
                    fast = self.row_encoder(columns)
                if fast is not None:
                    encoded = fast(cells, raw)
                    if encoded is not None:
                        add_topic(encoded[0])
                        add_key(encoded[1])
                        add_value(encoded[2])
                        add_line(line)
                        if with_ids:
                            ids.append(encoded[3])
                        if with_times:
                            times.append(encoded[4])
                        continue
            mapped = row_outcome(mapper, row)
            if isinstance(mapped, RowRejected):
                rejects.append(Reject(len(topics), row.line, mapped.args[0], mapped.code, row.raw))
                continue
            topic = mapped.topic
            if encoders is None:
                value = b""
            else:
                try:
                    value = encoders[topic].encode(mapped.event)
                except SerdeError as exc:
                    reason = f"line {row.line}: {exc}"
                    rejects.append(Reject(len(topics), row.line, reason, exc.code, row.raw))
                    continue
            topics.append(topic)
            keys.append(mapped.key)
            values.append(value)
            lines.append(row.line)
            if with_ids:
                ids.append(mapped.event["event_id"])
            if with_times:
                times.append(mapped.event["event_time"])
        out.read = read
        return out

    def encode_all(
        self, extract: Extract, chunk_lines: int = CHUNK_LINES
    ) -> Iterator[EncodedChunk]:
        """Every chunk of ``extract`` encoded here, in file order."""
        chunks = extract.chunks(chunk_lines)
        return whole_records(((c, partial(self.encode, c)) for c in chunks), self.encode)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# The encoder of a worker process and the extract's lines (inherited when it forks), built
# once by the pool's initializer: each worker's own state, never shared or read by the
# main process.
_worker: ChunkEncoder | None = None
_lines: list[str] | None = None


def _start_worker(plan: ChunkPlan, lines: list[str] | None) -> None:
    global _worker, _lines
    _worker, _lines = ChunkEncoder(plan), lines


def _encode_in_worker(chunk: Chunk, count: int) -> EncodedChunk:
    """Encode ``chunk``; sent without its lines (``count`` of them), it has ours."""
    assert _worker is not None, "the pool's initializer builds the encoder"
    if _lines is not None and not chunk.lines and count:
        chunk = dataclasses.replace(chunk, lines=_lines[chunk.start : chunk.start + count])
    return _worker.encode(chunk)


@contextlib.contextmanager
def encoding(
    extract: Extract, plan: ChunkPlan, workers: int, *, chunk_lines: int = CHUNK_LINES
) -> Iterator[Iterator[EncodedChunk]]:
    """Every chunk of ``extract`` encoded, in file order, by ``workers`` processes (in this
    process if 1, or if the file is one chunk); ``index`` counts the chunks yielded.

    The workers start on entering, so enter before starting threads of your own (a Kafka
    producer): they start by forking where the platform allows it (at once, with the
    modules and the extract's lines already in memory: a chunk is sent to them as where
    its lines are, not as the lines; they only compute, and share nothing with this
    process after), and a fork copies only the thread that forks. At most two chunks a
    worker are in flight, so memory stays bounded however far the workers run ahead of
    the caller. A chunk whose last record runs on past it (producers.reader.RunsOn) is
    encoded again here, joined with the next. Leaving stops the workers.
    """
    chunks = extract.chunks(chunk_lines)
    first = next(chunks, None)
    second = next(chunks, None)
    ahead = itertools.chain((c for c in (first, second) if c is not None), chunks)
    local = ChunkEncoder(plan)
    if workers <= 1 or second is None:
        parts = ((c, partial(local.encode, c)) for c in ahead)
        yield _numbered(whole_records(parts, local.encode))
        return
    methods = multiprocessing.get_all_start_methods()
    forks = "fork" in methods
    context = multiprocessing.get_context("fork" if forks else "spawn")
    lines = extract.lines if forks else None
    with context.Pool(workers, initializer=_start_worker, initargs=(plan, lines)) as pool:

        def in_flight() -> Iterator[tuple[Chunk, Callable[[], EncodedChunk]]]:
            pending: collections.deque[tuple[Chunk, Any]] = collections.deque()
            for chunk in ahead:
                sent = dataclasses.replace(chunk, lines=[]) if forks else chunk
                task = (sent, len(chunk.lines))
                pending.append((chunk, pool.apply_async(_encode_in_worker, task)))
                if len(pending) >= 2 * workers:
                    done, result = pending.popleft()
                    yield done, result.get
            while pending:
                done, result = pending.popleft()
                yield done, result.get

        yield _numbered(whole_records(in_flight(), local.encode))


def _numbered(encoded: Iterator[EncodedChunk]) -> Iterator[EncodedChunk]:
    for index, chunk in enumerate(encoded):
        chunk.index = index
        yield chunk

"""`c2c produce SOURCE FILE`: validate every row of an extract, publish the valid ones,
reject the others with their line and reason, and account for all of them.

Nothing read is lost: every row is published, or written to the rejects file beside the
input (``FILE.rejects.csv``: line, reason, the row as it was) and to the dead-letter topic.
read = published + rejected, always; the summary says so.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import heapq
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c.deadletter import DeadLetterPublisher, dead_letter
from c2c.errors import C2CError
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import Telemetry, records_spans
from c2c.topics import get_topic
from c2c.validation import date_limits
from producers.chunks import (
    ChunkEncoder,
    ChunkPlan,
    EncodedChunk,
    Reject,
    default_workers,
    encoding,
    row_outcome,
)
from producers.formats import FORMATS, KIND_TOPICS, get_format
from producers.mapping import DEVELOPMENT_KEY, MappedRow, RowMapper, RowRejected
from producers.publisher import Publisher
from producers.reader import Chunk, Extract, SourceRow, open_extract, read_rows
from producers.synth.population import SynthConfig

__all__ = [
    "ProduceSummary",
    "RejectsFile",
    "encoded_in_time_order",
    "folder_today",
    "in_time_order",
    "mapped_events",
    "neutralised",
    "open_folder",
    "produce_file",
    "recovered",
    "rejects_path",
    "replay",
]


@dataclass
class ProduceSummary:
    """What one run did. ``read == published + rejected`` once it has finished (in a dry
    run, ``published`` counts what would have been)."""

    source: str
    path: str
    read: int = 0
    published: int = 0
    rejected: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    by_topic: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rejects_file: str | None = None
    # about the file as a whole: optional columns it lacks, unknown ones allowed
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "read": self.read,
            "published": self.published,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "dry_run": self.dry_run,
            "by_topic": dict(self.by_topic),
            "rejects_file": self.rejects_file,
            "warnings": list(self.warnings),
        }


def rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


# A cell starting with one of these runs as a formula when a spreadsheet opens the file
# (OWASP, "CSV Injection"); a leading quote is added to these too, so that removing the
# one leading quote of a row that starts with one always gives the row back.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralised(row: str) -> str:
    """``row`` as the rejects file writes it: with a single quote before it if it starts
    with =, +, -, @, a tab, a carriage return or a single quote, so that a spreadsheet
    shows it as text; :func:`recovered` undoes it."""
    return "'" + row if row.startswith(_FORMULA_START) else row


def recovered(cell: str) -> str:
    """The row as read, from the rejects file's ``row`` cell: without its leading quote,
    if it has one (only :func:`neutralised` adds one there)."""
    return cell[1:] if cell.startswith("'") else cell


class RejectsFile:
    """Rejected rows, written as they come: line, reason, the original row (neutralised
    against spreadsheet formulas: see :func:`neutralised`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._writer: Any = None

    def write(self, line: int, reason: str, raw: bytes) -> None:
        if self._writer is None:
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason", "row"])
        row = raw.decode("utf-8", errors="backslashreplace")
        self._writer.writerow([line, neutralised(reason), neutralised(row)])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


@dataclass
class _Input:
    """One extract being produced: its rows, mapper, summary and rejects file."""

    source: str
    path: Path
    mapper: RowMapper
    extract: Extract
    summary: ProduceSummary
    rejects: RejectsFile
    today: datetime.date | None = None

    @classmethod
    def open(
        cls,
        source: str,
        path: Path,
        dry_run: bool,
        today: datetime.date | None = None,
        *,
        allow_unknown_columns: bool = False,
        secret: bytes = DEVELOPMENT_KEY,
    ) -> _Input:
        mapper = RowMapper(source, get_format(source), dates=date_limits(today), secret=secret)
        extract = open_extract(path)
        warnings = mapper.check_columns(
            extract.columns, str(path), allow_unknown=allow_unknown_columns
        )
        rejects_path(path).unlink(missing_ok=True)
        return cls(
            source,
            path,
            mapper,
            extract,
            ProduceSummary(source=source, path=str(path), dry_run=dry_run, warnings=warnings),
            RejectsFile(rejects_path(path)),
            today,
        )

    def mapped(self) -> Iterator[tuple[SourceRow, MappedRow | RowRejected]]:
        """Each row with its event, or why it has none; counts what was read."""
        for row in self.extract.rows:
            self.summary.read += 1
            yield row, row_outcome(self.mapper, row)

    def plan(self, registry: SchemaRegistry | None, event_ids: bool) -> ChunkPlan:
        """What workers need to encode this extract: with ``registry``, the schema and
        registered id of every topic this source publishes to (RegistryError if one is not
        registered); without (a dry run), nothing is encoded."""
        schemas = None
        if registry is not None:
            topics = {KIND_TOPICS[t.kind] for t in get_format(self.source).record_types.values()}
            schemas = {
                name: (registry.library.resolve(topic.schema), registry.schema_id(topic))
                for name, topic in ((name, get_topic(name)) for name in sorted(topics))
            }
        return ChunkPlan(
            self.source,
            self.extract.kind,
            self.extract.columns,
            schemas,
            event_ids,
            today=self.today,
            secret=self.mapper.secret,
        )

    def raw_at(self, encoded: EncodedChunk, line: int) -> bytes:
        """The row ending at ``line`` of ``encoded``'s chunk, as read (delivery failures
        only: the workers do not send the rows they encoded)."""
        extract = self.extract
        lines = extract.lines[encoded.start : encoded.start + encoded.count]
        chunk = Chunk(encoded.index, encoded.start, lines, encoded.size)
        return next(
            row.raw for row in read_rows(extract.kind, extract.columns, chunk) if row.line == line
        )


class _Producing:
    """Publishes mapped rows and rejects the others, for one or several inputs."""

    def __init__(
        self,
        settings: Settings,
        *,
        rate: float | None,
        dry_run: bool,
        telemetry: Telemetry | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.settings = settings
        if dry_run:
            self.registry = None
        else:
            self.registry = registry if registry is not None else SchemaRegistry(settings)
        self.dead_letters = (
            None if self.registry is None else DeadLetterPublisher(settings, self.registry)
        )
        self.publisher = (
            None
            if self.registry is None
            else Publisher(
                settings, self.registry, on_failure=self._failed, rate=rate, telemetry=telemetry
            )
        )
        self._rejected = (
            telemetry.meter.create_counter(
                "c2c.rows.rejected", description="Rows rejected at the producer"
            )
            if telemetry is not None
            else None
        )

    def reject(self, item: _Input, line: int, reason: str, code: str, raw: bytes) -> None:
        if self._rejected is not None:
            self._rejected.add(1, {"source": item.source, "code": code})
        item.summary.rejected += 1
        item.summary.reasons[code] += 1
        item.rejects.write(line, reason, raw)
        if self.dead_letters is not None:
            self.dead_letters.publish(
                dead_letter(
                    stage=f"producer:{item.source}",
                    error=C2CError(reason, code=code),
                    source_file=str(item.path),
                    source_line=line,
                    value=raw,
                )
            )

    def _failed(self, context: Any, reason: str) -> None:
        if isinstance(context[0], tuple):  # from send_many: ((input, chunk, start), index)
            (item, encoded, start), index = context
            topic, line = encoded.topics[start + index], encoded.lines[start + index]
            raw = item.raw_at(encoded, line)
        else:
            item, line, raw, topic = context
        item.summary.by_topic[topic] -= 1
        self.reject(item, line, f"line {line}: {reason}", "kafka.delivery", raw)

    def publish_one(self, item: _Input, encoded: EncodedChunk, index: int) -> None:
        """Publish message ``index`` of a chunk (replay)."""
        topic = encoded.topics[index]
        if self.publisher is not None:
            self.publisher.send(
                topic,
                encoded.keys[index],
                encoded.values[index],
                ((item, encoded, 0), index),
                event_id=encoded.event_ids[index] if encoded.event_ids else None,
            )
        item.summary.by_topic[topic] += 1

    def publish(self, item: _Input, encoded: EncodedChunk) -> None:
        """Publish a chunk's messages and reject its rejects, in file order."""
        item.summary.read += encoded.read
        done = 0
        for reject in encoded.rejects:
            self._send(item, encoded, done, reject.position)
            done = reject.position
            self.reject(item, reject.line, reject.reason, reject.code, reject.raw)
        self._send(item, encoded, done, len(encoded.values))
        item.summary.by_topic.update(encoded.topics)

    def _send(self, item: _Input, encoded: EncodedChunk, start: int, end: int) -> None:
        if self.publisher is None or start == end:
            return
        whole = start == 0 and end == len(encoded.values)
        self.publisher.send_many(
            encoded.topics if whole else encoded.topics[start:end],
            encoded.keys if whole else encoded.keys[start:end],
            encoded.values if whole else encoded.values[start:end],
            (item, encoded, start),
            encoded.event_ids[start:end] if encoded.event_ids else None,
        )

    def finish(self, inputs: list[_Input], started: float) -> None:
        """Wait for every acknowledgement and dead letter; close rejects; total up."""
        try:
            if self.publisher is not None:
                remaining = self.publisher.flush(120)
                if remaining:
                    raise C2CError(
                        f"{remaining} message(s) still unacknowledged after 120 s; Kafka at "
                        f"{self.settings.kafka_bootstrap} may be down. Produce again: event "
                        "ids are deterministic, so nothing is duplicated downstream.",
                        code="produce.unacknowledged",
                    )
            if self.dead_letters is not None:
                self.dead_letters.flush()
        finally:
            for item in inputs:
                item.rejects.close()
        for item in inputs:
            summary = item.summary
            # In a dry run, `published` counts the rows that would have been published.
            summary.published = sum(summary.by_topic.values())
            summary.seconds = time.perf_counter() - started
            if summary.rejected:
                summary.rejects_file = str(item.rejects.path)


def produce_file(
    settings: Settings,
    source: str,
    path: Path,
    *,
    rate: float | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    telemetry: Telemetry | None = None,
    workers: int | None = None,
    today: datetime.date | None = None,
    allow_unknown_columns: bool = False,
) -> ProduceSummary:
    """Produce one extract; see the module docstring. Raises C2CError for a file that is
    not this source's format at all, or has a column the format does not know unless
    ``allow_unknown_columns`` (nothing is published then). Dates are checked against their
    limits as of ``today`` (default: today; c2c.validation.DATE_RULES).

    ``workers`` processes (default: one per core) read, validate and encode chunks of the
    file; this process publishes them in file order. The outcome is the same whatever
    ``workers``: the same messages in the same order, the same rejects.
    """
    started = time.perf_counter()
    item = _Input.open(
        source,
        path,
        dry_run,
        today,
        allow_unknown_columns=allow_unknown_columns,
        secret=settings.identity_secret.get_secret_value().encode(),
    )
    registry = None if dry_run else SchemaRegistry(settings)
    plan = item.plan(registry, event_ids=records_spans(telemetry))
    count = default_workers() if workers is None else workers
    # The workers start before the producers' threads do (see producers.chunks.encoding).
    with encoding(item.extract, plan, count) as encoded_chunks:
        producing = _Producing(
            settings, rate=rate, dry_run=dry_run, telemetry=telemetry, registry=registry
        )
        try:
            for encoded in encoded_chunks:
                producing.publish(item, encoded)
                if progress is not None:
                    progress(encoded.size)
        finally:
            producing.finish([item], started)
    return item.summary


def open_folder(
    folder: Path,
    *,
    dry_run: bool = True,
    today: datetime.date | None = None,
    secret: bytes = DEVELOPMENT_KEY,
) -> list[_Input]:
    """The provider extracts in ``folder`` (SOURCE.csv, as `c2c synth` writes them), their
    dates checked as of ``today``: by default today, or the simulation's present for a
    folder `c2c synth` wrote with an end year still to come (:func:`folder_today`).
    ``secret`` keys the event ids (settings.identity_secret; the development one by
    default)."""
    day = today if today is not None else folder_today(folder)
    inputs = [
        _Input.open(source, folder / f"{source}.csv", dry_run, day, secret=secret)
        for source in FORMATS
        if (folder / f"{source}.csv").exists()
    ]
    if not inputs:
        raise C2CError(
            f"{folder}: no provider extracts (k12.csv, edd.csv, ...) to replay", code="replay.empty"
        )
    return inputs


def folder_today(folder: Path) -> datetime.date | None:
    """The day to check ``folder``'s dates on: None (today) for extracts of the real
    world; for a folder `c2c synth` wrote (its truth/config.json), the later of today and
    the simulation's present (producers.synth.SynthConfig.present), so that simulated
    records up to it are taken whatever the end year asked for."""
    try:
        config = json.loads((folder / "truth" / "config.json").read_text(encoding="utf-8"))
        end_year = int(config["synth"]["end_year"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    present = SynthConfig(people=1, end_year=end_year).present
    today = datetime.datetime.now(datetime.UTC).date()
    return present if present > today else None


def in_time_order(
    inputs: list[_Input],
) -> Iterator[tuple[_Input, SourceRow, MappedRow | RowRejected]]:
    """Rows of all ``inputs`` merged by event time (each input must be in time order);
    rows that do not map come first, as they have no time."""

    def timed(
        index: int, item: _Input
    ) -> Iterator[tuple[Any, int, int, _Input, SourceRow, MappedRow | RowRejected]]:
        for seq, (row, outcome) in enumerate(item.mapped()):
            when = outcome.event["event_time"] if isinstance(outcome, MappedRow) else _EARLIEST
            yield when, index, seq, item, row, outcome

    for _, _, _, item, row, outcome in heapq.merge(
        *(timed(i, item) for i, item in enumerate(inputs)), key=lambda t: t[:3]
    ):
        yield item, row, outcome


def mapped_events(
    folder: Path, *, secret: bytes = DEVELOPMENT_KEY
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, raw event) of every row of ``folder``'s extracts that maps, in event-time
    order; rows that do not map are skipped (`c2c produce` reports them). ``secret`` keys
    the event ids, as :func:`replay` with settings of that identity secret does."""
    for item, _row, outcome in in_time_order(open_folder(folder, secret=secret)):
        if isinstance(outcome, MappedRow):
            yield item.source, outcome.event


def encoded_in_time_order(
    inputs: list[_Input], plans: list[ChunkPlan]
) -> Iterator[tuple[_Input, EncodedChunk, int | Reject]]:
    """The rows of all ``inputs`` (each in time order, encoded with its plan, which asks for
    event times) merged by event time, as :func:`in_time_order` merges them: each as
    (input, its encoded chunk, the index of its message there, or its Reject); rejects
    come as soon as they are read, as they have no time. Counts what was read.

    Rows go through the compiled row encoder (producers.chunks.ChunkEncoder) as in `c2c
    produce`, not through events: the same messages in the same order as the reference
    path (tests/unit/test_replay.py), at a fraction of the cost."""

    def timed(
        number: int, item: _Input, plan: ChunkPlan
    ) -> Iterator[tuple[Any, int, int, _Input, EncodedChunk, int | Reject]]:
        seq = 0
        for encoded in ChunkEncoder(plan).encode_all(item.extract):
            item.summary.read += encoded.read
            times, done = encoded.event_times, 0
            for reject in [*encoded.rejects, None]:
                end = len(encoded.values) if reject is None else reject.position
                for index in range(done, end):
                    yield times[index], number, seq, item, encoded, index
                    seq += 1
                done = end
                if reject is not None:
                    yield _EARLIEST, number, seq, item, encoded, reject
                    seq += 1

    merged = heapq.merge(
        *(timed(n, item, plan) for n, (item, plan) in enumerate(zip(inputs, plans, strict=True))),
        key=lambda t: t[:3],
    )
    for _, _, _, item, encoded, what in merged:
        yield item, encoded, what


def replay(
    settings: Settings,
    folder: Path,
    *,
    rate: float | None = None,
    dry_run: bool = False,
    telemetry: Telemetry | None = None,
    today: datetime.date | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ProduceSummary]:
    """Publish every provider's extract in ``folder`` interleaved in event-time order, to
    simulate live arrival. Rejects are handled as in :func:`produce_file`; dates are
    checked as of ``today`` (default: :func:`open_folder`'s). ``progress`` is called with
    the rows done, every 1,000."""
    started = time.perf_counter()
    secret = settings.identity_secret.get_secret_value().encode()
    inputs = open_folder(folder, dry_run=dry_run, today=today, secret=secret)
    producing = _Producing(settings, rate=rate, dry_run=dry_run, telemetry=telemetry)
    event_ids = records_spans(telemetry)
    plans = [
        dataclasses.replace(item.plan(producing.registry, event_ids), event_times=True)
        for item in inputs
    ]
    try:
        for done, (item, encoded, what) in enumerate(encoded_in_time_order(inputs, plans), 1):
            if isinstance(what, Reject):
                producing.reject(item, what.line, what.reason, what.code, what.raw)
            else:
                producing.publish_one(item, encoded, what)
            if progress is not None and done % 1000 == 0:
                progress(1000)
    finally:
        producing.finish(inputs, started)
    return [item.summary for item in inputs]


_EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.UTC)

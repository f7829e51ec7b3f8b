"""`c2c produce SOURCE FILE`: validate every row of an extract, publish the valid ones,
reject the others with their line and reason, and account for all of them.

Nothing read is lost: every row is published, or written to the rejects file beside the
input (``FILE.rejects.csv``: line, reason, the row as it was) and to the dead-letter topic.
read = published + rejected, always; the summary says so.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c.deadletter import DeadLetterPublisher, dead_letter
from c2c.errors import C2CError
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import Settings
from producers.formats import get_format
from producers.mapping import RowMapper, RowRejected
from producers.publisher import Publisher
from producers.reader import SourceRow, open_extract

__all__ = ["ProduceSummary", "RejectsFile", "produce_file", "rejects_path"]


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
        }


def rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


class RejectsFile:
    """Rejected rows, written as they come: line, reason, the original row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._writer: Any = None

    def write(self, line: int, reason: str, raw: bytes) -> None:
        if self._writer is None:
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason", "row"])
        self._writer.writerow([line, reason, raw.decode("utf-8", errors="backslashreplace")])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def produce_file(
    settings: Settings,
    source: str,
    path: Path,
    *,
    rate: float | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Produce one extract; see the module docstring. Raises C2CError for a file that is
    not this source's format at all (nothing is published then)."""
    fmt = get_format(source)
    mapper = RowMapper(source, fmt)
    extract = open_extract(path)
    mapper.check_columns(extract.columns, str(path))
    summary = ProduceSummary(source=source, path=str(path), dry_run=dry_run)
    rejects = RejectsFile(rejects_path(path))
    rejects_path(path).unlink(missing_ok=True)
    started = time.perf_counter()

    registry = SchemaRegistry(settings)
    dead_letters = None if dry_run else DeadLetterPublisher(settings, registry)
    stage = f"producer:{source}"

    def reject(row: SourceRow, reason: str, code: str) -> None:
        summary.rejected += 1
        summary.reasons[code] += 1
        rejects.write(row.line, reason, row.raw)
        if dead_letters is not None:
            dead_letters.publish(
                dead_letter(
                    stage=stage,
                    error=C2CError(reason, code=code),
                    source_file=str(path),
                    source_line=row.line,
                    value=row.raw,
                )
            )

    def failed(context: Any, reason: str) -> None:
        row, topic = context
        summary.by_topic[topic] -= 1
        reject(row, reason, "kafka.delivery")

    publisher = None if dry_run else Publisher(settings, registry, on_failure=failed, rate=rate)
    last_position = 0
    try:
        for row in extract.rows:
            summary.read += 1
            if progress is not None and extract.position - last_position > 65536:
                progress(extract.position - last_position)
                last_position = extract.position
            if row.fields is None:
                reject(row, f"line {row.line}: {row.problem}", "row.unreadable")
                continue
            try:
                mapped = mapper.map(row.fields)
                value = publisher.encode(mapped.topic, mapped.event) if publisher else b""
            except RowRejected as exc:
                reject(
                    row,
                    f"line {row.line}: {str(exc).removesuffix(' [row.rejected]')}",
                    "row.invalid",
                )
                continue
            except SerdeError as exc:
                reject(row, f"line {row.line}: {exc}", exc.code)
                continue
            summary.by_topic[mapped.topic] += 1
            if publisher is not None:
                publisher.send(mapped.topic, mapped.key, value, (row, mapped.topic))
        if publisher is not None:
            remaining = publisher.flush(120)
            if remaining:
                raise C2CError(
                    f"{remaining} message(s) from {path} still unacknowledged after 120 s; "
                    f"Kafka at {settings.kafka_bootstrap} may be down. Produce the file "
                    "again: event ids are deterministic, so nothing is duplicated downstream.",
                    code="produce.unacknowledged",
                )
        if dead_letters is not None:
            dead_letters.flush()
    finally:
        rejects.close()
        if progress is not None:
            progress(extract.size - last_position)
    # In a dry run, `published` counts the rows that would have been published.
    summary.published = sum(summary.by_topic.values())
    summary.seconds = time.perf_counter() - started
    if summary.rejected:
        summary.rejects_file = str(rejects.path)
    return summary

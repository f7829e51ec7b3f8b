"""Reading provider extracts: CSV (with a header) or JSON Lines, row by row.

Every physical record of the file becomes a :class:`SourceRow` with its line number and its
original bytes, whether or not it can be read: a row with the wrong number of fields, bytes
that are not UTF-8, or a JSON line that is not an object carries a ``problem`` instead of
``fields``. Only a file that cannot be a table at all (empty, no header) raises.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from c2c.errors import C2CError

__all__ = ["ExtractError", "SourceRow", "open_extract"]

MAX_CELL = 1000


class ExtractError(C2CError):
    """The file as a whole cannot be read as this provider's extract."""

    code = "extract"


@dataclass(frozen=True)
class SourceRow:
    """One record of an extract: where it was, what it said, and what was wrong if unread."""

    line: int
    raw: bytes
    fields: dict[str, str] | None
    problem: str | None = None


@dataclass
class Extract:
    """An opened extract: its columns and its rows (read lazily, once)."""

    path: Path
    columns: list[str]
    rows: Iterator[SourceRow]
    size: int
    position: int = 0


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _bad_bytes(cell: str) -> str | None:
    """The first byte that was not UTF-8 (decoded with surrogateescape), as 0xNN."""
    found = _UNDECODABLE.search(cell)
    return None if found is None else f"0x{ord(found.group()) - 0xDC00:02X}"


def _csv(path: Path, text: str) -> Extract:
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].strip():
        raise ExtractError(
            f"{path}: the file is empty; expected a header line naming the columns",
            code="extract.empty",
        )
    consumed: list[str] = []
    state = {"line": 0}

    def feed() -> Iterator[str]:
        for line in lines:
            state["line"] += 1
            consumed.append(line)
            yield line

    reader = csv.reader(feed())
    header = [name.strip().lstrip("\ufeff") for name in next(reader)]
    consumed.clear()
    if len(set(header)) != len(header):
        duplicates = sorted({name for name in header if header.count(name) > 1})
        raise ExtractError(
            f"{path}: line 1: the header repeats column(s) {', '.join(duplicates)}",
            code="extract.header",
        )
    extract = Extract(path=path, columns=header, rows=iter(()), size=len(text))

    def rows() -> Iterator[SourceRow]:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raw = "".join(consumed).encode(errors="surrogateescape")
                consumed.clear()
                yield SourceRow(state["line"], raw, None, f"is not valid CSV: {exc}")
                continue
            raw_text = "".join(consumed)
            consumed.clear()
            extract.position += len(raw_text)
            raw = raw_text.rstrip("\r\n").encode(errors="surrogateescape")
            line = state["line"]
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            yield _row(line, raw, header, cells)

    extract.rows = rows()
    return extract


def _row(line: int, raw: bytes, header: list[str], cells: list[str]) -> SourceRow:
    if len(cells) != len(header):
        return SourceRow(
            line, raw, None, f"has {len(cells)} field(s) where the header has {len(header)}"
        )
    # Check cell by cell only when the row as a whole has an undecodable byte or a long cell.
    if _UNDECODABLE.search("".join(cells)) is not None or max(map(len, cells)) > MAX_CELL:
        for name, cell in zip(header, cells, strict=True):
            bad = _bad_bytes(cell)
            if bad is not None:
                return SourceRow(
                    line,
                    raw,
                    None,
                    f"column {name} is not UTF-8 text (byte {bad}); re-export as UTF-8",
                )
            if len(cell) > MAX_CELL:
                return SourceRow(
                    line,
                    raw,
                    None,
                    f"column {name} is {len(cell)} characters long (at most {MAX_CELL})",
                )
    return SourceRow(line, raw, dict(zip(header, map(str.strip, cells), strict=True)))


def _jsonl(path: Path, text: str) -> Extract:
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ExtractError(
            f"{path}: the file is empty; expected one JSON object per line", code="extract.empty"
        )
    columns: list[str] = []
    for line in lines:
        try:
            first = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(first, dict):
            columns = [str(key) for key in first]
            break
    extract = Extract(path=path, columns=columns, rows=iter(()), size=len(text))

    def rows() -> Iterator[SourceRow]:
        for number, line in enumerate(lines, start=1):
            extract.position += len(line) + 1
            if not line.strip():
                continue
            raw = line.encode(errors="surrogateescape")
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield SourceRow(number, raw, None, f"is not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(value, dict):
                yield SourceRow(number, raw, None, "is not a JSON object")
                continue
            cells = ["" if v is None else str(v) for v in value.values()]
            yield _row(number, raw, [str(k) for k in value], cells)

    extract.rows = rows()
    return extract


def open_extract(path: Path) -> Extract:
    """Open a CSV (.csv, .txt) or JSON Lines (.jsonl, .ndjson) extract.

    Raises ExtractError for a missing or empty file or a broken header.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractError(
            f"{path}: cannot be read: {exc.strerror}", code="extract.missing"
        ) from exc
    text = data.decode("utf-8", errors="surrogateescape")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _jsonl(path, text)
    return _csv(path, text)

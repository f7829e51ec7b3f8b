"""Reading provider extracts: CSV (with a header) or JSON Lines, row by row or in chunks.

Every physical record of the file becomes a :class:`SourceRow` with its line number and its
original bytes, whether or not it can be read: a row with the wrong number of fields, bytes
that are not UTF-8, or a JSON line that is not an object carries a ``problem`` instead of
cells. Only a file that cannot be a table at all (empty, no header) raises.

An opened :class:`Extract` splits into :class:`Chunk` s of lines, cut without parsing where
records most likely end, which :func:`read_rows` reads anywhere, in this process or a
worker; a chunk that turns out to end inside a record (a CSV field quoted across lines
that runs on past it) says so, and :func:`whole_records` reads it again with the next: the
rows of the chunks so read, in order, are exactly the rows of the file.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from c2c.errors import C2CError

__all__ = [
    "Chunk",
    "Extract",
    "ExtractError",
    "RunsOn",
    "SourceRow",
    "open_extract",
    "read_rows",
    "whole_records",
]

MAX_CELL = 1000


class ExtractError(C2CError):
    """The file as a whole cannot be read as this provider's extract."""

    code = "extract"


class SourceRow(NamedTuple):
    """One record of an extract: where it was (its last physical line), what it said (its
    bytes, without the line ending), its cells (trimmed, in the header's order) or, if it
    could not be read, the problem."""

    line: int
    raw: bytes
    cells: list[str] | None
    problem: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def fields(self) -> dict[str, str] | None:
        """The cells by column name; None for a row that could not be read."""
        if self.cells is None:
            return None
        return dict(zip(self.columns, self.cells, strict=True))


@dataclass(frozen=True)
class Chunk:
    """Physical lines of an extract: ``lines`` (CSV: with their endings), the first being
    line ``start + 1`` of the file; ``size`` is their length in characters with line endings
    (for progress). ``last``: the chunk ends where the file does. A chunk starts where a
    record does; one that is not the file's last may end inside a record (a CSV field quoted
    across lines that runs on past it): reading it then raises :class:`RunsOn`, and the
    chunk is read again :meth:`joined` with the next."""

    index: int
    start: int
    lines: list[str]
    size: int
    last: bool = True

    def tail(self, done: int) -> Chunk:
        """The chunk without its first ``done`` lines."""
        rest = self.lines[done:]
        return Chunk(self.index, self.start + done, rest, sum(map(len, rest)), self.last)

    def joined(self, after: Chunk) -> Chunk:
        """This chunk and the one right ``after`` it, as one."""
        return Chunk(
            self.index, self.start, self.lines + after.lines, self.size + after.size, after.last
        )


class RunsOn(Exception):
    """Raised by :func:`read_rows` when a chunk's last record runs on past its end: read
    the chunk joined with the next one (:meth:`Chunk.joined`) instead. ``done``: how many
    lines of the chunk the rows read before it took (whole records)."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


@dataclass
class Extract:
    """An opened extract: its kind (csv or jsonl), columns and physical lines."""

    path: Path
    kind: str
    columns: tuple[str, ...]
    lines: list[str]
    first: int
    size: int

    @property
    def rows(self) -> Iterator[SourceRow]:
        """Every row of the file, in order (read lazily, a chunk at a time)."""
        carry: Chunk | None = None
        for chunk in self.chunks():
            if carry is not None:
                chunk, carry = carry.joined(chunk), None
            try:
                yield from read_rows(self.kind, self.columns, chunk)
            except RunsOn as exc:
                carry = chunk.tail(exc.done)  # the rows before were whole

    def chunks(self, lines: int = 4000) -> Iterator[Chunk]:
        """The lines after the header in chunks of about ``lines`` lines.

        A chunk of a CSV file ends, if it can within a few lines more, where the quotes
        since its start are even: in a file as CSV writers write it (a quote opens a field
        or doubles one inside a quoted field), that is the end of a record, found by
        counting quotes instead of parsing. Where it is not (a stray quote inside an
        unquoted field), reading the chunk says so (:class:`RunsOn`), so the rows come out
        right however the file is cut.
        """
        index, start, total = 0, self.first, len(self.lines)
        csv_file = self.kind == "csv"
        while start < total:
            end = min(start + lines, total)
            if csv_file and end < total:
                end = _even_quotes_end(self.lines, start, end)
            lines_of = self.lines[start:end]
            size = sum(map(len, lines_of)) + (0 if csv_file else len(lines_of))
            yield Chunk(index, start, lines_of, size, last=end == total)
            index, start = index + 1, end


# How many lines a chunk may grow by to end where its quotes are even.
_EVEN_QUOTES_REACH = 256


def _even_quotes_end(lines: list[str], start: int, end: int) -> int:
    """``end``, or the nearest end after it (within _EVEN_QUOTES_REACH lines) where
    lines[start:end] holds an even number of quotes; ``end`` if there is none."""
    quotes = "".join(lines[start:end]).count('"')
    if quotes % 2 == 0:
        return end
    for at in range(end, min(end + _EVEN_QUOTES_REACH, len(lines))):
        quotes += lines[at].count('"')
        if quotes % 2 == 0:
            return at + 1
    return end


_T = TypeVar("_T")


def whole_records(
    parts: Iterable[tuple[Chunk, Callable[[], _T]]], read: Callable[[Chunk], _T]
) -> Iterator[_T]:
    """What each chunk of ``parts`` reads as, in order: ``parts`` are the chunks of
    :meth:`Extract.chunks` each with how to get what it reads as (read here or elsewhere:
    a worker's result); a chunk whose last record runs on (that raises :class:`RunsOn`) is
    read again joined with the next one, with ``read``, and the next one's own result is
    not asked for."""
    carry: Chunk | None = None
    for chunk, result in parts:
        try:
            if carry is None:
                value = result()
            else:
                chunk, carry = carry.joined(chunk), None
                value = read(chunk)
        except RunsOn:
            carry = chunk
            continue
        yield value
    assert carry is None, "the file's last chunk does not run on"


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _bad_bytes(cell: str) -> str | None:
    """The first byte that was not UTF-8 (decoded with surrogateescape), as 0xNN."""
    found = _UNDECODABLE.search(cell)
    return None if found is None else f"0x{ord(found.group()) - 0xDC00:02X}"


def read_rows(kind: str, columns: tuple[str, ...], chunk: Chunk) -> Iterator[SourceRow]:
    """The rows of ``chunk`` of an extract of ``kind`` (csv or jsonl) with ``columns``."""
    if kind == "jsonl":
        return _jsonl_rows(columns, chunk)
    return _csv_rows(columns, chunk)


def _csv_rows(columns: tuple[str, ...], chunk: Chunk) -> Iterator[SourceRow]:
    lines, offset, width = chunk.lines, chunk.start, len(columns)
    text = "".join(lines)
    # Look for undecodable bytes and long cells row by row only where the chunk has any.
    suspect = _undecodable(text)
    padded = _padding(text)
    if '"' not in text and max(map(len, lines), default=0) <= csv.field_size_limit():
        # Without quotes every line is a record, and csv reads it as split(",") does
        # (tests/unit/test_produce_chunks.py holds the two to it), several times faster.
        yield from _unquoted_rows(columns, lines, offset, suspect, padded)
        return
    # After a chunk that is not the file's last, a blank line: read as nothing if the
    # chunk ends where a record does, else as part of a quoted field that runs on.
    count = len(lines)
    reader = csv.reader(lines if chunk.last else itertools.chain(lines, ("\n",)))
    done = 0
    strip = str.strip
    new = tuple.__new__  # a SourceRow, without NamedTuple's __new__ (Python code)
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            if reader.line_num > count:
                raise RunsOn(done) from exc
            start, done = done, reader.line_num
            yield _csv_error_row(str(exc), lines, start, done, offset, columns)
            continue
        if cells is None:
            return
        end = reader.line_num
        if end > count:
            if done == count:
                return  # the blank line after the chunk
            raise RunsOn(done)
        raw_text = lines[done] if end == done + 1 else "".join(lines[done:end])
        done_before, done = done, end
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        body = raw_text.rstrip("\r\n")
        raw = body.encode(errors="surrogateescape")
        if len(cells) != width:
            fields = f"{len(cells)} field(s) where the header has {width}"
            opened = _quote_opened(lines, done_before, end) if end > done_before + 1 else None
            if opened is None:
                yield SourceRow(offset + end, raw, None, f"has {fields}", columns)
            else:
                yield SourceRow(
                    offset + opened + 1,
                    raw,
                    None,
                    _run_on(offset, opened, end, f"one record with {fields}"),
                    columns,
                )
        elif suspect or len(raw_text) > MAX_CELL:
            row = _checked(offset + end, raw, columns, cells)
            opened = (
                _quote_opened(lines, done_before, end)
                if row.problem is not None and end > done_before + 1
                else None
            )
            if opened is not None:
                problem = f"one record, whose {row.problem}"
                row = row._replace(
                    line=offset + opened + 1, problem=_run_on(offset, opened, end, problem)
                )
            yield row
        # the chunk's last record too: a quote it opens may take the line break as a cell's
        # end (at the end of the file), which stripping removes
        elif padded is None or end != done_before + 1 or end == count or padded(body):
            yield new(SourceRow, (offset + end, raw, list(map(strip, cells)), None, columns))
        else:  # no cell starts or ends with whitespace (a record of several lines may)
            yield new(SourceRow, (offset + end, raw, cells, None, columns))


def _quote_opened(lines: list[str], start: int, end: int) -> int | None:
    """The index of the line of ``lines[start:end]`` (one record read over several lines)
    where a quote opened that its line does not close: where the record ran on from."""
    quotes = 0
    for at in range(start, end - 1):
        quotes += lines[at].count('"')
        if quotes % 2:
            return at
    return None


def _run_on(offset: int, opened: int, end: int, what: str) -> str:
    """The problem of a record that a quote opened at index ``opened`` ran on to index
    ``end`` (exclusive): where the quote opened, where it closed, what became of it."""
    return (
        f"a quote opened on this line is not closed until line {offset + end}: "
        f"{end - opened} lines read as {what}; close the quote, or double a quote inside "
        'a quoted field (""), and export again'
    )


def _csv_error_row(
    error: str, lines: list[str], start: int, end: int, offset: int, columns: tuple[str, ...]
) -> SourceRow:
    """The row of ``lines[start:end]``, on which csv raised ``error``."""
    raw = "".join(lines[start:end]).rstrip("\r\n").encode(errors="surrogateescape")
    if "field larger than field limit" not in error:
        return SourceRow(offset + end, raw, None, f"is not valid CSV: {error}", columns)
    limit = csv.field_size_limit()
    opened = _quote_opened(lines, start, end) if end > start + 1 else None
    if opened is None:
        column = _long_column("".join(lines[start:end]), columns, limit)
        field = "a field" if column is None else f"column {column}"
        problem = (
            f"has {field} over {limit} characters (a cell holds at most {MAX_CELL}); "
            "remove it and export again"
        )
        return SourceRow(offset + end, raw, None, problem, columns)
    what = f"one field of over {limit} characters"
    return SourceRow(offset + opened + 1, raw, None, _run_on(offset, opened, end, what), columns)


def _long_column(text: str, columns: tuple[str, ...], limit: int) -> str | None:
    """The column of the first cell over ``limit`` characters in one record's ``text``,
    where that is plain: a record without quotes (its cells are split(",")) whose cells
    line up with ``columns``; else None."""
    if '"' in text:
        return None
    cells = text.rstrip("\r\n").split(",")
    if len(cells) != len(columns):
        return None
    return next(
        (name for name, cell in zip(columns, cells, strict=True) if len(cell) > limit), None
    )


# Whitespace (str.isspace) other than the space and the line breaks CSV reads as such.
_OTHER_WHITESPACE = (
    "\t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _padding(text: str) -> Callable[[str], bool] | None:
    """How to tell whether a cell of a record of the chunk ``text`` may start or end with
    whitespace (then its cells are stripped; else stripping changes nothing, and costs more
    than the test): None if any may (the chunk has tabs, no-break spaces...: strip all).
    Else only spaces matter, and only where a cell starts or ends: at the record's ends,
    beside commas, inside quotes."""
    if any(c in text for c in _OTHER_WHITESPACE):
        return None
    return _spaced


def _spaced(body: str) -> bool:
    return " " in body and (
        body[:1] == " "
        or body[-1:] == " "
        or ", " in body
        or " ," in body
        or '" ' in body
        or ' "' in body
    )


def _undecodable(text: str) -> bool:
    """Whether ``text`` (decoded with surrogateescape) holds bytes that were not UTF-8: the
    only way a surrogate gets into it, and strict encoding refuses surrogates."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _unquoted_rows(
    columns: tuple[str, ...],
    lines: list[str],
    offset: int,
    suspect: bool,
    padded: Callable[[str], bool] | None,
) -> Iterator[SourceRow]:
    """:func:`_csv_rows` of lines without a quote character."""
    width = len(columns)
    strip = str.strip
    new = tuple.__new__  # a SourceRow, without NamedTuple's __new__ (Python code)
    for number, line in enumerate(lines, offset + 1):
        body = line.rstrip("\r\n")
        cells = body.split(",")
        if len(cells) == 1 and not cells[0].strip():
            continue  # blank line
        raw = body.encode(errors="surrogateescape")
        if len(cells) != width:
            yield SourceRow(
                number,
                raw,
                None,
                f"has {len(cells)} field(s) where the header has {width}",
                columns,
            )
        elif suspect or len(line) > MAX_CELL:
            yield _checked(number, raw, columns, cells)
        elif padded is None or padded(body):
            yield new(SourceRow, (number, raw, list(map(strip, cells)), None, columns))
        else:
            yield new(SourceRow, (number, raw, cells, None, columns))


def _checked(line: int, raw: bytes, columns: tuple[str, ...], cells: list[str]) -> SourceRow:
    """A row whose cells may hold undecodable bytes or be too long, checked cell by cell."""
    for name, cell in zip(columns, cells, strict=True):
        bad = _bad_bytes(cell)
        if bad is not None:
            return SourceRow(
                line,
                raw,
                None,
                f"column {name} is not UTF-8 text (byte {bad}); re-export as UTF-8",
                columns,
            )
        if len(cell) > MAX_CELL:
            return SourceRow(
                line,
                raw,
                None,
                f"column {name} is {len(cell)} characters long (at most {MAX_CELL})",
                columns,
            )
    return SourceRow(line, raw, [cell.strip() for cell in cells], None, columns)


def _jsonl_rows(columns: tuple[str, ...], chunk: Chunk) -> Iterator[SourceRow]:
    for number, line in enumerate(chunk.lines, start=chunk.start + 1):
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
        # JSON Lines name each cell: a line may order or choose its keys differently.
        keys = tuple(str(k) for k in value)
        cells = ["" if v is None else str(v) for v in value.values()]
        if _undecodable("".join(cells)) or max(map(len, cells), default=0) > MAX_CELL:
            yield _checked(number, raw, keys, cells)
        else:
            yield SourceRow(number, raw, [cell.strip() for cell in cells], None, keys)


def _csv(path: Path, text: str) -> Extract:
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].strip():
        raise ExtractError(
            f"{path}: the file is empty; expected a header line naming the columns",
            code="extract.empty",
        )
    reader = csv.reader(lines)
    header = [name.strip().lstrip("\ufeff") for name in next(reader)]
    if len(set(header)) != len(header):
        duplicates = sorted({name for name in header if header.count(name) > 1})
        raise ExtractError(
            f"{path}: line 1: the header repeats column(s) {', '.join(duplicates)}",
            code="extract.header",
        )
    return Extract(path, "csv", tuple(header), lines, reader.line_num, len(text))


def _jsonl(path: Path, text: str) -> Extract:
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ExtractError(
            f"{path}: the file is empty; expected one JSON object per line", code="extract.empty"
        )
    columns: tuple[str, ...] = ()
    for line in lines:
        try:
            first = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(first, dict):
            columns = tuple(str(key) for key in first)
            break
    return Extract(path, "jsonl", columns, lines, 0, len(text))


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

"""Chunks of an extract and their encoding in worker processes: the rows of the chunks are
the rows of the file, however it is cut, and the encoded output is the same for any number
of workers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from c2c.schemas import SchemaLibrary
from c2c.topics import get_topic
from producers.chunks import ChunkPlan, EncodedChunk, encoding
from producers.formats import KIND_TOPICS
from producers.reader import (
    Chunk,
    Extract,
    RunsOn,
    SourceRow,
    open_extract,
    read_rows,
    whole_records,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"


def _k12_file(rows: int, change: Callable[[int, list[str], list[str]], str]) -> bytes:
    """``rows`` rows of the k12 example with fresh record ids, each changed by ``change``
    (index, header, row), which returns text to write after the row."""
    with (EXAMPLES / "k12.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header, body = table[0], table[1:]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for i in range(rows):
        row = list(body[i % len(body)])
        row[header.index("RecordID")] = f"K-{i:06d}"
        after = change(i, header, row)
        writer.writerow(row)
        out.write(after)
    return out.getvalue().encode()


def _awkward_k12(rows: int) -> bytes:
    """k12 rows with quoted fields across lines, quotes, blank lines and bad rows."""

    def change(i: int, header: list[str], row: list[str]) -> str:
        row[header.index("LocalStudentID")] = f"L{i % 97:06d}"
        if i % 7 == 0:  # quoted, with a newline and quotes
            row[header.index("StudentLegalLastName")] = f'Smith\n"the {i}th", Jr'
        if i % 11 == 0:
            row[header.index("StudentBirthDate")] = "2031-02-30"  # rejected
        after = ""
        if i % 13 == 0:
            after += "\n"  # blank line
        if i % 17 == 0:
            after += "ENRL,short row\n"  # wrong number of fields
        if i % 19 == 0:
            after += 'ENRL,"unterminated\n'  # a quote opened and never closed at once
        if i % 23 == 0:  # a stray quote inside an unquoted field: a literal quote
            row[header.index("StudentLegalMiddleName")] = 'O"Neil'
        if i % 29 == 0:  # a stray quote, then a quoted field running over three lines
            after += f'ENRL,K-stray-{i},L1,,A"b,"multi\nline, with ""quotes""\n",\n'
        return after

    return _k12_file(rows, change) + b"ENRL,K-latin,L1,,Jos\xe9\n"


def _rows(extract: Extract, lines: int) -> list[SourceRow]:
    def read(chunk: Chunk) -> list[SourceRow]:
        return list(read_rows(extract.kind, extract.columns, chunk))

    parts = ((chunk, partial(read, chunk)) for chunk in extract.chunks(lines))
    return [row for rows in whole_records(parts, read) for row in rows]


def _sequential(path: Path) -> list[tuple[int, bytes, list[str] | None]]:
    """The file read by one csv.reader from start to end, as the rows are defined."""
    lines = path.read_bytes().decode(errors="surrogateescape").splitlines(keepends=True)
    reader = csv.reader(lines)
    header = next(reader)
    out = []
    done = reader.line_num
    for cells in reader:
        raw = "".join(lines[done : reader.line_num])
        start, done = done, reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        ok = len(cells) == len(header) and "\udce9" not in raw
        line = reader.line_num
        if len(cells) != len(header):  # reported where a quote opened that ran on, if one did
            record = lines[start : reader.line_num]
            odd = [i for i in range(len(record) - 1) if "".join(record[: i + 1]).count('"') % 2]
            line = start + odd[0] + 1 if odd else line
        out.append(
            (
                line,
                raw.rstrip("\r\n").encode(errors="surrogateescape"),
                [c.strip() for c in cells] if ok else None,
            )
        )
    return out


@pytest.mark.parametrize("lines", [1, 2, 3, 5, 8, 64, 10_000])
@pytest.mark.parametrize("make", ["awkward", "padded"])
def test_chunks_hold_whole_records_however_the_file_is_cut(
    tmp_path: Path, lines: int, make: str
) -> None:
    # padded: cells are stripped exactly where they start or end with whitespace
    path = tmp_path / "k12.csv"
    path.write_bytes(_awkward_k12(300) if make == "awkward" else _padded_k12(400))
    extract = open_extract(path)
    rows = _rows(extract, lines)
    assert [(r.line, r.raw, r.cells) for r in rows] == _sequential(path)
    assert sum(chunk.size for chunk in extract.chunks(lines)) == extract.size - len(
        extract.lines[0]
    )


def _runs_on(extract: Extract, chunk: Chunk) -> bool:
    try:
        list(read_rows(extract.kind, extract.columns, chunk))
    except RunsOn:
        return True
    return False


@pytest.mark.parametrize("lines", [1, 2, 3, 7, 64])
def test_counting_quotes_cuts_a_written_file_where_its_records_end(
    tmp_path: Path, lines: int
) -> None:
    # as csv writers write: fields quoted over several lines, with doubled quotes
    def change(i: int, header: list[str], row: list[str]) -> str:
        if i % 3 == 0:
            row[header.index("StudentLegalLastName")] = f'Smith\n"{i}",\nJr'
        return ""

    path = tmp_path / "k12.csv"
    path.write_bytes(_k12_file(200, change))
    extract = open_extract(path)
    chunks = list(extract.chunks(lines))
    assert len(chunks) >= 5
    assert not any(_runs_on(extract, chunk) for chunk in chunks)  # no chunk read twice
    assert [(r.line, r.raw, r.cells) for r in _rows(extract, lines)] == _sequential(path)


@pytest.mark.parametrize("lines", [1, 2, 5, 150])
def test_a_chunk_cut_inside_a_record_is_read_again_with_the_next(
    tmp_path: Path, lines: int
) -> None:
    # stray quotes inside unquoted fields make the quote count lie about where records end
    path = tmp_path / "k12.csv"
    path.write_bytes(_awkward_k12(300))
    extract = open_extract(path)
    assert any(_runs_on(extract, chunk) for chunk in extract.chunks(lines))
    assert [(r.line, r.raw, r.cells) for r in _rows(extract, lines)] == _sequential(path)
    assert [(r.line, r.raw, r.cells) for r in extract.rows] == _sequential(path)


def test_jsonl_chunks_are_its_lines(tmp_path: Path) -> None:
    good = (EXAMPLES / "edd.jsonl").read_text().splitlines()
    path = tmp_path / "edd.jsonl"
    path.write_text("\n".join([*good, "not json", "", "[1]", "{}", *good]) + "\n")
    extract = open_extract(path)
    whole = [(r.line, r.raw, r.cells, r.problem) for r in _rows(extract, 10_000)]
    assert [(r.line, r.raw, r.cells, r.problem) for r in _rows(extract, 2)] == whole
    assert [line for line, _, cells, _ in whole if cells is None] == [
        len(good) + 1,
        len(good) + 3,
    ]


def _plan(extract: Extract, source: str, dry_run: bool = False) -> ChunkPlan:
    library = SchemaLibrary()
    schemas = {
        topic: (library.resolve(get_topic(topic).schema), 100 + n)
        for n, topic in enumerate(KIND_TOPICS.values())
    }
    return ChunkPlan(source, extract.kind, extract.columns, None if dry_run else schemas)


def _encoded(extract: Extract, plan: ChunkPlan, workers: int, lines: int) -> list[EncodedChunk]:
    with encoding(extract, plan, workers, chunk_lines=lines) as chunks:
        return list(chunks)


def _flat(chunks: list[EncodedChunk]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    messages = [
        (topic, key, value, line)
        for c in chunks
        for topic, key, value, line in zip(c.topics, c.keys, c.values, c.lines, strict=True)
    ]
    rejects = [(r.line, r.reason, r.code, r.raw) for c in chunks for r in c.rejects]
    return messages, rejects


def test_the_output_is_the_same_whatever_the_number_of_workers(tmp_path: Path) -> None:
    path = tmp_path / "k12.csv"
    path.write_bytes(_awkward_k12(2000))
    extract = open_extract(path)
    plan = _plan(extract, "k12")
    one = _encoded(extract, plan, 1, 150)
    two = _encoded(extract, plan, 2, 150)
    three = _encoded(extract, plan, 3, 97)
    whole = _encoded(extract, plan, 1, 10**6)
    assert len(one) > 10
    assert len(whole) == 1
    assert [c.index for c in two] == list(range(len(two)))
    assert _flat(one) == _flat(two) == _flat(three) == _flat(whole)
    messages, rejects = _flat(one)
    read = sum(c.read for c in one)
    assert read == len(messages) + len(rejects) == len(_sequential(path))
    assert {code for _, _, code, _ in rejects} == {"row.invalid", "row.unreadable"}
    assert any("StudentBirthDate is not a date" in reason for _, reason, _, _ in rejects)
    assert all(reason.startswith(f"line {line}: ") for line, reason, _, _ in rejects)
    # every row once, at its line, as read: published or rejected
    rows = {line: raw for line, raw, _ in _sequential(path)}
    assert sorted([line for *_, line in messages] + [line for line, *_ in rejects]) == sorted(rows)
    assert all(rows[line] == raw for line, _, _, raw in rejects)
    # Encoded with the ids given: Confluent wire format, magic byte then the schema id.
    assert {value[:5] for topic, _, value, _ in messages if topic == "c2c.raw.enrollment"} == {
        b"\x00" + (100).to_bytes(4, "big")
    }


def test_a_dry_run_encodes_nothing_and_counts_the_same(tmp_path: Path) -> None:
    path = tmp_path / "k12.csv"
    path.write_bytes(_awkward_k12(600))
    extract = open_extract(path)
    wet = _flat(_encoded(extract, _plan(extract, "k12"), 2, 100))
    dry = _flat(_encoded(extract, _plan(extract, "k12", dry_run=True), 2, 100))
    assert [(t, k, line) for t, k, _, line in dry[0]] == [(t, k, line) for t, k, _, line in wet[0]]
    assert {value for _, _, value, _ in dry[0]} == {b""}
    assert dry[1] == wet[1]


def _padded_k12(rows: int) -> bytes:
    """k12 rows whose cells start or end with whitespace of every kind, quoted or not, and
    rows without any, in chunks with and without quotes."""
    pads = [" ", "\t", "\xa0", "\u3000", "  ", "\x0c"]

    def change(i: int, header: list[str], row: list[str]) -> str:
        if i % 3 == 0:
            at = i % len(row)
            pad = pads[i % len(pads)]
            row[at] = pad + row[at] if i % 2 else row[at] + pad
        if i % 5 == 0:
            row[header.index("StudentLegalMiddleName")] = "Ann Marie"  # inner space: kept
        if i % 50 == 0:
            row[header.index("StudentLegalLastName")] = 'Lee "Jr" '  # quoted, padded
        if i % 70 == 0:
            row[header.index("StudentLegalLastName")] = "Lee\n"  # a line break to strip
        return ""

    return _k12_file(rows, change)

"""Property-based tests of `c2c produce --dry-run`'s path (reader, row encoder, mapper,
validator, rejects file): random and mutated extracts never make it raise (other than a
clear error refusing the whole file), never stall, and every row read is accounted for:
read = valid + rejected, one line in the rejects file per reject, neutralised for
spreadsheets.

A few dozen examples a test by default (a few seconds); set C2C_FUZZ_EXAMPLES for more
(`C2C_FUZZ_EXAMPLES=2000 pytest tests/unit/test_produce_fuzz.py`). Hypothesis keeps the
failing examples it finds in .hypothesis/ (git-ignored); one that finds a bug becomes an
@example here, so that every run checks it.
"""

from __future__ import annotations

import csv
import datetime
import json
import tempfile
from functools import partial
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from c2c.errors import C2CError
from c2c.settings import Settings
from producers.files import produce_file, rejects_path
from producers.reader import Chunk, open_extract, read_rows, whole_records
from tests.fuzzing import FUZZ

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"
TODAY = datetime.date(2026, 12, 6)
SOURCES = ("k12", "ccc", "csac", "edd", "ctc", "optout")


def _example(source: str) -> tuple[bytes, list[list[str]]]:
    with (EXAMPLES / f"{source}.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    return ",".join(table[0]).encode(), table[1:]


# What a cell may become: anything, and the shapes that broke the producer before.
_DATES = ["0001-01-01", "00010101", "0999-01-01", "1800-01-01", "1899-12-31", "1900-01-01",
          "1989-12-31", "1990-01-01", "2026-12-06", "2026-12-07", "2027-01-06", "2027-01-07",
          "2029-06-14", "2099-12-31", "9999-12-31", "12/31/9999", "02/30/2020", "2029Q3",
          "2027Q1", "1989Q4", "2027-2028", "0000-0001"]  # fmt: skip
_FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x", "'=x", '=HYPERLINK("x")']
_cells = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(_DATES),
    st.sampled_from(_FORMULAS),
    # a huge field, quoted or not, over csv's limit or not
    st.builds(
        lambda n, quoted: ('"' if quoted else "") + "A" * n,
        st.integers(900, 200_000),
        st.booleans(),
    ),
    st.builds(lambda t: '"' + t, st.text(max_size=10)),  # a quote opened, not closed here
    st.builds(lambda t: t + '"' + t, st.text(max_size=5)),  # a stray quote
)


@st.composite
def _line(draw: st.DrawFn, rows: list[list[str]]) -> bytes:
    """One line of an extract: an example row mutated, or random bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=60)).replace(b"\n", b"").replace(b"\r", b"")
    row = list(draw(st.sampled_from(rows)))
    for _ in range(draw(st.integers(0, 3))):
        row[draw(st.integers(0, len(row) - 1))] = draw(_cells)
    if kind == 1 and row:
        del row[draw(st.integers(0, len(row) - 1))]  # a field short
    if kind == 2:
        row.append(draw(st.text(max_size=5)))  # a field too many
    text = ",".join(f'"{c}"' if "," in c and '"' not in c else c for c in row)
    line = text.encode("utf-8", errors="surrogatepass")
    if kind == 3:  # bytes that are not UTF-8 in a cell
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from([b"\xe9", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80"]))
        line += text.encode("utf-8", errors="surrogatepass")[at:]
    return line


@st.composite
def _extract(draw: st.DrawFn) -> tuple[str, bytes]:
    source = draw(st.sampled_from(SOURCES))
    header, rows = _example(source)
    lines = draw(st.lists(_line(rows), max_size=25))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = ending.join([header, *lines])
    return source, body + (ending if draw(st.booleans()) else b"")


_json_values = st.one_of(
    _cells,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def _json_lines(draw: st.DrawFn) -> tuple[str, bytes]:
    """edd as JSON Lines: the example's objects with values changed, keys dropped or
    added, and lines that are not objects or not JSON."""
    lines = (EXAMPLES / "edd.jsonl").read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    out = []
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(st.integers(0, 7))
        if kind == 0:
            out.append(draw(st.binary(max_size=60)).replace(b"\n", b"").replace(b"\r", b""))
            continue
        if kind == 1:
            out.append(json.dumps(draw(_json_values)).encode())
            continue
        record = dict(draw(st.sampled_from(objects)))
        for _ in range(draw(st.integers(0, 3))):
            record[draw(st.sampled_from(sorted(record)))] = draw(_json_values)
        if kind == 2:
            record.pop(draw(st.sampled_from(sorted(record))))
        if kind == 3:
            record[draw(st.text(max_size=8))] = draw(_json_values)
        out.append(json.dumps(record, ensure_ascii=draw(st.booleans())).encode())
    return "edd", b"\n".join(out) + b"\n"


def _check_produce(settings: Settings, source: str, data: bytes, suffix: str = ".csv") -> None:
    """The invariant of `c2c produce --dry-run` on ``data``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{source}{suffix}"
        path.write_bytes(data)
        try:
            summary = produce_file(settings, source, path, dry_run=True, workers=1, today=TODAY)
        except C2CError as exc:  # the whole file refused: a clear error, nothing read
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert refused.code.startswith("extract"), refused
            return
        assert summary.read == summary.published + summary.rejected
        assert sum(summary.by_topic.values()) == summary.published
        if not summary.rejected:
            assert not rejects_path(path).exists()
            return
        limit = csv.field_size_limit(2**31 - 1)
        try:
            with rejects_path(path).open(newline="", encoding="utf-8") as handle:
                rejects = list(csv.reader(handle))
        finally:
            csv.field_size_limit(limit)
        assert rejects[0] == ["line", "reason", "row"]
        assert len(rejects) - 1 == summary.rejected
        for line, reason, row in rejects[1:]:
            assert reason.startswith(f"line {line}: ")
            assert not row.startswith(("=", "+", "-", "@", "\t", "\r"))


@FUZZ
@given(_extract())
@example(("edd", b"WageRecordID,SSN,FirstName,LastName,EmployerAccountNo,NAICS,YearQuarter,"
                 b"Wages\nW1,123456789,A,\"B,C,D,E,F\nW2,1,2,3,4,5,6,7\n"))  # fmt: skip
@example(("k12", _example("k12")[0] + b"\n" + b"A" * 300_000))
def test_produce_dry_run_accounts_for_every_row(
    settings: Settings, case: tuple[str, bytes]
) -> None:
    _check_produce(settings, *case)


@FUZZ
@given(_json_lines())
# found by this test: an amount of 1e26 and more crashed the money parser (Decimal's
# quantize raised InvalidOperation, not ValueError)
@example(("edd", b'{"WageRecordID": "E1", "SSN": "567890123", "EmployerAccountNo": '
                 b'"0012345678", "YearQuarter": "2026Q1", "Wages": 1e+26}\n'))  # fmt: skip
def test_json_lines_account_for_every_row(settings: Settings, case: tuple[str, bytes]) -> None:
    _check_produce(settings, *case, suffix=".jsonl")


@FUZZ
@given(st.sampled_from(SOURCES), st.binary(max_size=400))
def test_random_bytes_are_read_or_refused(settings: Settings, source: str, data: bytes) -> None:
    _check_produce(settings, source, data)


@FUZZ
@given(_extract(), st.integers(1, 6))
# found by this test: a quote opened in the file's last field took the final line break
# into the cell, which was left unstripped unless the chunk held bytes that are not UTF-8
@example(("optout", _example("optout")[0] + b'\n\x80\n,OPT-1,L1,INDIVIDUAL,2026-02-01,,,W,,B,'
                    b'2007-01-02,"\n'), 1)  # fmt: skip
def test_rows_are_the_same_however_the_file_is_cut(case: tuple[str, bytes], lines: int) -> None:
    source, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{source}.csv"
        path.write_bytes(data)
        extract = open_extract(path)

        def read(chunk: Chunk) -> list[tuple[int, bytes, list[str] | None, str | None]]:
            return [r[:4] for r in read_rows(extract.kind, extract.columns, chunk)]

        def rows(size: int) -> list[tuple[int, bytes, list[str] | None, str | None]]:
            parts = [(chunk, partial(read, chunk)) for chunk in extract.chunks(size)]
            return [row for part in whole_records(parts, read) for row in part]

        assert rows(lines) == rows(10**9)

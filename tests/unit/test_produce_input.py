"""What `c2c produce` does with hostile input: a huge field, an unterminated quote, cells a
spreadsheet would run as formulas. Each row is rejected with its reason and counted, and
the rest of the file is read."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from c2c.settings import Settings
from producers.files import neutralised, produce_file, recovered, rejects_path

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"


def _edd(rows: int) -> tuple[list[str], list[list[str]]]:
    """The edd example's header and ``rows`` rows of it (fresh record ids, no quotes)."""
    with (EXAMPLES / "edd.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header, body = table[0], table[1:]
    rows_out = []
    for i in range(rows):
        row = list(body[i % len(body)])
        row[0] = f"W{i:05d}"
        row[header.index("Wages")] = "450.22"  # no comma, so no quotes in the file
        rows_out.append(row)
    return header, rows_out


def _line(row: list[str]) -> str:
    """A row as a line: cells with a comma quoted, the others as they are (stray quotes
    and all)."""
    return ",".join(f'"{c}"' if "," in c else c for c in row)


def _write(path: Path, header: list[str], lines: list[str]) -> None:
    path.write_text(",".join(header) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def _rejects(path: Path) -> list[list[str]]:
    limit = csv.field_size_limit(2**31 - 1)  # the rows of huge fields are written whole
    try:
        with rejects_path(path).open(newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))[1:]
    finally:
        csv.field_size_limit(limit)


@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_10_mb_field_is_rejected_and_the_rest_read(
    settings: Settings, tmp_path: Path, quoted: bool, workers: int
) -> None:
    header, rows = _edd(9000)
    huge = "A" * 10_000_000
    rows[4500][header.index("LastName")] = f'"{huge}"' if quoted else huge
    lines = [_line(row) for row in rows]
    path = tmp_path / "edd.csv"
    _write(path, header, lines)
    summary = produce_file(settings, "edd", path, dry_run=True, workers=workers)
    assert (summary.read, summary.published, summary.rejected) == (9000, 8999, 1)
    [(line, reason, _)] = _rejects(path)
    assert line == "4502"
    assert reason == (
        "line 4502: has a field over 131072 characters (a cell holds at most 1000); "
        "remove it and export again"
    )


@pytest.mark.parametrize(
    ("closing", "what"),
    [
        ("LastName", "one record, whose column LastName is 1138 characters long (at most 1000)"),
        ("NAICS", "one record with 6 field(s) where the header has 8"),
    ],
)
def test_an_unterminated_quote_is_reported_where_it_opened(
    settings: Settings, tmp_path: Path, closing: str, what: str
) -> None:
    header, rows = _edd(60)
    rows[10][header.index("LastName")] = '"Smith'
    rows[30][header.index(closing)] = 'Jo"nes'
    lines = [_line(row) for row in rows]
    path = tmp_path / "edd.csv"
    _write(path, header, lines)
    summary = produce_file(settings, "edd", path, dry_run=True, workers=1)
    # the lines between are one record: read counts records
    assert (summary.read, summary.published, summary.rejected) == (40, 39, 1)
    [(line, reason, row)] = _rejects(path)
    assert line == "12"
    assert reason == (
        "line 12: a quote opened on this line is not closed until line 32: 21 lines read as "
        f'{what}; close the quote, or double a quote inside a quoted field (""), and export '
        "again"
    )
    assert row.count("\n") == 20


def test_a_quote_never_closed_stops_at_the_field_limit(settings: Settings, tmp_path: Path) -> None:
    header, rows = _edd(20_000)
    rows[100][header.index("FirstName")] = '"Ann'
    lines = [_line(row) for row in rows]
    path = tmp_path / "edd.csv"
    _write(path, header, lines)
    summary = produce_file(settings, "edd", path, dry_run=True, workers=2)
    assert summary.read == summary.published + summary.rejected
    assert summary.rejected == 1
    assert summary.published > 15_000  # the rows after the runaway field are read
    [(line, reason, _)] = _rejects(path)
    assert line == "102"
    assert reason.startswith("line 102: a quote opened on this line is not closed until line ")
    assert "one field of over 131072 characters" in reason


@pytest.mark.parametrize(
    "row",
    [
        '=HYPERLINK("http://x")',
        "+1",
        "-1",
        "@SUM(A1)",
        "\tx",
        "\rx",
        "'quoted",
        "''",
        "plain",
        "",
        "1,=2",
    ],
)
def test_formula_cells_are_neutralised_and_recoverable(row: str) -> None:
    written = neutralised(row)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert recovered(written) == row


def test_the_rejects_file_neutralises_a_row_a_spreadsheet_would_run(
    settings: Settings, tmp_path: Path
) -> None:
    header, rows = _edd(5)
    rows[2] = ['=cmd|"/c calc"!A1', *rows[2]]  # an extra column
    rows[3] = ["@SUM(1)", *rows[3]]
    lines = [_line(row) for row in rows]
    path = tmp_path / "edd.csv"
    _write(path, header, lines)
    produce_file(settings, "edd", path, dry_run=True, workers=1)
    rejects = _rejects(path)
    assert [r[2][:1] for r in rejects] == ["'", "'"]
    assert [recovered(r[2]) for r in rejects] == [lines[2], lines[3]]

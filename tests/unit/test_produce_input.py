"""What `c2c produce` does with hostile input: a huge field, an unterminated quote, cells a
spreadsheet would run as formulas. Each row is rejected with its reason and counted, and
the rest of the file is read."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

import pytest

from c2c.settings import Settings
from producers.files import (
    folder_today,
    neutralised,
    produce_file,
    recovered,
    rejects_path,
    replay,
)
from producers.synth import NoiseConfig, SynthConfig, synthesize

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
    field = "a field" if quoted else "column LastName"  # named where cells split plainly
    assert reason == (
        f"line 4502: has {field} over 131072 characters (a cell holds at most 1000); "
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


# -- dates: within plausible limits (c2c.validation.DATE_RULES) -------------------------------

TODAY = datetime.date(2026, 12, 6)


def _example_with(tmp_path: Path, source: str, changes: list[dict[str, str]]) -> Path:
    """The example of ``source`` (its first row) written once per change of cells."""
    with (EXAMPLES / f"{source}.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header, base = table[0], table[1:]
    path = tmp_path / f"{source}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for change in changes:
            row = dict(zip(header, base[int(change.pop("_row", "0"))], strict=True))
            row.update(change)
            writer.writerow(row.values())
    return path


def _reasons(settings: Settings, source: str, path: Path) -> list[str]:
    summary = produce_file(settings, source, path, dry_run=True, workers=1, today=TODAY)
    assert summary.read == summary.published + summary.rejected
    return [reason.split(": ", 1)[1] for _, reason, _ in _rejects(path)] if summary.rejected else []


_BIRTH_EARLY = (
    "StudentBirthDate (person.birth_date) is before 1900-01-01, the earliest birth date "
    "taken; check the date at the source"
)
_BIRTH_LATE = (
    "StudentBirthDate (person.birth_date) is later than today (2026-12-06), the latest "
    "birth date taken; check the date at the source"
)


def test_birth_dates_outside_1900_to_today_are_rejected(settings: Settings, tmp_path: Path) -> None:
    cells = ["0999-01-01", "00010101", "1800-01-01", "1899-12-31", "1900-01-01", "2026-12-06",
             "2026-12-07", "2031-01-01", "12/31/9999"]  # fmt: skip
    path = _example_with(
        tmp_path, "k12", [{"RecordID": f"K{i}", "StudentBirthDate": c} for i, c in enumerate(cells)]
    )
    assert _reasons(settings, "k12", path) == [
        _BIRTH_EARLY,
        _BIRTH_EARLY,
        _BIRTH_EARLY,
        _BIRTH_EARLY,
        _BIRTH_LATE,
        _BIRTH_LATE,
        _BIRTH_LATE,
    ]


def _late(column: str, path: str) -> str:
    return (
        f"{column} ({path}) is later than 31 days after today (2027-01-06), the latest date "
        "of an event taken; check the date at the source"
    )


def _early(column: str, path: str, noun: str = "date of an event") -> str:
    return (
        f"{column} ({path}) is before 1990-01-01, the earliest {noun} taken; "
        "check the date at the source"
    )


@pytest.mark.parametrize(
    ("source", "changes", "reasons"),
    [
        (
            "k12",
            [
                {"EnrollmentStartDate": "1850-08-15"},
                {"EnrollmentStartDate": "2027-01-06"},
                {"EnrollmentStartDate": "2027-01-07"},
            ],
            [
                _early("EnrollmentStartDate", "facts.term_start_date"),
                _late("EnrollmentStartDate", "facts.term_start_date"),
            ],
        ),
        (
            "csu",
            [{"_row": "1", "DegreeDate": d} for d in ("2099-05-24", "9999-12-31", "2026-05-24")],
            [_late("DegreeDate", "facts.completion_date")] * 2,
        ),
        (
            "ctc",
            [{"IssueDate": d} for d in ("0001-01-01", "9999-12-31", "1990-01-01")],
            [
                _early("IssueDate", "facts.issue_date"),
                _late("IssueDate", "facts.issue_date"),
            ],
        ),
        (
            "edd",
            [{"YearQuarter": q} for q in ("2029Q3", "2026Q4", "2027Q1", "1990Q1")],
            [
                "YearQuarter (event_time) is later than 31 days after today (2027-01-06), the "
                "latest time of an event taken; check the date at the source"
            ]
            * 2,
        ),
        (
            "k12",
            [{"EnrollmentStartDate": "", "AcademicYearID": "2027-2028"}],
            [
                "AcademicYearID (event_time) is later than 31 days after today (2027-01-06), "
                "the latest time of an event taken; check the date at the source"
            ],
        ),
    ],
)
def test_event_dates_outside_their_limits_are_rejected(
    settings: Settings,
    tmp_path: Path,
    source: str,
    changes: list[dict[str, str]],
    reasons: list[str],
) -> None:
    for i, change in enumerate(changes):
        change.setdefault(
            {"k12": "RecordID", "csu": "RecordID", "ctc": "DocumentNumber", "edd": "WageRecordID"}[
                source
            ],
            f"R{i}",
        )
    path = _example_with(tmp_path, source, changes)
    assert _reasons(settings, source, path) == reasons


@pytest.mark.parametrize("source", ["k12", "ccc", "csu", "uc", "csac", "edd", "ctc", "optout"])
def test_the_examples_hold_no_date_past_today(settings: Settings, source: str) -> None:
    summary = produce_file(settings, source, EXAMPLES / f"{source}.csv", dry_run=True, workers=1)
    assert summary.rejected == 0
    assert summary.published == summary.read > 0


def test_a_synth_folder_is_checked_as_of_its_present(settings: Settings, tmp_path: Path) -> None:
    end_year = datetime.date.today().year + 3  # a simulation of years still to come
    config = SynthConfig(people=120, seed=5, end_year=end_year, first_class=end_year - 6)
    synthesize(config, NoiseConfig(), tmp_path, workers=1)
    assert folder_today(tmp_path) == config.present == datetime.date(end_year + 1, 6, 30)
    summaries = replay(settings, tmp_path, dry_run=True)
    assert sum(s.read for s in summaries) > 500
    assert all(s.rejected == 0 for s in summaries)
    # as of the real today, its future records would be rejected
    later = produce_file(settings, "edd", tmp_path / "edd.csv", dry_run=True, workers=1)
    assert later.rejected > 0


def test_an_amount_too_large_for_decimal_is_a_reject_not_a_crash(
    settings: Settings, tmp_path: Path
) -> None:
    # found by tests/unit/test_produce_fuzz.py: quantize raised InvalidOperation on 1e26
    path = _example_with(
        tmp_path, "edd", [{"WageRecordID": "W1", "Wages": "1e26"}, {"WageRecordID": "W2"}]
    )
    assert _reasons(settings, "edd", path) == ["Wages (facts.wages) has more than 14 digits"]


def test_the_emitter_holds_dates_to_the_same_limits(settings: Settings) -> None:
    from c2c.examples import example_raw
    from c2c.registry import SchemaRegistry
    from c2c.validation import ValidationFailed
    from producers.emitter import EventEmitter

    # nothing is sent: the check comes first, without Kafka or the registry
    emitter = EventEmitter(settings, SchemaRegistry(settings), today=lambda: TODAY)
    event = example_raw("credential", 3)
    event["person"]["birth_date"] = datetime.date(1, 1, 1)
    event["facts"]["issue_date"] = datetime.date(2099, 1, 1)
    with pytest.raises(ValidationFailed) as raised:
        emitter.emit("credential", event)
    assert [p.field for p in raised.value.problems] == ["person.birth_date", "facts.issue_date"]
    assert "0001" not in str(raised.value)

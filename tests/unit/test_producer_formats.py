"""Every provider adapter against malformed input: each bad row gets a clear message that
names the line and column, and the good rows around it still map."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from producers.formats import FORMATS
from producers.mapping import FormatMismatch, MappedRow, RowMapper, RowRejected
from producers.reader import ExtractError, open_extract

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"
SOURCES = list(FORMATS)


def _example(source: str) -> tuple[list[str], list[list[str]]]:
    with (EXAMPLES / f"{source}.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _run(source: str, path: Path) -> tuple[list[MappedRow], dict[int, str]]:
    extract = open_extract(path)
    mapper = RowMapper(source, FORMATS[source])
    mapper.check_columns(extract.columns, str(path))
    mapped: list[MappedRow] = []
    rejected: dict[int, str] = {}
    for row in extract.rows:
        if row.fields is None:
            rejected[row.line] = str(row.problem)
            continue
        try:
            mapped.append(mapper.map(row.fields))
        except RowRejected as exc:
            rejected[row.line] = str(exc)
    return mapped, rejected


def _column(source: str, *targets: str) -> str | None:
    """The example file's column that goes to the first of ``targets`` the format has."""
    header, _ = _example(source)
    by_target = {c.target: c.name for c in FORMATS[source].columns() if c.name in header}
    return next((by_target[t] for t in targets if t in by_target), None)


@pytest.mark.parametrize("source", SOURCES)
def test_example_file_maps_completely(source: str) -> None:
    mapped, rejected = _run(source, EXAMPLES / f"{source}.csv")
    assert rejected == {}
    assert mapped
    assert all(m.key for m in mapped)
    assert len({m.event["event_id"] for m in mapped}) == len(mapped)


@pytest.mark.parametrize("source", SOURCES)
def test_bad_rows_are_rejected_with_reasons_and_good_rows_go_through(
    source: str, tmp_path: Path
) -> None:
    header, rows = _example(source)
    good = rows[0]
    date_column = _column(source, "person.birth_date", "facts.issue_date", "_requested_at")
    impossible, wrong, says = "2031-02-30", "yesterday", "is not a date"
    if date_column is None:  # the employment department sends quarters, not dates
        date_column, impossible, wrong, says = (
            "YearQuarter",
            "2031Q5",
            "last year",
            ("is not a year and quarter"),
        )
    name_column = _column(source, "person.last_name")
    ssn_column = _column(source, "person.ssn", "person.ssid")
    assert date_column is not None
    assert name_column is not None
    assert ssn_column is not None

    def variant(column: str, value: str) -> list[str]:
        row = list(good)
        row[header.index(column)] = value
        return row

    bad_rows = {
        3: good[:-3],  # missing columns
        4: variant(date_column, impossible),  # impossible date
        5: variant(date_column, wrong),  # wrong type
        6: variant(name_column, "x" * 1200),  # overlong field
        7: variant(ssn_column, "12A45678Z"),  # identifier with letters
    }
    lines = [good] + [bad_rows[n] for n in sorted(bad_rows)] + [good]
    path = tmp_path / f"{source}.csv"
    data = _csv_bytes(header, lines)
    # a row with bytes that are not UTF-8 (Latin-1 é), as a separate last line
    latin = _csv_bytes(header, [variant(name_column, "Mendez")]).splitlines()[1]
    data += latin.replace(b"Mendez", b"M\xe9ndez") + b"\n"
    path.write_bytes(data)

    mapped, rejected = _run(source, path)
    assert len(mapped) == 2, rejected  # the good rows at lines 2 and 8
    assert set(rejected) == {3, 4, 5, 6, 7, 9}
    assert "field(s) where the header has" in rejected[3]
    assert f"{date_column} {says}" in rejected[4]
    assert f"{date_column} {says}" in rejected[5]
    assert f"column {name_column} is 1200 characters long" in rejected[6]
    assert f"{ssn_column} has characters other than digits" in rejected[7]
    # a reason names the column and the rule, never the value (the row is in the rejects)
    assert not any(
        value in reason
        for reason in rejected.values()
        for value in ("12A45678Z", impossible, wrong)
    )
    assert f"column {name_column} is not UTF-8 text (byte 0xE9)" in rejected[9]


@pytest.mark.parametrize("source", SOURCES)
def test_quotes_and_sql_in_names_are_data(source: str, tmp_path: Path) -> None:
    header, rows = _example(source)
    name_column = _column(source, "person.last_name")
    assert name_column is not None
    row = list(rows[0])
    hostile = 'O\'Brien"); DROP TABLE students;--, "Jr"'
    row[header.index(name_column)] = hostile
    path = tmp_path / f"{source}.csv"
    path.write_bytes(_csv_bytes(header, [row]))
    mapped, rejected = _run(source, path)
    assert rejected == {}
    assert mapped[0].event["person"]["last_name"] == hostile


@pytest.mark.parametrize("source", SOURCES)
def test_empty_and_header_only_files(source: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ExtractError, match="the file is empty"):
        open_extract(empty)
    header, _ = _example(source)
    header_only = tmp_path / "header.csv"
    header_only.write_bytes(_csv_bytes(header, []))
    assert _run(source, header_only) == ([], {})


@pytest.mark.parametrize("source", SOURCES)
def test_another_providers_file_is_named(source: str) -> None:
    other = "edd" if source != "edd" else "ctc"
    with pytest.raises(FormatMismatch) as caught:
        _run(source, EXAMPLES / f"{other}.csv")
    message = str(caught.value)
    assert f"not in the {source} format: missing column(s)" in message
    assert f"It looks like a {other} extract" in message


def test_unknown_record_type_and_missing_ids_are_rejected(tmp_path: Path) -> None:
    header, rows = _example("k12")
    bad_type = list(rows[0])
    bad_type[header.index("RecordType")] = "XFER"
    no_id = list(rows[0])
    no_id[header.index("LocalStudentID")] = ""
    path = tmp_path / "k12.csv"
    path.write_bytes(_csv_bytes(header, [bad_type, no_id]))
    _, rejected = _run("k12", path)
    assert "RecordType is not one of ENRL, CMPL" in rejected[2]
    assert "LocalStudentID is empty" in rejected[3]


def test_jsonl_extract_maps_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "edd.jsonl"
    good = (EXAMPLES / "edd.jsonl").read_text().splitlines()[0]
    path.write_text("\n".join([good, "not json", "[1, 2]", good.replace("2026Q1", "2026Q5")]))
    mapped, rejected = _run("edd", path)
    assert len(mapped) == 1
    assert rejected[2].startswith("is not JSON")
    assert rejected[3] == "is not a JSON object"
    assert "YearQuarter is not a year and quarter" in rejected[4]


def test_same_row_gives_the_same_event_id_and_a_correction_a_new_one() -> None:
    header, rows = _example("edd")
    mapper = RowMapper("edd", FORMATS["edd"])
    row = dict(zip(header, rows[0], strict=True))
    first = mapper.map(row).event["event_id"]
    assert mapper.map(dict(row)).event["event_id"] == first
    corrected = {**row, "Wages": "8,450.23"}
    assert mapper.map(corrected).event["event_id"] != first


def test_table_parsers_fold_case_and_name_what_they_accept() -> None:
    from producers import parsing

    assert [parsing.boolean(c) for c in ("Y", "yes", "TRUE", "t", "1", "")] == [
        True,
        True,
        True,
        True,
        True,
        None,
    ]
    assert [parsing.boolean(c) for c in ("N", "No", "false", "F", "0")] == [False] * 5
    with pytest.raises(ValueError, match="is not Y or N"):
        parsing.boolean("maybe")
    sex = parsing.code({"F": "FEMALE", "M": "MALE", "Female": "FEMALE"})
    assert (sex("f"), sex("FEMALE"), sex("")) == ("FEMALE", "FEMALE", None)
    assert sex.symbols == {"FEMALE": "F", "MALE": "M"}
    with pytest.raises(ValueError, match="is not one of the codes F, Female, M"):
        sex("Q")


def test_every_parser_reads_an_empty_cell_as_none() -> None:
    # the compiled row encoder relies on it (producers.parsing's contract)
    from producers import parsing

    parsers = [getattr(parsing, name) for name in parsing.__all__ if name[0].islower()]
    parsers.remove(parsing.code)
    parsers.append(parsing.code({"A": "B"}))
    formats = {column.parse for fmt in FORMATS.values() for column in fmt.columns()}
    for parse in [*parsers, *formats]:
        assert parse("") is None, parse
    assert set(parsers) >= parsing.FEW_VALUES

"""A file's header against its format: a column the format does not know is refused (a
misspelled optional column would be empty on every row, silently), unless allowed; an
optional column the file lacks is a warning in the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from c2c.settings import Settings
from producers.files import ProduceSummary, produce_file
from producers.formats import get_format
from producers.mapping import FormatMismatch, RowMapper

HEADER = "WageRecordID,SSN,FirstName,LastName,EmployerAccountNo,NAIC,YearQuarter,Wages"
ROW = "EDD-1,123456789,A,LEE,0012345678,722511,2025Q1,100.00"


def _file(tmp_path: Path, header: str, row: str) -> Path:
    path = tmp_path / "edd.csv"
    path.write_text(f"{header}\n{row}\n")
    return path


def test_a_misspelled_column_is_refused_naming_the_column_it_is_close_to(tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER, ROW)
    with pytest.raises(FormatMismatch) as refused:
        produce_file(Settings(), "edd", path, dry_run=True, workers=1)
    message = str(refused.value)
    assert "column(s) NAIC (did you mean NAICS?) are not in the edd format" in message
    assert "--allow-unknown-columns" in message


def test_allowed_unknown_and_missing_optional_columns_are_warnings(tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER, ROW)
    summary: ProduceSummary = produce_file(
        Settings(),
        "edd",
        path,
        dry_run=True,
        workers=1,
        allow_unknown_columns=True,
    )
    assert (summary.read, summary.published, summary.rejected) == (1, 1, 0)
    assert "optional column NAICS is not in the file: every row has it empty" in summary.warnings
    assert "column NAIC is not in the edd format: not read" in summary.warnings
    assert summary.to_dict()["warnings"] == summary.warnings


def test_a_file_with_every_column_has_no_warnings() -> None:
    mapper = RowMapper("edd", get_format("edd"))
    columns = [c.name for c in get_format("edd").columns()]
    every = [get_format("edd").record_id_column, get_format("edd").person_id_column, *columns]
    assert mapper.check_columns(list(dict.fromkeys(every)), "edd.csv") == []

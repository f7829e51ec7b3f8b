"""The differencing auditor (sinks/disclosure.py) on hand-made public views: it finds what
the relations give away, and only that."""

from __future__ import annotations

from typing import Any

from sinks.disclosure import audit
from sinks.public import PUBLIC_VIEWS, public_view_statements

FA = "public_outcome_financial_aid"
FA_COLUMNS = ["segment", "academic_year", "breakdown", "group_value", "students", "with_aid"]


def _views(aid: list[list[Any]]) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {
        name: {"columns": [], "rows": []} for name in (v.name for v in PUBLIC_VIEWS)
    }
    views[FA] = {"columns": FA_COLUMNS, "rows": aid}
    return views


def _aid(all_aided: int | None, cal_grant_a: int | None, pell: int | None) -> list[list[Any]]:
    return [
        ["csu", 2017, "all", "all", 30, all_aided],
        ["csu", 2017, "program", "CAL_GRANT_A", 30, cal_grant_a],
        ["csu", 2017, "program", "PELL", 30, pell],
    ]


def test_programs_that_add_up_give_a_hidden_margin_away() -> None:
    # 26 of 30 aided (4 not: hidden), no one with two programs: 12 + 14 is the margin
    findings = audit(_views(_aid(None, 12, 14)), _views(_aid(26, 12, 14)), 11)
    assert [(f.cell, f.interval) for f in findings] == [
        ((FA, ("csu", 2017, "all", "all"), "with_aid"), (26, 26))
    ]


def test_programs_that_overlap_say_only_at_least_the_largest() -> None:
    # 25 aided, one with both programs: a reader cannot tell, so 12 + 14 bounds it only
    assert audit(_views(_aid(None, 12, 14)), _views(_aid(25, 12, 14)), 11) == []


def test_programs_hidden_with_their_margin_give_nothing_away() -> None:
    assert audit(_views(_aid(None, None, None)), _views(_aid(26, 12, 14)), 11) == []


def test_aid_programs_hide_with_their_margin() -> None:
    [aid] = [s for s in public_view_statements(11) if "VIEW public_outcome_financial_aid " in s]
    assert "OVER (PARTITION BY segment, academic_year)" in aid
    assert "PARTITION BY segment, academic_year, breakdown" in aid


CO = "public_outcome_completion"
CO_COLUMNS = [
    "segment",
    "entry_year",
    "breakdown",
    "group_value",
    "entrants",
    "within_150",
    "within_8_years",
]


def test_aid_receipt_groups_add_up_to_the_entrants() -> None:
    def views(aided: list[Any]) -> dict[str, dict[str, Any]]:
        completion = [
            ["ccc", 2017, "all", "all", 40, 20, 25],
            ["ccc", 2017, "received_aid", "true", *aided],
            ["ccc", 2017, "received_aid", "false", 28, 12, 16],
        ]
        tables = _views([])
        tables[CO] = {"columns": CO_COLUMNS, "rows": completion}
        return tables

    # the aided group's counts, hidden alone, are the 'all' row less the other group's
    findings = audit(views([12, None, None]), views([12, 8, 9]), 11)
    assert {(f.cell[2], f.interval) for f in findings} == {
        ("within_150", (8, 8)),
        ("within_8_years", (9, 9)),
    }

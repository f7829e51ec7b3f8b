"""The explorer's pure parts: the query whitelist, SQL rendering, CSV, how NULL cells read,
and the SVG charts (sinks/explorer/)."""

from __future__ import annotations

import re

import pytest

from sinks.explorer.cells import NOT_OBSERVABLE, SUPPRESSED, cells, headline, trend
from sinks.explorer.charts import bar_chart, line_chart, sparkline
from sinks.explorer.measures import MEASURES, measure
from sinks.explorer.query import (
    Query,
    QueryRefused,
    Table,
    columns,
    inline_sql,
    parse_query,
    render_sql,
    table_csv,
)
from sinks.public import PUBLIC_VIEWS


def test_there_is_one_measure_per_public_view_and_its_names_are_the_views() -> None:
    assert sorted(m.table for m in MEASURES) == sorted(v.name for v in PUBLIC_VIEWS)
    for m in MEASURES:
        assert m.headline in m.view.numerators
        assert m.year in m.view.keys
        assert {c for c, _ in m.headline_filters} <= set(m.dimensions)
        assert set(m.window_by) <= set(m.dimensions)


def test_a_query_is_read_from_its_parameters_and_written_back() -> None:
    query = parse_query(
        {"measure": "completion", "year_from": "2017", "year_to": "2019", "breakdown": "all"}
    )
    assert query == Query("completion", "within_150", 2017, 2019, (("breakdown", "all"),))
    assert parse_query(query.params()) == query
    # an empty value is no filter; the count defaults to the headline
    assert parse_query({"measure": "earnings", "segment": ""}.items()) == Query(
        "earnings", "wages_q4"
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"measure": "outcome_completion"}, "outcome_* tables"),
        ({"measure": "public_outcome_completion"}, "no measure"),
        ({"measure": "completion", "count": "outcome_completion.entrants"}, "outcome_*"),
        ({"measure": "completion", "table": "outcome_earnings"}, "outcome_*"),
        ({"measure": "completion", "segment": "ccc' OR 1=1 --"}, "quotes"),
        ({"measure": "completion", "segment": "ccc; DROP TABLE fact_wage"}, "quotes"),
        ({"measure": "completion", "segment": "x/* */"}, "quotes"),
        ({"measure": "completion", "segment": "a\\'b"}, "quotes"),
        ({"measure": "completion", "segment": "ccc) OR (1=1"}, "letters, digits"),
        ({"measure": "completion", "count": "entrants"}, "has within_150"),
        ({"measure": "completion", "count": "sleep(3)"}, "has within_150"),
        ({"measure": "completion", "person_id": "1"}, "not a parameter"),
        ({"measure": "completion", "class_year": "2019"}, "not a parameter"),
        ({"measure": "completion", "year_from": "2019 OR 1"}, "a year from"),
        ({"measure": "completion", "year_from": "2020", "year_to": "2019"}, "is after"),
        ({"measure": "completion", "year_to": "99999"}, "a year from"),
        ({}, "no measure"),
    ],
)
def test_requests_off_the_whitelist_are_refused_naming_the_parameter(
    params: dict[str, str], named: str
) -> None:
    with pytest.raises(QueryRefused, match=re.escape(named)):
        parse_query(params)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(QueryRefused, match="twice"):
        parse_query([("measure", "completion"), ("segment", "ccc"), ("segment", "csu")])


def test_the_sql_names_one_public_view_and_passes_every_value_as_a_parameter() -> None:
    query = Query("completion", "within_8_years", 2017, None, (("segment", "ccc"),))
    sql, params = render_sql(query)
    assert sql == (
        "SELECT entry_year, segment, breakdown, group_value, entrants, within_8_years, "
        "round(within_8_years / entrants, 3) AS rate, coverage\n"
        "FROM public_outcome_completion\n"
        "WHERE entry_year >= {year_from:UInt16}\n"
        "  AND toString(segment) = {segment:String}\n"
        "ORDER BY segment, entry_year, breakdown, group_value"
    )
    assert params == {"year_from": 2017, "segment": "ccc"}
    assert inline_sql(query) == sql.replace("{year_from:UInt16}", "2017").replace(
        "{segment:String}", "'ccc'"
    )


def test_every_query_reads_its_public_view_only_and_whitelisted_columns() -> None:
    for m in MEASURES:
        for count in m.counts:
            sql, _ = render_sql(Query(m.key, count))
            assert re.findall(r"\bFROM (\w+)", sql) == [m.table]
            assert "outcome_" not in sql.replace(m.table, "")
            allowed = {*m.view.keys, m.view.denominator, *m.view.numerators, *m.statistics}
            assert set(columns(Query(m.key, count))) <= allowed | {"rate", "coverage"}


def test_earnings_quartiles_come_with_the_headline_count_only() -> None:
    assert "median_1y" in columns(Query("earnings", "wages_q4"))
    assert "median_1y" not in columns(Query("earnings", "wages_q2"))


def test_csv_writes_a_null_as_an_empty_cell_never_zero() -> None:
    table = Table(["class_year", "completers", "within_12"], [[2019, 40, None], [2020, None, 0]])
    assert table_csv(table) == "class_year,completers,within_12\n2019,40,\n2020,,0\n"


def _going(rows: list[list[object]]) -> Table:
    return Table(columns(Query("college_going", "within_12")), rows)


def test_a_null_reads_suppressed_unless_the_whole_year_is_null() -> None:
    spec = measure("college_going")
    table = _going(
        [
            # 2019: some counts published, so a NULL there is suppressed
            [2019, "race", "ASIAN", 59, None, None, 1.0],
            [2019, "race", "WHITE", 114, 70, 0.614, 1.0],
            [2019, "race", "FILIPINO", None, None, None, None],
            # 2021: no count of the year is published: the window is open
            [2021, "race", "ASIAN", 61, None, None, 0.9],
            [2021, "race", "WHITE", 112, None, None, 1.0],
        ]
    )
    shown = cells(spec, table, "within_12")
    states = [[c.state for c in row[3:]] for row in shown]
    assert states == [
        ["", SUPPRESSED, SUPPRESSED, ""],
        ["", "", "", ""],
        [SUPPRESSED, SUPPRESSED, SUPPRESSED, SUPPRESSED],
        ["", NOT_OBSERVABLE, NOT_OBSERVABLE, ""],
        ["", NOT_OBSERVABLE, NOT_OBSERVABLE, ""],
    ]
    for row in shown:
        for cell in row:
            assert cell.text != "0"
            assert cell.state == "" or not re.search(r"\d", cell.text)
    assert [c.text for c in shown[1][3:]] == ["114", "70", "61.4%", "100%"]


def test_a_filtered_table_is_judged_against_every_row_of_its_year() -> None:
    spec = measure("college_going")
    every = _going(
        [[2019, "all", "all", 600, 340, 0.567, 1.0], [2019, "sex", "X", 30, None, None, 1.0]]
    )
    part = Table(every.columns, every.rows[1:])
    assert cells(spec, part, "within_12")[0][4].state == NOT_OBSERVABLE  # alone, it looks open
    assert cells(spec, part, "within_12", every)[0][4].state == SUPPRESSED


def test_a_null_count_of_fewer_than_twice_the_smallest_cell_is_suppressed() -> None:
    spec = measure("college_going")
    year = _going(
        [[2021, "all", "all", 21, None, None, 1.0], [2021, "sex", "X", 22, None, None, 1.0]]
    )
    shown = cells(spec, year, "within_12", min_cell=11)
    assert [row[4].state for row in shown] == [SUPPRESSED, NOT_OBSERVABLE]
    assert cells(spec, year, "within_12", min_cell=5)[0][4].state == NOT_OBSERVABLE


def test_windows_of_one_segment_do_not_close_anothers() -> None:
    spec = measure("completion")
    table = Table(
        columns(Query("completion", "within_150")),
        [
            [2021, "ccc", "all", "all", 79, 17, 0.215, 1.0],
            [2021, "csu", "all", "all", 95, None, None, 1.0],
        ],
    )
    assert cells(spec, table, "within_150")[1][5].state == NOT_OBSERVABLE


def test_the_headline_sums_published_cells_and_skips_open_years() -> None:
    spec = measure("working_while_enrolled")
    table = Table(
        columns(Query("working_while_enrolled", "with_wages")),
        [
            [2024, "ccc", 100, 60, 0.6, 1.0],
            [2024, "csu", 50, 20, 0.4, 1.0],
            [2025, "ccc", 120, 60, 0.5, 1.0],
            [2025, "uc", 5, None, None, None],
            [2026, "ccc", 130, None, None, 1.0],
        ],
    )
    years = trend(spec, table)
    assert [(h.year, h.count, h.denominator, h.partial) for h in years] == [
        (2024, 80, 150, False),
        (2025, 60, 120, True),
    ]
    assert headline(spec, table) == years[-1]
    assert headline(spec, Table(table.columns, table.rows[-1:])) is None


def test_charts_write_missing_rates_as_words_and_draw_nothing_for_them() -> None:
    bars = bar_chart([("ASIAN", None, SUPPRESSED), ("WHITE", 0.614, "")], "by race")
    assert bars.count("<rect") == 2  # the background and WHITE's bar
    assert SUPPRESSED in bars
    assert "61.4%" in bars
    assert 'role="img"' in bars
    assert "<title>by race</title>" in bars
    line = line_chart([("a<b>", [(2019, 0.5), (2020, None), (2021, 0.6)])], "t")
    assert line.count("<polyline") == 2  # a gap where the rate is missing
    assert "a&lt;b&gt;" in line
    assert "<b>" not in line
    drawn = line + bars + sparkline([(2019, 0.1), (2020, 0.2)], "s")
    assert not re.search(r"\sstyle=", drawn)  # the CSP allows no inline style

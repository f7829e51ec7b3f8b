"""The explorer's pure parts: the query whitelist, SQL rendering, CSV, how NULL cells read,
and the SVG charts (sinks/explorer/)."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from c2c.events import AidProgram, AwardLevel, Provider, RaceEthnicity, Sex
from sinks.explorer.cells import (
    NOT_OBSERVABLE,
    SUPPRESSED,
    cells,
    headline,
    shown_columns,
    trend,
)
from sinks.explorer.charts import bar_chart, line_chart, sparkline
from sinks.explorer.labels import COUNTIES, label
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
        # the view's list of suppressed cells is output only
        ({"measure": "completion", "suppressed": "within_150"}, "not a parameter"),
        ({"measure": "completion", "count": "suppressed"}, "has within_150"),
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
        "round(within_8_years / entrants, 3) AS rate, coverage, suppressed\n"
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
            allowed |= {"rate", "coverage", "suppressed"}
            assert set(columns(Query(m.key, count))) <= allowed


def test_earnings_quartiles_come_with_the_headline_count_only() -> None:
    assert "median_1y" in columns(Query("earnings", "wages_q4"))
    assert "median_1y" not in columns(Query("earnings", "wages_q2"))


def test_csv_writes_a_null_as_an_empty_cell_never_zero_and_names_the_suppressed() -> None:
    spec = measure("college_going")
    table = Table(
        ["class_year", "completers", "within_12", "rate", "suppressed"],
        [
            [2019, 40, None, None, ["within_12", "within_16"]],
            [2020, None, 0, None, ["completers", "coverage"]],
            [2021, 40, None, None, []],
        ],
    )
    assert table_csv(spec, table) == (
        "class_year,completers,within_12,rate,suppressed\n"
        "2019,40,,,within_12 rate\n"
        "2020,,0,,completers rate\n"
        "2021,40,,,\n"
    )


def _going(rows: list[list[object]]) -> Table:
    return Table(columns(Query("college_going", "within_12")), rows)


def test_a_null_reads_suppressed_where_the_view_lists_it_else_not_yet_observable() -> None:
    spec = measure("college_going")
    family = list(spec.view.numerators)
    table = _going(
        [
            [2019, "race", "ASIAN", 59, None, None, 1.0, family],
            [2019, "race", "WHITE", 114, 70, 0.614, 1.0, []],
            [2019, "race", "FILIPINO", None, None, None, None, ["completers", *family, "coverage"]],
            # an open window: NULL, and not listed
            [2021, "race", "ASIAN", 61, None, None, 0.9, []],
            # a row complementary to a suppressed one while its window is open: listed
            [2021, "race", "WHITE", 112, None, None, 1.0, family],
            # a denominator hidden alone still hides the rate; within_12 itself is open
            [2022, "all", "all", None, None, None, None, ["completers", "coverage"]],
        ]
    )
    shown = cells(spec, table)
    assert shown_columns(table) == table.columns[:-1]
    assert all(len(row) == len(table.columns) - 1 for row in shown)
    states = [[c.state for c in row[3:]] for row in shown]
    assert states == [
        ["", SUPPRESSED, SUPPRESSED, ""],
        ["", "", "", ""],
        [SUPPRESSED, SUPPRESSED, SUPPRESSED, SUPPRESSED],
        ["", NOT_OBSERVABLE, NOT_OBSERVABLE, ""],
        ["", SUPPRESSED, SUPPRESSED, ""],
        [SUPPRESSED, NOT_OBSERVABLE, SUPPRESSED, SUPPRESSED],
    ]
    for row in shown:
        for cell in row:
            assert cell.text != "0"
            assert cell.state == "" or not re.search(r"\d", cell.text)
    assert [c.text for c in shown[1][3:]] == ["114", "70", "61.4%", "100%"]


def test_a_quartile_reads_as_its_count_does() -> None:
    spec = measure("earnings")
    query = Query("earnings", "wages_q4")
    cols = columns(query)
    row: list[object] = [2019, "ASSOCIATE", "all", "all", 40, None, None]
    row += [None] * 6 + [1.0, ["wages_q4", "p25_1y", "median_1y", "p75_1y"]]
    shown = cells(spec, Table(cols, [row]))[0]
    states = dict(zip(shown_columns(Table(cols)), (c.state for c in shown), strict=True))
    assert states["median_1y"] == SUPPRESSED  # its count is hidden
    assert states["median_5y"] == NOT_OBSERVABLE  # 5 years on is not over yet
    assert states["wages_q4"] == states["rate"] == SUPPRESSED


def test_the_headline_sums_published_cells_and_skips_open_years() -> None:
    spec = measure("working_while_enrolled")
    table = Table(
        columns(Query("working_while_enrolled", "with_wages")),
        [
            [2024, "ccc", 100, 60, 0.6, 1.0, []],
            [2024, "csu", 50, 20, 0.4, 1.0, []],
            [2025, "ccc", 120, 60, 0.5, 1.0, []],
            [2025, "uc", 5, None, None, None, ["students", "with_wages", "coverage"]],
            [2026, "ccc", 130, None, None, 1.0, []],
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


def test_codes_read_as_words_and_counties_by_name_while_other_values_stay() -> None:
    assert label("AMERICAN_INDIAN_ALASKA_NATIVE") == "American Indian or Alaska Native"
    assert label("NOT_REPORTED") == "Not reported"
    assert label("06001") == "Alameda County"
    assert label("06037") == "Los Angeles County"
    assert label("06115") == "Yuba County"
    assert len(COUNTIES) == 58
    assert label("06999") == "06999"  # not a county: shown as it is
    assert label("2021") == "2021"
    assert label("CDS12345") == "CDS12345"  # a code with digits is an identifier, kept


def test_a_long_bar_label_widens_its_column_or_is_cut_with_the_whole_name_in_a_title() -> None:
    name = "American Indian or Alaska Native"
    svg = bar_chart([(name, 0.5, ""), ("Asian", 0.4, "")], "by race")
    assert f">{name}</text>" in svg  # 32 characters: the column widens to hold it
    longer = "Native Hawaiian or Pacific Islander · Commission on Teacher Credentialing"
    svg = bar_chart([(longer, 0.5, "")], "by race and provider")
    assert f"<title>{longer}</title>" in svg.replace("&amp;", "&")
    assert "…</text>" in svg


def test_years_with_no_rate_at_either_end_are_named_under_the_axis_not_drawn() -> None:
    svg = line_chart(
        [("ccc", [(2017, 0.5), (2018, None), (2019, 0.4), (2020, None), (2021, None)])],
        "completion",
    )
    ticks = re.findall(r'text-anchor="middle" font-size="11" fill="#333333">(\d{4})<', svg)
    assert ticks == ["2017", "2018", "2019"]  # 2018 has no rate but lies inside the axis
    assert "No published rate in 2020-2021." in svg
    assert "ccc 2020: " not in svg  # no point drawn for them
    assert "ccc 2021: " not in svg
    assert "ccc 2019: 40.0%" in svg


def test_every_code_of_the_events_reads_as_words_without_an_underscore() -> None:
    for literal in (RaceEthnicity, AwardLevel, AidProgram, Sex, Provider):
        for code in get_args(literal):
            assert "_" not in label(code), code
    assert label("BLACK_AFRICAN_AMERICAN") == "Black or African American"
    assert label("TWO_OR_MORE") == "Two or more races"
    assert label("CAL_GRANT_B") == "Cal Grant B"

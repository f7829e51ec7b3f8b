"""The outcome views and their public twins on a real (embedded) ClickHouse: merges are
followed, replayed events count once, small cells are suppressed with their complement."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from c2c.clickhouse import connect
from c2c.settings import Settings
from cli import cli
from sinks.horizons import declare_horizon, parse_period
from sinks.migrate import MigrationError, migrate
from sinks.outcomes import read_outcome
from sinks.rows import PERSON_MAP_COLUMNS, columns, fact_row

pytestmark = pytest.mark.integration
AT = datetime.datetime(2016, 6, 1, tzinfo=datetime.UTC)
# what each source has sent in full, as its provider declares (`c2c horizon set`): every
# window of the tests below has closed by then
HORIZONS = {
    "k12": "2025-26",
    "ccc": "2025-26",
    "csu": "2025-26",
    "uc": "2025-26",
    "csac": "2025-26",
    "edd": "2024Q4",
    "ctc": "2025-12-31",
}


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    return Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="o")


@pytest.fixture
def client(embedded: Settings) -> Iterator[Any]:
    opened = connect(embedded)
    migrate(opened, min_cell=11)
    for provider, period in HORIZONS.items():
        declare_horizon(opened, provider, parse_period(period))
    yield opened
    opened.close()


def _event(person: str, race: str, facts: dict[str, Any], provider: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "event_time": AT,
        "provider": provider,
        "person_id": person,
        "attributes": {
            "birth_year": 1998,
            "sex": "FEMALE",
            "demographics": {"race_ethnicity": race},
        },
        "facts": facts,
    }


def _completion(person: str, race: str) -> dict[str, Any]:
    facts = {
        "award_level": "HS_DIPLOMA",
        "completion_date": datetime.date(2016, 6, 10),
        "institution_id": "HS1",
        "program_cip": None,
    }
    return _event(person, race, facts, "k12")


def _award(
    person: str, provider: str, level: str, day: datetime.date, program: str = "52.0201"
) -> dict[str, Any]:
    facts = {
        "award_level": level,
        "completion_date": day,
        "institution_id": f"{provider}-1",
        "program_cip": program,
    }
    return _event(person, "ASIAN", facts, provider)


def _term(
    person: str, provider: str, start: datetime.date, *, first_time: bool = True
) -> dict[str, Any]:
    facts = {
        "institution_id": f"{provider}-1",
        "district_id": None,
        "academic_year": start.year if start.month >= 7 else start.year - 1,
        "term": "FALL",
        "term_start_date": start,
        "grade_level": None,
        "program_cip": None,
        "first_time": first_time,
    }
    return _event(person, "ASIAN", facts, provider)


def _wage(
    person: str, year: int, quarter: int, dollars: int, employer: str = "E1"
) -> dict[str, Any]:
    facts = {
        "employer_id": employer,
        "naics": "611310",
        "year": year,
        "quarter": quarter,
        "wages": decimal.Decimal(dollars),
    }
    return _event(person, "ASIAN", facts, "edd")


def _aid(person: str, program: str, award_year: int, institution: str) -> dict[str, Any]:
    facts = {
        "aid_program": program,
        "award_year": award_year,
        "amount": decimal.Decimal(1000),
        "institution_id": institution,
    }
    return _event(person, "ASIAN", facts, "csac")


def _rows(client: Any, name: str, width: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows of outcome table ``name`` by their first ``width`` (key) columns."""
    table = read_outcome(client, name)
    return {tuple(r[:width]): dict(zip(table.columns, r, strict=True)) for r in table.rows}


def _insert(client: Any, topic: str, events: list[dict[str, Any]]) -> None:
    rows = [fact_row(topic, e) for e in events]
    table = rows[0][0]
    client.insert(table, [r for _, r in rows], column_names=list(columns(table)))


def test_college_going_counts_persons_after_merges_and_suppresses_small_cells(client: Any) -> None:
    # 12 Asian and 1 Black completer, 2 White; 8 enroll at CCC in August, 1 at UC the next
    # October (16 months but not 12); one CCC term is filed under an id later merged away.
    people = [(f"P{i:03d}", "ASIAN") for i in range(12)] + [("P100", "BLACK_AFRICAN_AMERICAN")]
    people += [("P200", "WHITE"), ("P201", "WHITE")]
    completions = [_completion(p, race) for p, race in people]
    _insert(client, "c2c.linked.completion", [*completions, completions[0]])  # one replayed
    terms = [_term(f"P{i:03d}", "ccc", datetime.date(2016, 8, 20)) for i in range(1, 8)]
    terms.append(_term("P900", "ccc", datetime.date(2016, 8, 20)))  # P900 is P000, merged
    terms.append(_term("P100", "uc", datetime.date(2017, 9, 25)))
    _insert(client, "c2c.linked.enrollment", terms)
    client.insert("person_map", [["P900", "P000", AT]], column_names=list(PERSON_MAP_COLUMNS))

    table = read_outcome(client, "outcome_college_going")
    rows = {(r[0], r[1], r[2]): dict(zip(table.columns, r, strict=True)) for r in table.rows}
    everyone = rows[(2016, "all", "all")]
    assert everyone["completers"] == 15  # the replayed completion counts once
    assert everyone["within_12"] == 8  # P000's term under P900 counts for P000
    assert everyone["within_16"] == 9
    assert (everyone["within_12_ccc"], everyone["within_16_uc"]) == (8, 1)
    assert rows[(2016, "race", "ASIAN")]["completers"] == 12

    public = read_outcome(client, "public_outcome_college_going")
    shown = {(r[0], r[1], r[2]): dict(zip(public.columns, r, strict=True)) for r in public.rows}
    assert shown[(2016, "all", "all")]["completers"] == 15
    assert shown[(2016, "all", "all")]["within_12"] is None  # 15 - 8 = 7 did not enroll: small
    assert shown[(2016, "race", "ASIAN")]["completers"] == 12
    # Black (1) is below 11; White (2) is hidden too, else 15 - 12 - 2 would reveal it
    assert shown[(2016, "race", "BLACK_AFRICAN_AMERICAN")]["completers"] is None
    assert shown[(2016, "race", "WHITE")]["completers"] is None


def test_pathways_follow_merges_rank_awards_and_suppress_with_the_complement(
    client: Any,
) -> None:
    # class 2016: 24 go to CCC first (12 with wages in 2024, the last year of the data); one
    # goes to UC and earns an associate, then a bachelor's; 13 do not enroll within 8 years
    # (one enrolls 9 years later).
    ccc = [f"P{i:03d}" for i in range(24)]
    never = [f"P2{i:02d}" for i in range(12)]
    hs = [_completion(p, "ASIAN") for p in [*ccc, "P100", *never, "P300"]]
    _insert(client, "c2c.linked.completion", hs)
    terms = [_term(p, "ccc", datetime.date(2016, 8, 20)) for p in ccc[1:]]
    terms.append(_term("P900", "ccc", datetime.date(2016, 8, 20)))  # P900 is P000, merged
    terms.append(_term("P100", "uc", datetime.date(2017, 9, 25)))
    terms.append(_term("P300", "ccc", datetime.date(2025, 8, 20)))
    _insert(client, "c2c.linked.enrollment", terms)
    awards = [
        _award("P100", "ccc", "ASSOCIATE", datetime.date(2019, 6, 10)),
        _award("P100", "uc", "BACHELOR", datetime.date(2021, 6, 10)),
    ]
    _insert(client, "c2c.linked.completion", awards)
    wages = [_wage(p, 2024, 1, 9000) for p in ccc[:12] if p != "P001"]
    wages.append(_wage("P901", 2024, 3, 9000))  # P901 is P001, merged
    wages.append(_wage("P012", 2020, 2, 9000))  # wages, but not in the last year
    _insert(client, "c2c.linked.wage", wages)
    client.insert(
        "person_map",
        [["P900", "P000", AT], ["P901", "P001", AT]],
        column_names=list(PERSON_MAP_COLUMNS),
    )

    rows = _rows(client, "outcome_pathways", 3)
    assert {k: (v["completers"], v["employed"]) for k, v in rows.items()} == {
        (2016, "CCC", "NONE"): (24, 12),
        (2016, "UC", "BACHELOR"): (1, 0),
        (2016, "NOT_ENROLLED", "NONE"): (13, 0),
    }
    assert {v["employment_year"] for v in rows.values()} == {2024}

    shown = _rows(client, "public_outcome_pathways", 3)
    assert (
        shown[(2016, "CCC", "NONE")]["completers"],
        shown[(2016, "CCC", "NONE")]["employed"],
    ) == (24, 12)
    # UC (1) is below 11; NOT_ENROLLED (13) is hidden too, else the class's 38 completers
    # (public college-going) less 24 less 13 would reveal it
    assert shown[(2016, "UC", "BACHELOR")]["completers"] is None
    assert shown[(2016, "NOT_ENROLLED", "NONE")]["completers"] is None
    assert shown[(2016, "NOT_ENROLLED", "NONE")]["employed"] is None


def test_completion_within_150_percent_and_8_years_of_first_time_entrants(client: Any) -> None:
    # 24 first-time CCC entrants in 2016-17 (entry_year 2017, the year it ends in): 12 with
    # an associate by June 30, 2019 (one filed
    # under an id merged away), one a day later; one has only a CSU bachelor's, which is not
    # a CCC award. CSU: 12 first-time entrants in 2016, 11 with a bachelor's by June 30,
    # 2022; one who transferred in is not first-time. UC: 2 entrants.
    ccc = [f"E{i:03d}" for i in range(24)]
    csu = [f"S{i:03d}" for i in range(12)]
    terms = [_term(p, "ccc", datetime.date(2016, 8, 20)) for p in ccc]
    terms += [_term(p, "csu", datetime.date(2016, 8, 24)) for p in csu]
    terms += [_term(p, "uc", datetime.date(2016, 9, 25)) for p in ("U1", "U2")]
    terms.append(_term("E013", "csu", datetime.date(2019, 8, 24), first_time=False))
    terms.append(_term("E000", "ccc", datetime.date(2017, 8, 20), first_time=False))
    _insert(client, "c2c.linked.enrollment", terms)
    awards = [_award(p, "ccc", "ASSOCIATE", datetime.date(2019, 6, 15)) for p in ccc[1:12]]
    awards.append(_award("E900", "ccc", "ASSOCIATE", datetime.date(2019, 6, 15)))  # = E000
    awards.append(_award("E012", "ccc", "CERTIFICATE", datetime.date(2019, 7, 1)))
    awards.append(_award("E013", "csu", "BACHELOR", datetime.date(2021, 6, 1)))
    awards += [_award(p, "csu", "BACHELOR", datetime.date(2022, 6, 30)) for p in csu[:11]]
    awards.append(_award("U1", "uc", "BACHELOR", datetime.date(2020, 6, 12)))
    _insert(client, "c2c.linked.completion", awards)
    # aid in the entry year (2016-17): the 12 CCC entrants who earned the associate (E000's
    # under E900), and E013 at a CSU (any institution counts); E012's is the next year's
    aid = [_aid(p, "PELL", 2016, "ccc-1") for p in ccc[1:12]]
    aid += [_aid("E900", "PELL", 2016, "ccc-1"), _aid("E013", "CAL_GRANT_B", 2016, "csu-1")]
    aid.append(_aid("E012", "PELL", 2017, "ccc-1"))
    _insert(client, "c2c.linked.financial_aid", aid)
    client.insert("person_map", [["E900", "E000", AT]], column_names=list(PERSON_MAP_COLUMNS))

    rows = _rows(client, "outcome_completion", 4)
    found = {k: (v["entrants"], v["within_150"], v["within_8_years"]) for k, v in rows.items()}
    assert found == {
        ("ccc", 2017, "all", "all"): (24, 12, 13),
        ("ccc", 2017, "received_aid", "true"): (13, 12, 12),
        ("ccc", 2017, "received_aid", "false"): (11, 0, 1),
        ("csu", 2017, "all", "all"): (12, 11, 11),
        ("csu", 2017, "received_aid", "false"): (12, 11, 11),
        ("uc", 2017, "all", "all"): (2, 1, 1),
        ("uc", 2017, "received_aid", "false"): (2, 1, 1),
    }

    shown = {
        k: [v[c] for c in ("entrants", "within_150", "within_8_years")]
        for k, v in _rows(client, "public_outcome_completion", 4).items()
    }
    assert shown[("ccc", 2017, "all", "all")] == [24, 12, 13]
    # aided: 13 - 12 = 1 did not complete; not aided: 0 and 1 completed; both hidden
    assert shown[("ccc", 2017, "received_aid", "true")] == [13, None, None]
    assert shown[("ccc", 2017, "received_aid", "false")] == [11, None, None]
    # 11 of 12 completed: the one who did not is a cell of 1
    assert shown[("csu", 2017, "all", "all")] == [12, None, None]
    assert shown[("csu", 2017, "received_aid", "false")] == [12, None, None]
    assert shown[("uc", 2017, "all", "all")][0] is None


def test_earnings_after_an_award_by_program_and_institution_with_quartiles(
    client: Any, embedded: Settings
) -> None:
    # 23 associate awards in June 2018 (quarter 2018Q2): 22 in CIP family 52, one in 11.
    # Wages 2 quarters after (2018Q4) for 11; 4 quarters after (2019Q2) for 12, $1,000 to
    # $12,000 (W001's from two employers; W000's under an id merged away); 20 quarters
    # after (2023Q2) for 5.
    people = [f"W{i:03d}" for i in range(23)]
    awards = [
        _award(
            p, "ccc", "ASSOCIATE", datetime.date(2018, 6, 15), "11.0701" if i == 22 else "52.0201"
        )
        for i, p in enumerate(people)
    ]
    awards.append(_completion("W000", "ASIAN"))  # a high-school diploma is no award here
    _insert(client, "c2c.linked.completion", awards)
    wages = [_wage(p, 2018, 4, 5000) for p in people[:11]]
    wages += [_wage(p, 2019, 2, 1000 * (i + 1)) for i, p in enumerate(people[:12]) if i > 1]
    wages += [_wage("W900", 2019, 2, 1000), _wage("W001", 2019, 2, 1200)]
    wages.append(_wage("W001", 2019, 2, 800, employer="E2"))
    wages += [_wage(p, 2023, 2, 20000 + 1000 * i) for i, p in enumerate(people[:5])]
    wages.append(_wage("W020", 2019, 3, 7000))  # a quarter that is not measured
    _insert(client, "c2c.linked.wage", wages)
    client.insert("person_map", [["W900", "W000", AT]], column_names=list(PERSON_MAP_COLUMNS))

    rows = _rows(client, "outcome_earnings", 4)
    everyone = rows[(2018, "ASSOCIATE", "all", "all")]
    counts = [everyone[c] for c in ("awards", "wages_q2", "wages_q4", "wages_q20")]
    assert counts == [23, 11, 12, 5]
    # inclusive quartiles (statistics.quantiles(..., method="inclusive"), as synth's truth)
    assert [everyone[c] for c in ("p25_1y", "median_1y", "p75_1y")] == [3750.0, 6500.0, 9250.0]
    assert [everyone[c] for c in ("p25_5y", "median_5y", "p75_5y")] == [21000.0, 22000.0, 23000.0]
    assert rows[(2018, "ASSOCIATE", "program", "52")]["awards"] == 22
    assert rows[(2018, "ASSOCIATE", "program", "11")]["median_1y"] is None  # no wages then
    assert rows[(2018, "ASSOCIATE", "institution", "ccc:ccc-1")]["wages_q4"] == 12
    assert len(rows) == 4

    shown = _rows(client, "public_outcome_earnings", 4)
    everyone = shown[(2018, "ASSOCIATE", "all", "all")]
    assert [everyone[c] for c in ("awards", "wages_q2", "wages_q4", "wages_q20")] == [
        23,
        11,
        12,
        None,  # 5 people
    ]
    assert everyone["median_1y"] == 6500.0  # 12 people behind it
    assert everyone["median_5y"] is None  # 5 people behind it
    # the row names what suppression hid: wages_q20 and the quartiles it is behind
    assert everyone["suppressed"] == ["wages_q20", "p25_5y", "median_5y", "p75_5y"]
    assert shown[(2018, "ASSOCIATE", "institution", "ccc:ccc-1")]["suppressed"] == [
        "wages_q20",
        "p25_5y",
        "median_5y",
        "p75_5y",
    ]
    # family 11 (1 award) is below 11; family 52 is hidden too, else 23 - 22 reveals it
    assert shown[(2018, "ASSOCIATE", "program", "11")]["awards"] is None
    assert shown[(2018, "ASSOCIATE", "program", "52")]["awards"] is None
    assert shown[(2018, "ASSOCIATE", "institution", "ccc:ccc-1")]["awards"] == 23

    # `c2c outcomes NAME` prints them: a suppressed cell as '*', quartiles in dollars
    printed = CliRunner().invoke(cli, ["outcomes", "public_outcome_earnings"], obj=embedded)
    assert printed.exit_code == 0, printed.output
    lines = printed.output.split("\n")
    assert lines[1] == "public_outcome_earnings (4 rows)"
    assert lines[2].split() == [
        "award_year",
        "award_level",
        "breakdown",
        "group_value",
        "awards",
        "wages_q2",
        "wages_q4",
        "wages_q20",
        "p25_1y",
        "median_1y",
        "p75_1y",
        "p25_5y",
        "median_5y",
        "p75_5y",
        "coverage",
    ]
    # coverage: 13 of the 23 awardees have wage records (W000 under a merged id): 0.6
    first = "2018 ASSOCIATE all all 23 11 12 * 3750.0 6500.0 9250.0 * * * 0.6"
    assert lines[3].split() == first.split()
    assert "(*: suppressed; -: not yet observable)" in lines


def test_financial_aid_by_program_splits_the_aided_and_hides_what_gives_the_rest_away(
    client: Any,
) -> None:
    # CCC 2016-17: 40 students; 15 with Pell, 12 Cal Grant B, 2 Cal Grant C (29 aided: 11
    # not). CSU: 30 students; 12 Cal Grant A, 14 Pell (one also Cal Grant B: 26 aided, 4
    # not); a CSU aid award at another CSU than the student's does not count, nor one for
    # the next year. A Middle Class Scholarship of someone not enrolled gives its program a
    # row (0 everywhere).
    ccc = [f"C{i:03d}" for i in range(40)]
    csu = [f"S{i:03d}" for i in range(30)]
    terms = [_term(p, "ccc", datetime.date(2016, 8, 20)) for p in ccc]
    terms += [_term(p, "csu", datetime.date(2016, 8, 24)) for p in csu]
    _insert(client, "c2c.linked.enrollment", terms)
    aid = [_aid(p, "PELL", 2016, "ccc-1") for p in ccc[:15]]
    aid += [_aid(p, "CAL_GRANT_B", 2016, "ccc-1") for p in ccc[15:27]]
    aid += [_aid(p, "CAL_GRANT_C", 2016, "ccc-1") for p in ccc[27:29]]
    aid += [_aid(p, "CAL_GRANT_A", 2016, "csu-1") for p in csu[:12]]
    aid += [_aid(p, "PELL", 2016, "csu-1") for p in csu[12:26]]
    aid.append(_aid("S012", "CAL_GRANT_B", 2016, "csu-1"))
    aid.append(_aid("S026", "PELL", 2016, "csu-2"))  # not where S026 studied
    aid.append(_aid("S027", "PELL", 2017, "csu-1"))  # the next aid year
    aid.append(_aid("X000", "MIDDLE_CLASS_SCHOLARSHIP", 2016, "uc-1"))
    _insert(client, "c2c.linked.financial_aid", aid)

    rows = _rows(client, "outcome_financial_aid", 4)
    found = {k: (v["students"], v["with_aid"]) for k, v in rows.items()}
    programs = ["CAL_GRANT_A", "CAL_GRANT_B", "CAL_GRANT_C", "MIDDLE_CLASS_SCHOLARSHIP", "PELL"]
    assert found == {
        ("ccc", 2017, "all", "all"): (40, 29),
        **{
            ("ccc", 2017, "program", p): (40, n)
            for p, n in zip(programs, [0, 12, 2, 0, 15], strict=True)
        },
        ("csu", 2017, "all", "all"): (30, 26),
        **{
            ("csu", 2017, "program", p): (30, n)
            for p, n in zip(programs, [12, 1, 0, 0, 14], strict=True)
        },
    }

    shown = {k: v["with_aid"] for k, v in _rows(client, "public_outcome_financial_aid", 4).items()}
    # CCC: 11 not aided; the programs under 11 are hidden, and Cal Grant B too (the first
    # other program), so that what the hidden ones hold (29 - 15) is at least 11 beyond them
    assert shown[("ccc", 2017, "all", "all")] == 29
    assert [shown[("ccc", 2017, "program", p)] for p in programs] == [None, None, None, None, 15]
    # CSU: 4 not aided hides with_aid, and so every program, else 12 + 14 (+ 1 counted
    # twice, which a reader cannot tell) would give it away
    assert shown[("csu", 2017, "all", "all")] is None
    assert all(shown[("csu", 2017, "program", p)] is None for p in programs)
    students = _rows(client, "public_outcome_financial_aid", 4)
    assert {v["students"] for k, v in students.items() if k[0] == "csu"} == {30}


def test_threshold_comes_from_the_migration_run(client: Any) -> None:
    people = [_completion(f"Q{i}", "ASIAN") for i in range(5)]
    _insert(client, "c2c.linked.completion", people)
    assert read_outcome(client, "public_outcome_college_going").rows[0][3] is None
    migrate(client, min_cell=5)  # nothing to migrate; public views re-created
    assert read_outcome(client, "public_outcome_college_going").rows[0][3] == 5


def test_an_edited_migration_is_refused(client: Any, tmp_path: Path) -> None:
    from sinks.migrate import MIGRATIONS_DIR

    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        (folder / path.name).write_text(path.read_text())
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="has changed since"):
        migrate(client, min_cell=11, folder=folder)


def test_open_windows_are_null_not_zero(client: Any) -> None:
    # Horizons earlier than the fixture's: postsecondary data through January 2017, wages
    # through 2019Q2, CCC's through June 2020, aid through January 2017.
    periods = (
        ("csu", "2017-01-31"),
        ("uc", "2017-01-31"),
        ("edd", "2019Q2"),
        ("csac", "2017-01-31"),
    )
    for provider, period in periods:
        declare_horizon(client, provider, parse_period(period))
    declare_horizon(client, "ccc", parse_period("2019-20"))
    people = [f"N{i:03d}" for i in range(12)]
    _insert(client, "c2c.linked.completion", [_completion(p, "ASIAN") for p in people])
    terms = [_term(p, "ccc", datetime.date(2016, 8, 20)) for p in people]
    _insert(client, "c2c.linked.enrollment", terms)
    awards = [_award(p, "ccc", "ASSOCIATE", datetime.date(2018, 6, 15)) for p in people]
    _insert(client, "c2c.linked.completion", awards)
    _insert(client, "c2c.linked.wage", [_wage(p, 2018, 4, 5000) for p in people])

    going = _rows(client, "outcome_college_going", 3)[(2016, "all", "all")]
    assert going["completers"] == 12
    # class 2016 completed June 10, 2016: 365 days later is past CSU's and UC's horizon
    assert all(going[c] is None for c in going if c.startswith("within_")), going
    completion = _rows(client, "outcome_completion", 4)
    everyone = completion[("ccc", 2017, "all", "all")]
    assert (everyone["within_150"], everyone["within_8_years"]) == (12, None)
    # the aid year 2016-17 is past the csac horizon: whether they received aid is unknown
    assert {k[3]: v["entrants"] for k, v in completion.items() if k[2] == "received_aid"} == {
        "UNKNOWN": 12
    }
    earnings = _rows(client, "outcome_earnings", 4)[(2018, "ASSOCIATE", "all", "all")]
    # 2018Q2 + 2 and + 4 quarters are complete by 2019Q2; + 20 (2023Q2) is not
    assert (earnings["wages_q2"], earnings["wages_q4"], earnings["wages_q20"]) == (12, 0, None)
    assert earnings["median_5y"] is None
    pathways = _rows(client, "outcome_pathways", 3)
    assert {k[1] for k in pathways} == {"CCC"}
    assert {v["employment_year"] for v in pathways.values()} == {2018}
    working = _rows(client, "outcome_working_while_enrolled", 2)
    assert working[("ccc", 2017)]["with_wages"] == 0  # 2016Q3 is complete
    public = _rows(client, "public_outcome_completion", 4)[("ccc", 2017, "all", "all")]
    assert public["within_8_years"] is None

    # nothing declared for a source: every window reading it is open, its cohorts uncounted
    client.command("TRUNCATE TABLE source_horizon")
    declare_horizon(client, "k12", parse_period("2025-26"))
    going = _rows(client, "outcome_college_going", 3)[(2016, "all", "all")]
    assert going["completers"] == 12
    assert going["within_16"] is None
    assert _rows(client, "outcome_completion", 4) == {}
    assert {v["employment_year"] for v in _rows(client, "outcome_pathways", 3).values()} == {None}
    # a destination seen is known; no term seen is unknown while the 8 years are not over
    assert {k[1] for k in _rows(client, "outcome_pathways", 3)} == {"CCC"}
    _insert(client, "c2c.linked.completion", [_completion("N900", "ASIAN")])
    assert {k[1] for k in _rows(client, "outcome_pathways", 3)} == {"CCC", None}


def test_a_future_dated_record_moves_no_period(client: Any) -> None:
    people = [f"F{i:03d}" for i in range(12)]
    _insert(client, "c2c.linked.completion", [_completion(p, "ASIAN") for p in people])
    _insert(client, "c2c.linked.wage", [_wage(p, 2024, 1, 9000) for p in people])
    before = {
        name: _rows(client, name, 3)
        for name in ("outcome_pathways", "outcome_college_going", "outcome_earnings")
    }
    assert {v["employment_year"] for v in before["outcome_pathways"].values()} == {2024}
    assert sum(v["employed"] for v in before["outcome_pathways"].values()) == 12
    # one wage record dated 2029, one completion dated 2030, one award in 2031: past every
    # horizon, they change no period and no count
    _insert(client, "c2c.linked.wage", [_wage("F000", 2029, 1, 9000)])
    late = _completion("F900", "ASIAN")
    late["facts"]["completion_date"] = datetime.date(2030, 6, 10)
    _insert(client, "c2c.linked.completion", [late])
    _insert(
        client,
        "c2c.linked.completion",
        [_award("F001", "ccc", "ASSOCIATE", datetime.date(2031, 6, 1))],
    )
    after = {name: _rows(client, name, 3) for name in before}
    assert after == before


def test_c2c_outcomes_prints_public_views_unless_asked_for_unsuppressed(
    client: Any, embedded: Settings
) -> None:
    client.close()  # `c2c outcomes` opens embedded ClickHouse itself
    printed = CliRunner().invoke(cli, ["outcomes"], obj=embedded)
    assert printed.exit_code == 0, printed.output
    titles = [line.split()[0] for line in printed.output.split("\n") if "rows)" in line]
    assert titles
    assert all(title.startswith("public_") for title in titles)
    refused = CliRunner().invoke(cli, ["outcomes", "outcome_completion"], obj=embedded)
    assert refused.exit_code != 0
    assert "--unsuppressed" in refused.output
    asked = ["outcomes", "outcome_completion", "--unsuppressed"]
    assert CliRunner().invoke(cli, asked, obj=embedded).exit_code == 0
    everything = CliRunner().invoke(cli, ["outcomes", "--unsuppressed"], obj=embedded)
    assert "\noutcome_completion (" in everything.output

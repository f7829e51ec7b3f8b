"""The outcome views and their public twins on a real (embedded) ClickHouse: merges are
followed, replayed events count once, small cells are suppressed with their complement."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.migrate import MigrationError, migrate
from sinks.outcomes import read_outcome
from sinks.rows import PERSON_MAP_COLUMNS, columns, fact_row

pytestmark = pytest.mark.integration
AT = datetime.datetime(2016, 6, 1, tzinfo=datetime.UTC)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    opened = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="o"))
    migrate(opened, min_cell=11)
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


def _term(person: str, provider: str, start: datetime.date) -> dict[str, Any]:
    facts = {
        "institution_id": f"{provider}-1",
        "district_id": None,
        "academic_year": start.year if start.month >= 7 else start.year - 1,
        "term": "FALL",
        "term_start_date": start,
        "grade_level": None,
        "program_cip": None,
        "first_time": True,
    }
    return _event(person, "ASIAN", facts, provider)


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

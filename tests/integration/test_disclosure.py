"""The differencing auditor (tests/disclosure.py) against the public views of synth
populations of several sizes and seeds: no suppressed cell may be recovered.

The facts are synth's lives under their true person ids (no linkage: what is audited is
the suppression, not the matching), written as the sink writes linked events."""

from __future__ import annotations

import datetime
import decimal
import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from producers.synth import SynthConfig
from producers.synth.outcomes import horizons
from producers.synth.population import Life, simulate_person
from sinks.horizons import declare_horizon
from sinks.migrate import migrate
from sinks.outcomes import read_outcome
from sinks.public import PUBLIC_VIEWS
from sinks.rows import columns, fact_row
from tests.disclosure import audit

pytestmark = pytest.mark.integration
MIN_CELL = 11


def _linked(life: Life) -> list[tuple[str, dict[str, Any]]]:
    """(topic, linked event) of every record of ``life``, under its true person id."""
    p = life.person
    attributes = {
        "birth_year": p.birth_date.year,
        "sex": p.sex,
        "demographics": {
            "race_ethnicity": p.race,
            "county_fips": p.county_fips,
            "foster_youth": p.foster_youth,
            "homeless": p.homeless,
            "socioeconomically_disadvantaged": p.disadvantaged,
            "english_learner": p.english_learner,
        },
    }

    def event(provider: str, when: datetime.date, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4(),
            "event_time": datetime.datetime(when.year, when.month, when.day, tzinfo=datetime.UTC),
            "provider": provider,
            "person_id": p.person_id,
            "attributes": attributes,
            "facts": facts,
        }

    out: list[tuple[str, dict[str, Any]]] = []
    for e in life.enrollments:
        facts = {
            "institution_id": e.institution,
            "district_id": None,
            "academic_year": e.academic_year,
            "term": e.term,
            "term_start_date": e.start,
            "grade_level": e.grade,
            "program_cip": e.program,
            "first_time": e.first_time,
        }
        out.append(("c2c.linked.enrollment", event(e.segment, e.start, facts)))
    for a in [*life.awards, *([life.hs_completion] if life.hs_completion else [])]:
        facts = {
            "award_level": a.level,
            "completion_date": a.date,
            "institution_id": a.institution,
            "program_cip": a.program,
        }
        out.append(("c2c.linked.completion", event(a.segment, a.date, facts)))
    for w in life.wages:
        facts = {
            "employer_id": w.employer,
            "naics": w.naics,
            "year": w.year,
            "quarter": w.quarter,
            "wages": decimal.Decimal(w.cents) / 100,
        }
        out.append(
            ("c2c.linked.wage", event("edd", datetime.date(w.year, 3 * w.quarter, 1), facts))
        )
    for g in life.aid:
        facts = {
            "aid_program": g.program,
            "award_year": g.award_year,
            "amount": decimal.Decimal(g.amount_cents) / 100,
            "institution_id": g.institution,
        }
        out.append(
            ("c2c.linked.financial_aid", event("csac", datetime.date(g.award_year, 9, 1), facts))
        )
    for c in life.credentials:
        facts = {
            "credential_type": c.kind,
            "issue_date": c.date,
            "recommending_institution_id": c.institution,
        }
        out.append(("c2c.linked.credential", event("ctc", c.date, facts)))
    return out


def _load(client: Any, config: SynthConfig) -> None:
    by_table: dict[str, list[list[Any]]] = {}
    for index in range(config.people):
        for topic, linked in _linked(simulate_person(config, index)):
            table, row = fact_row(topic, linked)
            by_table.setdefault(table, []).append(row)
    for table, rows in by_table.items():
        client.insert(table, rows, column_names=list(columns(table)))
    for provider, through in horizons(config.end_year).items():
        declare_horizon(client, provider, through)


@pytest.mark.parametrize(("people", "seed"), [(300, 1), (1000, 2), (3000, 3)])
def test_no_suppressed_cell_is_recovered_from_the_public_views(
    tmp_path: Path, people: int, seed: int
) -> None:
    settings = Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="d")
    client = connect(settings)
    try:
        migrate(client, min_cell=MIN_CELL)
        _load(client, SynthConfig(people=people, seed=seed, optout_rate=0.0))
        public = {v.name: read_outcome(client, v.name).to_dict() for v in PUBLIC_VIEWS}
        truth = {v.name: read_outcome(client, v.outcome).to_dict() for v in PUBLIC_VIEWS}
    finally:
        client.close()
    hidden = sum(1 for t in public.values() for r in t["rows"] for v in r if v is None)
    assert hidden > 0  # there is something to attack
    findings = audit(public, truth, MIN_CELL)
    assert not findings, "\n".join(str(f) for f in findings[:20]) + f"\n({len(findings)} in all)"

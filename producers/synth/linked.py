"""Synth's lives as linked events under their true person ids: what the identity resolver
would publish if it linked perfectly. For measuring what does not depend on linkage (the
public views' suppression: tests/integration/test_disclosure.py, bench/suppression.py)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from producers.synth.population import Life

__all__ = ["linked_events"]


def linked_events(life: Life) -> list[tuple[str, dict[str, Any]]]:
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
        facts: dict[str, Any] = {
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

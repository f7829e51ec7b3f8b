"""Synth's lives as linked events under their true person ids: what the identity resolver
would publish if it linked perfectly. For measuring what does not depend on linkage (the
public views' suppression: tests/integration/test_disclosure.py, bench/suppression.py)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from c2c.kinds import get_kind
from producers.synth.extracts import demographics, facts_of
from producers.synth.population import Life

__all__ = ["linked_events"]


def linked_events(life: Life) -> list[tuple[str, dict[str, Any]]]:
    """(topic, linked event) of every record of ``life``, under its true person id."""
    p = life.person
    attributes = {
        "birth_year": p.birth_date.year,
        "sex": p.sex,
        "demographics": demographics(life),
    }
    return [
        (
            get_kind(kind).linked_topic,
            {
                "event_id": uuid.uuid4(),
                "event_time": datetime.datetime(
                    when.year, when.month, when.day, tzinfo=datetime.UTC
                ),
                "provider": provider,
                "person_id": p.person_id,
                "attributes": attributes,
                "facts": facts,
            },
        )
        for provider, kind, when, _institution, facts in facts_of(life)
    ]

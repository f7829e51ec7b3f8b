"""Example events of every raw and linked type, valid against the schemas, for tests,
benchmarks and documentation. Deterministic for an index; the people are fictional."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from c2c.kinds import LINKED_KINDS

__all__ = ["RAW_KINDS", "example_linked", "example_raw"]

# The kinds with example events: every linked kind (c2c.kinds), in catalogue order.
RAW_KINDS: tuple[str, ...] = tuple(kind.name for kind in LINKED_KINDS)

_FIRST = ("Maria", "José", "William", "Nguyen", "Aaliyah", "Chen", "Sofía", "Daniel")
_LAST = ("García", "Smith", "Lopez-Hernandez", "O'Brien", "Tran", "Johnson", "Kim", "Patel")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _event_id(kind: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"c2c-example/{kind}/{index}"))


def _person(index: int) -> dict[str, Any]:
    return {
        "source_person_id": f"P{index:08d}",
        "ssn": f"{(100000000 + index * 7919) % 899999999 + 100000000}",
        "itin": None,
        "ssid": f"{(1000000000 + index * 104729) % 8999999999 + 1000000000}",
        "state_aid_id": None,
        "first_name": _FIRST[index % len(_FIRST)],
        "middle_name": None,
        "last_name": _LAST[(index // 3) % len(_LAST)],
        "birth_date": date(1995, 1, 1) + timedelta(days=index % 3650),
        "sex": ("FEMALE", "MALE", "NONBINARY")[index % 3],
        "zip": f"{90001 + index % 6000:05d}",
    }


def _demographics(index: int) -> dict[str, Any]:
    return {
        "race_ethnicity": ("HISPANIC_LATINO", "ASIAN", "WHITE", "BLACK_AFRICAN_AMERICAN")[
            index % 4
        ],
        "county_fips": f"06{(index % 58) * 2 + 1:03d}",
        "foster_youth": index % 50 == 0,
        "homeless": index % 40 == 0,
        "socioeconomically_disadvantaged": index % 2 == 0,
        "english_learner": index % 5 == 0,
    }


def _enrollment(index: int) -> dict[str, Any]:
    return {
        "institution_id": f"CCC{index % 116:03d}",
        "district_id": None,
        "academic_year": 2024,
        "term": "FALL",
        "term_start_date": date(2024, 8, 26),
        "grade_level": None,
        "program_cip": "11.0701",
        "first_time": index % 3 == 0,
    }


def _completion(index: int) -> dict[str, Any]:
    return {
        "award_level": "BACHELOR",
        "completion_date": date(2025, 5, 20),
        "institution_id": f"CSU{index % 23:02d}",
        "program_cip": "52.0201",
    }


def _financial_aid(index: int) -> dict[str, Any]:
    return {
        "aid_program": "CAL_GRANT_B",
        "award_year": 2024,
        "amount": Decimal(f"{1648 + index % 500}.00"),
        "institution_id": "UC03",
    }


def _wage(index: int) -> dict[str, Any]:
    return {
        "employer_id": f"E{index % 100000:07d}",
        "naics": "611310",
        "year": 2025,
        "quarter": index % 4 + 1,
        "wages": Decimal(f"{9000 + index % 20000}.{index % 100:02d}"),
    }


def _credential(index: int) -> dict[str, Any]:
    return {
        "credential_type": "PRELIMINARY_MULTIPLE_SUBJECT",
        "issue_date": date(2025, 6, 30),
        "recommending_institution_id": "CSU05",
    }


@dataclass(frozen=True)
class _Example:
    """A kind's example: the provider that sends it, its facts for an index, and whether
    it carries demographics (wage records do not)."""

    provider: str
    facts: Callable[[int], dict[str, Any]]
    demographics: bool = True


# One example for each kind of RAW_KINDS (tests/unit/test_kinds.py makes one of each).
_EXAMPLES: Mapping[str, _Example] = {
    "enrollment": _Example("ccc", _enrollment),
    "completion": _Example("csu", _completion),
    "financial_aid": _Example("csac", _financial_aid),
    "wage": _Example("edd", _wage, demographics=False),
    "credential": _Example("ctc", _credential),
}


def _example(kind: str) -> _Example:
    try:
        return _EXAMPLES[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(RAW_KINDS)}") from None


def example_raw(kind: str, index: int = 0) -> dict[str, Any]:
    """A raw (identity zone) event of ``kind`` as the Avro encoder takes it; ValueError
    for a kind with no example (one of RAW_KINDS)."""
    example = _example(kind)
    return {
        "event_id": _event_id(kind, index),
        "event_time": _EPOCH + timedelta(minutes=index),
        "provider": example.provider,
        "source_record_id": f"{kind[:3].upper()}-{index:09d}",
        "person": _person(index),
        "demographics": _demographics(index) if example.demographics else None,
        "facts": example.facts(index),
    }


def example_linked(kind: str, index: int = 0) -> dict[str, Any]:
    """A linked (de-identified) event of ``kind``."""
    raw = example_raw(kind, index)
    return {
        "event_id": raw["event_id"],
        "event_time": raw["event_time"],
        "provider": raw["provider"],
        "person_id": f"c2c-{index:012d}",
        "attributes": {
            "birth_year": raw["person"]["birth_date"].year,
            "sex": raw["person"]["sex"],
            "demographics": _demographics(index),
        },
        "facts": raw["facts"],
    }

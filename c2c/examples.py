"""Example events of every raw and linked type, valid against the schemas, for tests,
benchmarks and documentation. Deterministic for an index; the people are fictional."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from c2c.kinds import LINKED_KINDS

__all__ = ["RAW_KINDS", "example_linked", "example_raw"]

# The kinds with example events: every linked kind (c2c.kinds), in catalogue order.
RAW_KINDS: tuple[str, ...] = tuple(kind.name for kind in LINKED_KINDS)

_FIRST = ("Maria", "José", "William", "Nguyen", "Aaliyah", "Chen", "Sofía", "Daniel")
_LAST = ("García", "Smith", "Lopez-Hernandez", "O'Brien", "Tran", "Johnson", "Kim", "Patel")
_PROVIDER = {
    "enrollment": "ccc",
    "completion": "csu",
    "financial_aid": "csac",
    "wage": "edd",
    "credential": "ctc",
}
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


def _facts(kind: str, index: int) -> dict[str, Any]:
    if kind == "enrollment":
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
    if kind == "completion":
        return {
            "award_level": "BACHELOR",
            "completion_date": date(2025, 5, 20),
            "institution_id": f"CSU{index % 23:02d}",
            "program_cip": "52.0201",
        }
    if kind == "financial_aid":
        return {
            "aid_program": "CAL_GRANT_B",
            "award_year": 2024,
            "amount": Decimal(f"{1648 + index % 500}.00"),
            "institution_id": "UC03",
        }
    if kind == "wage":
        return {
            "employer_id": f"E{index % 100000:07d}",
            "naics": "611310",
            "year": 2025,
            "quarter": index % 4 + 1,
            "wages": Decimal(f"{9000 + index % 20000}.{index % 100:02d}"),
        }
    if kind == "credential":
        return {
            "credential_type": "PRELIMINARY_MULTIPLE_SUBJECT",
            "issue_date": date(2025, 6, 30),
            "recommending_institution_id": "CSU05",
        }
    raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(RAW_KINDS)}")


def example_raw(kind: str, index: int = 0) -> dict[str, Any]:
    """A raw (identity zone) event of ``kind`` as the Avro encoder takes it."""
    return {
        "event_id": _event_id(kind, index),
        "event_time": _EPOCH + timedelta(minutes=index),
        "provider": _PROVIDER.get(kind, "other"),
        "source_record_id": f"{kind[:3].upper()}-{index:09d}",
        "person": _person(index),
        "demographics": _demographics(index) if kind != "wage" else None,
        "facts": _facts(kind, index),
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

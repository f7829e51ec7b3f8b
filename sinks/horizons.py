"""Each source's horizon: the last day of the latest complete period it has sent.

Outcome windows close against it (migration 0009): a measure whose window reaches past the
horizon of a source it reads is NULL, a cohort whose defining period is past its source's
horizon is not counted yet, and a measure's period (the employment year of pathways) is
taken from it. It is declared, never guessed from the latest date seen: one record dated
in the future would otherwise move every period. A provider (or an operator on its behalf)
declares it when a period's delivery is complete: `c2c horizon set edd 2025Q4`.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from c2c.errors import C2CError

__all__ = ["HorizonError", "declare_horizon", "parse_period", "read_horizons"]

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_SCHOOL_YEAR = re.compile(r"^(\d{4})-(\d{2})$")


class HorizonError(C2CError):
    """A horizon that cannot be declared: the message names the value and the forms taken."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="horizon.invalid")


def parse_period(period: str) -> datetime.date:
    """The last day of ``period``: a date (2025-12-31), a quarter (2025Q4: its last day) or
    a school year (2025-26: June 30, 2026). HorizonError names the forms for anything else."""
    text = period.strip()
    quarter = _QUARTER.match(text)
    if quarter:
        year, q = int(quarter.group(1)), int(quarter.group(2))
        first_of_next = datetime.date(year + q // 4, q % 4 * 3 + 1, 1)
        return first_of_next - datetime.timedelta(days=1)
    school = _SCHOOL_YEAR.match(text)
    if school:
        start = int(school.group(1))
        if (start + 1) % 100 != int(school.group(2)):
            raise HorizonError(f"{period!r}: a school year is two years in a row, as 2025-26")
        return datetime.date(start + 1, 6, 30)
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise HorizonError(
            f"{period!r} is not a period: give the last complete one as a date (2025-12-31), "
            "a quarter (2025Q4) or a school year (2025-26)"
        ) from None


def declare_horizon(
    client: Any, provider: str, through: datetime.date, *, declared_by: str = ""
) -> None:
    """Record that ``provider`` has sent every period up to ``through`` (inserts a row of
    ``source_horizon``; the latest declaration counts, so a correction is a new one)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", provider):
        raise HorizonError(f"{provider!r} is not a source name (k12, ccc, csu, uc, csac, edd, ...)")
    client.insert(
        "source_horizon",
        [[provider, through, declared_by]],
        column_names=["provider", "complete_through", "declared_by"],
    )


def read_horizons(client: Any) -> dict[str, datetime.date]:
    """The horizon each source has declared (its latest declaration)."""
    rows = client.query(
        "SELECT provider, argMax(complete_through, declared_at) FROM source_horizon "
        "GROUP BY provider ORDER BY provider"
    ).result_rows
    return {str(provider): through for provider, through in rows}

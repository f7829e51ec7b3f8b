"""The public_* twins of the outcome views: small cells suppressed, with complementary
suppression, so that no published number describes fewer than ``min_cell`` people.

Per count column of a row:
- primary: the denominator below ``min_cell``; a numerator below it, or the denominator
  minus the numerator below it (the complement is a count too), or the denominator hidden.
- complementary: rows of one partition add up to a published margin (the race groups of a
  class to its 'all' row). Where exactly one cell of a column is hidden in a partition, the
  next smallest of that column is hidden as well, so the hidden one cannot be recovered by
  subtraction.
- statistics (a median, a quartile): hidden where the count of people behind it is below
  ``min_cell``.

Pure SQL generation; :mod:`sinks.migrate` runs the statements.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLIC_VIEWS", "PublicView", "public_view_statements"]


@dataclass(frozen=True)
class PublicView:
    outcome: str  # the outcome_* view
    keys: tuple[str, ...]  # columns shown as they are
    denominator: str
    numerators: tuple[str, ...]
    partition: tuple[str, ...]  # rows that add up to a margin; () for none
    statistics: tuple[tuple[str, str], ...] = ()  # (value column, count of people behind it)

    @property
    def name(self) -> str:
        return f"public_{self.outcome}"


PUBLIC_VIEWS: tuple[PublicView, ...] = (
    PublicView(
        "outcome_college_going",
        ("class_year", "breakdown", "group_value"),
        "completers",
        (
            "within_12",
            "within_16",
            "within_12_ccc",
            "within_12_csu",
            "within_12_uc",
            "within_16_ccc",
            "within_16_csu",
            "within_16_uc",
        ),
        ("class_year", "breakdown"),
    ),
    PublicView(
        "outcome_working_while_enrolled",
        ("segment", "academic_year"),
        "students",
        ("with_wages",),
        (),
    ),
    PublicView(
        "outcome_financial_aid", ("segment", "academic_year"), "students", ("with_aid",), ()
    ),
    PublicView(
        "outcome_teacher_pipeline",
        ("issue_year", "credential_type"),
        "credentials",
        ("with_ca_public_bachelor",),
        (),
    ),
    PublicView(
        "outcome_pathways",
        ("class_year", "first_destination", "highest_award", "employment_year"),
        "completers",
        ("employed",),
        ("class_year",),  # a class's rows add up to its completers (public college-going)
    ),
    PublicView(
        "outcome_completion",
        ("segment", "entry_year"),
        "entrants",
        ("within_150", "within_8_years"),
        (),
    ),
    PublicView(
        "outcome_earnings",
        ("award_year", "award_level", "breakdown", "group_value"),
        "awards",
        ("wages_q2", "wages_q4", "wages_q20"),
        ("award_year", "award_level", "breakdown"),  # programs, institutions add up to 'all'
        tuple(
            (f"{stat}_{span}", count)
            for span, count in (("1y", "wages_q4"), ("5y", "wages_q20"))
            for stat in ("p25", "median", "p75")
        ),
    ),
)


def _primary(view: PublicView, column: str, k: int) -> str:
    d = view.denominator
    if column == d:
        return f"({d} < {k})"
    return f"({column} < {k} OR {d} - {column} < {k} OR {d} < {k})"


def _statement(view: PublicView, k: int) -> str:
    counts = (view.denominator, *view.numerators)
    flags = []
    for column in counts:
        primary = _primary(view, column, k)
        if view.partition:
            window = f"PARTITION BY {', '.join(view.partition)}"
            flags.append(
                f"{primary} OR (countIf({primary}) OVER ({window}) = 1 AND "
                f"row_number() OVER ({window} ORDER BY {primary} DESC, {column} ASC) = 2) "
                f"AS hide_{column}"
            )
        else:
            flags.append(f"{primary} AS hide_{column}")
    d = view.denominator
    shown = [f"if(hide_{d}, NULL, {d}) AS {d}"] + [
        f"if(hide_{c} OR hide_{d}, NULL, {c}) AS {c}" for c in view.numerators
    ]
    # flagged inside, where the count is still the outcome's: outside, its name is the
    # suppressed column's alias
    flags += [f"({count} < {k}) AS hide_{value}" for value, count in view.statistics]
    shown += [f"if(hide_{value}, NULL, {value}) AS {value}" for value, _ in view.statistics]
    return (
        f"CREATE OR REPLACE VIEW {view.name} "
        f"AS SELECT {', '.join((*view.keys, *shown))} "
        f"FROM (SELECT *, {', '.join(flags)} FROM {view.outcome}) "
        f"COMMENT '{view.outcome} with cells under {k} people suppressed, and complementary "
        f"suppression: NULL is a suppressed cell'"
    )


def public_view_statements(min_cell: int) -> list[str]:
    """CREATE OR REPLACE statements of every public view for a threshold of ``min_cell``."""
    if min_cell < 1:
        raise ValueError(f"min_cell must be at least 1, not {min_cell}")
    return [_statement(view, min_cell) for view in PUBLIC_VIEWS]

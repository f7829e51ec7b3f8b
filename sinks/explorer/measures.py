"""The seven public measures as the explorer shows them: which public view, which year,
which count over which denominator is the headline, which columns break it down, and which
fact tables feed it (for freshness). Declared once; pages and queries are built from it."""

from __future__ import annotations

from dataclasses import dataclass

from sinks.public import PUBLIC_VIEWS, PublicView

__all__ = ["MEASURES", "Measure", "measure"]


@dataclass(frozen=True)
class Measure:
    key: str  # the URL's name: the outcome view without its prefix
    title: str
    headline: str  # the count whose share of the denominator is the headline
    headline_label: str
    year: str  # the year column
    sources: tuple[str, ...]  # fact tables the view reads
    # the headline's rows: key column -> value ('all' rows); other keys are summed over
    headline_filters: tuple[tuple[str, str], ...] = ()

    @property
    def view(self) -> PublicView:
        return next(v for v in PUBLIC_VIEWS if v.outcome == f"outcome_{self.key}")

    @property
    def table(self) -> str:
        return self.view.name

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Key columns other than the year: what a query may filter or break down by."""
        return tuple(k for k in self.view.keys if k != self.year)

    @property
    def counts(self) -> tuple[str, ...]:
        """The counts a query may ask for, the headline first."""
        rest = tuple(c for c in self.view.numerators if c != self.headline)
        return (self.headline, *rest)

    @property
    def statistics(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.view.statistics)


MEASURES: tuple[Measure, ...] = (
    Measure(
        "college_going",
        "College-going",
        "within_12",
        "of high school completers enrolled in a public college within 12 months",
        "class_year",
        ("fact_completion", "fact_enrollment"),
        (("breakdown", "all"),),
    ),
    Measure(
        "completion",
        "College completion",
        "within_150",
        "of first-time entrants completed within 150% of normal time",
        "entry_year",
        ("fact_enrollment", "fact_completion", "fact_financial_aid"),
        (("breakdown", "all"),),
    ),
    Measure(
        "earnings",
        "Employment after an award",
        "wages_q4",
        "of award earners had wages in the 4th quarter after their award",
        "award_year",
        ("fact_completion", "fact_wage"),
        (("breakdown", "all"),),
    ),
    Measure(
        "working_while_enrolled",
        "Working while enrolled",
        "with_wages",
        "of college students had wages in a quarter they were enrolled",
        "academic_year",
        ("fact_enrollment", "fact_wage"),
    ),
    Measure(
        "financial_aid",
        "Financial aid",
        "with_aid",
        "of college students received financial aid",
        "academic_year",
        ("fact_enrollment", "fact_financial_aid"),
        (("breakdown", "all"),),
    ),
    Measure(
        "teacher_pipeline",
        "Teacher pipeline",
        "with_ca_public_bachelor",
        "of new teaching credentials went to CSU or UC bachelor's graduates",
        "issue_year",
        ("fact_credential", "fact_completion"),
        (("breakdown", "all"),),
    ),
    Measure(
        "pathways",
        "Pathways to work",
        "employed",
        "of high school completers had wages in the employment year",
        "class_year",
        ("fact_completion", "fact_enrollment", "fact_wage"),
    ),
)


def measure(key: str) -> Measure:
    """The measure named ``key``; KeyError names the ones there are."""
    for m in MEASURES:
        if m.key == key:
            return m
    raise KeyError(f"no measure {key!r}; there are: {', '.join(m.key for m in MEASURES)}")

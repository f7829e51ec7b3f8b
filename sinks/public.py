"""The public_* twins of the outcome views: small cells suppressed, with complementary
suppression over every additive relation the views publish, so that no published number,
nor any sum or difference of them, pins down a count of fewer than ``min_cell`` people.

What a reader can add up (the data dictionary in sinks/README.md says so too):
- within a row, the counts of a *family* add up or nest (college-going's within_12 is the
  sum of its three segments, and within_12 <= within_16; completion's within_150 <=
  within_8_years), and each is at most the row's denominator;
- across rows, the rows of a *partition* add up to a published margin (the race groups of
  a class to its 'all' row, a class's pathways to its completers in college-going, the
  programs and institutions of an award year and level to its 'all' row, the entrants of a
  segment and year who did and did not receive aid to its 'all' row); the aid programs of a
  segment and year split its 'all' row's aided among the same students (``splits_margin``);
- tables that share a population publish its size once each (working while enrolled and
  financial aid: the same students, suppressed by the same rule).

Rules, in this order:
1. the denominator is hidden below ``min_cell``; where a partition hides exactly one, the
   next smallest is hidden too, so the hidden one is not the margin less the rest.
2. a family is hidden as a whole in a row whose denominator is hidden, or where any of its
   counts, or the denominator less it (the complement), is below ``min_cell``.
3. in a partition, where some rows hide a family, further rows hide it (smallest
   denominator first) until, for every count of the family, the complementary rows alone
   hold at least ``min_cell`` of it and ``min_cell`` of its complement: a hidden count then
   lies in an interval at least that wide, whatever is subtracted from the margin.
4. statistics (a median, a quartile) are hidden where the count of people behind it is
   below ``min_cell`` or hidden; coverage is rounded to a tenth and hidden with the
   denominator.

Each row lists its cells hidden by rules 1-4 in a column ``suppressed`` (Array(String)), so
that a reader tells a suppressed cell from a window not closed yet (:func:`_suppressed`
argues why that publishes nothing the rules do not already assume a reader knows).

tests/integration/test_disclosure.py attacks the result with every relation above
(sinks/disclosure.py). Pure SQL generation; :mod:`sinks.migrate` runs the statements.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PUBLIC_VIEWS",
    "SUPPRESSED_COLUMN",
    "PublicView",
    "public_view_statements",
    "suppression_flags",
]

# each public view's last column: the names of the row's cells hidden by suppression
SUPPRESSED_COLUMN = "suppressed"


@dataclass(frozen=True)
class PublicView:
    outcome: str  # the outcome_* view
    keys: tuple[str, ...]  # columns shown as they are
    denominator: str
    families: tuple[tuple[str, ...], ...]  # counts hidden together in a row
    partition: tuple[str, ...]  # rows that add up to a margin; () for none
    margined: bool = True  # whether the families' counts too add up to a published margin
    statistics: tuple[tuple[str, str], ...] = ()  # (value column, count of people behind it)
    # the partition's rows split the counts of its margin (the 'all' row of the breakdown)
    # among the margin's own people, rather than splitting its people: every row has the
    # margin's denominator, so the margin's complement is not the sum of the rows'
    splits_margin: bool = False

    @property
    def name(self) -> str:
        return f"public_{self.outcome}"

    @property
    def numerators(self) -> tuple[str, ...]:
        return tuple(column for family in self.families for column in family)


PUBLIC_VIEWS: tuple[PublicView, ...] = (
    PublicView(
        "outcome_college_going",
        ("class_year", "breakdown", "group_value"),
        "completers",
        (
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
        ),
        ("class_year", "breakdown"),
    ),
    PublicView(
        "outcome_working_while_enrolled",
        ("segment", "academic_year"),
        "students",
        (("with_wages",),),
        (),
    ),
    PublicView(
        "outcome_financial_aid",
        ("segment", "academic_year", "breakdown", "group_value"),
        "students",
        (("with_aid",),),
        ("segment", "academic_year", "breakdown"),  # programs split the 'all' row's with_aid
        splits_margin=True,  # ... among its students, who are every program row's too
    ),
    PublicView(
        "outcome_teacher_pipeline",
        ("issue_year", "credential_type", "breakdown", "group_value"),
        "credentials",
        (("with_ca_public_bachelor",),),
        ("issue_year", "credential_type", "breakdown"),  # institutions add up to 'all'
    ),
    PublicView(
        "outcome_pathways",
        ("class_year", "first_destination", "highest_award", "employment_year"),
        "completers",
        (("employed",),),
        ("class_year",),  # a class's rows add up to its completers (public college-going)
        margined=False,  # nothing publishes a class's employed
    ),
    PublicView(
        "outcome_completion",
        ("segment", "entry_year", "breakdown", "group_value"),
        "entrants",
        (("within_150", "within_8_years"),),
        ("segment", "entry_year", "breakdown"),  # aid receipt's groups add up to 'all'
    ),
    PublicView(
        "outcome_earnings",
        ("award_year", "award_level", "breakdown", "group_value"),
        "awards",
        (("wages_q2",), ("wages_q4",), ("wages_q20",)),
        ("award_year", "award_level", "breakdown"),  # programs, institutions add up to 'all'
        statistics=tuple(
            (f"{stat}_{span}", count)
            for span, count in (("1y", "wages_q4"), ("5y", "wages_q20"))
            for stat in ("p25", "median", "p75")
        ),
    ),
)


def _complemented(view: PublicView, flag: str, primary: str, met: list[str]) -> str:
    """``flag``: ``primary`` (a column), or a row taken as complementary in its partition.
    Rows are taken primaries first, then by the denominator, smallest first, until every
    condition of ``met`` holds of the complementary rows before this one (in each, ``{rows}``
    is the window over the rows before, ``{primary}`` the primary flag)."""
    window = f"PARTITION BY {', '.join(view.partition)}"
    order = f"ORDER BY {primary} DESC, {view.denominator} ASC, {', '.join(view.keys)}"
    rows = f"({window} {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    conditions = " AND ".join(f"({m.format(rows=rows, primary=primary)})" for m in met)
    return f"{primary} OR (max({primary}) OVER ({window}) AND NOT ({conditions})) AS {flag}"


def _statement(view: PublicView, k: int) -> str:
    d = view.denominator
    # 1. the denominator
    level = f"SELECT *, ({d} < {k}) AS primary_{d} FROM {view.outcome}"
    if view.partition:
        # the margin less the published rows is the hidden ones' sum: two rows at least
        one_more = ["count() OVER {rows} >= 2"]
        hide_d = _complemented(view, f"hide_{d}", f"primary_{d}", one_more)
        level = f"SELECT *, {hide_d} FROM ({level})"
    else:
        level = f"SELECT *, primary_{d} AS hide_{d} FROM ({level})"
    # 2. and 3. each family
    for number, family in enumerate(view.families):
        primary = " OR ".join(f"ifNull({c} < {k} OR {d} - {c} < {k}, false)" for c in family)
        if view.splits_margin:
            # the rows' counts add up to the margin's: where it hides them (its complement,
            # say, is small), they would give it away, so they hide them too
            *outer, breakdown = view.partition
            over = f"PARTITION BY {', '.join(outer)}"
            margin = f"max(if({breakdown} = 'all', {primary}, false)) OVER ({over})"
            primary = f"{primary} OR {margin}"
        level = f"SELECT *, (hide_{d} OR {primary}) AS primary_f{number} FROM ({level})"
        if view.partition and view.margined:
            # per count, the complementary rows hold k of it or k of its complement (NULL:
            # an open window, never subtracted), so a hidden count's interval is k wide
            taken = "sum(if({primary}, 0, ifNull(%s, %d))) OVER {rows} >= %d"
            met = [f"{taken % (c, k, k)} OR {taken % (f'{d} - {c}', k, k)}" for c in family]
            hide = _complemented(view, f"hide_f{number}", f"primary_f{number}", met)
            level = f"SELECT *, {hide} FROM ({level})"
        else:
            level = f"SELECT *, primary_f{number} AS hide_f{number} FROM ({level})"
    hidden = {c: f"hide_f{n}" for n, family in enumerate(view.families) for c in family}
    shown = [f"if(hide_{d}, NULL, {d}) AS {d}"] + [
        f"if({hidden[c]}, NULL, {c}) AS {c}" for c in view.numerators
    ]
    # 4. statistics and coverage (flagged inside, where the names are still the outcome's)
    flags = [
        f"(ifNull({count} < {k}, true) OR {hidden[count]}) AS hide_{value}"
        for value, count in view.statistics
    ]
    if flags:
        level = f"SELECT *, {', '.join(flags)} FROM ({level})"
    shown += [f"if(hide_{value}, NULL, {value}) AS {value}" for value, _ in view.statistics]
    shown.append(f"if(hide_{d}, NULL, round(coverage, 1)) AS coverage")
    shown.append(f"{_suppressed(view)} AS {SUPPRESSED_COLUMN}")
    return (
        f"CREATE OR REPLACE VIEW {view.name} "
        f"AS SELECT {', '.join((*view.keys, *shown))} "
        f"FROM ({level}) "
        f"COMMENT '{view.outcome} with cells under {k} people suppressed, and complementary "
        f"suppression over every sum the views publish; {SUPPRESSED_COLUMN} names the row''s "
        f"cells hidden by suppression, any other NULL is a window not closed yet (or, for "
        f"employment_year and employed, no edd horizon); coverage rounded to a tenth'"
    )


def suppression_flags(view: PublicView) -> tuple[tuple[str, str], ...]:
    """Each column the suppression may hide, in the view's order, with the flag that hides
    it: the denominator and coverage their row's, a count its family's, a statistic its
    count's family's (a statistic is NULL too where its count is under the threshold, but
    then its count is hidden, or NULL itself: an open window, not a suppressed one)."""
    hidden = {c: f"hide_f{n}" for n, family in enumerate(view.families) for c in family}
    d = f"hide_{view.denominator}"
    return (
        (view.denominator, d),
        *((c, hidden[c]) for c in view.numerators),
        *((value, hidden[count]) for value, count in view.statistics),
        ("coverage", d),
    )


def _suppressed(view: PublicView) -> str:
    """The names of the row's cells hidden by suppression: the suppression pattern, and
    nothing more. Why that leaks nothing the NULLs do not:
    - a cell's flag is its hide flag, set whether or not its window is open, so a hidden
      cell never says whether its (small) group's window has closed;
    - where the window is closed the NULL already is the flag (a closed count is never
      NULL), as it is for every cell of a year whose windows have all closed; the flags
      show open years' patterns as those years will show them once closed;
    - rules 1-3 are built to hold against a reader who knows the pattern: the auditor
      (sinks/disclosure.py) bounds hidden cells knowing which NULLs are open windows.
    What a reader learns besides is that an unlisted NULL is an open window (or, per
    column, no horizon declared) of a row whose population is published, at least
    ``min_cell`` people."""
    names, flags = zip(*suppression_flags(view), strict=True)
    listed = ", ".join(f"'{name}'" for name in names)
    return f"arrayFilter((c, h) -> h, [{listed}], [{', '.join(flags)}])"


def public_view_statements(min_cell: int) -> list[str]:
    """CREATE OR REPLACE statements of every public view for a threshold of ``min_cell``."""
    if min_cell < 1:
        raise ValueError(f"min_cell must be at least 1, not {min_cell}")
    return [_statement(view, min_cell) for view in PUBLIC_VIEWS]

"""The expected value of each outcome measure, computed directly from the simulated lives
(not through the pipeline), so the pipeline's outcome tables can be checked against it.

:class:`OutcomeTruth` accumulates counters person by person (memory bounded by the number
of breakdown cells, not people) and :meth:`OutcomeTruth.result` gives JSON-ready data with
each measure's definition. Every person given counts: synth keeps a second instance over
the people who never asked to opt out (``truth/outcomes_without_optouts.json``).
"""

from __future__ import annotations

import datetime
import statistics
from collections import Counter, defaultdict
from typing import Any

from producers.synth.population import Life

__all__ = ["DEFINITIONS", "OutcomeTruth", "horizons"]

DEFINITIONS = {
    "college_going": "Of high-school completers in class Y (completion in spring Y), those "
    "whose first public postsecondary term starts within 12 months (365 days) and within 16 "
    "months (487 days) of completion; by segment of that first term; all, and by race, sex, "
    "county and the K-12 student groups (english_learner, foster_youth, homeless, "
    "socioeconomically_disadvantaged: true or false).",
    "pathways": "Class Y completers by first destination (segment of first postsecondary "
    "term within 8 years, else NOT_ENROLLED, or UNKNOWN while those 8 years are not over by "
    "the horizons), highest postsecondary award by the horizons (BACHELOR > ASSOCIATE > "
    "CERTIFICATE > NONE), and whether they had wages in the last calendar year complete by "
    "the wage data's horizon.",
    "horizons": "What each provider has sent in full (the last day of its latest complete "
    "period). A measure whose window reaches past the horizon of a source it reads is None "
    "(unknown); a cohort past its defining source's horizon is not counted.",
    "completion": "First-time students entering a segment in the academic year ending in Y; "
    "awarded that segment's level (CCC: certificate or associate; CSU, UC: bachelor's) by "
    "June 30 of Y+2 (CCC) or Y+5 (CSU, UC) (150% of normal time), and by June 30 of Y+7; "
    "all ('segment|Y'), and by aid receipt ('segment|Y|received_aid=true'): any aid award "
    "of the person for the aid year of entry (false: none; UNKNOWN while that aid year is "
    "past the csac horizon).",
    "earnings": "Awards by level and award year: share with any wages in the 2nd and the 4th "
    "quarter after the award's quarter; median and quartiles of quarterly wages (dollars) "
    "in the 4th and 20th quarter after, among those with wages then.",
    "earnings_by": "earnings, by program (2-digit CIP family: 'level|year|program=52') and by "
    "institution ('level|year|institution=segment:institution id'); wages_q20 is the count "
    "of awards with wages in the 20th quarter after.",
    "working_while_enrolled": "Students enrolled at a segment in the academic year ending in "
    "Y, and those "
    "with wages in a quarter in which one of their terms that year starts.",
    "financial_aid": "Students enrolled at a segment in the academic year ending in Y, and "
    "those with an aid award for that aid year at an institution of that segment; by aid "
    "program ('segment|year|program=PELL': the same students, those with an award of that "
    "program), for every program awarded in an aid year started by the csac horizon.",
    "teacher_pipeline": "Credentials issued by year and type ('year|type'), and by "
    "recommending institution ('year|type|institution=id'); how many holders earned a "
    "bachelor's at CSU or UC before the credential.",
}


def horizons(end_year: int) -> dict[str, datetime.date]:
    """What synth's providers have sent in full (their horizons, `c2c sink horizon`): the
    colleges, universities and aid commission every academic year starting by ``end_year``
    (awards to June of the next), K-12 its school years to then, wages and credentials the
    calendar year ``end_year``."""
    school = datetime.date(end_year + 1, 6, 30)
    calendar = datetime.date(end_year, 12, 31)
    return {
        "k12": school,
        "ccc": school,
        "csu": school,
        "uc": school,
        "csac": school,
        "edd": calendar,
        "ctc": calendar,
    }


# A counter key "open:M" counts people whose window for measure M had not closed by the
# horizons: the measure is then unknown (None), as the outcome views' NULL.
_OPEN = "open:"


def _closed(counter: Counter[str]) -> dict[str, Any]:
    """``counter`` as a row: each measure with an open window None, the marks removed."""
    row: dict[str, Any] = {k: v for k, v in counter.items() if not k.startswith(_OPEN)}
    for key, count in counter.items():
        if key.startswith(_OPEN) and count:
            row[key.removeprefix(_OPEN)] = None
    return row


_RANK = {"CERTIFICATE": 1, "ASSOCIATE": 2, "BACHELOR": 3}
_SEGMENT_LEVELS = {"ccc": {"CERTIFICATE", "ASSOCIATE"}, "csu": {"BACHELOR"}, "uc": {"BACHELOR"}}
_NORMAL_YEARS = {"ccc": 3, "csu": 6, "uc": 6}


def _quarter(day: datetime.date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def _add_quarters(q: tuple[int, int], n: int) -> tuple[int, int]:
    index = q[0] * 4 + (q[1] - 1) + n
    return index // 4, index % 4 + 1


def _add_award(
    counter: Counter[str],
    values: dict[str, list[int]],
    cell: str,
    award: Any,
    wages: dict[tuple[int, int], int],
    last_quarter: tuple[int, int],
) -> None:
    """Count ``award`` into ``cell``: wages in the 2nd, 4th and 20th quarter after it, and
    the wages (cents) 1 and 5 years after into ``values``; a quarter after
    ``last_quarter`` (the wage data's horizon) is open."""
    counter["awards"] += 1
    q = _quarter(award.date)
    for after in (2, 4, 20):
        if _add_quarters(q, after) > last_quarter:
            counter[f"{_OPEN}wages_q{after}"] += 1
        if _add_quarters(q, after) in wages:
            counter[f"wages_q{after}"] += 1
    for after, label in ((4, "1y"), (20, "5y")):
        if _add_quarters(q, after) > last_quarter:
            counter[f"{_OPEN}wages_{label}"] += 1
        cents = wages.get(_add_quarters(q, after))
        if cents is not None:
            values[f"{cell}|{label}"].append(cents)


def _wage_rows(
    counts: dict[str, Counter[str]], values: dict[str, list[int]], *, with_q20: bool
) -> dict[str, Any]:
    """Each cell's counts, and the quartiles (dollars) of its wages 1 and 5 years after
    where at least two had wages then."""
    rows: dict[str, Any] = {}
    for cell, counter in sorted(counts.items()):
        row = _closed(counter)
        if not with_q20:
            row.pop("wages_q20", None)
        for label in ("1y", "5y"):
            found = sorted(values.get(f"{cell}|{label}", []))
            if row.pop(f"wages_{label}", 0) is None:
                continue  # the quarter is past the horizon
            if len(found) >= 2:
                q1, median, q3 = statistics.quantiles(found, n=4, method="inclusive")
                row[f"wages_{label}"] = {
                    "n": len(found),
                    "p25": round(q1 / 100, 2),
                    "median": round(median / 100, 2),
                    "p75": round(q3 / 100, 2),
                }
        rows[cell] = row
    return rows


class OutcomeTruth:
    """Counters for every measure, fed one life at a time."""

    def __init__(self, end_year: int) -> None:
        self.end_year = end_year
        self.horizons = horizons(end_year)
        h = self.horizons
        self._post = min(h["ccc"], h["csu"], h["uc"])
        # the last quarter complete by the wage data's horizon, and its last complete year
        self._last_quarter = _add_quarters(_quarter(h["edd"] + datetime.timedelta(days=1)), -1)
        self._employment_year = (h["edd"] + datetime.timedelta(days=1)).year - 1
        self.college_going: dict[str, Counter[str]] = defaultdict(Counter)
        self.pathways: dict[str, Counter[str]] = defaultdict(Counter)
        self.completion: dict[str, Counter[str]] = defaultdict(Counter)
        self.earnings_counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.earnings_values: dict[str, list[int]] = defaultdict(list)
        self.earnings_by_counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.earnings_by_values: dict[str, list[int]] = defaultdict(list)
        self.working: dict[str, Counter[str]] = defaultdict(Counter)
        self.aid: dict[str, Counter[str]] = defaultdict(Counter)
        self.aid_by_program: dict[str, Counter[str]] = defaultdict(Counter)
        self.aid_programs: set[str] = set()
        self.teachers: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, life: Life) -> None:
        post = sorted((e for e in life.enrollments if e.segment != "k12"), key=lambda e: e.start)
        wages = {(w.year, w.quarter): w.cents for w in life.wages}
        self._college_going(life, post)
        self._pathways(life, post, wages)
        self._completion(life, post)
        self._earnings(life, wages)
        self._enrolled(life, post, wages)
        self._teachers(life)

    def _college_going(self, life: Life, post: list[Any]) -> None:
        done = life.hs_completion
        if done is None:
            return
        p = life.person
        first = post[0] if post else None
        days = (first.start - done.date).days if first is not None else None
        segment = first.segment if first is not None else ""
        groups = {
            "race": p.race,
            "sex": p.sex,
            "county": p.county_fips,
            "english_learner": str(p.english_learner).lower(),
            "foster_youth": str(p.foster_youth).lower(),
            "homeless": str(p.homeless).lower(),
            "socioeconomically_disadvantaged": str(p.disadvantaged).lower(),
        }
        for cell in (
            f"{p.class_year}|all",
            *(f"{p.class_year}|{name}={value}" for name, value in groups.items()),
        ):
            counter = self.college_going[cell]
            counter["completers"] += 1
            for window, columns in ((365, "within_12"), (487, "within_16")):
                if done.date + datetime.timedelta(days=window) > self._post:
                    for column in (columns, *(f"{columns}_{s}" for s in ("ccc", "csu", "uc"))):
                        counter[f"{_OPEN}{column}"] += 1
            if days is not None and days <= 365:
                counter["within_12"] += 1
                counter[f"within_12_{segment}"] += 1
            if days is not None and days <= 487:
                counter["within_16"] += 1
                counter[f"within_16_{segment}"] += 1

    def _pathways(self, life: Life, post: list[Any], wages: dict[tuple[int, int], int]) -> None:
        done = life.hs_completion
        if done is None:
            return
        first = post[0] if post else None
        destination = "NOT_ENROLLED"
        if first is not None and (first.start - done.date).days <= 8 * 366:
            destination = first.segment.upper()
        elif done.date + datetime.timedelta(days=8 * 366) > self._post:
            destination = "UNKNOWN"  # none yet, and the 8 years are not over
        best = max(
            (a.level for a in life.awards if a.date <= self._post),
            key=lambda lvl: _RANK.get(lvl, 0),
            default="NONE",
        )
        employed = any((self._employment_year, q) in wages for q in (1, 2, 3, 4))
        key = f"{destination}|{best}|{'EMPLOYED' if employed else 'NOT_EMPLOYED'}"
        self.pathways[str(life.person.class_year)][key] += 1

    def _completion(self, life: Life, post: list[Any]) -> None:
        for entry in post:
            if not entry.first_time:
                continue
            segment, year = entry.segment, entry.academic_year
            horizon = self.horizons[segment]
            if datetime.date(year, 7, 1) > horizon:
                continue
            aided = str(any(a.award_year == year for a in life.aid)).lower()
            if datetime.date(year + 1, 6, 30) > self.horizons["csac"]:
                aided = "UNKNOWN"
            levels = _SEGMENT_LEVELS[segment]
            dates = [a.date for a in life.awards if a.segment == segment and a.level in levels]
            # per measure: whether its window is open, and whether the award came within it
            measures = {
                column: (
                    datetime.date(year + years, 6, 30) > horizon,
                    any(d <= datetime.date(year + years, 6, 30) for d in dates),
                )
                for column, years in (("within_150", _NORMAL_YEARS[segment]), ("within_8_years", 8))
            }
            cell = f"{segment}|{year + 1}"  # labelled by its end
            for key in (cell, f"{cell}|received_aid={aided}"):
                counter = self.completion[key]
                counter["entrants"] += 1
                for column, (is_open, awarded) in measures.items():
                    counter[f"{_OPEN}{column}"] += is_open
                    counter[column] += awarded

    def _earnings(self, life: Life, wages: dict[tuple[int, int], int]) -> None:
        for award in life.awards:
            if award.date > self.horizons[award.segment]:
                continue
            cell = f"{award.level}|{award.date.year}"
            family = award.program[:2] if award.program else "NOT_REPORTED"
            for counts, values, key in (
                (self.earnings_counts, self.earnings_values, cell),
                (self.earnings_by_counts, self.earnings_by_values, f"{cell}|program={family}"),
                (
                    self.earnings_by_counts,
                    self.earnings_by_values,
                    f"{cell}|institution={award.segment}:{award.institution}",
                ),
            ):
                _add_award(counts[key], values, key, award, wages, self._last_quarter)

    def _enrolled(self, life: Life, post: list[Any], wages: dict[tuple[int, int], int]) -> None:
        self.aid_programs.update(
            a.program
            for a in life.aid
            if datetime.date(a.award_year, 7, 1) <= self.horizons["csac"]
        )
        by_year: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for e in post:
            by_year[(e.segment, e.academic_year)].append(e)
        for (segment, year), terms in by_year.items():
            cell = f"{segment}|{year + 1}"  # the academic year, labelled by its end
            self.working[cell]["students"] += 1
            if any(_quarter(t.start) > self._last_quarter for t in terms):
                self.working[cell][f"{_OPEN}with_wages"] += 1
            if any(_quarter(t.start) in wages for t in terms):
                self.working[cell]["with_wages"] += 1
            self.aid[cell]["students"] += 1
            if datetime.date(year + 1, 6, 30) > self.horizons["csac"]:
                self.aid[cell][f"{_OPEN}with_aid"] += 1
            institutions = {t.institution for t in terms}
            programs = {
                a.program
                for a in life.aid
                if a.award_year == year and a.institution in institutions
            }
            if programs:
                self.aid[cell]["with_aid"] += 1
            for program in programs:
                self.aid_by_program[f"{cell}|program={program}"]["with_aid"] += 1

    def _teachers(self, life: Life) -> None:
        for c in life.credentials:
            if c.date > self.horizons["ctc"]:
                continue
            cell = f"{c.date.year}|{c.kind}"
            for key in (cell, f"{cell}|institution={c.institution or 'NOT_REPORTED'}"):
                counter = self.teachers[key]
                counter["credentials"] += 1
                if c.date > self._post:
                    counter[f"{_OPEN}with_ca_public_bachelor"] += 1
                if any(
                    a.level == "BACHELOR" and a.segment in ("csu", "uc") and a.date < c.date
                    for a in life.awards
                ):
                    counter["with_ca_public_bachelor"] += 1

    def _aid_cells(self) -> dict[str, Any]:
        """Each segment and year, and in it every program: its students, and those aided."""
        cells: dict[str, Any] = {}
        for cell, counter in sorted(self.aid.items()):
            cells[cell] = _closed(counter)
            for program in sorted(self.aid_programs):
                key = f"{cell}|program={program}"
                by_program = Counter(
                    {"with_aid": self.aid_by_program.get(key, Counter())["with_aid"]}
                )
                by_program["students"] = counter["students"]
                by_program[f"{_OPEN}with_aid"] = counter[f"{_OPEN}with_aid"]
                cells[key] = _closed(by_program)
        return cells

    def merge(self, other: OutcomeTruth) -> None:
        """Add ``other``'s counts (from another share of the people) to these."""
        for mine, theirs in (
            (self.college_going, other.college_going),
            (self.pathways, other.pathways),
            (self.completion, other.completion),
            (self.earnings_counts, other.earnings_counts),
            (self.earnings_by_counts, other.earnings_by_counts),
            (self.working, other.working),
            (self.aid, other.aid),
            (self.aid_by_program, other.aid_by_program),
            (self.teachers, other.teachers),
        ):
            for cell, counter in theirs.items():
                mine[cell].update(counter)
        self.aid_programs |= other.aid_programs
        for cell, values in other.earnings_values.items():
            self.earnings_values[cell].extend(values)
        for cell, values in other.earnings_by_values.items():
            self.earnings_by_values[cell].extend(values)

    def result(self) -> dict[str, Any]:
        return {
            "definitions": DEFINITIONS,
            "horizons": {k: v.isoformat() for k, v in self.horizons.items()},
            "college_going": {k: _closed(v) for k, v in sorted(self.college_going.items())},
            "pathways": {k: dict(v) for k, v in sorted(self.pathways.items())},
            "completion": {k: _closed(v) for k, v in sorted(self.completion.items())},
            "earnings": _wage_rows(self.earnings_counts, self.earnings_values, with_q20=False),
            "earnings_by": _wage_rows(
                self.earnings_by_counts, self.earnings_by_values, with_q20=True
            ),
            "working_while_enrolled": {k: _closed(v) for k, v in sorted(self.working.items())},
            "financial_aid": self._aid_cells(),
            "teacher_pipeline": {k: _closed(v) for k, v in sorted(self.teachers.items())},
        }

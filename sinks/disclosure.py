"""A differencing attack on the public outcome views, as an auditor would run it before
publishing (tests/integration/test_disclosure.py runs it on synth populations;
``python -m bench.suppression`` measures it).

It takes only what the public reads (the ``public_*`` views) and the additive relations any
reader knows from the data dictionary (sinks/README.md): segments that add up to a whole
within a row, groups that add up to the 'all' row, nested windows, counts bounded by their
population, tables that share a population, and the equalities a reader may guess (aid
programs that add up to the aided where no student has two; used where they hold). Each
suppressed cell is an unknown; every published value is a constant. Interval propagation
over the relations (to a fixed point) bounds every unknown; a cell is *recovered* when its
interval is a single value, or when it shows a count of at least one and under the
threshold. The views' ``suppressed`` column (each row's hidden cells) is not a value; the
audit checks it against the truth. The unsuppressed tables are used only to tell suppressed
cells from open windows, to check the auditor itself (every true value must lie in its
interval), and to keep the guessed equalities that hold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sinks.public import SUPPRESSED_COLUMN

__all__ = ["Finding", "audit"]

Var = tuple[str, tuple[Any, ...], str]  # (public view, row key, column)

_SEGMENTS = ("ccc", "csu", "uc")


@dataclass(frozen=True)
class Finding:
    cell: Var
    interval: tuple[float, float]
    true: int

    def __str__(self) -> str:
        view, key, column = self.cell
        lo, hi = self.interval
        return f"{view} {key} {column}: in [{lo:g}, {hi:g}] (suppressed; true {self.true})"


@dataclass
class _System:
    # each constraint: (terms [(coefficient ±1, var)], "=", "<=" or "=?" (a guess)), meaning
    # sum op 0
    constraints: list[tuple[list[tuple[int, Var]], str]] = field(default_factory=list)

    def equal(self, left: list[Var], right: list[Var]) -> None:
        self.constraints.append(([(1, v) for v in left] + [(-1, v) for v in right], "="))

    def at_most(self, small: list[Var], large: list[Var]) -> None:
        self.constraints.append(([(1, v) for v in small] + [(-1, v) for v in large], "<="))

    def guess(self, left: list[Var], right: list[Var]) -> None:
        """An equality a reader may guess, as it holds in many data sets (not in all): the
        audit uses it where it holds of the unsuppressed tables, the worst case."""
        self.constraints.append(([(1, v) for v in left] + [(-1, v) for v in right], "=?"))


def _rows(table: Mapping[str, Any], width: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    columns = table["columns"]
    return {tuple(row[:width]): dict(zip(columns, row, strict=True)) for row in table["rows"]}


_KEYS = {
    "public_outcome_college_going": 3,
    "public_outcome_pathways": 3,
    "public_outcome_completion": 4,
    "public_outcome_earnings": 4,
    "public_outcome_working_while_enrolled": 2,
    "public_outcome_financial_aid": 4,
    "public_outcome_teacher_pipeline": 4,
}


def _relations(public: Mapping[str, Mapping[str, Any]]) -> _System:
    """Every additive relation between the public views' cells that a reader knows."""
    s = _System()
    rows = {name: _rows(public[name], width) for name, width in _KEYS.items()}

    cg = "public_outcome_college_going"
    for key in rows[cg]:
        for w in ("12", "16"):
            s.equal([(cg, key, f"within_{w}")], [(cg, key, f"within_{w}_{g}") for g in _SEGMENTS])
        s.at_most([(cg, key, "within_12")], [(cg, key, "within_16")])
        for g in _SEGMENTS:
            s.at_most([(cg, key, f"within_12_{g}")], [(cg, key, f"within_16_{g}")])
        s.at_most([(cg, key, "within_16")], [(cg, key, "completers")])
    counts = ["completers"] + [
        f"within_{w}{g}" for w in ("12", "16") for g in ("", *(f"_{x}" for x in _SEGMENTS))
    ]
    for key in [k for k in rows[cg] if k[1] == "all"]:
        for breakdown in {k[1] for k in rows[cg] if k[1] != "all"}:
            parts = [k for k in rows[cg] if k[0] == key[0] and k[1] == breakdown]
            for column in counts:
                s.equal([(cg, key, column)], [(cg, k, column) for k in parts])

    pw = "public_outcome_pathways"
    for key in rows[pw]:
        s.at_most([(pw, key, "employed")], [(pw, key, "completers")])
    for year in {k[0] for k in rows[pw]}:
        whole = (year, "all", "all")
        if whole in rows[cg]:
            parts = [k for k in rows[pw] if k[0] == year]
            s.equal([(cg, whole, "completers")], [(pw, k, "completers") for k in parts])
            for g in _SEGMENTS:  # a first term within 16 months is the first destination
                there = [k for k in parts if k[1] == g.upper()]
                s.at_most([(cg, whole, f"within_16_{g}")], [(pw, k, "completers") for k in there])

    co = "public_outcome_completion"
    for key in rows[co]:
        s.at_most([(co, key, "within_150")], [(co, key, "within_8_years")])
        s.at_most([(co, key, "within_8_years")], [(co, key, "entrants")])
    for key in [k for k in rows[co] if k[2] == "all"]:
        parts = [k for k in rows[co] if k[:2] == key[:2] and k[2] == "received_aid"]
        if parts:
            for column in ("entrants", "within_150", "within_8_years"):
                s.equal([(co, key, column)], [(co, k, column) for k in parts])

    ea = "public_outcome_earnings"
    measures = ("wages_q2", "wages_q4", "wages_q20")
    for key in rows[ea]:
        for column in measures:
            s.at_most([(ea, key, column)], [(ea, key, "awards")])
    for key in [k for k in rows[ea] if k[2] == "all"]:
        for breakdown in ("program", "institution"):
            parts = [k for k in rows[ea] if k[:2] == key[:2] and k[2] == breakdown]
            for column in ("awards", *measures):
                s.equal([(ea, key, column)], [(ea, k, column) for k in parts])

    ww, fa = "public_outcome_working_while_enrolled", "public_outcome_financial_aid"
    for key in rows[ww]:
        s.at_most([(ww, key, "with_wages")], [(ww, key, "students")])
        if (*key, "all", "all") in rows[fa]:  # the same students
            s.equal([(ww, key, "students")], [(fa, (*key, "all", "all"), "students")])
    for key in rows[fa]:
        s.at_most([(fa, key, "with_aid")], [(fa, key, "students")])
    for key in [k for k in rows[fa] if k[2] == "all"]:
        parts = [k for k in rows[fa] if k[:2] == key[:2] and k[2] == "program"]
        for k in parts:  # the same students; each program's aided are among the aided
            s.equal([(fa, key, "students")], [(fa, k, "students")])
            s.at_most([(fa, k, "with_aid")], [(fa, key, "with_aid")])
        if parts:  # an aided student has a program (several, perhaps): at least the whole
            s.at_most([(fa, key, "with_aid")], [(fa, k, "with_aid") for k in parts])
            # a reader may guess that no one has two (true in synth's data): exactly
            s.guess([(fa, key, "with_aid")], [(fa, k, "with_aid") for k in parts])

    tp = "public_outcome_teacher_pipeline"
    for key in rows[tp]:
        s.at_most([(tp, key, "with_ca_public_bachelor")], [(tp, key, "credentials")])
    for key in [k for k in rows[tp] if k[2] == "all"]:
        parts = [k for k in rows[tp] if k[:2] == key[:2] and k[2] == "institution"]
        for column in ("credentials", "with_ca_public_bachelor"):
            s.equal([(tp, key, column)], [(tp, k, column) for k in parts])
    return s


def audit(
    public: Mapping[str, Mapping[str, Any]],
    unsuppressed: Mapping[str, Mapping[str, Any]],
    min_cell: int,
) -> list[Finding]:
    """Every suppressed cell of ``public`` (public view name -> {"columns", "rows"}) that the
    relations recover. ``unsuppressed`` (the outcome_* tables, by public name) tells a
    suppressed cell from an open window and checks the intervals; AssertionError if a true
    value falls outside its interval (the relations would be wrong)."""
    system = _relations(public)
    value: dict[Var, Any] = {}
    true: dict[Var, Any] = {}
    listed: set[Var] = set()
    for name, width in _KEYS.items():
        for key, row in _rows(public[name], width).items():
            for column in row.pop(SUPPRESSED_COLUMN, None) or ():
                listed.add((name, key, column))
            for column, v in row.items():
                value[(name, key, column)] = v
        for key, row in _rows(unsuppressed[name], width).items():
            for column, v in row.items():
                true[(name, key, column)] = v
    # a relation over an open window (NULL in the unsuppressed table too) says nothing; a
    # guessed equality counts where it holds
    constraints = [
        (terms, "=" if op == "=?" else op)
        for terms, op in system.constraints
        if all(v in true and true[v] is not None for _, v in terms)
        and (op != "=?" or sum(c * true[v] for c, v in terms) == 0)
    ]
    lo: dict[Var, float] = defaultdict(float)
    hi: dict[Var, float] = defaultdict(lambda: math.inf)
    for var, v in value.items():
        if isinstance(v, int):
            lo[var] = hi[var] = float(v)
    for _ in range(200):
        changed = False
        for terms, op in constraints:
            low = [c * (lo[v] if c > 0 else hi[v]) for c, v in terms]
            high = [c * (hi[v] if c > 0 else lo[v]) for c, v in terms]
            total_low, total_high = sum(low), sum(high)
            for (c, v), mine_low, mine_high in zip(terms, low, high, strict=True):
                # c * v = -(the others): bounds of the others' sum
                others_low = total_low - mine_low if math.isfinite(mine_low) else _sum_but(low, v)
                others_high = (
                    total_high - mine_high if math.isfinite(mine_high) else _sum_but(high, v)
                )
                upper = -others_low  # c * v <= -(least the others can be)
                lower = -others_high if op == "=" else -math.inf
                if c < 0:
                    upper, lower = -lower, -upper
                new_hi = math.floor(upper) if math.isfinite(upper) else math.inf
                new_lo = math.ceil(lower) if math.isfinite(lower) else -math.inf
                if new_hi < hi[v]:
                    hi[v], changed = new_hi, True
                if new_lo > lo[v]:
                    lo[v], changed = new_lo, True
        if not changed:
            break
    checks_flags = all(SUPPRESSED_COLUMN in public[name]["columns"] for name in _KEYS)
    assert all(value[var] is None for var in listed), "a listed cell is published"
    findings = []
    for var, shown in value.items():
        actual = true.get(var)
        if not isinstance(actual, int) or var[2] in ("coverage", "employment_year"):
            continue
        assert lo[var] <= actual <= hi[var], (var, lo[var], hi[var], actual)
        # the view's own list of its suppressed cells is right: a closed cell is hidden
        # where it is listed and shown where it is not (an open one, NULL either way, may
        # be listed: a flag is its row's, whatever the window)
        assert not checks_flags or (shown is None) == (var in listed), (var, shown, listed)
        if shown is not None:
            continue
        exact = lo[var] == hi[var]
        small = lo[var] >= 1 and hi[var] < min_cell
        if exact or small:
            findings.append(Finding(var, (lo[var], hi[var]), int(actual)))
    return findings


def _sum_but(parts: list[float], _var: Var) -> float:
    """The sum of ``parts`` but one infinite part: infinite if another is infinite too."""
    finite = [p for p in parts if math.isfinite(p)]
    infinite = len(parts) - len(finite)
    if infinite > 1:
        return math.inf if any(p == math.inf for p in parts) else -math.inf
    return sum(finite)

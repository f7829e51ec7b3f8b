"""The public views' list of suppressed cells (sinks/public.py), as rendered SQL."""

from __future__ import annotations

import pytest

from sinks.public import (
    PUBLIC_VIEWS,
    SUPPRESSED_COLUMN,
    PublicView,
    public_view_statements,
    suppression_flags,
)


def _shown(statement: str) -> list[str]:
    """The outermost SELECT's output names, in order."""
    head = statement.split(" AS SELECT ", 1)[1].split(" FROM (", 1)[0]
    parts: list[str] = []
    depth = start = 0
    for i, char in enumerate(head):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(head[start:i])
            start = i + 1
    parts.append(head[start:])
    return [part.rsplit(" AS ", 1)[-1].strip() for part in parts]


@pytest.mark.parametrize("view", PUBLIC_VIEWS, ids=lambda v: v.name)
def test_every_cell_suppression_may_hide_is_flagged_by_the_flag_that_hides_it(
    view: PublicView,
) -> None:
    flags = dict(suppression_flags(view))
    columns = _shown(public_view_statements(11)[PUBLIC_VIEWS.index(view)])
    assert columns[-1] == SUPPRESSED_COLUMN
    hideable = [c for c in columns[:-1] if c not in view.keys]
    assert list(flags) == hideable  # every hideable column once, in the view's order
    assert flags[view.denominator] == flags["coverage"] == f"hide_{view.denominator}"
    for number, family in enumerate(view.families):
        assert {flags[c] for c in family} == {f"hide_f{number}"}
    for value, count in view.statistics:
        assert flags[value] == flags[count]  # a quartile is suppressed where its count is


def test_the_list_is_rendered_from_the_hide_flags_and_the_comment_says_what_it_means() -> None:
    view = next(v for v in PUBLIC_VIEWS if v.outcome == "outcome_completion")
    statement = public_view_statements(11)[PUBLIC_VIEWS.index(view)]
    assert (
        "arrayFilter((c, h) -> h, ['entrants', 'within_150', 'within_8_years', 'coverage'], "
        "[hide_entrants, hide_f0, hide_f0, hide_entrants]) AS suppressed FROM ("
    ) in statement
    # each shown value is NULL exactly where its flag is set (or its window is open)
    assert "if(hide_entrants, NULL, entrants) AS entrants" in statement
    assert "if(hide_f0, NULL, within_150) AS within_150" in statement
    assert "if(hide_entrants, NULL, round(coverage, 1)) AS coverage" in statement
    comment = statement.split(" COMMENT '", 1)[1]
    assert "suppressed names the row''s cells hidden by suppression" in comment
    assert "any other NULL is a window not closed yet" in comment

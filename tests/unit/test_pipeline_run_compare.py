"""What cli.pipeline_run compares between runs, without services: events published again
and whether their copies' person ids lead to one survivor."""

from __future__ import annotations

from cli.pipeline_run import republished


def test_copies_under_merged_ids_count_as_one_survivor_and_others_do_not() -> None:
    copies = {
        "e1": ["P1"],  # once
        "e2": ["P2", "P2"],  # twice, same id
        "e3": ["P3", "P1"],  # P3 was merged into P1: same survivor
        "e4": ["P4", "P5"],  # no merge joins them
    }
    merges = [("P3", "P1"), ("P6", "P5")]
    found = republished(copies, merges)
    assert found["twice"] == 3
    assert found["other_id"] == 2
    assert found["other_survivor"] == 1
    assert found["examples"] == [("e4", ["P4", "P5"], ["P4", "P5"])]


def test_merges_are_followed_through_chains() -> None:
    found = republished({"e": ["P1", "P3"]}, [("P1", "P2"), ("P2", "P3")])
    assert found["other_survivor"] == 0

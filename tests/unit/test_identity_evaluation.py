"""The linkage breakdown: missed and false pairs by sources and cause, and the reachability
bound of the oracle clustering, on small hand-made truths."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from streams.identity.evaluation import breakdown, pairwise_metrics, reachable_clusters

BORN = datetime.date(2001, 11, 17)


def _fields(**fields: Any) -> dict[str, Any]:
    return {"source_person_id": None, "ssn": None, "ssid": None, **fields}


# Ana: a K-12 record and a college record (SSID and name + birth date in common), wages
# under her SSN (one mistyped), and wages under an SSN no dated record of hers carries.
ANA = {
    ("k12", "1"): _fields(
        source_person_id="L1", ssid="1111111111", first_name="Ana", last_name="Lee", birth_date=BORN
    ),
    ("ccc", "2"): _fields(
        source_person_id="C1",
        ssid="1111111111",
        ssn="123456789",
        first_name="Ana",
        last_name="Lee",
        birth_date=BORN,
    ),
    ("edd", "3"): _fields(source_person_id="123456789", ssn="123456789", first_name="A"),
    ("edd", "4"): _fields(source_person_id="123456780", ssn="123456780", first_name="ANA"),
}
OMAR = {
    ("k12", "5"): _fields(
        source_person_id="L2",
        ssid="2222222222",
        first_name="Omar",
        last_name="Diaz",
        birth_date=BORN,
    ),
    ("edd", "6"): _fields(
        source_person_id="987654321", ssn="987654321", first_name="OMAR", last_name="DIAZ"
    ),
}
for _record in (ANA[("edd", "3")], ANA[("edd", "4")]):
    _record["last_name"] = "LEE"
FIELDS = {**ANA, **OMAR}
TRUTH = {key: "ana" for key in ANA} | {key: "omar" for key in OMAR}


def test_the_oracle_joins_on_identifiers_and_name_with_birth_date_only() -> None:
    exact = reachable_clusters(TRUTH, FIELDS, tolerate_noise=False)
    # the K-12 record, the college one and the wages under her right SSN are one chain
    assert exact[("k12", "1")] == exact[("ccc", "2")] == exact[("edd", "3")]
    # the mistyped SSN joins only when noise is tolerated
    assert exact[("edd", "4")] != exact[("edd", "3")]
    noisy = reachable_clusters(TRUTH, FIELDS)
    assert noisy[("edd", "4")] == noisy[("edd", "3")]
    # Omar's wages share nothing but a name with his K-12 record: never joined
    assert noisy[("edd", "6")] != noisy[("k12", "5")]
    # and the oracle never joins two true persons, even on one birth date
    assert noisy[("k12", "5")] != noisy[("k12", "1")]


def test_breakdown_counts_missed_pairs_by_sources_and_cause() -> None:
    # a linkage that found Ana's dated records, left both wages apart, and found Omar's
    # wages on their own
    assigned = {
        ("k12", "1"): "P1",
        ("ccc", "2"): "P1",
        ("edd", "3"): "P2",
        ("edd", "4"): "P3",
        ("k12", "5"): "P4",
        ("edd", "6"): "P5",
    }
    result = breakdown(TRUTH, assigned, FIELDS)
    assert result.metrics == pairwise_metrics(TRUTH, assigned)
    assert result.missed == {
        ("edd-k12", "exact"): 1,  # (k12 1, edd 3): the SSID and SSN chain
        ("ccc-edd", "exact"): 1,  # (ccc 2, edd 3): the SSN
        ("edd-k12", "noisy"): 1,  # (k12 1, edd 4) through the mistyped SSN
        ("ccc-edd", "noisy"): 1,
        ("edd-edd", "noisy"): 1,
        ("edd-k12", "name_unique"): 1,  # Omar: his name is on his dated record only
    }
    # 7 true pairs; all but Omar's are reachable, 3 of them without tolerating noise
    assert (result.metrics.true_pairs, result.reachable_pairs, result.reachable_pairs_exact) == (
        7,
        6,
        3,
    )
    assert result.recall_bound == pytest.approx(6 / 7)
    assert result.f1_bound == pytest.approx(2 * (6 / 7) / (1 + 6 / 7))
    assert result.false == {}
    assert result.linked_beyond_bound == 0
    # a name-alone linker that never errs reaches Omar too: his full name is his own
    assert result.reachable_pairs_names == 7
    assert result.recall_bound_names == 1.0


def test_breakdown_names_shared_ssns_and_links_beyond_the_bound() -> None:
    # everything in one person: Omar's wages linked to his K-12 record on a name alone, and
    # Ana's records with Omar's
    assigned = dict.fromkeys(TRUTH, "P1")
    shared = {**FIELDS, ("edd", "6"): {**FIELDS[("edd", "6")], "ssn": "123456789"}}
    result = breakdown(TRUTH, assigned, shared)
    assert result.missed == {}
    assert result.linked_beyond_bound == 1
    # 4 Ana records x 2 Omar records, by sources; the cause: one SSN on both persons' records
    assert result.false == {
        ("edd-k12", "shared_ssn"): 3,  # k12 1 with edd 6; edd 3 and edd 4 with k12 5
        ("ccc-k12", "shared_ssn"): 1,
        ("k12-k12", "shared_ssn"): 1,
        ("ccc-edd", "shared_ssn"): 1,
        ("edd-edd", "shared_ssn"): 2,
    }
    assert sum(result.false.values()) == 8
    data = result.to_dict()
    assert data["reachability"]["linked_beyond_bound"] == 1
    assert data["false_pairs"][0] == {
        "sources": "edd-k12",
        "cause": "shared_ssn",
        "pairs": 3,
        "share_of_true_pairs": round(3 / 7, 6),
    }


def test_unassigned_records_count_as_review() -> None:
    assigned = {key: "P1" for key in ANA if key != ("edd", "4")}
    result = breakdown({key: "ana" for key in ANA}, assigned, ANA)
    assert result.missed == {
        ("edd-k12", "review"): 1,
        ("ccc-edd", "review"): 1,
        ("edd-edd", "review"): 1,
    }


def test_the_name_bound_leaves_out_a_full_name_that_others_carry() -> None:
    """A second Omar Diaz with a birth date of his own: the wage record's name is no
    longer its person's alone, so the name bound does not join it."""
    other = {
        ("k12", "7"): _fields(
            source_person_id="L3",
            ssid="3333333333",
            first_name="Omar",
            last_name="Diaz",
            birth_date=datetime.date(1999, 1, 2),
        )
    }
    truth = {**TRUTH, **dict.fromkeys(other, "omar2")}
    alone = {key: f"P{n}" for n, key in enumerate(truth)}
    result = breakdown(truth, alone, {**FIELDS, **other})
    assert result.reachable_pairs_names == result.reachable_pairs == 6
    assert result.missed[("edd-k12", "name_common")] == 1


def test_grouping_difference_counts_moves_and_splits_either_way_round() -> None:
    from streams.identity.evaluation import grouping_difference

    clean = [{1, 2, 3, 4, 5}, {6, 7}, {8}]
    same = grouping_difference([{8}, {7, 6}, {5, 4, 3, 2, 1}], clean)
    assert (same.regrouped, same.moved, same.only_a, same.only_b) == (frozenset(), 0, 0, 0)
    # one event moved from a person of 5 to a person of 2: every event of both counts
    # as regrouped, one moved
    moved = grouping_difference([{1, 2, 3, 4}, {5, 6, 7}, {8}], clean)
    assert moved.regrouped == frozenset(range(1, 8))
    assert (moved.moved, moved.only_a, moved.only_b) == (1, 2, 2)
    # a person split in two (a fragment of its own): the fragment moved, whichever side
    # holds the split
    split = [{1, 2, 3}, {4, 5}, {6, 7}, {8}]
    assert grouping_difference(split, clean).moved == 2
    assert grouping_difference(clean, split).moved == 2
    assert grouping_difference(split, clean)[2:] == (2, 1)

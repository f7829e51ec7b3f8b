"""How good a linkage is: pairwise precision, recall and F1 of assigned person ids against
the truth, and how many persons were found against how many there are.

Pure functions over mappings from a record (source, source record id) to an id. A record
the linkage did not assign (sent to review) counts as a person of its own.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LinkageMetrics", "final_assignments", "pairwise_metrics", "read_assignments"]

RecordKey = tuple[str, str]


@dataclass(frozen=True)
class LinkageMetrics:
    records: int
    true_persons: int
    found_persons: int
    unassigned: int
    true_pairs: int
    found_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.found_pairs if self.found_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "f1": round(self.f1, 6),
        }


def read_assignments(path: Path) -> dict[RecordKey, str]:
    """Record -> person id from a CSV with columns source, source_record_id, person_id
    (synth's truth/records.csv, or what `c2c identity resolve` writes); rows with no
    person id (sent to review) are left out."""
    with path.open(newline="") as handle:
        return {
            (row["source"], row["source_record_id"]): row["person_id"]
            for row in csv.DictReader(handle)
            if row["person_id"]
        }


def final_assignments(
    linked: Iterable[tuple[str, str]],
    merges: Iterable[tuple[str, str]],
    records: Mapping[str, RecordKey],
) -> dict[RecordKey, str]:
    """Record -> final person id from what the pipeline published: ``linked`` (event id,
    person id) pairs from the linked topics, ``merges`` (absorbed id, surviving id) from
    the identity changes, and ``records`` mapping each event id to its source record. An
    event published twice (a replay after a restart) keeps its last person id."""
    merged_into = dict(merges)

    def final(person_id: str) -> str:
        seen = {person_id}
        while person_id in merged_into:
            person_id = merged_into[person_id]
            if person_id in seen:  # a cycle would be a resolver bug; stop rather than spin
                break
            seen.add(person_id)
        return person_id

    assigned: dict[RecordKey, str] = {}
    for event_id, person_id in linked:
        record = records.get(event_id)
        if record is not None:
            assigned[record] = final(person_id)
    return assigned


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_metrics(
    truth: Mapping[RecordKey, str], assigned: Mapping[RecordKey, str]
) -> LinkageMetrics:
    """Pairwise metrics over the records in ``truth``."""
    unassigned = 0
    found: dict[RecordKey, str] = {}
    for key in truth:
        person = assigned.get(key)
        if person is None:
            unassigned += 1
            person = f"unassigned:{key[0]}:{key[1]}"
        found[key] = person
    true_sizes = Counter(truth.values())
    found_sizes = Counter(found.values())
    both = Counter((truth[key], found[key]) for key in truth)
    return LinkageMetrics(
        records=len(truth),
        true_persons=len(true_sizes),
        found_persons=len(found_sizes),
        unassigned=unassigned,
        true_pairs=sum(_pairs(n) for n in true_sizes.values()),
        found_pairs=sum(_pairs(n) for n in found_sizes.values()),
        correct_pairs=sum(_pairs(n) for n in both.values()),
    )

"""How good a linkage is: pairwise precision, recall and F1 of assigned person ids against
the truth, and how many persons were found against how many there are; and where the
missed and false pairs are, against how much any resolver could reach (:func:`breakdown`).

Pure functions over mappings from a record (source, source record id) to an id. A record
the linkage did not assign (sent to review) counts as a person of its own. The breakdown
reads identifying fields in the clear: it is for synthetic data, in the identity zone.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from c2c.kafka import read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import CHANGES_TOPIC, get_topic
from streams.identity.normalize import name_key
from streams.linking import LINKED_TOPICS

__all__ = [
    "CAUSES",
    "FALSE_CAUSES",
    "GroupingDifference",
    "LinkageBreakdown",
    "LinkageMetrics",
    "breakdown",
    "final_assignments",
    "grouping_difference",
    "pairwise_metrics",
    "published_assignments",
    "reachable_clusters",
    "read_assignments",
]

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


def published_assignments(
    settings: Settings, events: list[tuple[str, dict[str, Any]]]
) -> dict[tuple[str, str], str]:
    """Record -> final person id, from the linked topics and the identity changes, for the
    extracts' ``events`` (source, raw event)."""
    records = {
        str(event["event_id"]): (source, str(event["source_record_id"])) for source, event in events
    }
    registry = SchemaRegistry(settings)
    topics = [*LINKED_TOPICS.values(), CHANGES_TOPIC]
    decoders = {name: registry.decoder(get_topic(name)) for name in topics}
    linked: list[tuple[str, str]] = []
    merges: list[tuple[str, str]] = []
    for message in read_to_end(settings, topics):
        topic = str(message.topic())
        value = decoders[topic].decode(message.value() or b"")
        if topic == CHANGES_TOPIC:
            if (
                value["change_type"] == "PERSONS_MERGED"
                and value["previous_person_id"]
                and str(value["source_event_id"]) in records
            ):
                merges.append((value["previous_person_id"], value["person_id"]))
        else:
            linked.append((str(value["event_id"]), value["person_id"]))
    return final_assignments(linked, merges, records)


class GroupingDifference(NamedTuple):
    """How two groupings of the same items differ (:func:`grouping_difference`)."""

    regrouped: frozenset[Any]  # every item of a group found in one grouping only
    moved: int  # items to move to turn one grouping into the other (the larger way round)
    only_a: int  # groups of ``a`` not in ``b``
    only_b: int  # groups of ``b`` not in ``a``


def grouping_difference(
    a: Iterable[Iterable[Any]], b: Iterable[Iterable[Any]]
) -> GroupingDifference:
    """How grouping ``a`` differs from ``b`` (groups of items: a run's events by person).
    ``regrouped`` counts every item of every group that differs (one event moved between two
    persons of 20 counts 41); ``moved`` counts, for each group of one side that differs, its
    items outside the other side's group most of them are in, both ways round, and keeps
    the larger: a group split in two moves the smaller part, whichever side is split."""
    groups_a = {frozenset(g) for g in a} - {frozenset()}
    groups_b = {frozenset(g) for g in b} - {frozenset()}

    def moved(one: set[frozenset[Any]], other: set[frozenset[Any]]) -> int:
        at = {item: number for number, group in enumerate(other) for item in group}
        return sum(
            len(group) - max(Counter(at.get(item) for item in group).values())
            for group in one - other
        )

    return GroupingDifference(
        regrouped=frozenset(item for group in groups_a ^ groups_b for item in group),
        moved=max(moved(groups_a, groups_b), moved(groups_b, groups_a)),
        only_a=len(groups_a - groups_b),
        only_b=len(groups_b - groups_a),
    )


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


# Why a true pair was missed, from the most to the least reachable. "exact" and "noisy" pairs
# are within reach of a resolver that links on trusted identifiers and on name with birth
# date; the "name_*" ones could only be linked on a name alone (no birth date on one side,
# no identifier in common): how that name looks says whether a name rule could tell them.
CAUSES: Mapping[str, str] = {
    "review": "a record was sent to review (not assigned)",
    "exact": "reachable through exact identifiers or exact name and birth date",
    "noisy": "reachable only through an identifier one digit off or a noisy name + birth date",
    "name_unique": "name alone; the record's full name is on dated records of its own person only",
    "name_common": "name alone; the record's full name is on dated records of other persons too",
    "name_unmatched": "name alone; no dated record carries the record's full name as written",
    "name_initial": "name alone; the record has a first initial only",
}

# Why two persons' records were put together, judged on what the records carry.
FALSE_CAUSES: Mapping[str, str] = {
    "shared_ssn": "records of both persons carry one SSN value",
    "birth_date_and_surname": "same birth date and surname (twins, or chance)",
    "same_name": "same first and last name",
    "other": "none of the above",
}

_NAME_CAUSES = ("name_initial", "name_unmatched", "name_common", "name_unique")  # worst first


class _Components:
    """Union-find over hashable items (records)."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, item: Any) -> Any:
        parent = self.parent
        root = item
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def join(self, items: list[Any]) -> None:
        root = self.find(items[0])
        for item in items[1:]:
            other = self.find(item)
            if other != root:
                self.parent[other] = root


def _one_digit_keys(kind: str, value: str) -> list[tuple[str, ...]]:
    """Keys two numbers one digit apart, or two adjacent digits swapped, share."""
    masked: list[tuple[str, ...]] = [
        (kind, "masked", value[:at] + "_" + value[at + 1 :]) for at in range(len(value))
    ]
    ordered: list[tuple[str, ...]] = [
        (
            kind,
            "ordered",
            str(at),
            value[:at] + "".join(sorted(value[at : at + 2])) + value[at + 2 :],
        )
        for at in range(len(value) - 1)
        if value[at] != value[at + 1]
    ]
    return masked + ordered


def _evidence(
    source: str, person: Mapping[str, Any], *, tolerate_noise: bool
) -> list[tuple[Any, ...]]:
    """The keys on which two records of one person can be joined."""
    keys: list[tuple[Any, ...]] = []
    for kind in ("ssn", "ssid", "itin"):
        value = person.get(kind)
        if value:
            keys.append((kind, str(value)))
            if tolerate_noise and kind != "itin":
                keys.extend(_one_digit_keys(kind, str(value)))
    if person.get("source_person_id"):
        keys.append(("source", source, str(person["source_person_id"])))
    first, last = name_key(person.get("first_name")), name_key(person.get("last_name"))
    born = person.get("birth_date")
    if first and last and born is not None:
        keys.append(("name_birth", first, last, str(born)) if not tolerate_noise else ("dated",))
    return keys


def reachable_clusters(
    truth: Mapping[RecordKey, str],
    fields: Mapping[RecordKey, Mapping[str, Any]],
    *,
    tolerate_noise: bool = True,
    unique_names: Mapping[RecordKey, str] | None = None,
) -> dict[RecordKey, int]:
    """The oracle clustering: record -> component, where two records of one true person are
    in one component when a chain of record pairs joins them, each pair agreeing on a
    trusted identifier (the same SSN, SSID or ITIN value as given in the records, or the
    same provider's own person id) or on full name and birth date (exact name keys and
    date). With ``tolerate_noise`` a pair also joins on an SSN or SSID one digit apart or
    with two adjacent digits swapped, or
    when both records carry a first name, a surname and a birth date, however noisy: the
    most that fields other than a name alone can reach. Components never cross true persons,
    so the clustering's precision is 1 and its pairwise recall bounds any resolver that
    does not link on a name alone. ``fields``: each record's source and PersonIdentity
    fields in the clear (records missing from it join nothing). With ``unique_names``
    (:func:`_name_classes`), a record whose full name as written is on dated records of
    its own person only ("name_unique") also joins those: the most a resolver that links
    on a name alone, and never wrongly, could reach."""
    components = _Components()
    by_person: dict[str, list[RecordKey]] = defaultdict(list)
    for key, person in truth.items():
        by_person[person].append(key)
    for records in by_person.values():
        joined: dict[tuple[Any, ...], list[RecordKey]] = defaultdict(list)
        for key in records:
            components.find(key)
            person_fields = fields.get(key)
            if person_fields is not None:
                for evidence in _evidence(key[0], person_fields, tolerate_noise=tolerate_noise):
                    joined[evidence].append(key)
                if unique_names is not None and (
                    person_fields.get("birth_date") is not None
                    or unique_names.get(key) == "name_unique"
                ):
                    first = name_key(person_fields.get("first_name"))
                    last = name_key(person_fields.get("last_name"))
                    if len(first) > 1 and last:
                        joined[("full_name", first, last)].append(key)
        for keys in joined.values():
            components.join(keys)
    numbers: dict[Any, int] = {}
    return {key: numbers.setdefault(components.find(key), len(numbers)) for key in truth}


@dataclass(frozen=True)
class LinkageBreakdown:
    """Where a linkage's errors are: missed true pairs and false pairs by the two records'
    sources (``"edd-k12"``, sorted) and by cause (:data:`CAUSES`, :data:`FALSE_CAUSES`),
    with the reachability bounds of :func:`reachable_clusters`."""

    metrics: LinkageMetrics
    # true pairs within reach: exact identifiers or name + birth date; and also with noise
    reachable_pairs_exact: int
    reachable_pairs: int
    # correct pairs the linkage found beyond the noisy bound (linked on a name alone)
    linked_beyond_bound: int
    missed: Mapping[tuple[str, str], int]
    false: Mapping[tuple[str, str], int]
    # true pairs within reach when a full name that only its own person's dated records
    # carry also joins (reachable_clusters' unique_names): a name-alone linker's ceiling
    reachable_pairs_names: int = 0

    @property
    def recall_bound_names(self) -> float:
        """The most pairwise recall a resolver can reach that also links on a full name
        alone where, and only where, that name is its own person's."""
        true_pairs = self.metrics.true_pairs
        return self.reachable_pairs_names / true_pairs if true_pairs else 1.0

    @property
    def recall_bound(self) -> float:
        """The most pairwise recall a resolver not linking on a name alone can reach."""
        true_pairs = self.metrics.true_pairs
        return self.reachable_pairs / true_pairs if true_pairs else 1.0

    @property
    def recall_bound_exact(self) -> float:
        """The oracle's recall on exact identifiers and exact name + birth date only."""
        true_pairs = self.metrics.true_pairs
        return self.reachable_pairs_exact / true_pairs if true_pairs else 1.0

    @property
    def f1_bound(self) -> float:
        """F1 at precision 1 and :attr:`recall_bound`."""
        r = self.recall_bound
        return 2 * r / (1 + r)

    def to_dict(self) -> dict[str, Any]:
        true_pairs = self.metrics.true_pairs or 1

        def rows(counts: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
            return [
                {
                    "sources": sources,
                    "cause": cause,
                    "pairs": n,
                    "share_of_true_pairs": round(n / true_pairs, 6),
                }
                for (sources, cause), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            ]

        return {
            **self.metrics.to_dict(),
            "reachability": {
                "reachable_pairs": self.reachable_pairs,
                "recall_bound": round(self.recall_bound, 6),
                "f1_bound": round(self.f1_bound, 6),
                "reachable_pairs_exact": self.reachable_pairs_exact,
                "recall_bound_exact": round(self.recall_bound_exact, 6),
                "linked_beyond_bound": self.linked_beyond_bound,
                "reachable_pairs_names": self.reachable_pairs_names,
                "recall_bound_names": round(self.recall_bound_names, 6),
            },
            "missed_pairs": rows(self.missed),
            "false_pairs": rows(self.false),
        }

    def table(self) -> list[list[str]]:
        """Rows (kind, sources, cause, pairs, share of true pairs) for a printed table."""
        true_pairs = self.metrics.true_pairs or 1
        out = []
        for kind, counts in (("missed", self.missed), ("false", self.false)):
            for (sources, cause), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                out.append([kind, sources, cause, f"{n:,}", f"{n / true_pairs:.5f}"])
        return out


def _name_classes(
    truth: Mapping[RecordKey, str], fields: Mapping[RecordKey, Mapping[str, Any]]
) -> dict[RecordKey, str]:
    """Per record, what its name alone could find among the dated records (those with a
    birth date, which a record without one would have to be linked to): see
    :data:`CAUSES`."""
    carriers: dict[tuple[str, str], set[str]] = defaultdict(set)
    names: dict[RecordKey, tuple[str, str]] = {}
    for key, person in truth.items():
        record = fields.get(key, {})
        first, last = name_key(record.get("first_name")), name_key(record.get("last_name"))
        names[key] = (first, last)
        if len(first) > 1 and last and record.get("birth_date") is not None:
            carriers[(first, last)].add(person)
    classes = {}
    for key, name in names.items():
        found = carriers.get(name, set())
        if len(name[0]) <= 1 or not name[1]:
            classes[key] = "name_initial"
        elif not found:
            classes[key] = "name_unmatched"
        elif found == {truth[key]}:
            classes[key] = "name_unique"
        else:
            classes[key] = "name_common"
    return classes


class _Cell(NamedTuple):
    """What decides a true pair's cause, for one record (records alike are counted once)."""

    found: str | None
    exact: int  # component of the exact oracle
    noisy: int  # component of the noisy oracle
    source: str
    name_class: str
    dated: bool


def _missed_cause(a: _Cell, b: _Cell) -> str | None:
    """Cause of a true pair between records ``a`` and ``b``; None when found."""
    if a.found is None or b.found is None:
        return "review"
    if a.found == b.found:
        return None
    if a.exact == b.exact:
        return "exact"
    if a.noisy == b.noisy:
        return "noisy"
    # undated records are the ones a name alone would have to link; the better name decides
    undated = [cell.name_class for cell in (a, b) if not cell.dated]
    return max(undated or [a.name_class, b.name_class], key=_NAME_CAUSES.index)


def _false_cause(a: list[Mapping[str, Any]], b: list[Mapping[str, Any]]) -> str:
    def values(records: list[Mapping[str, Any]], *names: str) -> set[tuple[Any, ...]]:
        out = set()
        for record in records:
            value = tuple(
                record.get(n) if n in ("ssn", "birth_date") else name_key(record.get(n))
                for n in names
            )
            if all(value):
                out.add(value)
        return out

    if values(a, "ssn") & values(b, "ssn"):
        return "shared_ssn"
    if values(a, "birth_date", "last_name") & values(b, "birth_date", "last_name"):
        return "birth_date_and_surname"
    if values(a, "first_name", "last_name") & values(b, "first_name", "last_name"):
        return "same_name"
    return "other"


def breakdown(
    truth: Mapping[RecordKey, str],
    assigned: Mapping[RecordKey, str],
    fields: Mapping[RecordKey, Mapping[str, Any]],
) -> LinkageBreakdown:
    """Pairwise metrics of ``assigned`` against ``truth``, the missed and false pairs by
    sources and cause, and the reachability bounds (:func:`reachable_clusters`).
    ``fields``: each record's PersonIdentity fields in the clear (source from its key)."""
    metrics = pairwise_metrics(truth, assigned)
    exact = reachable_clusters(truth, fields, tolerate_noise=False)
    noisy = reachable_clusters(truth, fields, tolerate_noise=True)
    names = _name_classes(truth, fields)
    named = reachable_clusters(truth, fields, tolerate_noise=True, unique_names=names)
    by_person: dict[str, Counter[_Cell]] = defaultdict(Counter)
    named_sizes = Counter((person, named[key]) for key, person in truth.items())
    reachable_named = sum(_pairs(n) for n in named_sizes.values())
    for key, person in truth.items():
        dated = fields.get(key, {}).get("birth_date") is not None
        cell = _Cell(assigned.get(key), exact[key], noisy[key], key[0], names[key], dated)
        by_person[person][cell] += 1
    missed: Counter[tuple[str, str]] = Counter()
    reachable_exact = reachable = beyond = 0
    for cells in by_person.values():
        items = list(cells.items())
        for i, (a, n) in enumerate(items):
            for j in range(i, len(items)):
                b, m = items[j]
                pairs = n * (n - 1) // 2 if i == j else n * m
                reachable_exact += pairs if a.exact == b.exact else 0
                reachable += pairs if a.noisy == b.noisy else 0
                cause = _missed_cause(a, b)
                if cause is None:
                    beyond += pairs if a.noisy != b.noisy else 0
                elif pairs:
                    missed["-".join(sorted((a.source, b.source))), cause] += pairs
    false: Counter[tuple[str, str]] = Counter()
    clusters: dict[str, dict[str, list[RecordKey]]] = defaultdict(lambda: defaultdict(list))
    for key, found in assigned.items():
        if key in truth:
            clusters[found][truth[key]].append(key)
    for persons in clusters.values():
        if len(persons) < 2:
            continue
        for (_, keys_a), (_, keys_b) in itertools.combinations(sorted(persons.items()), 2):
            cause = _false_cause(
                [fields.get(k, {}) for k in keys_a], [fields.get(k, {}) for k in keys_b]
            )
            sources_a, sources_b = Counter(k[0] for k in keys_a), Counter(k[0] for k in keys_b)
            for sa, na in sources_a.items():
                for sb, nb in sources_b.items():
                    false["-".join(sorted((sa, sb))), cause] += na * nb
    return LinkageBreakdown(
        metrics=metrics,
        reachable_pairs_exact=reachable_exact,
        reachable_pairs=reachable,
        linked_beyond_bound=beyond,
        missed=dict(missed),
        false=dict(false),
        reachable_pairs_names=reachable_named,
    )

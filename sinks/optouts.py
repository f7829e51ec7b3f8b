"""Opt-outs downstream: which rows the sink must never write, and what it removes. Pure code.

The identity resolver publishes an OptOutDecision (``c2c.identity.optouts``) when it applies
an opt-out, spreads one by a merge, or revokes one. From the sink's side:

- an opted-out decision removes every row of its person ids from every table that holds
  person rows (:data:`PERSON_TABLES`): from a fact table, those published up to the
  decision (their ``published_at``: an event published after it follows a revocation,
  and may have been written before the sink read the decision, its partition lagging);
  and the sink remembers when it was decided (:class:`OptOutFilter`, saved in
  ``optout_person``);
- a linked event of such a person published up to that moment is never written, even when
  it is read later (its partition lagged) or read again (a replay or a rebuilt sink). The
  resolver publishes nothing of an opted-out person after the decision, so a later event
  can only follow a revocation: it is written ("re-admits events from then on");
- every decision gets one audit row (``optout_audit``): when asked, when decided, when
  applied, rows removed per table. No PII: request ids, counts and times.

Publication times are the Kafka timestamps that the resolver's producer sets (create time),
compared with the decision time taken by the same resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from c2c.pseudonyms import keyed_digest, purpose_key
from sinks.rows import FACT_TABLES, PUBLISHED_AT

__all__ = [
    "AUDIT_COLUMNS",
    "OPTOUT_PERSON_COLUMNS",
    "PERSON_TABLES",
    "OptOutFilter",
    "audit_row",
    "count_statement",
    "delete_statement",
    "removal_times",
    "removed_per_decision",
    "request_key",
    "request_ref",
    "revocations_statement",
    "superseded",
]

PERSON_TABLES: tuple[str, ...] = (*FACT_TABLES.values(), "dim_person", "person_map")
OPTOUT_PERSON_COLUMNS = ("person_id", "opted_out_at")
AUDIT_COLUMNS = (
    "decision_id",
    "request_id",
    "cause",
    "requested_by",
    "requested_at",
    "decided_at",
    "applied_at",
    "opted_out",
    "persons",
    "rows_removed",
)


def _millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class OptOutFilter:
    """Person id -> when the latest opt-out covering it was decided."""

    def __init__(self, known: Iterable[tuple[str, datetime]] = ()) -> None:
        self._out_at: dict[str, int] = {}
        for person_id, at in known:
            self._out_at[person_id] = max(self._out_at.get(person_id, 0), _millis(at))
        # opted_out_at(person_id): when the latest opt-out covering the person was decided
        # (epoch milliseconds), None if none did; a row of theirs published up to then is
        # not written. A reader of many rows asks this first, and :meth:`admits` (with the
        # row's time) only when it is not None (the dictionary's own look-up: no call of
        # ours per row).
        self.opted_out_at: Callable[[str], int | None] = self._out_at.get

    def admits(self, person_id: str, published_ms: int) -> bool:
        """Whether a row of ``person_id`` published at ``published_ms`` may be written."""
        out_at = self._out_at.get(person_id)
        return out_at is None or published_ms > out_at

    def apply(self, decision: Mapping[str, Any]) -> list[list[Any]]:
        """Take in an OptOutDecision; the ``optout_person`` rows to write (none for a
        revocation: what was removed stays removed, later events are admitted)."""
        if not decision["opted_out"]:
            return []
        decided: datetime = decision["decided_at"]
        at = _millis(decided)
        rows = []
        for person_id in decision["person_ids"]:
            self._out_at[person_id] = max(self._out_at.get(person_id, 0), at)
            rows.append([person_id, decided])
        return rows

    def __len__(self) -> int:
        return len(self._out_at)


def removal_times(decisions: Sequence[Mapping[str, Any]], stale: Sequence[bool]) -> dict[str, int]:
    """Person id -> the time (epoch milliseconds) up to which its rows are removed: its
    latest decision among the opted-out ``decisions`` that are not ``stale``
    (:func:`superseded`)."""
    upto: dict[str, int] = {}
    for decision, old in zip(decisions, stale, strict=True):
        if decision["opted_out"] and not old:
            at = _millis(decision["decided_at"])
            for person_id in decision["person_ids"]:
                upto[str(person_id)] = max(upto.get(str(person_id), 0), at)
    return upto


def _removed(table: str) -> str:
    """The rows of ``table`` a removal takes: those of the person ids of parameter ``ids``,
    and in a fact table only those published up to the time parameter ``upto`` gives
    each (epoch milliseconds, in ``ids`` order: :func:`removal_times`)."""
    if table not in _FACT_TABLE_NAMES:
        return "person_id IN %(ids)s"
    return (
        f"person_id IN %(ids)s AND toUnixTimestamp64Milli({PUBLISHED_AT}) "
        "<= transform(person_id, %(ids)s, %(upto)s, 0)"
    )


def count_statement(tables: Sequence[str] = PERSON_TABLES) -> str:
    """One query for the rows of every table in ``tables`` that a removal of the person
    ids of parameter ``ids`` takes (published up to parameter ``upto``'s time of each, in a
    fact table): (table, person id, rows) for each pair that has any. Each event is
    counted once however many copies a replay left (distinct event ids in a fact table,
    distinct persons elsewhere), without FINAL, which would merge whole tables first."""
    return " UNION ALL ".join(
        f"SELECT '{table}', person_id, "
        f"uniqExact({'event_id' if table in _FACT_TABLE_NAMES else 'person_id'}) "
        f"FROM {table} WHERE {_removed(table)} GROUP BY person_id"
        for table in tables
    )


_FACT_TABLE_NAMES = frozenset(FACT_TABLES.values())


def delete_statement(table: str) -> str:
    """Remove the rows of ``table`` under the person ids of parameter ``ids`` (of a fact
    table, those published up to parameter ``upto``'s time of each: a row published after
    the decision follows a revocation, :func:`removal_times`): a lightweight delete
    written as a patch part (migration 0007), gone for every reader at once and without
    waiting for a mutation."""
    return (
        f"DELETE FROM {table} WHERE {_removed(table)} "
        "SETTINGS lightweight_delete_mode = 'lightweight_update'"
    )


def revocations_statement() -> str:
    """The latest applied revocation of each request of parameter ``ids``: (request id,
    decided at), from the audit (ordered by request id: a range read a request)."""
    return (
        "SELECT request_id, max(decided_at) FROM optout_audit "
        "WHERE request_id IN %(ids)s AND NOT opted_out GROUP BY request_id"
    )


def superseded(
    decisions: Sequence[Mapping[str, Any]], revoked_at: Mapping[str, datetime]
) -> list[bool]:
    """For each of ``decisions``: whether it is an opt-out that a revocation applied
    before has since revoked (``revoked_at``: request id -> when its latest applied
    revocation was decided, :func:`revocations_statement`). Such a decision is a copy read
    again (the sink or the resolver started again after a crash and read it again after
    the revocation): removing its persons' rows now would delete the events admitted after
    the revocation, which are theirs to keep; what it removed the first time stays
    removed, and its persons' rows published before it are still never written
    (:class:`OptOutFilter`)."""
    out = []
    for decision in decisions:
        revoked = revoked_at.get(str(decision["request_id"]))
        out.append(
            bool(decision["opted_out"])
            and revoked is not None
            and _millis(revoked) > _millis(decision["decided_at"])
        )
    return out


def removed_per_decision(
    decisions: Sequence[Mapping[str, Any]], found: Iterable[tuple[str, str, int]]
) -> list[dict[str, int]]:
    """Rows removed per table for each of ``decisions`` (in order), from the rows found
    per (table, person id, rows) by :func:`count_statement` for all their ids at once. A
    person id several decisions of one batch cover counts for the first (the later ones
    found its rows gone); a revocation removes nothing."""
    by_person: dict[str, list[tuple[str, int]]] = {}
    for table, person_id, rows in found:
        by_person.setdefault(str(person_id), []).append((str(table), int(rows)))
    counted: set[str] = set()
    out = []
    for decision in decisions:
        removed: dict[str, int] = {}
        if decision["opted_out"]:
            removed = dict.fromkeys(PERSON_TABLES, 0)
            for person_id in decision["person_ids"]:
                if person_id in counted:
                    continue
                counted.add(person_id)
                for table, rows in by_person.get(person_id, ()):
                    removed[table] += rows
        out.append(removed)
    return out


def request_key(secret: bytes) -> bytes:
    """The key of opt-out request ids in the audit, under the identity ``secret``."""
    return purpose_key(secret, "optout-request")


def request_ref(key: bytes, request_id: str) -> str:
    """How the audit stores ``request_id``: keyed (:func:`request_key`), since a request id
    may embed a person's number (a provider's case number): the audit holds nothing a
    source row could be matched with, and `c2c optout status ID` finds it by its id."""
    return keyed_digest(key, request_id.encode(errors="surrogateescape")).hex()[:32]


def audit_row(
    decision: Mapping[str, Any],
    removed: Mapping[str, int],
    applied_at: datetime,
    *,
    key: bytes,
) -> list[Any]:
    """The ``optout_audit`` row of ``decision`` (in :data:`AUDIT_COLUMNS` order); ``key``
    (:func:`request_key`) keys its request id."""
    return [
        str(decision["decision_id"]),
        request_ref(key, str(decision["request_id"])),
        decision["cause"],
        decision["requested_by"],
        decision["requested_at"],
        decision["decided_at"],
        applied_at,
        decision["opted_out"],
        len(decision["person_ids"]),
        dict(removed),
    ]

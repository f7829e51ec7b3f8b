"""From a resolved raw event to what leaves the identity zone: the linked event and the
identity changes. Pure functions; the worker publishes what they return.

A linked event keeps the raw event's id, time, provider and facts, and replaces the
person's identifying fields with the person id and de-identified attributes (birth year,
sex, demographics). Names, full birth dates, SSNs, SSIDs, ITINs, ZIP codes and the source's
own ids never pass.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from c2c.kinds import LINKED_KINDS
from streams.identity.resolver import Change

__all__ = [
    "LINKED_TOPICS",
    "change_id",
    "identity_change_records",
    "linked_event",
    "review_record",
]

# raw topic -> linked topic, for every kind that is linked (c2c.kinds)
LINKED_TOPICS: Mapping[str, str] = {kind.raw_topic: kind.linked_topic for kind in LINKED_KINDS}


def linked_event(
    raw_topic: str, raw: Mapping[str, Any], person_id: str, *, event_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(linked topic, linked event) for a raw event resolved to ``person_id``;
    ``event_id``, if given, is ``str(raw["event_id"])`` already made.

    KeyError for a raw topic without a linked form (opt-outs are not linked events).
    """
    person = raw.get("person") or {}
    born = person.get("birth_date")
    return LINKED_TOPICS[raw_topic], {
        "event_id": event_id if event_id is not None else str(raw["event_id"]),
        "event_time": raw["event_time"],
        "provider": raw["provider"],
        "person_id": person_id,
        "attributes": {
            "birth_year": born.year if born is not None else None,
            "sex": person.get("sex"),
            "demographics": raw.get("demographics"),
        },
        "facts": raw["facts"],
    }


# SHA-1 of uuid5's namespace and the ids' prefix, taken once: each id hashes only its seed
_CHANGE_PREFIX = hashlib.sha1(uuid.NAMESPACE_URL.bytes + b"c2c-identity-change:")
# uuid5's variant bits (10xx) on the hex digit that carries them
_VARIANT = {f"{n:x}": f"{(n & 3) | 8:x}" for n in range(16)}


def change_id(seed: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, "c2c-identity-change:" + seed))``, the same
    text at a fraction of the cost: no UUID object is built (a change record a resolved
    record made this 12 % of the identity stage), the hash of the fixed prefix is copied
    rather than recomputed, and the version and variant are set on the hex digits."""
    digest = _CHANGE_PREFIX.copy()
    digest.update(seed.encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def identity_change_records(
    changes: tuple[Change, ...],
    *,
    provider: str | None,
    source_event_id: str | None,
    at: datetime | int | None = None,
) -> list[dict[str, Any]]:
    """IdentityChange records (schema org.c2cstream.linked.IdentityChange) for
    ``changes``, made ``at`` (a datetime, or milliseconds since the epoch as the
    timestamp is encoded; default now). Change ids derive from the source event and the
    change, so a replayed event yields the same ids."""
    when = at if at is not None else datetime.now(UTC)
    records = []
    for index, change in enumerate(changes):
        seed = f"{source_event_id}|{index}|{change.change_type}|{change.person_id}"
        records.append(
            {
                "change_id": change_id(seed),
                "changed_at": when,
                "change_type": change.change_type,
                "person_id": change.person_id,
                "previous_person_id": change.previous_person_id,
                "provider": provider,
                "source_event_id": source_event_id,
                "rule": change.rule,
                "match_weight": change.weight,
            }
        )
    return records


def review_record(
    *,
    reason: str,
    provider: str,
    event_id: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    raw_value: bytes,
    at: datetime | None = None,
    person_id: str | None = None,
    candidate_person_id: str | None = None,
    match_weight: float | None = None,
    comparison: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A NeedsReview record (schema org.c2cstream.identity.NeedsReview) for a raw event the
    resolver set aside, or (``person_id`` and ``candidate_person_id`` given) a possible
    match it would not make on its own. ``reason`` must carry no identifying values (the
    resolver's reasons are fixed sentences, with ids and weights)."""
    seed = f"{event_id}|{source_topic}|{source_partition}|{source_offset}"
    if candidate_person_id is not None:
        seed += f"|{person_id}|{candidate_person_id}"
    return {
        "review_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"c2c-review:{seed}")),
        "received_at": at if at is not None else datetime.now(UTC),
        "reason": reason,
        "provider": provider,
        "event_id": event_id,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "raw_value": raw_value,
        "person_id": person_id,
        "candidate_person_id": candidate_person_id,
        "match_weight": match_weight,
        "comparison": dict(comparison) if comparison is not None else None,
    }

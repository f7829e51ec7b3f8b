"""`c2c review list|show`: the records the identity resolver held for review, read from the
review topic (identity zone: only a principal the broker lets read ``c2c.identity.review``
can run it).

A review is open until an operator's decision on its ``review_id`` is on the audit topic.
What is listed never holds identity-zone values: when, why (the resolver's fixed
sentences), provider, event id, where. The raw event (names, birth date, identifiers) is
shown only on request (``show --values``). Linking or separating a record (an identity
change the worker publishes) is not here yet: it needs the identity worker to take an
operator's decision as input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from c2c.errors import C2CError
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import REVIEW_TOPIC, get_topic
from observability.audit import read_decided

__all__ = ["Review", "find_review", "raw_event", "read_reviews"]


@dataclass(frozen=True)
class Review:
    """One record held for review, its offset, and the latest decision on it."""

    record: dict[str, Any]
    offset: int
    decision: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.record["review_id"])

    @property
    def state(self) -> str:
        return "open" if self.decision is None else self.decision["action"].removeprefix("review.")

    def summary(self) -> dict[str, Any]:
        """When, why, provider, event id, where, state: never the raw event's values."""
        record = self.record
        return {
            "review_id": self.id,
            "received_at": record["received_at"].isoformat(),
            "reason": record["reason"],
            "provider": str(record["provider"]),
            "event_id": str(record["event_id"]),
            "where": (
                f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}"
            ),
            "state": self.state,
        }


def read_reviews(settings: Settings, registry: SchemaRegistry) -> list[Review]:
    """Every record on the review topic, oldest first, with its latest decision."""
    return [Review(*item) for item in read_decided(settings, registry, REVIEW_TOPIC, "review_id")]


def find_review(reviews: Sequence[Review], review_id: str) -> Review:
    """The review with this id (or a unique prefix of 8 characters or more)."""
    wanted = review_id.strip().lower()
    found = [r for r in reviews if r.id == wanted or (len(wanted) >= 8 and r.id.startswith(wanted))]
    if len(found) != 1:
        what = "no review" if not found else f"{len(found)} reviews"
        raise C2CError(
            f"{what} with id {review_id!r} on {REVIEW_TOPIC} ({len(reviews)} read); "
            "`c2c review list` shows their ids",
            code="review.unknown",
        )
    return found[0]


def raw_event(registry: SchemaRegistry, review: Review) -> dict[str, Any]:
    """The held raw event, decoded with its raw topic's schema: identity-zone values."""
    decoder = registry.decoder(get_topic(str(review.record["source_topic"])))
    event: dict[str, Any] = decoder.decode(review.record["raw_value"])
    return event

"""`c2c review list|show|link|separate`: the records the identity resolver held for review,
read from the review topic (identity zone: only a principal the broker lets read
``c2c.identity.review`` can run it), and operators' decisions on possible matches.

A review is open until an operator's decision on its ``review_id`` is on the audit topic.
What is listed never holds identity-zone values: when, why (the resolver's fixed
sentences), provider, event id, where, and for a possible match the two person ids and each
compared field's level. The raw event (names, birth date, identifiers) is shown only on
request (``show --values``).

:func:`decide` sends a LINK or SEPARATE decision on a possible match to the identity
worker (``c2c.identity.decisions``), which applies it as an identity change
(streams/identity/operator_decisions.py), and audits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from c2c.errors import C2CError, ServiceError
from c2c.kafka import DURABLE_PRODUCER, NotDelivered, deliver
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import OPERATOR_DECISIONS_TOPIC, REVIEW_TOPIC, get_topic
from observability.audit import AuditLog, operator_action, read_decided

__all__ = ["DECISIONS", "Review", "decide", "find_review", "raw_event", "read_reviews"]

# the CLI's word -> the OperatorDecision's action
DECISIONS = {"link": "LINK", "separate": "SEPARATE"}


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
    def possible_match(self) -> bool:
        """Whether it names two persons an operator may link or separate."""
        return bool(self.record.get("person_id") and self.record.get("candidate_person_id"))

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
            **(
                {
                    "person_id": record["person_id"],
                    "candidate_person_id": record["candidate_person_id"],
                    "match_weight": record.get("match_weight"),
                    "comparison": dict(record.get("comparison") or {}),
                }
                if self.possible_match
                else {}
            ),
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


def decision_record(
    review: Review, action: str, *, operator: str, reason: str, decision_id: str
) -> dict[str, Any]:
    """The OperatorDecision of ``action`` (link or separate) on ``review``; C2CError
    (``review.not_a_match``) for a review that names no two persons."""
    if not review.possible_match:
        raise C2CError(
            f"review {review.id} holds a record the resolver could not resolve "
            f"({review.record['reason']}), not a possible match of two persons: link and "
            "separate decide possible matches; correct the record at its source",
            code="review.not_a_match",
        )
    if not reason.strip():
        raise C2CError("give the decision's reason (--reason)", code="review.no_reason")
    return {
        "decision_id": decision_id,
        "decided_at": datetime.now(UTC),
        "action": DECISIONS[action],
        "review_id": review.id,
        "person_id": str(review.record["person_id"]),
        "candidate_person_id": str(review.record["candidate_person_id"]),
        "operator": operator,
        "reason": reason,
    }


def decide(
    settings: Settings,
    registry: SchemaRegistry,
    review: Review,
    action: str,
    *,
    operator: str,
    reason: str,
) -> dict[str, Any]:
    """Send the decision ``action`` (link or separate) on ``review`` to the identity worker,
    wait for the broker's acknowledgement, then audit it (``review.<action>``, target the
    decision's place); the audit record. ServiceError if the broker does not take it."""
    action_record = operator_action(
        operator=operator, action=f"review.{action}", subject=review.id, note=reason
    )
    record = decision_record(
        review, action, operator=operator, reason=reason, decision_id=action_record["action_id"]
    )
    topic = get_topic(OPERATOR_DECISIONS_TOPIC)
    producer = Producer(settings.kafka_config(**DURABLE_PRODUCER))
    try:
        action_record["target"] = deliver(
            producer,
            topic.name,
            key=review.id.encode(),
            value=registry.encoder(topic).encode(record),
        )
    except NotDelivered as exc:
        raise ServiceError(
            f"the {action} decision on review {review.id} did not reach {topic.name} "
            f"({exc}); nothing was decided: run it again",
            code="review.unsent",
        ) from exc
    AuditLog(settings, registry).record(action_record, producer)
    return action_record

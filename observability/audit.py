"""The operators' audit: every decision on a dead letter (and, later, a review) is an
OperatorAction on the audit topic (``c2c.ops.audit``, kept forever): who, when, what, on
which id, where it went. Ids and places only, never an item's values.

:func:`operator_action` builds the record (plain data); :class:`AuditLog` publishes one and
waits for the broker's acknowledgement, and reads them all back; :func:`decisions` folds
them into each subject's latest decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from confluent_kafka import Producer

from c2c.errors import ServiceError
from c2c.kafka import DURABLE_PRODUCER, NotDelivered, deliver, read_to_end
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import AUDIT_TOPIC, get_topic

__all__ = ["AuditLog", "Decided", "decisions", "operator_action", "read_decided"]


def operator_action(
    *,
    operator: str,
    action: str,
    subject: str,
    note: str | None = None,
    target: str | None = None,
    acted_at: datetime | None = None,
) -> dict[str, Any]:
    """The OperatorAction record of one decision."""
    return {
        "action_id": str(uuid.uuid4()),
        "acted_at": acted_at or datetime.now(UTC),
        "operator": operator,
        "action": action,
        "subject": subject,
        "note": note,
        "target": target,
    }


def decisions(actions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each subject's latest action (by ``acted_at``, then the order read): what it is now."""
    latest: dict[str, dict[str, Any]] = {}
    for action in actions:
        known = latest.get(action["subject"])
        if known is None or action["acted_at"] >= known["acted_at"]:
            latest[action["subject"]] = action
    return latest


class Decided(NamedTuple):
    """A record of a topic worked by operators, its offset, and its latest decision."""

    record: dict[str, Any]
    offset: int
    decision: dict[str, Any] | None


def read_decided(
    settings: Settings, registry: SchemaRegistry, topic: str, id_field: str
) -> list[Decided]:
    """Every record of ``topic`` (one partition), oldest first, with the latest audited
    decision on its ``id_field``; a record whose id came before is a copy (a stage killed
    before its commit sends the same dead letter again, under the same id:
    c2c.deadletter.failure_id) and is left out."""
    decoder = registry.decoder(get_topic(topic))
    latest = decisions(AuditLog(settings, registry).read())
    found = []
    seen: set[str] = set()
    for message in read_to_end(settings, [topic]):
        record = decoder.decode(message.value() or b"")
        key = str(record[id_field])
        if key in seen:
            continue
        seen.add(key)
        found.append(Decided(record, int(message.offset() or 0), latest.get(key)))
    return found


class AuditLog:
    """Publishes OperatorActions to the audit topic and reads them back."""

    def __init__(self, settings: Settings, registry: SchemaRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._topic = get_topic(AUDIT_TOPIC)

    def record(self, action: dict[str, Any], producer: Producer | None = None) -> None:
        """Publish ``action`` and wait until the broker has it; ServiceError if it does not
        (the decision was then taken but not recorded: the message says so)."""
        producer = producer or Producer(self._settings.kafka_config(**DURABLE_PRODUCER))
        try:
            deliver(
                producer,
                self._topic.name,
                key=action["subject"].encode(),
                value=self._registry.encoder(self._topic).encode(action),
            )
        except NotDelivered as exc:
            raise ServiceError(
                f"{action['action']} of {action['subject']} by {action['operator']} was done "
                f"but its audit record did not reach {self._topic.name} ({exc}); record it "
                "by hand",
                code="audit.unsent",
            ) from exc

    def read(self) -> list[dict[str, Any]]:
        """Every OperatorAction on the audit topic, in the order published."""
        decoder = self._registry.decoder(self._topic)
        return [
            decoder.decode(message.value() or b"")
            for message in read_to_end(self._settings, [self._topic.name])
        ]

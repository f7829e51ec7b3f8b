"""For source systems that emit events directly rather than in files.

    emitter = EventEmitter(load_settings())
    emitter.emit("wage", {...raw wage event...})   # ValidationFailed if it is not valid
    report = emitter.flush()                        # every event acknowledged or failed

The same validation (the generated models, and the date limits of
c2c.validation.DATE_RULES), serde and delivery guarantees as `c2c produce`: idempotent
producer, acks=all, keyed by the source's person id. An event without ``event_id`` gets
one derived from provider, source record id and content.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import Telemetry
from c2c.validation import ValidationFailed, date_limits, date_problems, validate
from producers.formats import KIND_TOPICS
from producers.mapping import MODELS, canonical_content, event_id_for
from producers.publisher import Publisher

__all__ = ["DeliveryReport", "EventEmitter"]


@dataclass
class DeliveryReport:
    """Outcome of everything emitted so far: acknowledged, and what failed and why."""

    acknowledged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class EventEmitter:
    """Validates, encodes and publishes raw events one at a time."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry | None = None,
        *,
        rate: float | None = None,
        telemetry: Telemetry | None = None,
        today: Callable[[], datetime.date] | None = None,
    ) -> None:
        self._today = today  # the clock of the date limits (default: today's date, UTC)
        self._secret = settings.identity_secret.get_secret_value().encode()  # keys event ids
        self._report = DeliveryReport()
        self._publisher = Publisher(
            settings,
            registry if registry is not None else SchemaRegistry(settings),
            on_failure=lambda event_id, reason: self._report.failed.append((event_id, reason)),
            rate=rate,
            telemetry=telemetry,
        )

    def emit(self, kind: str, event: Mapping[str, Any]) -> str:
        """Queue ``event`` (a raw event of ``kind``: enrollment, completion, financial_aid,
        wage, credential or optout); return its event id.

        Raises ValidationFailed naming every bad field; nothing is sent then.
        """
        if kind not in KIND_TOPICS:
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KIND_TOPICS)}")
        record = dict(event)
        if not record.get("event_id"):
            record["event_id"] = event_id_for(
                str(record.get("provider")),
                str(record.get("source_record_id")),
                canonical_content(record),
                secret=self._secret,
            )
        where = f"{kind} event {record.get('source_record_id')!r}"
        validate(MODELS[kind], record, where=where)
        dates = date_problems(record, date_limits(self._today() if self._today else None))
        if dates:
            raise ValidationFailed(where, dates)
        topic = KIND_TOPICS[kind]
        key = str(record["person"]["source_person_id"]).encode()
        self._publisher.send(
            topic,
            key,
            self._publisher.encode(topic, record),
            record["event_id"],
            event_id=str(record["event_id"]),
        )
        return str(record["event_id"])

    def flush(self, timeout_s: float = 60.0) -> DeliveryReport:
        """Wait for every delivery report; the report covers everything emitted so far."""
        remaining = self._publisher.flush(timeout_s)
        self._report.acknowledged = self._publisher.acknowledged
        if remaining:
            self._report.failed.append(
                ("*", f"{remaining} still unacknowledged after {timeout_s:.0f} s")
            )
        return self._report

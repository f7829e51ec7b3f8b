"""The identity stage: one raw message in, the messages to publish and the state to keep out.

:class:`IdentityStage` decodes a raw event (any raw topic), resolves its person with the
:class:`~streams.identity.resolver.Resolver`, and returns what leaves the identity zone:
the linked event, the identity changes, or a needs-review record; a message that does not
decode becomes a dead letter. It knows nothing of Faust or Kafka clients: the worker
(:mod:`streams.app`) feeds it messages and sends what it returns, so tests and benches run
it directly. Nothing read is dropped: every message ends as exactly one of linked,
opt-out resolved, review or dead letter, and :attr:`IdentityStage.counts` says how many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from c2c.deadletter import dead_letter
from c2c.serde import AvroDecoder, AvroEncoder, SerdeError
from c2c.topics import CHANGES_TOPIC, INTAKE_TOPIC
from observability.telemetry import Telemetry
from streams.identity.resolver import IdentityState, Resolver
from streams.linking import LINKED_TOPICS, identity_change_records, linked_event, review_record

__all__ = [
    "CHANGES_TOPIC",
    "INTAKE_TOPIC",
    "OPTOUT_TOPIC",
    "RAW_TOPICS",
    "SOURCE_HEADERS",
    "IdentityStage",
    "Incoming",
    "Outgoing",
    "Processed",
]

OPTOUT_TOPIC = "c2c.raw.optout"
RAW_TOPICS: tuple[str, ...] = (*LINKED_TOPICS, OPTOUT_TOPIC)

# Headers the intake agent adds so the resolver knows where a forwarded message was read.
SOURCE_HEADERS = ("c2c-source-topic", "c2c-source-partition", "c2c-source-offset")

Header = tuple[str, bytes]


@dataclass(frozen=True)
class Incoming:
    """One raw message as read from Kafka: where from, and its bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class Outgoing:
    """One message to publish."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)


@dataclass
class Processed:
    """What one message produced: messages to send, state to persist."""

    outgoing: list[Outgoing] = field(default_factory=list)
    # person id -> IdentityState.snapshot(person id), for each person the message changed
    persons: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (provider, source person id) -> person id, for a source id seen for the first time
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    outcome: str = ""


def source_of(message: Incoming) -> Incoming:
    """Where a forwarded intake message was first read (its headers say), else itself."""
    headers = {k: v for k, v in message.headers if k in SOURCE_HEADERS}
    if len(headers) != len(SOURCE_HEADERS):
        return message
    text = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()}
    return Incoming(
        topic=text["c2c-source-topic"],
        partition=int(text["c2c-source-partition"]),
        offset=int(text["c2c-source-offset"]),
        key=message.key,
        value=message.value,
        headers=message.headers,
    )


def forwarding_headers(message: Incoming) -> list[tuple[str, str | bytes | None]]:
    """The message's own headers plus where it was read, for the intake topic."""
    kept = [
        (k, v if isinstance(v, bytes) else str(v).encode())
        for k, v in message.headers
        if k not in SOURCE_HEADERS and v is not None
    ]
    return [
        *kept,
        ("c2c-source-topic", message.topic.encode()),
        ("c2c-source-partition", str(message.partition).encode()),
        ("c2c-source-offset", str(message.offset).encode()),
    ]


class IdentityStage:
    """Resolves raw messages one at a time; see the module's docstring."""

    def __init__(
        self,
        resolver: Resolver,
        decoders: Mapping[str, AvroDecoder],
        encoders: Mapping[str, AvroEncoder],
        telemetry: Telemetry | None = None,
    ) -> None:
        missing = [t for t in (*RAW_TOPICS,) if t not in decoders]
        if missing:
            raise ValueError(
                f"IdentityStage needs a decoder for every raw topic; missing {missing}"
            )
        self.resolver = resolver
        self._decoders = decoders
        self._encoders = encoders
        self._telemetry = telemetry
        self._tracer = telemetry.tracer if telemetry is not None else trace.NoOpTracer()
        self.counts: Counter[str] = Counter()

    @property
    def state(self) -> IdentityState:
        return self.resolver.state

    def process(self, message: Incoming) -> Processed:
        """Resolve one raw message (read directly or forwarded through the intake topic)."""
        source = source_of(message)
        parent = Telemetry.extract(source.headers) if self._telemetry is not None else None
        with self._tracer.start_as_current_span(
            "identity.resolve",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.source.name": source.topic,
                "messaging.kafka.source.partition": source.partition,
                "messaging.kafka.message.offset": source.offset,
            },
        ) as span:
            done = self._process(source)
            span.set_attribute("c2c.outcome", done.outcome)
        self.counts[done.outcome] += 1
        return done

    def _headers(self) -> list[tuple[str, str | bytes | None]]:
        if self._telemetry is None:
            return []
        return [
            (k, v if isinstance(v, bytes) else str(v).encode())
            for k, v in self._telemetry.inject()
            if v is not None
        ]

    def _process(self, source: Incoming) -> Processed:
        decoder = self._decoders.get(source.topic)
        try:
            if decoder is None:
                raise SerdeError(
                    f"{source.topic} is not a raw topic the identity stage reads "
                    f"({', '.join(RAW_TOPICS)})",
                    code="identity.unknown_topic",
                )
            if source.value is None:
                raise SerdeError("message has no value (a tombstone?)", code="serde.empty")
            raw = decoder.decode(source.value)
        except SerdeError as exc:
            return self._dead_letter(source, exc)
        provider = str(raw.get("provider") or "other")
        person = raw.get("person") or {}
        resolution = self.resolver.resolve(provider, person)
        done = Processed()
        headers = self._headers()
        if resolution.person_id is None:
            record = review_record(
                reason=resolution.review_reason or "unresolvable",
                provider=provider,
                event_id=str(raw.get("event_id")),
                source_topic=source.topic,
                source_partition=source.partition,
                source_offset=source.offset,
                raw_value=source.value or b"",
            )
            done.outgoing.append(
                Outgoing(
                    "c2c.identity.review",
                    None,
                    self._encoders["c2c.identity.review"].encode(record),
                    headers,
                )
            )
            done.outcome = "review"
            return done
        person_id = resolution.person_id
        key = person_id.encode()
        for change in identity_change_records(
            resolution.changes, provider=provider, source_event_id=str(raw.get("event_id"))
        ):
            done.outgoing.append(
                Outgoing(
                    CHANGES_TOPIC,
                    change["person_id"].encode(),
                    self._encoders[CHANGES_TOPIC].encode(change),
                    headers,
                )
            )
        if source.topic == OPTOUT_TOPIC:
            done.outcome = "optout"
        else:
            topic, linked = linked_event(source.topic, raw, person_id)
            done.outgoing.append(
                Outgoing(topic, key, self._encoders[topic].encode(linked), headers)
            )
            done.outcome = "linked"
        for touched in resolution.touched:
            done.persons[touched] = self.state.snapshot(touched)
        if resolution.new_source is not None:
            done.sources[resolution.new_source] = person_id
        for kind in resolution.changes:
            self.counts[f"change.{kind.change_type}"] += 1
        return done

    def _dead_letter(self, source: Incoming, error: SerdeError) -> Processed:
        record = dead_letter(
            stage="identity",
            error=error,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            key=source.key,
            value=source.value,
        )
        return Processed(
            outgoing=[
                Outgoing(
                    "c2c.deadletter",
                    source.key,
                    self._encoders["c2c.deadletter"].encode(record),
                    [],
                )
            ],
            outcome="dead_letter",
        )

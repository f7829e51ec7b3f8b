"""The identity stage: one raw message in, the messages to publish and the state to keep out.

:class:`IdentityStage` decodes a raw event (any raw topic), resolves its person with the
:class:`~streams.identity.resolver.Resolver`, and returns what leaves the identity zone:
the linked event, the identity changes, or a needs-review record; a message that does not
decode becomes a dead letter. It knows nothing of Faust or Kafka clients: the worker
(:mod:`streams.app`) feeds it messages and sends what it returns, so tests and benches run
it directly. Nothing read is dropped: every message ends as exactly one of linked,
withheld (the person opted out: nothing of the event is published), opt-out decided, review
or dead letter, and :attr:`IdentityStage.counts` says how many. Opt-out decisions
(:mod:`streams.optouts`) go to ``c2c.identity.optouts`` for downstream to remove rows.
:meth:`IdentityStage.process_sharded` takes a batch through the resolver on N shards
(:mod:`streams.identity.sharding`) instead, with the same result.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from opentelemetry import trace

from c2c.deadletter import dead_letter
from c2c.errors import C2CError
from c2c.kinds import EVENT_KINDS, OPTOUT
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroDecoder, AvroEncoder, SerdeError
from c2c.telemetry import Telemetry, records_spans
from c2c.topics import (
    CHANGE_COUNTS,
    CHANGES_TOPIC,
    DEAD_LETTER_TOPIC,
    INTAKE_TOPIC,
    OPERATOR_DECISIONS_TOPIC,
    OPTOUT_DECISIONS_TOPIC,
    REVIEW_TOPIC,
)
from c2c.validation import FieldProblem, RecordCheck, compile_validator
from streams.identity.operator_decisions import DecisionError, OperatorDecisions
from streams.identity.resolver import IdentityState, Near, Resolution, Resolver
from streams.identity.sharding import EpochItem, EpochWrites, Named, ShardedResolver
from streams.linking import LINKED_TOPICS, identity_change_records, linked_event, review_record
from streams.optouts import Decision, OptOuts, decision_record

log = logging.getLogger(__name__)

__all__ = [
    "CHANGES_TOPIC",
    "INPUT_TOPICS",
    "INTAKE_TOPIC",
    "MAX_RAW_BYTES",
    "ONCE_CHANGES",
    "OPTOUT_TOPIC",
    "OUTCOMES",
    "OUTPUT_TOPICS",
    "RAW_TOPICS",
    "SOURCE_HEADERS",
    "UNCONFIRMED_KEY",
    "IdentityStage",
    "Incoming",
    "Outgoing",
    "Processed",
    "identity_dead_letter",
    "unconfirmed_chunks",
    "unconfirmed_messages",
]

OPTOUT_TOPIC = OPTOUT.raw_topic
# Every raw topic (c2c.kinds): the linked kinds', then opt-outs'.
RAW_TOPICS: tuple[str, ...] = tuple(kind.raw_topic for kind in EVENT_KINDS)
# Every topic the forwarder forwards to the intake: the raw topics, and operators' decisions
# on reviews (`c2c review link|separate`), applied in the intake's order like any record.
INPUT_TOPICS: tuple[str, ...] = (*RAW_TOPICS, OPERATOR_DECISIONS_TOPIC)
# Every topic the stage publishes to: it needs an encoder for each.
OUTPUT_TOPICS: tuple[str, ...] = (
    *LINKED_TOPICS.values(),
    CHANGES_TOPIC,
    OPTOUT_DECISIONS_TOPIC,
    REVIEW_TOPIC,
    DEAD_LETTER_TOPIC,
)
# The largest raw message the stage resolves: a real record is a few hundred bytes, and
# what the stage publishes of a record (its linked event, or its review with the raw bytes)
# must stay under the broker's 1 MB message limit. Larger ones are dead letters.
MAX_RAW_BYTES = 256 * 1024

# How a message can end; exactly one per message read (IdentityStage.counts).
OUTCOMES: tuple[str, ...] = ("linked", "withheld", "optout", "review", "dead_letter", "decision")

# The identity changes a replay does not make again, once the state holds them
# (Processed.once)
ONCE_CHANGES = frozenset({"PERSONS_MERGED", "PERSON_SPLIT"})

# Headers the intake agent adds so the resolver knows where a forwarded message was read.
SOURCE_HEADERS = ("c2c-source-topic", "c2c-source-partition", "c2c-source-offset")

Header = tuple[str, bytes]

PERSON_IDENTITY = "org.c2cstream.identity.PersonIdentity"


@functools.cache  # one check for every stage: the worker makes a stage at each rebalance
def identifier_check() -> RecordCheck:
    """The problems of a raw event's person whose identifiers do not have their declared
    shape (the PersonIdentity fields with a ``pattern``: SSN, ITIN, SSID, ZIP). Producers
    refuse such rows; a raw message that carries one anyway goes to review, since an SSN of
    70,000 digits (say) would cost a keyed hash a digit and not fit the person's snapshot.
    Problems name the field and the rule (FieldProblem.message), never the value."""
    schema = SchemaLibrary().resolve(PERSON_IDENTITY)
    patterned = frozenset(str(field["name"]) for field in schema["fields"] if "pattern" in field)
    check = compile_validator(schema)

    def identifier_problems(person: Any) -> list[FieldProblem]:
        return [problem for problem in check(person) if problem.field in patterned]

    return identifier_problems


def _now_millis() -> int:
    """Now, as milliseconds since the epoch: what encoding ``datetime.now(UTC)`` as a
    timestamp-millis writes (both floor the clock to the millisecond), without the
    datetime."""
    return time.time_ns() // 1_000_000


# Incoming and Outgoing are named tuples, and Processed a class with slots: one of each is
# built per record (several Outgoing), and a frozen dataclass's __init__ (a setattr per
# field) cost several times as much.
class Incoming(NamedTuple):
    """One raw message as read from Kafka: where from, and its bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, Any]] = ()


class Outgoing(NamedTuple):
    """One message to publish. The stage gives ``headers`` as a list (what
    confluent-kafka's produce takes); empty when there are none."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, str | bytes | None]] = ()


class Processed:
    """What one message produced: messages to send, state to persist.

    ``outgoing``: the messages to send, in order. ``persons``: ids of the persons the
    message changed, whose IdentityState.snapshot is to be kept (taken by the caller when
    it writes, so once per batch however many records of the batch changed the person).
    ``sources``: (provider, source person id) -> person id, for a source id seen for the
    first time. ``outcome``: one of :data:`OUTCOMES`. ``once``: those of ``outgoing`` that
    a replay of the message would not make again, because the state it leaves already holds
    their change: merges and splits (``PERSONS_MERGED``, ``PERSON_SPLIT``) and opt-out
    decisions. The worker keeps a batch's with its state and sends them again after a
    restart (streams/app.py, ``UNCONFIRMED_KEY``). ``resolved_ms``: when the message was
    stepped (epoch milliseconds), set by :meth:`IdentityStage.process_sharded` (0: not
    set; the worker stamps :meth:`IdentityStage.process`'s as it takes them)."""

    __slots__ = ("once", "outcome", "outgoing", "persons", "resolved_ms", "sources")

    def __init__(
        self,
        outgoing: list[Outgoing] | None = None,
        persons: set[str] | None = None,
        sources: dict[tuple[str, str], str] | None = None,
        outcome: str = "",
        once: list[Outgoing] | None = None,
    ) -> None:
        self.outgoing: list[Outgoing] = outgoing if outgoing is not None else []
        self.persons: set[str] = persons if persons is not None else set()
        self.sources: dict[tuple[str, str], str] = sources if sources is not None else {}
        self.outcome = outcome
        self.once: list[Outgoing] = once if once is not None else []
        self.resolved_ms = 0

    def __repr__(self) -> str:
        return (
            f"Processed(outcome={self.outcome!r}, outgoing={self.outgoing!r}, "
            f"persons={self.persons!r}, sources={self.sources!r}, once={self.once!r})"
        )


# ``IdentityStage.process_sharded``'s ``decided``: an epoch's resolutions, writes, count
# of items, and the messages it finished (streams/worker_decider.py logs them)
EpochDecided = Callable[[list[Resolution], EpochWrites, int, list["Processed"]], None]


def source_of(message: Incoming) -> Incoming:
    """Where a forwarded intake message was first read (its headers say), else itself.
    SerdeError (code ``identity.intake_format``) if those headers cannot be read."""
    if not message.headers:  # a pack's record: read where it says, no headers to look at
        return message
    headers = {k: v for k, v in message.headers if k in SOURCE_HEADERS}
    if len(headers) != len(SOURCE_HEADERS):
        return message
    try:
        text = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()}
        partition = int(text["c2c-source-partition"])
        offset = int(text["c2c-source-offset"])
        if not (-(2**31) <= partition < 2**31 and -(2**63) <= offset < 2**63):
            # Kafka's (and the review and dead-letter schemas'): int and long
            raise ValueError("a partition or offset past its type")
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise SerdeError(
            f"{message.topic}[{message.partition}] offset {message.offset} was forwarded "
            f"alone, but its source headers ({', '.join(SOURCE_HEADERS)}) are not a topic, "
            "a 32-bit partition and a 64-bit offset in UTF-8",
            code="identity.intake_format",
        ) from exc
    return Incoming(
        topic=text["c2c-source-topic"],
        partition=partition,
        offset=offset,
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


class _Taken(NamedTuple):
    """A message decoded, and what it is: a ``record`` to resolve (``person``), a
    ``revocation`` or an operator's ``decision`` (not resolved)."""

    kind: str
    source: Incoming
    raw: dict[str, Any]
    provider: str
    person: Mapping[str, Any]

    def item(self) -> EpochItem:
        """What an epoch of the sharded resolver takes for it (:class:`Named`: what a
        revocation or a decision names)."""
        if self.kind == "revocation":
            return Named(requests=(str(self.raw["request_id"]),))
        if self.kind == "decision":
            named = (str(self.raw["person_id"]), str(self.raw["candidate_person_id"]))
            return Named(persons=named)
        return (self.provider, self.person)

    def requests(self) -> bool:
        """Whether it is an opt-out request (the sharded resolver fetches what opt-outs
        read for an epoch holding one)."""
        return self.kind == "record" and self.source.topic == OPTOUT_TOPIC


class IdentityStage:
    """Resolves raw messages one at a time; see the module's docstring."""

    def __init__(
        self,
        resolver: Resolver,
        decoders: Mapping[str, AvroDecoder],
        encoders: Mapping[str, AvroEncoder],
        telemetry: Telemetry | None = None,
    ) -> None:
        missing = [t for t in RAW_TOPICS if t not in decoders]
        if missing:
            raise ValueError(
                f"IdentityStage needs a decoder for every raw topic; missing {missing}"
            )
        unencoded = [t for t in OUTPUT_TOPICS if t not in encoders]
        if unencoded:
            raise ValueError(
                f"IdentityStage needs an encoder for every topic it publishes to; "
                f"missing {unencoded}"
            )
        self.resolver = resolver
        self.optouts = OptOuts(resolver.state)
        self.decisions = OperatorDecisions(resolver)
        # The stage takes only the text of a uuid (event and request ids), so its decoders
        # give that text rather than a uuid.UUID (building and printing one was 4 % of it)
        self._decoders = {topic: decoder.with_uuid_text() for topic, decoder in decoders.items()}
        self._encoders = encoders
        self._telemetry = telemetry
        self._tracer = telemetry.tracer if telemetry is not None else trace.NoOpTracer()
        self._spans = records_spans(telemetry)
        self._identifiers = identifier_check()
        self.counts: Counter[str] = Counter()

    @property
    def state(self) -> IdentityState:
        return self.resolver.state

    def process(self, message: Incoming) -> Processed:
        """Resolve one raw message (read directly or forwarded through the intake topic)."""
        try:
            source = source_of(message)
        except SerdeError as exc:  # forwarded alone, with headers that cannot be read
            done = self._dead_letter(message, exc)
            self.counts[done.outcome] += 1
            return done
        if not self._spans:
            # no span to record (no telemetry, or a no-op tracer): a no-op span a record
            # cost 13 % of the stage, and injects no trace headers either
            done = self._process(source)
            self.counts[done.outcome] += 1
            return done
        with self._span(source) as span:
            done = self._process(source)
            span.set_attribute("c2c.outcome", done.outcome)
        self.counts[done.outcome] += 1
        return done

    def _span(self, source: Incoming) -> AbstractContextManager[trace.Span]:
        """The ``identity.resolve`` span of ``source``, current while it is open, the child
        of the trace its headers carry (the producer's): what the stage publishes for it
        carries this span on."""
        parent = None
        if self._telemetry is not None:
            try:
                parent = Telemetry.extract(source.headers)
            except ValueError:  # trace headers that are not UTF-8: resolved without them
                parent = None
        return self._tracer.start_as_current_span(
            "identity.resolve",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.source.name": source.topic,
                "messaging.kafka.source.partition": source.partition,
                "messaging.kafka.message.offset": source.offset,
            },
        )

    def process_sharded(
        self,
        messages: Sequence[Incoming],
        sharded: ShardedResolver,
        *,
        decided: EpochDecided | None = None,
    ) -> list[Processed]:
        """What each of ``messages`` produces, resolved in order through ``sharded`` (the
        resolver on N shards, streams/identity/sharding.py) instead of the stage's own
        resolver: the same as :meth:`process` over one resolver holding the shards' state.
        A revocation and an operator's decision are epoch items that are not resolved
        (:class:`Named`); every message's step (publishing, opt-outs, reviews, decisions)
        runs in the decider, in the messages' order, over the epoch's view of the state,
        and is stamped with when it ran (``resolved_ms``). Each step is recorded as the
        message's ``identity.resolve`` span, as :meth:`process` records it (the epoch's
        rounds before it are not in the span).

        ``decided``: called once each epoch is decided and before the shards are sent its
        writes (a write-ahead log, streams/worker_decider.py), with the epoch's resolutions,
        writes and count of items, and the messages done since the last call, in order
        (every message up to the epoch's last: a dead letter between two epochs' items
        goes with the later epoch; the last epoch's call has every message left)."""
        done: list[Processed | None] = []
        taken: list[tuple[int, _Taken]] = []
        now_ms = time.time_ns() // 1_000_000
        for message in messages:
            try:
                got = self._take(source_of(message))
            except SerdeError as exc:  # forwarded alone, with headers that cannot be read
                got = self._dead_letter(message, exc)
            if isinstance(got, Processed):
                got.resolved_ms = now_ms
                done.append(got)
            else:
                taken.append((len(done), got))
                done.append(None)
        items = [one.item() for _at, one in taken]
        asking = {id(i) for i, (_, one) in zip(items, taken, strict=True) if one.requests()}
        pending = iter(taken)
        reported = 0  # messages given to ``decided`` so far

        def step(_index: int, resolution: Resolution | None, view: IdentityState) -> set[str]:
            at, one = next(pending)
            resolver, kept = self.resolver, self.resolver.state
            resolver.state = self.optouts.state = view
            try:
                if self._spans:
                    with self._span(one.source) as span:
                        processed = self._step(one, resolution)
                        span.set_attribute("c2c.outcome", processed.outcome)
                else:
                    processed = self._step(one, resolution)
            finally:
                resolver.state = self.optouts.state = kept
            processed.resolved_ms = time.time_ns() // 1_000_000
            done[at] = processed
            return processed.persons

        def logged(resolutions: list[Resolution], writes: EpochWrites, count: int) -> None:
            nonlocal reported
            upto = reported
            while upto < len(done) and done[upto] is not None:
                upto += 1
            epoch = [p for p in done[reported:upto] if p is not None]
            reported = upto
            assert decided is not None
            decided(resolutions, writes, count, epoch)

        for _resolution in sharded.resolve(
            items,
            each=step,
            requests=lambda epoch: any(id(i) in asking for i in epoch),
            decided=None if decided is None else logged,
        ):
            pass
        out: list[Processed] = []
        for processed in done:
            if processed is None:
                raise RuntimeError(
                    "a message the sharded resolver took was never stepped (a bug in "
                    "streams/identity/sharding.py)"
                )
            self.counts[processed.outcome] += 1
            out.append(processed)
        return out

    def _headers(self) -> list[tuple[str, str | bytes | None]]:
        # a list, empty or not, as confluent-kafka's produce takes (not a tuple)
        if self._telemetry is None or not self._spans:
            return []
        return [
            (k, v if isinstance(v, bytes) else str(v).encode())
            for k, v in self._telemetry.inject()
            if v is not None
        ]

    def _process(self, source: Incoming) -> Processed:
        taken = self._take(source)
        if isinstance(taken, Processed):
            return taken
        if taken.kind != "record":
            return self._step(taken, None)
        return self._step(taken, self.resolver.resolve(taken.provider, taken.person))

    def _take(self, source: Incoming) -> Processed | _Taken:
        """``source`` decoded and sorted: a record to resolve, a revocation or an operator's
        decision (not resolved: :meth:`_step` applies them), or already done (a dead
        letter, or a review of a record the producers would refuse)."""
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
            if len(source.value) > MAX_RAW_BYTES:
                raise SerdeError(
                    f"message of {len(source.value):,} bytes is over the {MAX_RAW_BYTES:,} a "
                    "raw event may have (its linked event and any review would be too large "
                    "to publish); fix the record at its source",
                    code="identity.too_large",
                )
            raw = decoder.decode(source.value)
        except SerdeError as exc:
            return self._dead_letter(source, exc)
        if source.topic == OPERATOR_DECISIONS_TOPIC:
            return _Taken("decision", source, raw, "", {})
        provider = str(raw.get("provider") or "other")
        if source.topic == OPTOUT_TOPIC and raw.get("action") != "REQUESTED":
            if raw.get("action") != "REVOKED":
                return self._review(
                    source,
                    raw,
                    provider,
                    "opt-out event whose action is neither REQUESTED nor REVOKED",
                )
            return _Taken("revocation", source, raw, provider, {})
        person = raw.get("person") or {}
        problems = self._identifiers(person)
        if problems:
            reason = "; ".join(f"person.{p.field} {p.message}" for p in problems)
            return self._review(source, raw, provider, f"{reason} (the producers refuse it)")
        return _Taken("record", source, raw, provider, person)

    def _step(self, taken: _Taken, resolution: Resolution | None) -> Processed:
        """What ``taken`` produces: a record's, once resolved (``resolution``); a
        revocation's or an operator's decision's, applied to the state."""
        if taken.kind == "decision":
            return self._operator_decision(taken.source, taken.raw)
        if taken.kind == "revocation":
            return self._revocation(taken.source, taken.raw, taken.provider)
        assert resolution is not None, "a record is resolved before its step"
        source, raw, provider, person = taken.source, taken.raw, taken.provider, taken.person
        person_id = resolution.person_id
        if person_id is None:
            return self._review(source, raw, provider, resolution.review_reason)
        headers = self._headers()
        changes = resolution.changes
        outcome, decisions = self.optouts.after_resolution(
            person_id, raw, changes, request=source.topic == OPTOUT_TOPIC
        )
        # Of an opted-out person only merges leave the identity zone (downstream re-keys
        # with them); that a record of theirs arrived is not published.
        published = (
            changes
            if outcome == "linked"
            else tuple(c for c in changes if c.change_type == "PERSONS_MERGED")
        )
        event_id = str(raw.get("event_id"))
        outgoing: list[Outgoing] = []
        once: list[Outgoing] = []
        if published:
            encode = self._encoders[CHANGES_TOPIC].encode
            for record in identity_change_records(
                published, provider=provider, source_event_id=event_id, at=_now_millis()
            ):
                message = Outgoing(
                    CHANGES_TOPIC, record["person_id"].encode(), encode(record), headers
                )
                outgoing.append(message)
                if record["change_type"] in ONCE_CHANGES:
                    once.append(message)
        if outcome == "linked":
            topic, linked = linked_event(source.topic, raw, person_id, event_id=event_id)
            outgoing.append(
                Outgoing(topic, person_id.encode(), self._encoders[topic].encode(linked), headers)
            )
        persons = set(resolution.touched)
        if decisions:
            decided = self._decisions(decisions, headers)
            outgoing += decided
            once += decided
            persons.update(decision.person_id for decision in decisions)
        if resolution.near is not None:
            outgoing.append(
                self._possible_match(source, raw, provider, person, person_id, resolution.near)
            )
        done = Processed(outgoing, persons, outcome=outcome, once=once)
        if resolution.new_source is not None:
            done.sources[resolution.new_source] = person_id
        counts = self.counts
        for change in changes:
            counts[CHANGE_COUNTS[change.change_type]] += 1
            if change.change_type == "PERSONS_MERGED":
                # which model decided each merge (ids only: nothing identifying)
                log.info(
                    "merged %s into %s: rule %s, weight %s, model %s, event %s",
                    change.previous_person_id,
                    change.person_id,
                    change.rule,
                    change.weight,
                    change.model_version,
                    event_id,
                )
        return done

    def _possible_match(
        self,
        source: Incoming,
        raw: dict[str, Any],
        provider: str,
        person: Mapping[str, Any],
        person_id: str,
        near: Near,
    ) -> Outgoing:
        """The review of a possible match (the record went to ``person_id``; it scored
        ``near`` another person), remembered for an operator's decision."""
        resolver = self.resolver
        source_id = person.get("source_person_id")
        source_key = (provider, resolver.hasher.source_id(provider, str(source_id)))
        record = review_record(
            reason=(
                f"possible match: {near.weight:.1f} bits against {near.person_id}, below the "
                f"threshold of {resolver.model.threshold:g}"
            ),
            provider=provider,
            event_id=str(raw.get("event_id")),
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            raw_value=source.value or b"",
            person_id=person_id,
            candidate_person_id=near.person_id,
            match_weight=round(near.weight, 2),
            comparison=dict(near.levels),
        )
        self.decisions.possible_match(
            str(record["review_id"]),
            person_id,
            near,
            resolver.identity(person),
            source_key if source_id else None,
        )
        self.counts["possible_match"] += 1
        encoded = self._encoders[REVIEW_TOPIC].encode(record)
        return Outgoing(REVIEW_TOPIC, None, encoded, self._headers())

    def _operator_decision(self, source: Incoming, decision: dict[str, Any]) -> Processed:
        """An operator's decision on a possible match, applied as an identity change; one
        the worker cannot apply (unknown review, stale) is a dead letter with the reason."""
        try:
            applied = self.decisions.apply(decision)
        except DecisionError as exc:
            return self._dead_letter(source, exc)
        self.counts[f"decision.{applied.what}"] += 1
        headers = self._headers()
        outgoing: list[Outgoing] = []
        decision_id = str(decision["decision_id"])
        if applied.changes:
            encode = self._encoders[CHANGES_TOPIC].encode
            for record in identity_change_records(
                applied.changes, provider=None, source_event_id=decision_id, at=_now_millis()
            ):
                outgoing.append(
                    Outgoing(CHANGES_TOPIC, record["person_id"].encode(), encode(record), headers)
                )
            # (a decision is applied once: a replay of it changes nothing, so all it sent is
            # sent again after a restart, as the state holds it)
            for change in applied.changes:
                self.counts[CHANGE_COUNTS[change.change_type]] += 1
                log.info(
                    "operator decision %s: %s %s and %s (rule %s)",
                    decision_id,
                    change.change_type,
                    change.person_id,
                    change.previous_person_id,
                    change.rule,
                )
        persons = set(applied.touched)
        if applied.what == "linked" and applied.survivor is not None:
            spread = self.optouts.after_merge(applied.survivor, {"event_id": decision_id})
            if spread is not None:
                outgoing += self._decisions([spread], headers)
                persons.add(spread.person_id)
        return Processed(
            outgoing, persons, dict(applied.sources), outcome="decision", once=list(outgoing)
        )

    def _revocation(self, source: Incoming, raw: dict[str, Any], provider: str) -> Processed:
        """A revocation names its request; it is not resolved (it need carry no identity)."""
        decision = self.optouts.revoke(raw)
        if decision is None:
            return self._review(
                source,
                raw,
                provider,
                "revocation of an opt-out request that is not active (never made, already "
                "revoked, or not resolved yet)",
            )
        done = Processed(outcome="optout")
        done.outgoing += self._decisions([decision], self._headers())
        done.once += done.outgoing
        done.persons.add(decision.person_id)
        return done

    def _decisions(
        self, decisions: Sequence[Decision], headers: Sequence[tuple[str, str | bytes | None]]
    ) -> list[Outgoing]:
        encoder = self._encoders[OPTOUT_DECISIONS_TOPIC]
        now = datetime.now(UTC)
        out = []
        for decision in decisions:
            self.counts[f"optout.{decision.cause.lower()}"] += 1
            out.append(
                Outgoing(
                    OPTOUT_DECISIONS_TOPIC,
                    decision.person_id.encode(),
                    encoder.encode(decision_record(decision, now)),
                    headers,
                )
            )
        return out

    def _review(
        self, source: Incoming, raw: dict[str, Any], provider: str, reason: str | None
    ) -> Processed:
        # the raw value is at most MAX_RAW_BYTES (a larger one is a dead letter before it is
        # resolved), so its review fits a message
        raw_value = source.value or b""
        record = review_record(
            reason=reason or "unresolvable",
            provider=provider,
            event_id=str(raw.get("event_id")),
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            raw_value=raw_value,
        )
        encoded = self._encoders[REVIEW_TOPIC].encode(record)
        return Processed(
            outgoing=[Outgoing(REVIEW_TOPIC, None, encoded, self._headers())], outcome="review"
        )

    def _dead_letter(self, source: Incoming, error: C2CError) -> Processed:
        record = identity_dead_letter(source, error)
        return Processed(
            outgoing=[
                Outgoing(
                    DEAD_LETTER_TOPIC,
                    source.key,
                    self._encoders["c2c.deadletter"].encode(record),
                    [],
                )
            ],
            outcome="dead_letter",
        )


# Where the worker keeps a batch's Processed.once messages until the next batch's state is
# confirmed: keys of the identity-decisions table, UNCONFIRMED_KEY:0, :1, ... (one message
# of the changelog holds at most UNCONFIRMED_CHUNK_BYTES of them, under Kafka's 1 MB)
UNCONFIRMED_KEY = "unconfirmed"
UNCONFIRMED_CHUNK_BYTES = 512 * 1024


def unconfirmed_chunks(
    messages: Sequence[Outgoing], limit: int = UNCONFIRMED_CHUNK_BYTES
) -> list[bytes]:
    """``messages`` (their topic, key and value; not their headers) as JSON values of at
    most about ``limit`` bytes each, in order; :func:`unconfirmed_messages` reads one."""
    chunks: list[bytes] = []
    items: list[list[str | None]] = []
    size = 0
    for message in messages:
        item = [
            message.topic,
            None if message.key is None else base64.b64encode(message.key).decode(),
            base64.b64encode(message.value).decode(),
        ]
        cost = sum(len(part or "") + 8 for part in item)
        if items and size + cost > limit:
            chunks.append(json.dumps(items).encode())
            items, size = [], 0
        items.append(item)
        size += cost
    if items:
        chunks.append(json.dumps(items).encode())
    return chunks


def unconfirmed_messages(chunk: bytes) -> list[Outgoing]:
    """The messages one of :func:`unconfirmed_chunks` holds, to send again."""
    return [
        Outgoing(
            str(topic),
            None if key is None else base64.b64decode(key),
            base64.b64decode(value),
        )
        for topic, key, value in json.loads(chunk)
    ]


def identity_dead_letter(source: Incoming, error: C2CError) -> dict[str, Any]:
    """The dead letter of a message the identity stage could not read: its original bytes,
    topic, partition and offset, and why."""
    return dead_letter(
        stage="identity",
        error=error,
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
        key=source.key,
        value=source.value,
    )

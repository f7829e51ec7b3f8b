"""The sink's batches, built from messages without Kafka or ClickHouse.

:class:`BatchBuilder` takes the messages of a fetch and adds to a :class:`Batch` what
ClickHouse is to get: fact rows decoded here, linked messages ClickHouse is to decode
(sinks/wire.py), person-map rows of merges, and opt-out decisions. What it cannot take it
hands back in a :class:`Taken` for the edges: Kafka errors and dead letters for the consumer
(sinks/consumer.py), and what was read for the observer. Which way a linked message goes
(decoded here, or to ClickHouse as it came) is decided here too: per message as it is read,
and per table before the batch is written (:meth:`BatchBuilder.decide_paths`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from c2c.serde import SerdeError
from c2c.topics import CHANGE_COUNTS, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC
from sinks.optouts import OptOutFilter
from sinks.rows import FACT_TABLES, ChangeReader, PersonMap, fact_row

if TYPE_CHECKING:
    from c2c.consuming import Decoder

__all__ = [
    "WIRE_MIN_ROWS",
    "Batch",
    "BatchBuilder",
    "DeadLetter",
    "Message",
    "Taken",
    "add_linked",
    "add_row",
]

# A table's wire messages go to ClickHouse as a container only when a batch has at least
# this many of them (or half of C2C_SINK_BATCH_ROWS, if less), else they are decoded here:
# a container's insert writes two parts (the fact table's and dim_person's) where decoded
# rows share one dim_person insert per batch, which at 1,000 events/s (about 100 rows a
# table a batch) cost the sink more CPU than the decoding it saved.
WIRE_MIN_ROWS = 1_000


class Message(Protocol):
    """What the sink reads of a message: a confluent_kafka.Message (tests give stand-ins)."""

    def error(self) -> Any: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


class DeadLetter(NamedTuple):
    """A message that did not decode, and why: to be published as a dead letter."""

    message: Message
    error: SerdeError


class Taken(NamedTuple):
    """What :meth:`BatchBuilder.take` did not put into the batch, for the edges."""

    added: int  # messages added to the batch (errors and dead letters aside)
    errors: list[Message]  # Kafka errors (``error()`` set), for the consumer to judge
    dead_letters: list[DeadLetter]
    traced: list[Message]  # taken messages with headers, when tracing
    untraced: dict[str, int]  # the other taken messages, per topic


@dataclass
class Batch:
    """Rows waiting for one insert, per table."""

    facts: dict[str, list[list[Any]]] = field(default_factory=dict)
    merges: list[list[Any]] = field(default_factory=list)
    # person id -> the fact row of the person's latest event (dim_person_of picks
    # the person dimension's row out of it when the batch is written)
    persons: dict[str, list[Any]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    decisions_read: list[float] = field(default_factory=list)  # monotonic, when each was read
    # decisions read by the side reader (sinks/side_reader.py): another sink owns their
    # partition and audits them; this one removes its own rows and does not audit
    unaudited: set[str] = field(default_factory=set)
    side: int = 0  # changes and decisions it took from the side reader
    # fact table -> linked messages ClickHouse decodes (sinks/wire.py), and their persons
    wire: dict[str, list[Message]] = field(default_factory=dict)
    wire_persons: set[str] = field(default_factory=set)
    optout_persons: list[list[Any]] = field(default_factory=list)
    # id of a fact row decoded here -> when its linked message was published (epoch ms),
    # for an opt-out decision read after it in the same batch (BatchBuilder._decision), and
    # written with it (its published_at: sinks.writer.write_batch); shared by the batches
    # made of this one's rows (after_decisions)
    published: dict[int, int] = field(default_factory=dict)
    messages: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def facts_count(self) -> int:
        """Fact rows, decoded here or by ClickHouse."""
        return sum(map(len, self.facts.values())) + sum(map(len, self.wire.values()))

    @property
    def rows(self) -> int:
        return self.facts_count + len(self.merges)

    @property
    def largest(self) -> int:
        """Rows of the largest insert the batch makes (one per table)."""
        return max(
            len(self.merges),
            len(self.persons),
            *map(len, self.facts.values()),
            *map(len, self.wire.values()),
            0,
        )


def add_row(batch: Batch, table: str, row: list[Any]) -> None:
    """Add a linked event's fact row (as a RowReader reads it, or fact_row builds it) to
    ``batch``, and the row as its person's if it is their latest event so far."""
    rows = batch.facts.get(table)
    if rows is None:
        rows = batch.facts[table] = []
    rows.append(row)
    latest = batch.persons.get(row[3])
    if latest is None or latest[1] <= row[1]:  # the person's latest event
        batch.persons[row[3]] = row


def add_linked(batch: Batch, topic: str, event: dict[str, Any]) -> None:
    """Add one decoded linked event's fact row and person row to ``batch`` (the sink
    itself reads rows straight from the wire, :class:`sinks.rows.RowReader`; a batch
    holds rows of one form)."""
    table, row = fact_row(topic, event)
    add_row(batch, table, row)


def _take_out(
    batch: Batch,
    out: set[str],
    finders: Mapping[str, Callable[[bytes], str | None]],
    admits: Callable[[str, int], bool] | None = None,
) -> Batch:
    """Move the rows, person rows and wire messages of the persons ``out`` from ``batch``
    (in place: the batch builder holds its lists' append methods) into a new batch, which
    is returned. With ``admits`` (an OptOutFilter's rule), only those it does not admit
    by when they were published: a row with no time known is taken."""

    def taken_row(row: list[Any]) -> bool:
        person = row[3]
        return person in out and (
            admits is None or not admits(person, batch.published.get(id(row), 0))
        )

    taken = Batch(started=batch.started, published=batch.published)
    kept: set[str] = set()  # persons of ``out`` with rows left (admitted): their person row stays
    for table, rows in batch.facts.items():
        took = [taken_row(row) for row in rows]
        taken.facts[table] = [row for row, t in zip(rows, took, strict=True) if t]
        rows[:] = [row for row, t in zip(rows, took, strict=True) if not t]
        kept.update(row[3] for row in rows if row[3] in out)
    for table, messages in batch.wire.items():
        find = finders.get(table)
        if find is not None:
            people = [find(m.value() or b"") for m in messages]
            took = [
                p in out and (admits is None or not admits(p, max(0, m.timestamp()[1])))
                for m, p in zip(messages, people, strict=True)
            ]
            taken.wire[table] = [m for m, t in zip(messages, took, strict=True) if t]
            messages[:] = [m for m, t in zip(messages, took, strict=True) if not t]
            kept.update(p for p, t in zip(people, took, strict=True) if p in out and not t)
    gone = out - kept
    taken.persons = {p: batch.persons.pop(p) for p in gone if p in batch.persons}
    taken.wire_persons = batch.wire_persons & gone
    batch.wire_persons -= gone
    return taken


# What take() does with a linked topic's messages (see BatchBuilder._targets).
_Target = tuple[
    Callable[[bytes], list[Any]],
    Callable[[list[Any]], None],
    Callable[[bytes], str | None] | None,
    Callable[[Message], None],
]


class BatchBuilder:
    """Adds messages to batches (see the module docstring); counts what it took.

    ``decoders``: each topic's (:func:`sinks.sink.readers`: a linked topic's row reader, the
    changes' ChangeReader, the opt-out decisions' decoder). ``person_map`` and ``optouts``:
    what was written before (updated by merges and decisions). ``wire``: each linked topic's
    person finder (:func:`sinks.wire.person_finder`) whose messages may go to ClickHouse as
    they came; none: all are decoded here. ``batch_rows``: C2C_SINK_BATCH_ROWS. ``tracing``:
    whether messages with headers are handed back apart (:attr:`Taken.traced`).

    ``counts``: ``decoded`` (messages taken), ``change.*`` (identity changes read),
    ``optout.<cause>`` (decisions read) and ``optout.not_written`` (rows left out because
    their person opted out after they were published).
    """

    def __init__(
        self,
        decoders: Mapping[str, Decoder],
        *,
        person_map: PersonMap,
        optouts: OptOutFilter,
        wire: Mapping[str, Callable[[bytes], str | None]] | None = None,
        batch_rows: int,
        tracing: bool = False,
    ) -> None:
        self._topics = [*FACT_TABLES, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC]
        missing = [topic for topic in self._topics if topic not in decoders]
        if missing:
            raise ValueError(f"the batch builder has no decoder for {missing} (sinks.sink.readers)")
        changes = decoders[CHANGES_TOPIC]
        if not isinstance(changes, ChangeReader):
            raise TypeError(
                f"the decoder of {CHANGES_TOPIC} is a {type(changes).__name__}, not a "
                "sinks.rows.ChangeReader (sinks.sink.readers makes one)"
            )
        self.person_map = person_map
        self.optouts = optouts
        self.counts: Counter[str] = Counter()
        # each linked topic's table and row reader
        self._linked = {
            topic: (table, decoders[topic].decode) for topic, table in FACT_TABLES.items()
        }
        self._wire = dict(wire or {})
        # each fact table's person finder, for its wire messages
        self._wire_persons = {FACT_TABLES[t]: find for t, find in self._wire.items()}
        self._changes = changes
        self._decisions = decoders[OPTOUT_DECISIONS_TOPIC]
        self._tracing = tracing
        self.wire_min = min(WIRE_MIN_ROWS, max(1, batch_rows // 2))

    def take(self, batch: Batch, messages: Sequence[Message]) -> Taken:
        """Add one fetch's ``messages`` to ``batch``: a linked event as its fact row (see
        sinks.rows.RowReader), or as the message for ClickHouse to decode, unless its
        person opted out after it was published; an identity change counted (a merge
        applied to the person map); an opt-out decision applied. One loop, with no call of
        ours for a linked event or a counted change: at tens of thousands of messages a
        second, every step of it counts."""
        linked = self._targets(batch)
        persons, wire_persons, counts = batch.persons, batch.wire_persons, self.counts
        published = batch.published
        out_at, admits = self.optouts.opted_out_at, self.optouts.admits
        counted, kinds = self._changes.counted, dict.fromkeys(self._changes.types, 0)
        # a message with trace context goes to the observer as it is, the others are
        # counted per topic (all the observer does with them)
        tracing, untraced = self._tracing, dict.fromkeys(self._topics, 0)
        traced: list[Message] = []
        errors: list[Message] = []
        dead: list[DeadLetter] = []
        for message in messages:
            if message.error() is not None:
                errors.append(message)
                continue
            topic = message.topic() or ""
            raw = message.value() or b""
            chosen = linked.get(topic)
            if chosen is not None:
                read, append, person_of, wire = chosen
                row = None  # none: ClickHouse decodes it (framed as expected, person found)
                person = person_of(raw) if person_of is not None else None
                if person is None:
                    try:
                        row = read(raw)
                    except SerdeError as exc:
                        dead.append(DeadLetter(message, exc))
                        continue
                    person = row[3]
                # the filter's rule asked only of an opted-out person (a dictionary look-up)
                if out_at(person) is not None and not admits(
                    person, max(0, message.timestamp()[1])
                ):
                    counts["optout.not_written"] += 1  # published before they opted out
                elif row is None:
                    wire(message)
                    wire_persons.add(person)
                else:
                    append(row)
                    published[id(row)] = message.timestamp()[1]
                    latest = persons.get(person)  # dim_person: add_row's rule, inline here
                    if latest is None or latest[1] <= row[1]:
                        persons[person] = row
            elif topic == CHANGES_TOPIC and (kind := counted(raw)) is not None:
                kinds[kind] += 1  # only counted: no need to decode it
            elif not self._decode(batch, message, raw, dead):  # a merge or a decision
                continue
            if tracing and message.headers():
                traced.append(message)
            else:
                untraced[topic] += 1
        taken = len(messages) - len(errors) - len(dead)
        batch.messages += taken
        counts["decoded"] += taken
        counts.update({CHANGE_COUNTS[kind]: n for kind, n in kinds.items() if n})
        return Taken(taken, errors, dead, traced, {t: n for t, n in untraced.items() if n})

    def _targets(self, batch: Batch) -> dict[str, _Target]:
        """Each linked topic's row reader and where ``batch``'s rows of its table go; its
        person finder (None: all are decoded here) and where its wire messages go."""
        return {
            topic: (
                read,
                batch.facts.setdefault(table, []).append,
                self._wire.get(topic),
                batch.wire.setdefault(table, []).append,
            )
            for topic, (table, read) in self._linked.items()
        }

    def _decode(self, batch: Batch, message: Message, raw: bytes, dead: list[DeadLetter]) -> bool:
        """Decode and apply an identity change that is not only counted, or an opt-out
        decision; False, and a dead letter added to ``dead``, if it does not decode."""
        is_change = message.topic() == CHANGES_TOPIC
        try:
            value: Any = (self._changes if is_change else self._decisions).decode(raw)
        except SerdeError as exc:
            dead.append(DeadLetter(message, exc))
            return False
        if is_change:
            self._change(batch, value)
        else:
            batch.unaudited.discard(str(value["decision_id"]))  # read through the group too
            self._decision(batch, value)
        return True

    def take_side(self, batch: Batch, messages: Sequence[Message]) -> int:
        """Add to ``batch`` what the side reader read (sinks/side_reader.py: the changes and
        decisions of partitions another sink owns): merges and splits to the person map
        (their rows written by every sink that reads them: the same rows, or later ones
        that are more complete, collapse by the latest), opt-out decisions applied as
        :meth:`take` applies them but not audited here (their owner audits them). Changes
        only counted, and messages that do not decode, are left to the owner. How many
        were added (``side.changes``, ``side.decisions``)."""
        added = 0
        for message in messages:
            raw = message.value() or b""
            is_change = message.topic() == CHANGES_TOPIC
            if is_change and self._changes.counted(raw) is not None:
                continue
            try:
                value: Any = (self._changes if is_change else self._decisions).decode(raw)
            except SerdeError:
                self.counts["side.undecoded"] += 1  # its owner sends it to the dead letters
                continue
            if is_change:
                self._change(batch, value, counted=False)
                self.counts["side.changes"] += 1
            else:
                batch.unaudited.add(str(value["decision_id"]))
                self._decision(batch, value)
                self.counts["side.decisions"] += 1
            added += 1
        batch.messages += added
        batch.side += added
        return added

    def _change(self, batch: Batch, change: list[Any], *, counted: bool = True) -> None:
        """An identity change (sinks.rows.CHANGE_PATHS order): a merge re-points persons,
        a split points one back at itself. ``counted``: in ``change.*`` (read through the
        group)."""
        change_type, person_id, previous, changed_at = change
        if change_type == "PERSONS_MERGED" and previous:
            batch.merges += self.person_map.merge(previous, person_id, changed_at)
        elif change_type == "PERSON_SPLIT":
            batch.merges += self.person_map.split(person_id, changed_at)
        if counted:
            self.counts[CHANGE_COUNTS[change_type]] += 1

    def _decision(self, batch: Batch, value: dict[str, Any]) -> None:
        """An opt-out decision: its persons' rows are removed once the batch is written
        (sinks/optout_removal.py); those already in the batch that were published up to
        the decision are taken out of it now (the filter's rule, by each row's publication
        time: a row read before the decision from another partition may have been
        published after it, following a revocation), so that what the batch admits
        (events after a revocation) can be written after the removal
        (:meth:`after_decisions`)."""
        batch.decisions.append(value)
        batch.decisions_read.append(time.monotonic())
        batch.optout_persons += self.optouts.apply(value)
        if str(value["decision_id"]) not in batch.unaudited:  # side ones: side.decisions
            self.counts[f"optout.{str(value['cause']).lower()}"] += 1
        if value["opted_out"]:
            out = {str(p) for p in value["person_ids"]}
            self.counts["optout.not_written"] += _take_out(
                batch, out, self._wire_persons, self.optouts.admits
            ).facts_count

    def after_decisions(self, batch: Batch) -> tuple[Batch, Batch | None]:
        """``batch`` as two, for a batch holding opt-out decisions: what is written before
        their rows are removed, and the rows of their persons that the batch still holds
        (admitted after a revocation: those read before a decision were taken out when it
        was read), written after, or the removal would delete them too. None when there
        are none. ``batch`` itself is left as it is (a refused insert tries it again)."""
        out = {str(p) for d in batch.decisions if d["opted_out"] for p in d["person_ids"]}
        held = any(row[3] in out for rows in batch.facts.values() for row in rows)
        if not out or not (held or batch.wire_persons & out):
            return batch, None
        first = Batch(
            facts={t: list(rows) for t, rows in batch.facts.items()},
            merges=batch.merges,
            persons=dict(batch.persons),
            decisions=batch.decisions,
            decisions_read=batch.decisions_read,
            unaudited=batch.unaudited,
            wire={t: list(m) for t, m in batch.wire.items()},
            wire_persons=set(batch.wire_persons),
            optout_persons=batch.optout_persons,
            published=batch.published,
            messages=batch.messages,
            started=batch.started,
        )
        return first, _take_out(first, out, self._wire_persons)

    def decide_paths(self, batch: Batch) -> list[DeadLetter]:
        """Before ``batch`` is first written: a table's wire messages go to ClickHouse as a
        container only when there are at least :attr:`wire_min` of them (a few cost more
        as a container, two views and two parts, than decoded here); the others are
        decoded here (:meth:`unwire`). The messages that did not decode."""
        return self.unwire(batch, below=self.wire_min)

    def unwire(self, batch: Batch, below: int | None = None) -> list[DeadLetter]:
        """Decode ``batch``'s wire messages into rows (only tables with fewer than
        ``below`` of them, if given), as messages framed otherwise are; the rest are
        written the usual way. The messages that did not decode, no longer taken."""
        dead: list[DeadLetter] = []
        for table, messages in list(batch.wire.items()):
            if below is not None and len(messages) >= below:
                continue
            del batch.wire[table]
            for message in messages:
                _table, read = self._linked[str(message.topic())]
                try:
                    row = read(message.value() or b"")
                except SerdeError as exc:
                    dead.append(DeadLetter(message, exc))
                    self.counts["decoded"] -= 1
                    batch.messages -= 1
                    continue
                add_row(batch, table, row)
                batch.published[id(row)] = message.timestamp()[1]
        if not batch.wire:
            batch.wire_persons.clear()
        return dead

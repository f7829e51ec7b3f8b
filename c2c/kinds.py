"""The catalogue of event kinds: what providers send, declared once.

Each :class:`EventKind` names its raw record (identity zone) and, if it is linked to a
person and kept in ClickHouse, its linked record (de-identified zone). Everything else a
kind has is derived from its name here, and every list of kinds in the project is derived
from :data:`EVENT_KINDS`: the raw and linked topics (c2c.topics), the producers' kind ->
topic map, the identity stage's topics, the sink's fact tables, the example events and
the DDL of the fact and wire tables (sinks.ddl).

A new kind of event is its records in schemas/avro/ (raw, linked, facts), one entry here,
its example facts (c2c.examples), its models regenerated (`c2c schemas codegen`) and named in
producers.mapping.MODELS, its facts' columns in sinks.rows.FACT_COLUMNS (tests/unit/
test_kinds.py checks both against this catalogue), and the migration that ``python -m
sinks.ddl --write`` renders. A new provider of existing kinds needs none of that
(producers/formats.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EVENT_KINDS", "LINKED_KINDS", "OPTOUT", "EventKind", "get_kind"]


@dataclass(frozen=True)
class EventKind:
    """One kind of event.

    ``name`` is the kind as producers and topics spell it (``financial_aid``);
    ``raw_record`` the record's name in schemas/avro/raw/; ``linked_record`` its name in
    schemas/avro/linked/, or None for a kind that is never linked (opt-outs: the resolver
    applies them and publishes decisions, not events). ``description`` says what its events
    are, in the plural ("Enrollments"); ``linked_description`` the same of its linked events
    when they say less (default: ``description``).
    """

    name: str
    raw_record: str
    description: str
    linked_record: str | None = None
    linked_description: str = ""

    @property
    def raw_topic(self) -> str:
        """The topic providers send this kind to (identity zone)."""
        return f"c2c.raw.{self.name}"

    @property
    def raw_schema(self) -> str:
        """Full name of the raw record."""
        return f"org.c2cstream.raw.{self.raw_record}"

    @property
    def linked(self) -> bool:
        """Whether events of this kind are linked to a person and kept in ClickHouse."""
        return self.linked_record is not None

    @property
    def linked_topic(self) -> str:
        """The topic of the linked events (de-identified zone); ValueError for a kind that
        is never linked."""
        self._require_linked("linked_topic")
        return f"c2c.linked.{self.name}"

    @property
    def linked_schema(self) -> str:
        """Full name of the linked record; ValueError for a kind that is never linked."""
        self._require_linked("linked_schema")
        return f"org.c2cstream.linked.{self.linked_record}"

    @property
    def fact_table(self) -> str:
        """The ClickHouse table of the linked events; ValueError for a kind never linked."""
        self._require_linked("fact_table")
        return f"fact_{self.name}"

    @property
    def wire_table(self) -> str:
        """The Null table the sink inserts linked messages into as they came off the wire
        (sinks/wire.py); ValueError for a kind never linked."""
        self._require_linked("wire_table")
        return f"wire_{self.name}"

    @property
    def current_view(self) -> str:
        """The view of the fact table under each person's current id (migration 0002)."""
        self._require_linked("current_view")
        return f"{self.name}_current"

    def _require_linked(self, what: str) -> None:
        if self.linked_record is None:
            raise ValueError(f"{self.name} events are never linked: they have no {what}")


OPTOUT = EventKind("optout", "OptOutEvent", "Opt-out requests and revocations")

# In topic order: the linked kinds, then opt-outs (the identity stage reads them all).
EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind(
        "enrollment",
        "EnrollmentEvent",
        "Enrollments",
        linked_record="LinkedEnrollment",
    ),
    EventKind(
        "completion",
        "CompletionEvent",
        "High-school completions and postsecondary awards",
        linked_record="LinkedCompletion",
        linked_description="Completions and awards",
    ),
    EventKind(
        "financial_aid",
        "FinancialAidEvent",
        "Financial-aid awards",
        linked_record="LinkedFinancialAid",
    ),
    EventKind("wage", "WageEvent", "Quarterly wage records", linked_record="LinkedWage"),
    EventKind(
        "credential", "CredentialEvent", "Teacher credentials", linked_record="LinkedCredential"
    ),
    OPTOUT,
)

# The kinds whose events are linked and kept in ClickHouse, in catalogue order.
LINKED_KINDS: tuple[EventKind, ...] = tuple(kind for kind in EVENT_KINDS if kind.linked)


def get_kind(name: str) -> EventKind:
    """The kind called ``name``; KeyError names the known kinds."""
    for kind in EVENT_KINDS:
        if kind.name == name:
            return kind
    known = ", ".join(kind.name for kind in EVENT_KINDS)
    raise KeyError(f"unknown event kind {name!r}; the catalogue has: {known}")

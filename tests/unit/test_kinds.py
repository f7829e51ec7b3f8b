"""The catalogue of event kinds (c2c/kinds.py) and the lists derived from it."""

from __future__ import annotations

from typing import Any

import pytest

from c2c.examples import RAW_KINDS, example_linked, example_raw
from c2c.kinds import EVENT_KINDS, LINKED_KINDS, OPTOUT, EventKind, get_kind
from c2c.schemas import SchemaLibrary
from c2c.topics import CATALOGUE, get_topic
from producers.formats import FORMATS, KIND_TOPICS
from producers.mapping import MODELS
from sinks.rows import FACT_COLUMNS, FACT_TABLES
from streams.linking import LINKED_TOPICS
from streams.resolution import RAW_TOPICS

LIBRARY = SchemaLibrary()


def test_every_kind_has_its_raw_topic_and_every_linked_kind_its_linked_topic() -> None:
    names = [topic.name for topic in CATALOGUE]
    assert names[: len(EVENT_KINDS)] == [kind.raw_topic for kind in EVENT_KINDS]
    linked = names[len(EVENT_KINDS) : len(EVENT_KINDS) + len(LINKED_KINDS)]
    assert linked == [kind.linked_topic for kind in LINKED_KINDS]
    for kind in EVENT_KINDS:
        assert get_topic(kind.raw_topic).schema == kind.raw_schema
        assert get_topic(kind.raw_topic).zone == "identity"
    for kind in LINKED_KINDS:
        assert get_topic(kind.linked_topic).schema == kind.linked_schema
        assert get_topic(kind.linked_topic).zone == "deidentified"


def test_the_lists_of_kinds_are_the_catalogues() -> None:
    assert list(KIND_TOPICS.items()) == [(kind.name, kind.raw_topic) for kind in EVENT_KINDS]
    assert tuple(kind.raw_topic for kind in EVENT_KINDS) == RAW_TOPICS
    assert list(LINKED_TOPICS.items()) == [(k.raw_topic, k.linked_topic) for k in LINKED_KINDS]
    assert list(FACT_TABLES.items()) == [(k.linked_topic, k.fact_table) for k in LINKED_KINDS]
    assert tuple(kind.name for kind in LINKED_KINDS) == RAW_KINDS
    # declared beside their code, checked here against the catalogue
    assert set(MODELS) == {kind.name for kind in EVENT_KINDS}
    assert set(FACT_COLUMNS) == {kind.fact_table for kind in LINKED_KINDS}
    for fmt in FORMATS.values():
        for record_type in fmt.record_types.values():
            assert get_kind(record_type.kind).name == record_type.kind


def _facts(schema: dict[str, Any]) -> Any:
    (field,) = [field for field in schema["fields"] if field["name"] == "facts"]
    return field["type"]


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_raw_and_linked_records_share_their_facts_and_the_fact_table_has_them(
    kind: EventKind,
) -> None:
    raw = _facts(LIBRARY.resolve(kind.raw_schema))
    linked = _facts(LIBRARY.resolve(kind.linked_schema))
    # both refer to one facts record (defined inline where the resolved schema first uses it)
    assert (linked if isinstance(linked, str) else linked["name"]).endswith(raw["name"])
    fields = tuple(field["name"] for field in raw["fields"])
    assert FACT_COLUMNS[kind.fact_table] == fields
    assert example_raw(kind.name)["facts"].keys() == set(fields)
    assert example_linked(kind.name)["facts"] == example_raw(kind.name)["facts"]


def test_a_kind_never_linked_says_so() -> None:
    assert not OPTOUT.linked
    assert OPTOUT.raw_topic == "c2c.raw.optout"
    with pytest.raises(ValueError, match="optout events are never linked: they have no fact_table"):
        _ = OPTOUT.fact_table
    with pytest.raises(KeyError, match=r"unknown event kind 'grant'.*enrollment, completion"):
        get_kind("grant")


def test_derived_names_follow_the_kind() -> None:
    kind = get_kind("financial_aid")
    assert (kind.raw_topic, kind.linked_topic) == (
        "c2c.raw.financial_aid",
        "c2c.linked.financial_aid",
    )
    assert (kind.raw_schema, kind.linked_schema) == (
        "org.c2cstream.raw.FinancialAidEvent",
        "org.c2cstream.linked.LinkedFinancialAid",
    )
    assert (kind.fact_table, kind.wire_table, kind.current_view) == (
        "fact_financial_aid",
        "wire_financial_aid",
        "financial_aid_current",
    )

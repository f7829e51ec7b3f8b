from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

from c2c.serde import AvroEncoder
from sinks.migrate import migrations, split_statements
from sinks.public import public_view_statements
from sinks.rows import ChangeReader, PersonMap, columns, dim_person_of, fact_row

AT = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def _linked(facts: dict[str, object], person: str = "P0000000001") -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "event_time": AT,
        "provider": "edd",
        "person_id": person,
        "attributes": {
            "birth_year": 2001,
            "sex": "FEMALE",
            "demographics": {"race_ethnicity": "ASIAN", "county_fips": "06037"},
        },
        "facts": facts,
    }


def test_a_fact_row_follows_its_table_columns() -> None:
    event = _linked(
        {"employer_id": "E1", "naics": None, "year": 2024, "quarter": 2, "wages": Decimal("12.50")}
    )
    table, row = fact_row("c2c.linked.wage", event)
    assert table == "fact_wage"
    named = dict(zip(columns(table), row, strict=True))
    assert named["person_id"] == "P0000000001"
    assert named["race_ethnicity"] == "ASIAN"
    assert named["foster_youth"] is None
    assert (named["quarter"], named["wages"]) == (2, Decimal("12.50"))
    # the person dimension is picked out of the fact row when a batch is written
    assert dim_person_of(row)[:5] == ("P0000000001", 2001, "FEMALE", "ASIAN", "06037")


def test_person_map_stays_transitive() -> None:
    people = PersonMap()
    assert people.merge("P2", "P1", AT) == [["P2", "P1", AT]]
    # P1 (which absorbed P2) is absorbed by P0: both now count under P0
    assert sorted(people.merge("P1", "P0", AT)) == [["P1", "P0", AT], ["P2", "P0", AT]]
    assert people.current("P2") == "P0"
    assert people.merge("P2", "P0", AT) == []  # a replayed merge writes nothing
    restored = PersonMap([("P1", "P0"), ("P2", "P0")])
    assert restored.merge("P0", "P9", AT)[0] == ["P0", "P9", AT]
    assert restored.current("P2") == "P9"


def test_migrations_are_numbered_and_split() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    statements = split_statements("-- a comment\nCREATE TABLE a (x UInt8);\n\nSELECT 1;\n")
    assert statements == ["CREATE TABLE a (x UInt8)", "SELECT 1"]


def test_public_views_use_the_threshold() -> None:
    [college, *_] = public_view_statements(7)
    assert "completers < 7" in college
    assert "PARTITION BY class_year, breakdown" in college


def test_every_table_row_holds_the_events_values_in_column_order() -> None:
    from c2c.examples import RAW_KINDS, example_linked
    from sinks.rows import ATTRIBUTE_COLUMNS, FACT_TABLES

    for kind in RAW_KINDS:
        topic = f"c2c.linked.{kind}"
        for index, blank in enumerate(("nothing", "demographics", "attributes", "a fact")):
            event = example_linked(kind, index)
            if blank == "demographics":
                event["attributes"]["demographics"] = None
            elif blank == "attributes":
                event["attributes"] = None
            elif blank == "a fact":
                event["facts"].pop(next(iter(event["facts"])))
            table, row = fact_row(topic, event)
            assert table == FACT_TABLES[topic]
            attributes = event["attributes"] or {}
            demographics = attributes.get("demographics") or {}
            expected = {
                "event_id": event["event_id"],
                "event_time": event["event_time"],
                "provider": event["provider"],
                "person_id": event["person_id"],
                "birth_year": attributes.get("birth_year"),
                "sex": attributes.get("sex"),
                **{name: demographics.get(name) for name in ATTRIBUTE_COLUMNS[6:]},
                **{name: event["facts"].get(name) for name in columns(table)[12:]},
            }
            assert dict(zip(columns(table), row, strict=True)) == expected, (kind, blank)
            if blank == "nothing":
                assert all(v is not None for v in row[:4])
                assert any(v is not None for v in row[12:])


def _reader(topic: str, older: dict[str, object] | None = None) -> tuple[object, object]:
    from c2c.schemas import SchemaLibrary
    from c2c.serde import AvroDecoder, AvroEncoder
    from c2c.topics import get_topic
    from sinks.rows import FACT_TABLES, RowReader, fact_paths

    schema = SchemaLibrary().resolve(get_topic(topic).schema)
    writers = {1: schema, 2: older or schema}
    decoder = AvroDecoder(schema, writers.__getitem__, reader_schema_id=1)
    reader = RowReader(schema, 1, decoder, fact_paths(FACT_TABLES[topic]))
    return reader, AvroEncoder(schema, 1)


def test_rows_read_from_the_wire_hold_the_values_in_the_forms_clickhouse_stores() -> None:
    from c2c.examples import RAW_KINDS, example_linked

    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    for kind in RAW_KINDS:
        topic = f"c2c.linked.{kind}"
        reader, encoder = _reader(topic)
        for index in range(40):
            event = example_linked(kind, index)
            if index % 3 == 1:
                event["attributes"]["demographics"] = None
            _table, decoded = fact_row(topic, event)  # the values, from the record
            expected = []
            for value in decoded:
                if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
                    value = uuid.UUID(value).int  # the event id
                elif isinstance(value, datetime.datetime):
                    value = (value - epoch) // datetime.timedelta(milliseconds=1)
                elif isinstance(value, datetime.date):
                    value = (value - epoch.date()).days
                expected.append(value)
            assert reader.decode(encoder.encode(event)) == expected, (kind, index)


def test_a_row_reader_resolves_older_writers_and_names_bad_bytes() -> None:
    import copy

    import pytest

    from c2c.examples import example_linked
    from c2c.serde import AvroEncoder, SerdeError

    reader, encoder = _reader("c2c.linked.wage")
    event = example_linked("wage", 3)
    current = reader.decode(encoder.encode(event))
    # an older writer without the optional naics: fastavro fills the reader's default
    from c2c.schemas import SchemaLibrary

    older = copy.deepcopy(SchemaLibrary().resolve("org.c2cstream.linked.LinkedWage"))
    facts = older["fields"][5]["type"]
    facts["fields"] = [f for f in facts["fields"] if f["name"] != "naics"]
    reader, _ = _reader("c2c.linked.wage", older)
    old_bytes = AvroEncoder(older, 2).encode({**event, "facts": {**event["facts"]}})
    row = reader.decode(old_bytes)
    assert row[13] is None  # naics
    assert row[:13] + row[14:] == current[:13] + current[14:]
    broken = encoder.encode(event)[:-3]
    with pytest.raises(SerdeError, match="does not decode as schema id 1"):
        reader.decode(broken)


def _change_schema() -> dict[str, Any]:
    from c2c.schemas import SchemaLibrary
    from c2c.topics import CHANGES_TOPIC, get_topic

    return SchemaLibrary().resolve(get_topic(CHANGES_TOPIC).schema)


def _change_reader(schema: dict[str, Any] | None = None) -> tuple[ChangeReader, AvroEncoder]:
    from c2c.serde import AvroDecoder

    chosen = schema or _change_schema()
    decoder = AvroDecoder(chosen, {1: chosen}.__getitem__, reader_schema_id=1)
    return ChangeReader(chosen, 1, decoder), AvroEncoder(chosen, 1)


def _change(change_type: str, changed_at: datetime.datetime = AT) -> dict[str, object]:
    return {
        "change_id": uuid.uuid4(),
        "changed_at": changed_at,
        "change_type": change_type,
        "person_id": "P0000000001",
        "previous_person_id": "P0000000002" if change_type == "PERSONS_MERGED" else None,
        "provider": "edd",
        "source_event_id": uuid.uuid4(),
        "rule": "SSN",
        "match_weight": None,
    }


def test_a_change_reader_tells_a_counted_change_from_its_leading_bytes() -> None:
    import copy

    import pytest

    from c2c.serde import SerdeError

    reader, encoder = _change_reader()
    assert reader.peeks
    assert reader.types == ["PERSON_CREATED", "RECORD_LINKED", "UNKNOWN"]
    for change_type in reader.types:
        assert reader.counted(encoder.encode(_change(change_type))) == change_type
    # a merge, which the sink applies, and a change whose time does not fit the layout,
    # are decoded in full
    merge = encoder.encode(_change("PERSONS_MERGED"))
    assert reader.counted(merge) is None
    assert reader.decode(merge)[:3] == ["PERSONS_MERGED", "P0000000001", "P0000000002"]
    late = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)  # a 7-byte time
    data = encoder.encode(_change("RECORD_LINKED", late))
    assert reader.counted(data) is None
    assert reader.decode(data)[0] == "RECORD_LINKED"
    # bytes of another writer schema, or cut before the type, are not recognised
    linked = encoder.encode(_change("RECORD_LINKED"))
    assert reader.counted(b"\x00\x00\x00\x00\x02" + linked[5:]) is None
    assert reader.counted(linked[:48]) is None
    with pytest.raises(SerdeError):
        reader.decode(linked[:48])
    # a time of fewer than six bytes: any of its first five without the continuation bit
    for at in range(42, 47):
        short = bytearray(linked)
        short[at] &= 0x7F
        assert reader.counted(bytes(short)) is None, at
    early = datetime.datetime(1970, 1, 2, tzinfo=datetime.UTC)  # a 4-byte time
    assert reader.counted(encoder.encode(_change("RECORD_LINKED", early))) is None
    # a schema laid out otherwise (the type first) is read in full, every change
    other = copy.deepcopy(_change_schema())
    fields = other["fields"]
    other["fields"] = [fields[2], fields[0], fields[1], *fields[3:]]
    reordered, encoder = _change_reader(other)
    assert not reordered.peeks
    data = encoder.encode(_change("RECORD_LINKED"))
    assert reordered.counted(data) is None
    assert reordered.decode(data)[0] == "RECORD_LINKED"

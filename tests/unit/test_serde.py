import datetime
import decimal
import uuid
from typing import Any

import pytest

from c2c.schemas import SchemaLibrary
from c2c.serde import AvroDecoder, AvroEncoder, SerdeError, frame, schema_id_of

V1: dict[str, Any] = {
    "type": "record",
    "name": "Wage",
    "namespace": "t",
    "fields": [
        {"name": "employer_id", "type": "string"},
        {"name": "cents", "type": "long"},
    ],
}
V2: dict[str, Any] = {
    **V1,
    "fields": [*V1["fields"], {"name": "naics", "type": ["null", "string"], "default": None}],
}


def test_wire_format_header() -> None:
    data = AvroEncoder(V1, 258).encode({"employer_id": "E1", "cents": 5})
    assert data[0] == 0
    assert data[1:5] == (258).to_bytes(4, "big")
    assert schema_id_of(data) == 258
    assert frame(258, data[5:]) == data


def test_round_trip_with_logical_types() -> None:
    schema = SchemaLibrary().resolve("org.c2cstream.raw.WageEvent")
    record = {
        "event_id": str(uuid.uuid4()),
        "event_time": datetime.datetime(2025, 4, 1, 12, 0, tzinfo=datetime.UTC),
        "provider": "edd",
        "source_record_id": "W-1",
        "person": {
            "source_person_id": "p1",
            "ssn": "123456789",
            "first_name": "A",
            "last_name": "Lopez",
            "birth_date": None,
            "sex": None,
            "zip": None,
            "itin": None,
            "ssid": None,
            "state_aid_id": None,
            "middle_name": None,
        },
        "demographics": None,
        "facts": {
            "employer_id": "E9",
            "naics": "6111",
            "year": 2025,
            "quarter": 1,
            "wages": decimal.Decimal("12345.67"),
        },
    }
    data = AvroEncoder(schema, 7).encode(record)
    decoded = AvroDecoder(schema, lambda _id: schema, reader_schema_id=7).decode(data)
    assert str(decoded["event_id"]) == record["event_id"]
    assert decoded["facts"]["wages"] == decimal.Decimal("12345.67")
    assert decoded["event_time"] == record["event_time"]
    assert decoded["person"] == record["person"]


def test_old_writer_decodes_into_new_reader() -> None:
    old = AvroEncoder(V1, 1).encode({"employer_id": "E1", "cents": 99})
    decoder = AvroDecoder(V2, {1: V1, 2: V2}.__getitem__, reader_schema_id=2)
    assert decoder.decode(old) == {"employer_id": "E1", "cents": 99, "naics": None}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "serde.not_wire_format"),
        (b"\x01\x00\x00\x00\x01abc", "serde.not_wire_format"),
        (b'{"json": true}', "serde.not_wire_format"),
        (frame(404, b"\x02E1\x02"), "serde.unknown_schema_id"),
        (frame(1, b"\x02"), "serde.decode"),
        (frame(1, b"\x02E1\x02trailing"), "serde.decode"),
    ],
)
def test_bad_messages_raise_serde_errors_with_codes(data: bytes, code: str) -> None:
    def lookup(schema_id: int) -> dict[str, Any]:
        if schema_id != 1:
            raise KeyError(f"schema {schema_id} not found")
        return V1

    with pytest.raises(SerdeError) as caught:
        AvroDecoder(V1, lookup).decode(data)
    assert caught.value.code == code


def test_encoding_a_record_that_does_not_fit_names_the_schema() -> None:
    with pytest.raises(SerdeError, match="does not fit schema Wage"):
        AvroEncoder(V1, 1).encode({"employer_id": "E1", "cents": "not a number"})


def _linked_wage(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from c2c.examples import example_linked

    return SchemaLibrary().resolve("org.c2cstream.linked.LinkedWage"), example_linked("wage", index)


def test_compiled_and_fastavro_decoders_give_the_same_records() -> None:
    schema, _ = _linked_wage(0)
    encoder = AvroEncoder(schema, 3)
    fast = AvroDecoder(schema, lambda _id: schema, reader_schema_id=3)
    plain = AvroDecoder(schema, lambda _id: schema, reader_schema_id=3, compiled=False)
    for index in range(200):
        data = encoder.encode(_linked_wage(index)[1])
        assert fast.decode(data) == plain.decode(data)
        assert fast.decode(bytearray(data)) == plain.decode(data)
    assert fast.compiled(3)
    assert not plain.compiled(3)


def test_a_writer_id_with_the_readers_schema_is_compiled_and_an_older_one_resolved() -> None:
    decoder = AvroDecoder(V2, {1: V1, 2: V2, 5: V2}.__getitem__)  # reader's id not known
    old = AvroEncoder(V1, 1).encode({"employer_id": "E1", "cents": 99})
    same = AvroEncoder(V2, 5).encode({"employer_id": "E2", "cents": -7, "naics": "61"})
    assert decoder.decode(old) == {"employer_id": "E1", "cents": 99, "naics": None}
    assert decoder.decode(same) == {"employer_id": "E2", "cents": -7, "naics": "61"}
    assert not decoder.compiled(1)
    assert decoder.compiled(5)


def _decode_error(data: bytes, *, compiled: bool) -> SerdeError:
    schema, _ = _linked_wage(0)
    decoder = AvroDecoder(schema, lambda _id: schema, reader_schema_id=9, compiled=compiled)
    with pytest.raises(SerdeError) as caught:
        decoder.decode(data)
    return caught.value


@pytest.mark.parametrize("compiled", [True, False])
def test_malformed_bodies_are_serde_errors_naming_schema_and_fault(compiled: bool) -> None:
    schema, event = _linked_wage(4)
    data = AvroEncoder(schema, 9).encode(event)
    time_end = 5 + 37 + next(i for i, b in enumerate(data[42:]) if b < 128) + 1
    cases = {
        "truncated": data[:-2],
        "bad enum index": data[:time_end] + bytes([40]) + data[time_end + 1 :],
        "left over": data + b"\x00",
    }
    union_at = time_end + 1 + 1 + data[time_end + 1] // 2  # attributes.birth_year's index
    cases["bad union index"] = data[:union_at] + bytes([6]) + data[union_at + 1 :]
    for case, bad in cases.items():
        error = _decode_error(bad, compiled=compiled)
        assert error.code == "serde.decode", case
        assert "as schema id 9 into LinkedWage" in str(error), (case, str(error))
    if compiled:  # what was wrong, and in which field
        assert "ends early" in str(_decode_error(cases["truncated"], compiled=True))
        assert "facts.wages" in str(_decode_error(cases["truncated"], compiled=True))
        assert "enum index 20 is not one of the 8 symbols of Provider (field provider)" in str(
            _decode_error(cases["bad enum index"], compiled=True)
        )
        assert "union index 3 is not a branch of [null, int] (0 or 1) (field attributes." in str(
            _decode_error(cases["bad union index"], compiled=True)
        )
    assert "1 byte(s) left over" in str(_decode_error(cases["left over"], compiled=compiled))


def test_every_prefix_of_a_message_is_a_serde_error() -> None:
    schema, event = _linked_wage(2)
    data = AvroEncoder(schema, 9).encode(event)
    for cut in range(len(data)):
        error = _decode_error(data[:cut], compiled=True)
        assert error.code in ("serde.not_wire_format", "serde.decode"), cut


def test_a_uuid_text_decoder_gives_the_uuids_text_where_it_is_compiled() -> None:
    schema, _ = _linked_wage(0)
    encoder = AvroEncoder(schema, 3)
    objects = AvroDecoder(schema, lambda _id: schema, reader_schema_id=3)
    text = objects.with_uuid_text()
    assert text.with_uuid_text() is text
    assert text.uuid_text
    assert not objects.uuid_text
    for index in range(50):
        data = encoder.encode(_linked_wage(index)[1])
        want = objects.decode(data)
        assert isinstance(want["event_id"], uuid.UUID)
        assert text.decode(data) == {**want, "event_id": str(want["event_id"])}
    assert text.compiled(3)
    # a record fastavro resolves (an older writer, without the fields that have defaults)
    # keeps uuid.UUID objects
    older = {**schema, "fields": [f for f in schema["fields"] if "default" not in f]}
    assert len(older["fields"]) < len(schema["fields"])
    resolving = AvroDecoder(schema, {3: schema, 4: older}.__getitem__, reader_schema_id=3)
    record = resolving.with_uuid_text().decode(AvroEncoder(older, 4).encode(_linked_wage(0)[1]))
    assert isinstance(record["event_id"], uuid.UUID)


def test_a_message_not_in_wire_format_is_named_without_its_bytes() -> None:
    # a provider's row sent as it is: its first bytes are an SSN, which the reason (a dead
    # letter's error message) must not repeat, in clear or in hex
    with pytest.raises(SerdeError) as caught:
        schema_id_of(b"123456789,SMITH,2025Q3")
    assert "22 byte(s) starting with byte 0x31" in str(caught.value)
    assert "12345678" not in str(caught.value)
    assert b"12345678".hex() not in str(caught.value)

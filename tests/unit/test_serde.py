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

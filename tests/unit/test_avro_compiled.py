"""The compiled encoders write exactly what fastavro writes."""

import copy
import datetime
import decimal
import io
import random
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from c2c._avro_compiled import UnsupportedSchema, compile_encoder
from c2c.examples import RAW_KINDS, example_linked, example_raw
from c2c.schemas import SchemaLibrary


def _fastavro(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(schema), record)
    return buffer.getvalue()


def _null_some(record: Any, rng: random.Random) -> Any:
    """A copy with some optional leaves set to None (the schemas make them nullable)."""
    out = copy.deepcopy(record)
    for section in ("person", "demographics", "attributes"):
        if isinstance(out.get(section), dict):
            for key in list(out[section]):
                if key != "source_person_id" and rng.random() < 0.3:
                    out[section][key] = None
    return out


@pytest.mark.parametrize("kind", RAW_KINDS)
@pytest.mark.parametrize("zone", ["raw", "linked"])
def test_same_bytes_as_fastavro_for_every_event_type(kind: str, zone: str) -> None:
    library = SchemaLibrary()
    name = {
        "enrollment": "Enrollment",
        "completion": "Completion",
        "financial_aid": "FinancialAid",
        "wage": "Wage",
        "credential": "Credential",
    }[kind]
    full = (
        f"org.c2cstream.raw.{name}Event" if zone == "raw" else f"org.c2cstream.linked.Linked{name}"
    )
    schema = library.resolve(full)
    encode = compile_encoder(schema)
    make = example_raw if zone == "raw" else example_linked
    rng = random.Random(7)
    for index in range(300):
        record = _null_some(make(kind, index), rng)
        assert encode(record) == _fastavro(schema, record), (full, index)


def test_edge_values_match_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "Edge",
        "fields": [
            {"name": "n", "type": "long"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 14, "scale": 2},
            },
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "s", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "m", "type": {"type": "map", "values": "double"}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "again", "type": ["null", "E"]},
        ],
    }
    encode = compile_encoder(schema)
    for n, amount, when, text in [
        (0, decimal.Decimal("0.00"), datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC), ""),
        (
            -1,
            decimal.Decimal("-0.01"),
            datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=datetime.UTC),
            "é" * 70,
        ),
        (
            2**62,
            decimal.Decimal("123456789012.34"),
            datetime.datetime(2038, 1, 19, 3, 14, 8, tzinfo=datetime.UTC),
            "x",
        ),
        (
            -(2**63),
            decimal.Decimal("-128.00"),
            datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC),
            "ok",
        ),
    ]:
        record = {
            "n": n,
            "amount": amount,
            "t": when,
            "d": datetime.date(1900, 3, 1),
            "s": text,
            "tags": ["a", "b"] if n else [],
            "m": {"k": 1.5} if n else {},
            "e": "B",
            "again": None if n else "A",
        }
        assert encode(record) == _fastavro(schema, record), record


def test_too_many_decimal_places_and_wrong_types_raise() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2},
            },
            {"name": "s", "type": "string"},
        ],
    }
    encode = compile_encoder(schema)
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        encode({"amount": decimal.Decimal("1.234"), "s": "x"})
    with pytest.raises(AttributeError):
        encode({"amount": decimal.Decimal("1.23"), "s": 5})
    with pytest.raises(KeyError):
        encode({"amount": decimal.Decimal("1.23")})


def test_general_unions_are_left_to_fastavro() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_encoder(
            {"type": "record", "name": "U", "fields": [{"name": "x", "type": ["int", "string"]}]}
        )

"""The compiled encoders write exactly what fastavro writes; the compiled decoders read
exactly what fastavro reads, and say what is wrong with bytes that are not a value."""

import copy
import datetime
import decimal
import io
import random
import uuid
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from c2c._avro_compiled import (
    UnsupportedSchema,
    compile_decoder,
    compile_encoder,
    compile_row_decoder,
)
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


# -- decoders ------------------------------------------------------------------------------

_EDGE_LONGS = (0, -1, 1, 63, -64, 64, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63))
_EDGE_TEXT = ("", "a", "é", "Nguyễn 李 🙂", "x" * 63, "y" * 64, "ü" * 200)


class _Values:
    """Random values of a schema, edge values often: nulls in unions, unicode and long
    strings, extreme longs, decimals at their precision's limits, empty arrays and maps."""

    def __init__(self, rng: random.Random, schema: Any) -> None:
        self.rng = rng
        self.named: dict[str, Any] = {}
        self.define(schema, None)

    def define(self, schema: Any, namespace: str | None) -> None:
        """Know every named type of ``schema`` before a value of it is made (a union may
        make a null where a type is defined, and a later field refer to it)."""
        if isinstance(schema, list):
            for branch in schema:
                self.define(branch, namespace)
        if not isinstance(schema, dict):
            return
        name = schema.get("name")
        if name is not None and schema.get("type") in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            full = name if "." in name else (f"{ns}.{name}" if ns else name)
            self.named[full] = self.named[name] = schema
            namespace = full.rsplit(".", 1)[0] if "." in full else None
        for field in schema.get("fields", []):
            self.define(field["type"], namespace)
        for key in ("items", "values", "type"):
            if isinstance(schema.get(key), (dict, list)):
                self.define(schema[key], namespace)

    def value(self, schema: Any, namespace: str | None = None) -> Any:
        rng = self.rng
        if isinstance(schema, list):
            if "null" in schema and rng.random() < 0.4:
                return None
            return self.value(rng.choice([b for b in schema if b != "null"]), namespace)
        if isinstance(schema, str):
            named = self.named.get(schema) or self.named.get(f"{namespace}.{schema}")
            if named is not None:
                return self.value(named, namespace)
            return self.primitive(schema)
        kind, logical = schema["type"], schema.get("logicalType")
        if logical == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128)))
        if logical == "timestamp-millis":
            millis = rng.choice([0, -1, 1, 253402300799999, -62135596800000, rng.getrandbits(41)])
            return datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
                milliseconds=millis
            )
        if logical == "timestamp-micros":
            return datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
                microseconds=rng.choice([0, -1, rng.getrandbits(50)])
            )
        if logical == "date":
            return datetime.date.fromordinal(rng.choice([1, 719163, 719162, 3652059, 738000]))
        if logical == "decimal":
            scale, precision = schema.get("scale", 0), schema["precision"]
            top = 10**precision - 1
            unscaled = rng.choice([0, -1, 1, top, -top, rng.randint(-top, top)])
            return decimal.Decimal(unscaled).scaleb(-scale)
        if isinstance(kind, (list, dict)) or kind in self.named:
            return self.value(kind, namespace)
        if kind == "record":
            return {f["name"]: self.value(f["type"], namespace) for f in schema["fields"]}
        if kind == "enum":
            return rng.choice(schema["symbols"])
        if kind == "fixed":
            return rng.randbytes(schema["size"])
        if kind == "array":
            return [self.value(schema["items"], namespace) for _ in range(rng.choice([0, 1, 70]))]
        if kind == "map":
            count = rng.choice([0, 1, 3])
            return {
                rng.choice(_EDGE_TEXT) + str(i): self.value(schema["values"]) for i in range(count)
            }
        return self.primitive(kind)

    def primitive(self, name: str) -> Any:
        rng = self.rng
        if name == "null":
            return None
        if name == "boolean":
            return rng.random() < 0.5
        if name == "int":
            return rng.choice([0, -1, 1, 2**31 - 1, -(2**31), rng.randint(-(2**31), 2**31 - 1)])
        if name == "long":
            return rng.choice([*_EDGE_LONGS, rng.randint(-(2**63), 2**63 - 1)])
        if name == "float":
            return rng.choice([0.0, -1.5, 3.4e38, 1e-45])
        if name == "double":
            return rng.choice([0.0, -0.0, 1.7976931348623157e308, 5e-324, rng.random()])
        if name == "string":
            return rng.choice(
                [*_EDGE_TEXT, "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(9))]
            )
        if name == "bytes":
            return rng.choice([b"", b"\x00\xff", rng.randbytes(100)])
        raise AssertionError(f"no generator for {name}")


def _strict(value: Any) -> Any:
    """A form of ``value`` in which types, decimal exponents and tz info all count."""
    if isinstance(value, dict):
        return {key: _strict(v) for key, v in value.items()}, list(value)
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, uuid.UUID):
        return ("uuid", value.int, value.is_safe)
    return (type(value).__name__, repr(value))


def _fastavro_read(schema: dict[str, Any], body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), parse_schema(schema), None)


def _assert_decodes_as_fastavro(schema: dict[str, Any], rounds: int, seed: str) -> None:
    """Random values of ``schema``, written by fastavro, read by the compiled decoder: the
    same values as fastavro reads, every byte used."""
    decoder = compile_decoder(schema)
    parsed = parse_schema(schema)
    rng = random.Random(seed)
    for index in range(rounds):
        value = _Values(rng, schema).value(schema)
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, value)
        body = buffer.getvalue()
        ours, end = decoder.decode(body, 0)
        assert end == len(body), (index, value)
        expected = schemaless_reader(io.BytesIO(body), parsed, None)
        assert _strict(ours) == _strict(expected), (index, value)


@pytest.mark.parametrize("name", SchemaLibrary().names())
def test_every_schema_decodes_as_fastavro_does(name: str) -> None:
    _assert_decodes_as_fastavro(SchemaLibrary().resolve(name), 300, name)


_EVERY_TYPE: dict[str, Any] = {
    "type": "record",
    "name": "Every",
    "namespace": "t",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": ["double", "null"]},
        {"name": "b", "type": "boolean"},
        {"name": "raw", "type": ["null", "bytes"]},
        {"name": "s", "type": "string"},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {
            "name": "big",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4},
        },
        {"name": "cents", "type": {"type": "bytes", "logicalType": "decimal", "precision": 3}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "again", "type": ["null", "E"]},
        {"name": "h", "type": {"type": "fixed", "name": "H", "size": 4}},
        {"name": "tags", "type": {"type": "array", "items": ["null", "string"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {
            "name": "inner",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "x", "type": "t.E"}, {"name": "h2", "type": "H"}],
                },
            ],
        },
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
    ],
}


def test_every_supported_type_decodes_as_fastavro_does() -> None:
    _assert_decodes_as_fastavro(_EVERY_TYPE, 500, "every type")


def test_array_blocks_with_byte_sizes_decode() -> None:
    """Writers may split an array into blocks and give a negative count with a byte size."""
    schema = {"type": "array", "items": "long"}
    # block of -2 items (4 bytes follow: 1, 2), block of 1 item (3), end
    body = bytes([3, 4, 2, 4, 2, 6, 0])
    assert compile_decoder(schema).decode(body, 0) == (_fastavro_read(schema, body), len(body))
    assert compile_decoder(schema).decode(body, 0)[0] == [1, 2, 3]


def test_decimal_wider_than_its_precision_rounds_as_fastavro() -> None:
    schema = {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 1}
    for unscaled in (12345, -99999, 999, 1000, 10**40 + 5):
        size = (unscaled + (unscaled < 0)).bit_length() // 8 + 1
        raw = unscaled.to_bytes(size, "big", signed=True)
        body = bytes([size * 2]) + raw
        ours, _end = compile_decoder(schema).decode(body, 0)
        assert _strict(ours) == _strict(_fastavro_read(schema, body)), unscaled


def test_recursive_and_general_unions_are_left_to_fastavro() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_decoder(
            {"type": "record", "name": "U", "fields": [{"name": "x", "type": ["int", "string"]}]}
        )
    with pytest.raises(UnsupportedSchema, match="recursive"):
        compile_decoder(
            {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "next", "type": ["null", "Node"]}],
            }
        )


def _linked_wage_body() -> tuple[dict[str, Any], bytes]:
    schema = SchemaLibrary().resolve("org.c2cstream.linked.LinkedWage")
    return schema, compile_encoder(schema)(example_linked("wage", 1))


def test_truncated_bodies_say_the_body_ends_early_and_where() -> None:
    schema, body = _linked_wage_body()
    decoder = compile_decoder(schema)
    for cut in range(len(body)):
        short = body[:cut]
        try:
            _value, end = decoder.decode(short, 0)
        except Exception:  # the fast decoder may raise anything: explain says what
            pass
        else:
            assert end != len(short)  # never taken for a whole record
        why = decoder.explain(short, 0)
        assert why.startswith("the body ends early"), (cut, why)
        assert "(field " in why or "in field " in why, why


def test_bad_union_and_enum_indexes_are_named() -> None:
    schema, body = _linked_wage_body()
    decoder = compile_decoder(schema)
    # event_id: 1 length byte + 36; event_time: varint; then provider (enum) index
    time_end = 37 + next(i for i, b in enumerate(body[37:]) if b < 128) + 1
    bad_enum = body[:time_end] + bytes([40]) + body[time_end + 1 :]  # index 20 of 8
    assert decoder.explain(bad_enum, 0) == (
        "enum index 20 is not one of the 8 symbols of Provider (field provider)"
    )
    negative = body[:time_end] + bytes([1]) + body[time_end + 1 :]  # index -1
    assert "enum index -1 is not one" in decoder.explain(negative, 0)
    # person_id follows: a length byte and the id; then attributes.birth_year's union index
    union_at = time_end + 1 + 1 + body[time_end + 1] // 2
    assert body[union_at] in (0, 2)
    bad_union = body[:union_at] + bytes([6]) + body[union_at + 1 :]
    assert decoder.explain(bad_union, 0) == (
        "union index 3 is not a branch of [null, int] (0 or 1) (field attributes.birth_year)"
    )


def test_random_corruption_is_caught_or_decodes_as_fastavro_does() -> None:
    """Flip bytes anywhere: the compiled decoder either reads the whole body, as fastavro
    does, or explain() says what is wrong; nothing else escapes explain()."""
    schema, body = _linked_wage_body()
    decoder = compile_decoder(schema)
    parsed = parse_schema(schema)
    rng = random.Random(3)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(2000):
        data = bytearray(body)
        for _flip in range(rng.choice([1, 2, 3])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        corrupt = bytes(data)
        try:
            value, end = decoder.decode(corrupt, 0)
        except Exception:
            end = -1
        if end == len(corrupt):
            outcomes["decoded"] += 1
            stream = io.BytesIO(corrupt)
            assert _strict(value) == _strict(schemaless_reader(stream, parsed, None))
            assert stream.tell() == len(corrupt)
        else:
            outcomes["refused"] += 1
            why = decoder.explain(corrupt, 0)
            assert "compiler bug" not in why
            assert why.startswith(_KNOWN_FAULTS) or "left over after the record" in why, why
    assert outcomes["decoded"] > 100, outcomes
    assert outcomes["refused"] > 100, outcomes


_KNOWN_FAULTS = (
    "the body ends early",
    "union index",
    "enum index",
    "negative length",
    "field ",  # a value its type refuses: not UTF-8, not a UUID, a date out of range
)


@pytest.fixture
def memos_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memos of converted times keep at most three values."""
    import c2c._avro_compiled as compiled

    monkeypatch.setattr(compiled, "_CACHE_LIMIT", 3)


def _record_of(**types: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "T",
        "fields": [{"name": name, "type": kind} for name, kind in types.items()],
    }


@pytest.mark.usefixtures("memos_of_three")
def test_repeated_times_and_dates_are_shared_and_the_cache_stays_bounded() -> None:
    schema = _record_of(
        t={"type": "long", "logicalType": "timestamp-millis"},
        d={"type": "int", "logicalType": "date"},
    )
    encode, decoder = compile_encoder(schema), compile_decoder(schema)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    for millis in [5, 5, -7, 10**12, 86_400_000, 5, 3, -7, 10**12]:
        record = {
            "t": epoch + datetime.timedelta(milliseconds=millis),
            "d": datetime.date(1970, 1, 1) + datetime.timedelta(days=millis % 4000),
        }
        body = encode(record)
        assert _strict(decoder.decode(body, 0)[0]) == _strict(_fastavro_read(schema, body))
    caches = [v for k, v in decoder.decode.__globals__.items() if k.startswith("_cache")]
    assert len(caches) == 2
    assert all(0 < len(cache) <= 3 for cache in caches)


def _at(value: Any, path: str) -> Any:
    for name in path.split("."):
        if value is None:
            return None
        value = value[name]
    return value


def _plain(value: Any) -> Any:
    """A value as a plain row decoder gives it: logical types as their stored integers."""
    if isinstance(value, uuid.UUID):
        return value.int
    if isinstance(value, datetime.datetime):
        epoch = datetime.datetime(1970, 1, 1, tzinfo=value.tzinfo)
        unit = datetime.timedelta(milliseconds=1)
        return (value - epoch) // unit
    if isinstance(value, datetime.date):
        return value.toordinal() - datetime.date(1970, 1, 1).toordinal()
    return value


def test_row_decoders_read_the_chosen_fields_as_the_full_decoder_does() -> None:
    paths = ("us", "inner.x", "day", "s", "id", "t", "inner.h2", "cents", "again", "b")
    decoder, parsed = compile_decoder(_EVERY_TYPE), parse_schema(_EVERY_TYPE)
    rows = compile_row_decoder(_EVERY_TYPE, paths)
    plain = compile_row_decoder(_EVERY_TYPE, paths, plain=True)
    rng = random.Random("rows")
    for index in range(400):
        value = _Values(rng, _EVERY_TYPE).value(_EVERY_TYPE)
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, value)
        body = buffer.getvalue()
        full, _end = decoder.decode(body, 0)
        expected = [_at(full, path) for path in paths]  # None under a null `inner`
        assert _strict(rows.decode(body, 0)) == _strict((expected, len(body))), index
        row, end = plain.decode(body, 0)
        assert end == len(body)
        micros = (full["us"] - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // (
            datetime.timedelta(microseconds=1)
        )
        assert row == [micros, *(_plain(v) for v in expected[1:])], index


def test_row_decoders_refuse_what_they_cannot_choose_and_check_uuids() -> None:
    with pytest.raises(UnsupportedSchema, match=r"no field inner\.nope"):
        compile_row_decoder(_EVERY_TYPE, ("s", "inner.nope"))
    with pytest.raises(UnsupportedSchema, match="under"):
        compile_row_decoder(_EVERY_TYPE, ("inners.x",))
    schema = {
        "type": "record",
        "name": "U",
        "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}],
    }
    plain = compile_row_decoder(schema, ("id",), plain=True)
    braces = "{12345678-1234-5678-1234-567812345678}"
    assert plain.decode(_fastavro(schema, {"id": braces}), 0)[0] == [uuid.UUID(braces).int]
    with pytest.raises(ValueError, match="hexadecimal UUID"):
        plain.decode(_fastavro(schema, {"id": "not-a-uuid-at-all-not-a-uuid-at-all"}), 0)


def test_uuid_text_is_the_text_of_the_uuid_and_accepts_the_same_texts() -> None:
    from c2c._avro_compiled import _uuid, _uuid_text

    rng = random.Random(7)
    texts = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(500)]
    texts += [t.upper() for t in texts[:20]] + [t.replace("-", "") for t in texts[:20]]
    texts += [f"{{{texts[0]}}}", f"urn:uuid:{texts[1]}", texts[2][:35] + "-", texts[3] + "0"]
    texts += ["not-a-uuid-at-all-not-a-uuid-at-all!", "g" * 32, texts[4].replace("-", "", 1) + "-"]
    texts += ["", "-" * 36, texts[5][:8] + "_" + texts[5][9:]]
    accepted = 0
    for text in texts:
        raw = text.encode()
        try:
            expected: str | None = str(_uuid(raw))
        except ValueError:
            expected = None
        try:
            got: str | None = _uuid_text(raw)
        except ValueError:
            got = None
        assert got == expected, text
        accepted += got is not None
    assert 500 < accepted < len(texts)


def _uuids_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _uuids_as_text(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_uuids_as_text(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


@pytest.mark.parametrize("name", SchemaLibrary().names())
def test_a_uuid_text_decoder_reads_the_uuids_text_and_everything_else_alike(name: str) -> None:
    schema = SchemaLibrary().resolve(name)
    objects, text = compile_decoder(schema), compile_decoder(schema, uuid_text=True)
    rng = random.Random(name)
    for _ in range(100):
        body = _fastavro(schema, _Values(rng, schema).value(schema))
        got, end = text.decode(body, 0)
        want, want_end = objects.decode(body, 0)
        assert end == want_end == len(body)
        assert _strict(got) == _strict(_uuids_as_text(want))


@pytest.mark.usefixtures("memos_of_three")
def test_timestamps_encode_alike_however_often_they_repeat_and_the_memo_stays_bounded() -> None:
    schema = _record_of(
        t={"type": "long", "logicalType": "timestamp-millis"},
        us=["null", {"type": "long", "logicalType": "timestamp-micros"}],
    )
    encode = compile_encoder(schema)

    class Stamp(datetime.datetime):  # a subclass that could compare equal yet be another
        pass

    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    pacific = datetime.timezone(datetime.timedelta(hours=-8))
    values: list[Any] = []
    for millis in [5, 5, -7, 10**12, 86_400_000, 5, 3, -7, 10**12, 1_796_140_800_123]:
        aware = epoch + datetime.timedelta(milliseconds=millis, microseconds=millis % 997)
        values += [aware, aware.astimezone(pacific), aware.replace(tzinfo=None), millis]
        values.append(Stamp.fromtimestamp(aware.timestamp(), datetime.UTC))
    for value in values + values[::-1]:
        record = {"t": value, "us": value}
        assert encode(record) == _fastavro(schema, record), value
    memos = [v for k, v in encode.__globals__.items() if k.startswith("_timestamp_")]
    assert len(memos) == 2
    for memo in memos:
        cells = [c.cell_contents for c in memo.__closure__ or ()]
        assert any(isinstance(c, dict) and 0 < len(c) <= 3 for c in cells)


def _varint(z: int) -> bytes:
    """The varint of the (already zigzagged) non-negative ``z``."""
    out = bytearray()
    while z >= 128:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _reference_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint read byte by byte, as Avro defines it: the reference the compiled
    decoders' fast paths (inline up to three bytes, a memo of six-byte ones) must match,
    IndexError where the data ends inside it."""
    z = shift = 0
    while True:
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 128:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


_LONGS = _record_of(
    n="long",
    t={"type": "long", "logicalType": "timestamp-millis"},
    d={"type": "int", "logicalType": "date"},
    m="long",
)


def _longs_body(n: int, t: int, d: int, m: int) -> bytes:
    return b"".join(_varint((v << 1) ^ (v >> 63)) for v in (n, t, d, m))


def test_varints_of_every_length_and_sign_decode_as_fastavro_does() -> None:
    """1 to 10 bytes, both ends of each length, negative zigzag values, the same value
    again (a six-byte one then comes from the memo), and a six-byte varint at the very
    end of the data (fewer than six bytes after its first: no memo key can match)."""
    values = [0, -1, 1]
    for size in range(1, 11):
        low, high = (1 << (7 * (size - 1))) if size > 1 else 0, (1 << (7 * size)) - 1
        for z in (low, high, (low + high) // 2):
            if z < 2**64:
                values.append((z >> 1) ^ -(z & 1))
    values = [v for v in values if -(2**63) <= v < 2**63]
    assert {len(_varint((v << 1) ^ (v >> 63))) for v in values} == set(range(1, 11))
    decoder = compile_decoder(_LONGS)
    rows = compile_row_decoder(_LONGS, ("n", "t", "d", "m"), plain=True)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    days = [v for v in values if -719_162 <= v <= 2_932_896]  # dates Python can hold
    for n in values + values[::-1]:
        t = n if -(2**45) < n < 2**47 else 10**12  # times datetime can hold
        d = days[abs(n) % len(days)] if abs(n) < 2**31 else 0
        body = _longs_body(n, t, d, n)
        assert _strict(decoder.decode(body, 0)) == _strict(
            (_fastavro_read(_LONGS, body), len(body))
        )
        assert rows.decode(body, 0) == ([n, t, d, n], len(body))
        value, _end = decoder.decode(body, 0)
        assert value["t"] == epoch + datetime.timedelta(milliseconds=t)


def test_truncated_and_overlong_varints_fail_as_the_byte_loop_does() -> None:
    """Any bytes in a long field: the compiled decoders read what the byte-by-byte loop
    reads (value and end), and fail where it fails (the data ends inside the varint);
    the memo of six-byte varints never answers for bytes that are not one."""
    rng = random.Random("varints")
    schema = _record_of(a="long", b="long")
    decoder = compile_decoder(schema)
    rows = compile_row_decoder(schema, ("a", "b"), plain=True)
    sixes = [_varint(rng.randrange(2**35, 2**42)) for _ in range(8)]
    for round_ in range(3000):
        parts = []
        for _field in range(2):
            kind = rng.randrange(4)
            if kind == 0:  # a six-byte varint seen before (the memo answers)
                parts.append(rng.choice(sixes))
            elif kind == 1:  # one of 1 to 12 bytes, maybe 11 or 12 (past 64 bits)
                size = rng.randrange(1, 13)
                parts.append(
                    bytes([rng.randrange(128, 256) for _ in range(size - 1)])
                    + bytes([rng.randrange(128)])
                )
            elif kind == 2:  # a prefix of a six-byte one: continuation bits to the end
                parts.append(rng.choice(sixes)[: rng.randrange(1, 6)])
            else:
                parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(8))))
        data = b"".join(parts)[: rng.randrange(1, 20)]
        try:
            a, pos = _reference_long(data, 0)
            b, pos = _reference_long(data, pos)
        except IndexError:
            expected = None
        else:
            expected = ([a, b], pos)
        for read in (rows.decode, decoder.decode):
            try:
                got = read(data, 0)
            except IndexError:
                got = None
            if isinstance(got, tuple) and isinstance(got[0], dict):
                got = ([got[0]["a"], got[0]["b"]], got[1])
            assert got == expected, (round_, data.hex())
        if expected is None:
            assert decoder.explain(data, 0).startswith("the body ends early"), data.hex()


def test_a_whole_message_reader_reads_framed_whole_values_and_hands_on_the_rest() -> None:
    schema = _record_of(a="long", t={"type": "long", "logicalType": "timestamp-millis"})
    rows = compile_row_decoder(schema, ("t", "a"), plain=True)
    handed: list[bytes] = []

    def otherwise(data: bytes) -> str:
        handed.append(data)
        return "otherwise"

    whole = rows.whole(b"\x00head", otherwise)
    body = _longs_body(-3, 1_796_140_800_123, 0, 0)[:7]
    assert len(body) == 7  # one byte, then six
    assert whole(b"\x00head" + body) == [1_796_140_800_123, -3]
    assert whole(b"\x00head" + body) == [1_796_140_800_123, -3]  # from the memo
    bad = [b"\x00heaD" + body, b"\x00head" + body + b"\x00", b"\x00head" + body[:-1], b""]
    for data in bad:
        assert whole(data) == "otherwise"
    assert handed == bad

    def refuse(data: bytes) -> str:
        raise ValueError(f"not a value: {data.hex()}")

    with pytest.raises(ValueError, match="not a value") as refused:
        rows.whole(b"\x00head", refuse)(b"\x00head" + body[:-1])
    assert refused.value.__context__ is None  # raised as the full decoder raises it


_ATTRIBUTES = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "person", "type": "string"},
        {
            "name": "attributes",
            "type": {
                "type": "record",
                "name": "Attributes",
                "fields": [
                    {"name": "year", "type": ["null", "int"]},
                    {"name": "county", "type": ["null", "string"]},
                    {"name": "skipped", "type": "long"},
                    {
                        "name": "demographics",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "Demographics",
                                "fields": [{"name": "poor", "type": ["null", "boolean"]}],
                            },
                        ],
                    },
                ],
            },
        },
        {"name": "after", "type": "long"},
    ],
}
_ATTRIBUTE_PATHS = (
    "person",
    "attributes.year",
    "attributes.county",
    "attributes.demographics.poor",
    "after",
)


@pytest.mark.usefixtures("memos_of_three")
def test_a_memo_of_a_record_under_a_key_gives_the_rows_reading_would() -> None:
    """A person's attributes are taken from the memo only where the same bytes follow the
    same person again: other attributes under a known person, a known person's bytes
    under another, a value cut short, all read as without the memo; the memo stays
    bounded (three keys here)."""
    plain = compile_row_decoder(_ATTRIBUTES, _ATTRIBUTE_PATHS, plain=True)
    memo = compile_row_decoder(
        _ATTRIBUTES, _ATTRIBUTE_PATHS, plain=True, memo_by={"attributes": "person"}
    )
    rng = random.Random("attributes")
    for index in range(3000):
        demographics = rng.choice([None, {"poor": None}, {"poor": True}, {"poor": False}])
        value = {
            "person": rng.choice(["a", "b", "c", "d", "é"]),
            "attributes": {
                "year": rng.choice([None, 1990, -3, 2**20]),
                "county": rng.choice([None, "", "06037", "x" * 70]),
                "skipped": rng.choice([0, 5, 10**12]),
                "demographics": demographics,
            },
            "after": rng.choice([0, -1, 10**12]),
        }
        body = _fastavro(_ATTRIBUTES, value)
        cut = body if index % 5 else body[: rng.randrange(len(body))]
        try:
            expected: Any = plain.decode(cut, 0)
        except Exception as exc:  # cut short: the same failure either way
            expected = type(exc)
        try:
            got: Any = memo.decode(cut, 0)
        except Exception as exc:
            got = type(exc)
        assert got == expected, (index, value, cut.hex())
    memos = [v for k, v in memo.decode.__globals__.items() if k.startswith("_memo")]
    assert len(memos) == 1
    assert 0 < len(memos[0]) <= 3


def test_a_memo_needs_its_key_read_before_its_record() -> None:
    with pytest.raises(UnsupportedSchema, match="keyed by after, not read before it"):
        compile_row_decoder(
            _ATTRIBUTES, _ATTRIBUTE_PATHS, plain=True, memo_by={"attributes": "after"}
        )


def test_a_record_cut_short_inside_its_last_string_is_not_kept_in_the_memo() -> None:
    """A string cut short reads fewer bytes without failing: the message fails after the
    record, but what was read of the record must not stand for the whole in the next
    message of the same key."""
    # _ATTRIBUTES with the attributes ending in their county (a string), not a union
    schema = copy.deepcopy(_ATTRIBUTES)
    attributes = schema["fields"][1]["type"]
    attributes["fields"] = [f for f in attributes["fields"] if f["name"] in ("year", "county")]
    paths = tuple(path for path in _ATTRIBUTE_PATHS if "demographics" not in path)
    memo = compile_row_decoder(schema, paths, plain=True, memo_by={"attributes": "person"})
    whole = memo.whole(b"", lambda data: "the full decoder")
    body = _fastavro(
        schema, {"person": "a", "attributes": {"year": 1990, "county": "06037"}, "after": 7}
    )
    for cut in (body[:-4], body[:-2]):  # 3 or 1 of the county's characters cut, and after
        with pytest.raises(IndexError):
            memo.decode(cut, 0)
        assert whole(cut) == "the full decoder"
    assert memo.decode(body, 0) == (["a", 1990, "06037", 7], len(body))
    assert whole(body) == ["a", 1990, "06037", 7]

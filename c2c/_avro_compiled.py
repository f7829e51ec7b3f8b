"""Avro binary encoders compiled from a schema into straight-line Python.

fastavro's writer is generic: for every optional (``["null", X]``) field it validates the
datum against each union branch, which dominates on our nested, mostly-optional records
(about 45,000 raw wage events/s on one core here). A function generated for one schema
knows each field's type and branch in advance and does only the writing, several times
faster. Output is byte-for-byte what fastavro writes (tests compare them on every event
type); schemas using a feature outside this subset get no compiled encoder and the caller
keeps fastavro.

Supported: null, boolean, int, long, float, double, string, bytes, enum, record, fixed,
array, map, unions of null and one other type, and the logical types date,
timestamp-millis, timestamp-micros, decimal (bytes) and uuid (string).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["UnsupportedSchema", "compile_encoder"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_MILLI = datetime.timedelta(milliseconds=1)
_MICRO = datetime.timedelta(microseconds=1)


class UnsupportedSchema(Exception):
    """The schema uses a feature the compiler does not handle (fastavro is used instead)."""


def _varint_table() -> list[bytes]:
    return [bytes((n,)) for n in range(128)]


_SMALL = _varint_table()


def _long(n: int) -> bytes:
    """Zigzag varint of ``n``, as Avro writes int and long."""
    z = (n << 1) ^ (n >> 63)
    if z < 128:
        return _SMALL[z]
    out = bytearray()
    while z >= 128:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode()
    return _long(len(data)) + data


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


def _date(value: datetime.date) -> bytes:
    return _long(value.toordinal() - _EPOCH_ORDINAL)


def _ts(value: datetime.datetime, unit: datetime.timedelta) -> int:
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // unit
    return (value - _EPOCH) // unit


def _timestamp_millis(value: datetime.datetime | int) -> bytes:
    if isinstance(value, int):
        return _long(value)
    return _long(_ts(value, _MILLI))


def _timestamp_micros(value: datetime.datetime | int) -> bytes:
    if isinstance(value, int):
        return _long(value)
    return _long(_ts(value, _MICRO))


def _decimal(scale: int) -> Callable[[Any], bytes]:
    factor = 10**scale

    def write(value: decimal.Decimal | int) -> bytes:
        numerator, denominator = value.as_integer_ratio()
        unscaled, remainder = divmod(int(numerator) * factor, int(denominator))
        if remainder:
            raise ValueError(f"{value!r} has more than {scale} decimal places")
        size = (unscaled + (unscaled < 0)).bit_length() // 8 + 1
        data: bytes = unscaled.to_bytes(size, "big", signed=True)
        return _SMALL[size << 1] + data if size < 64 else _long(size) + data

    return write


_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack


class _Compiler:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "_long": _long,
            "_SMALL": _SMALL,
            "_string": _string,
            "_bytes": _bytes,
            "_date": _date,
            "_timestamp_millis": _timestamp_millis,
            "_timestamp_micros": _timestamp_micros,
            "_FLOAT": _FLOAT,
            "_DOUBLE": _DOUBLE,
        }
        self.named: dict[str, Any] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def write(self, schema: Any, value: str, indent: int, namespace: str | None) -> None:
        """Emit code appending the encoding of expression ``value`` to list ``out``."""
        if isinstance(schema, str):
            if schema in self.named:
                self.write(self.named[schema], value, indent, namespace)
                return
            qualified = f"{namespace}.{schema}" if namespace and "." not in schema else schema
            if qualified in self.named:
                self.write(self.named[qualified], value, indent, namespace)
                return
            self.primitive(schema, value, indent)
            return
        if isinstance(schema, list):
            self.union(schema, value, indent, namespace)
            return
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "date" and kind == "int":
            self.emit(indent, f"out.append(_date({value}))")
            return
        if logical == "timestamp-millis" and kind == "long":
            self.emit(indent, f"out.append(_timestamp_millis({value}))")
            return
        if logical == "timestamp-micros" and kind == "long":
            self.emit(indent, f"out.append(_timestamp_micros({value}))")
            return
        if logical == "decimal" and kind == "bytes":
            name = self.var("_decimal")
            self.env[name] = _decimal(int(schema.get("scale", 0)))
            self.emit(indent, f"out.append({name}({value}))")
            return
        if logical == "uuid" and kind == "string":
            self.emit(indent, f"out.append(_string(str({value})))")
            return
        if kind in ("record", "error"):
            self.record(schema, value, indent, namespace)
        elif kind == "enum":
            self.enum(schema, value, indent, namespace)
        elif kind == "fixed":
            self.register(schema, namespace)
            self.emit(indent, f"if len({value}) != {int(schema['size'])}:")
            self.emit(
                indent + 1,
                f"raise ValueError('fixed {schema['name']} needs {int(schema['size'])} bytes')",
            )
            self.emit(indent, f"out.append({value})")
        elif kind == "array":
            item = self.var("item")
            self.emit(indent, f"if {value}:")
            self.emit(indent + 1, f"out.append(_long(len({value})))")
            self.emit(indent + 1, f"for {item} in {value}:")
            self.write(schema["items"], item, indent + 2, namespace)
            self.emit(indent, "out.append(b'\\x00')")
        elif kind == "map":
            key, val = self.var("key"), self.var("val")
            self.emit(indent, f"if {value}:")
            self.emit(indent + 1, f"out.append(_long(len({value})))")
            self.emit(indent + 1, f"for {key}, {val} in {value}.items():")
            self.emit(indent + 2, f"out.append(_string({key}))")
            self.write(schema["values"], val, indent + 2, namespace)
            self.emit(indent, "out.append(b'\\x00')")
        elif isinstance(kind, (str, list, dict)):
            self.write(kind, value, indent, namespace)
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def primitive(self, name: str, value: str, indent: int) -> None:
        if name == "null":
            self.emit(indent, f"if {value} is not None:")
            self.emit(indent + 1, f"raise TypeError('expected null, got ' + repr({value}))")
        elif name == "boolean":
            self.emit(indent, f"out.append(b'\\x01' if {value} else b'\\x00')")
        elif name in ("int", "long"):
            self.emit(indent, f"out.append(_long({value}.__index__()))")
        elif name == "float":
            self.emit(indent, f"out.append(_FLOAT({value}))")
        elif name == "double":
            self.emit(indent, f"out.append(_DOUBLE({value}))")
        elif name == "string":
            encoded, size = self.var("s"), self.var("n")
            self.emit(indent, f"{encoded} = {value}.encode()")
            self.emit(indent, f"{size} = len({encoded})")
            self.emit(indent, f"out.append(_SMALL[{size} << 1] if {size} < 64 else _long({size}))")
            self.emit(indent, f"out.append({encoded})")
        elif name == "bytes":
            self.emit(indent, f"out.append(_bytes({value}))")
        else:
            raise UnsupportedSchema(f"named type {name!r} is not defined before use")

    def union(self, branches: list[Any], value: str, indent: int, namespace: str | None) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchema(f"union {branches!r} (only [null, X] is compiled)")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"out.append({_long(null_index)!r})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"out.append({_long(1 - null_index)!r})")
        self.write(other, value, indent + 1, namespace)

    def register(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        name = str(schema["name"])
        ns = schema.get("namespace", namespace)
        full = name if "." in name else (f"{ns}.{name}" if ns else name)
        self.named[full] = schema
        self.named.setdefault(name, schema)
        return full.rsplit(".", 1)[0] if "." in full else None

    def record(
        self, schema: dict[str, Any], value: str, indent: int, namespace: str | None
    ) -> None:
        inner_ns = self.register(schema, namespace)
        record = self.var("r")
        self.emit(indent, f"{record} = {value}")
        for field in schema["fields"]:
            field_value = self.var("v")
            name = field["name"]
            if "default" in field:
                # fastavro writes the default for a missing key; so do we
                default = self.var("_default")
                self.env[default] = field["default"]
                self.emit(indent, f"{field_value} = {record}.get({name!r}, {default})")
            else:
                self.emit(indent, f"{field_value} = {record}[{name!r}]")
            self.write(field["type"], field_value, indent, inner_ns)

    def enum(self, schema: dict[str, Any], value: str, indent: int, namespace: str | None) -> None:
        self.register(schema, namespace)
        table = self.var("_enum")
        self.env[table] = {symbol: _long(i) for i, symbol in enumerate(schema["symbols"])}
        self.emit(indent, f"out.append({table}[{value}])")


def compile_encoder(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bytes]:
    """A function from a record to its Avro binary body, for this exact schema.

    Raises UnsupportedSchema if the schema is outside the compiled subset. The function
    raises TypeError, KeyError, ValueError or AttributeError for a record that does not fit.
    """
    compiler = _Compiler()
    compiler.emit(0, "def encode(datum):")
    compiler.emit(1, "out = []")
    compiler.write(dict(schema), "datum", 1, None)
    compiler.emit(1, "return b''.join(out)")
    source = "\n".join(compiler.lines)
    namespace: dict[str, Any] = dict(compiler.env)
    exec(compile(source, f"<avro encoder {schema.get('name')}>", "exec"), namespace)
    encode: Callable[[Mapping[str, Any]], bytes] = namespace["encode"]
    return encode

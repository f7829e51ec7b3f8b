"""Avro binary encoders and decoders compiled from a schema into straight-line Python.

fastavro's writer is generic: for every optional (``["null", X]``) field it validates the
datum against each union branch, which dominates on our nested, mostly-optional records
(about 45,000 raw wage events/s on one core here). A function generated for one schema
knows each field's type and branch in advance and does only the writing, several times
faster. Output is byte-for-byte what fastavro writes (tests compare them on every event
type); schemas using a feature outside this subset get no compiled encoder and the caller
keeps fastavro.

Decoders likewise: fastavro's reader walks the parsed schema for every value and calls a
Python function per logical type; a decoder generated for one writer schema reads the bytes
in place with the field order, union branches and enum symbols fixed in advance. It returns
the very values fastavro's ``schemaless_reader`` returns (uuid.UUID, datetime.date, aware
UTC datetimes, decimal.Decimal at the schema's precision; tests compare every schema). It
reads data written with exactly this schema: schema resolution (an older writer) stays
with fastavro.

Supported: null, boolean, int, long, float, double, string, bytes, enum, record, fixed,
array, map, unions of null and one other type, and the logical types date,
timestamp-millis, timestamp-micros, decimal (bytes) and uuid (string).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import struct
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "CompiledDecoder",
    "CompiledRowDecoder",
    "EncoderCompiler",
    "MalformedAvro",
    "UnsupportedSchema",
    "compile_decoder",
    "compile_encoder",
    "compile_row_decoder",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_CACHE_LIMIT = 65_536  # values a memo of converted times keeps at most
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


@functools.cache
def _varints() -> tuple[bytes, ...]:
    """The encodings of 0 .. _VARINTS - 1 (years, counts, and dates as days since 1970
    up to 2059), built once, on first use: a look-up instead of a loop for most values."""
    out = []
    for n in range(_VARINTS):
        z = n << 1
        out.append(
            bytes((z,))
            if z < 0x80
            else bytes(((z & 0x7F) | 0x80, z >> 7))
            if z < 0x4000
            else bytes(((z & 0x7F) | 0x80, ((z >> 7) & 0x7F) | 0x80, z >> 14))
        )
    return tuple(out)


_VARINTS = 32768


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


def _timestamp_writer(unit: datetime.timedelta) -> Callable[[datetime.datetime | int], bytes]:
    """The encoding of a timestamp (a datetime, or an int already in ``unit``s since the
    epoch). Datetimes repeat (events are dated by term, quarter or day), so each one's
    bytes are kept, up to _CACHE_LIMIT of them (then forgotten); a datetime is immutable
    and equal ones encode alike. Only exact datetimes are kept (a subclass may compare
    equal to one and still be another value)."""
    cache, miss = _memo(lambda value: _long(_ts(value, unit)))
    exact = datetime.datetime

    def write(value: datetime.datetime | int) -> bytes:
        if value.__class__ is exact:
            data: bytes | None = cache.get(value)
            return data if data is not None else miss(value)
        if isinstance(value, int):
            return _long(value)
        return _long(_ts(value, unit))

    return write


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


def register_name(
    named: dict[str, dict[str, Any]], schema: dict[str, Any], namespace: str | None
) -> str | None:
    """Define the named type ``schema`` in ``named`` (under its full and its short name, as
    Avro resolves them); returns the namespace its own fields resolve names in."""
    name = str(schema["name"])
    ns = schema.get("namespace", namespace)
    full = name if "." in name else (f"{ns}.{name}" if ns else name)
    named[full] = schema
    named.setdefault(name, schema)
    return full.rsplit(".", 1)[0] if "." in full else None


class _Generator:
    """What the encoder and decoder compilers share: the lines of one generated function,
    the names it refers to, and the named types defined so far (by full and short name)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {}
        self.named: dict[str, Any] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def lookup(self, name: str, namespace: str | None) -> Any:
        """The named type ``name`` refers to, or None if it is not a defined name."""
        if name in self.named:
            return self.named[name]
        qualified = f"{namespace}.{name}" if namespace and "." not in name else name
        return self.named.get(qualified)

    def register(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        """Define a named type; the namespace its own fields resolve names in."""
        return register_name(self.named, schema, namespace)

    def function(self, name: str, title: str) -> Callable[..., Any]:
        """Compile the emitted lines and return the function ``name`` they define."""
        source = "\n".join(self.lines)
        namespace: dict[str, Any] = dict(self.env)
        exec(compile(source, f"<avro {title}>", "exec"), namespace)
        function: Callable[..., Any] = namespace[name]
        return function


class EncoderCompiler(_Generator):
    """Emits code appending the Avro encoding of values to a list ``out``.

    :func:`compile_encoder` drives it over a whole record; producers.row_encoder calls
    :meth:`write` on single fields, inside a function of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.env = {
            "_long": _long,
            "_SMALL": _SMALL,
            "_string": _string,
            "_bytes": _bytes,
            "_date": _date,
            "_VARINT": _varints(),
            # one memo each per compiled function
            "_timestamp_millis": _timestamp_writer(_MILLI),
            "_timestamp_micros": _timestamp_writer(_MICRO),
            "_FLOAT": _FLOAT,
            "_DOUBLE": _DOUBLE,
        }

    def write(self, schema: Any, value: str, indent: int, namespace: str | None) -> None:
        """Emit code appending the encoding of expression ``value`` to list ``out``."""
        if isinstance(schema, str):
            named = self.lookup(schema, namespace)
            if named is not None:
                self.write(named, value, indent, namespace)
                return
            self.primitive(schema, value, indent)
            return
        if isinstance(schema, list):
            self.union(schema, value, indent, namespace)
            return
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "date" and kind == "int":
            self.varint(f"{value}.toordinal() - {_EPOCH_ORDINAL}", indent)
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
            self.primitive("string", f"str({value})", indent)
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
            self.varint(f"{value}.__index__()", indent)
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

    def varint(self, number: str, indent: int) -> None:
        """Emit the writing of the int expression ``number`` (a table look-up if small)."""
        n = self.var("i")
        self.emit(
            indent,
            f"out.append(_VARINT[{n}] if 0 <= ({n} := {number}) < {_VARINTS} else _long({n}))",
        )

    def union(self, branches: list[Any], value: str, indent: int, namespace: str | None) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchema(f"union {branches!r} (only [null, X] is compiled)")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        tag = _long(1 - null_index)
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"out.append({_long(null_index)!r})")
        self.emit(indent, "else:")
        if other == "string":  # most optional fields: the branch and the length in one
            tagged = self.var("_tagged")
            self.env[tagged] = tuple(tag + _SMALL[n << 1] for n in range(64))
            encoded, size = self.var("s"), self.var("n")
            self.emit(indent + 1, f"{encoded} = {value}.encode()")
            self.emit(indent + 1, f"{size} = len({encoded})")
            self.emit(
                indent + 1,
                f"out.append({tagged}[{size}] if {size} < 64 else {tag!r} + _long({size}))",
            )
            self.emit(indent + 1, f"out.append({encoded})")
            return
        self.emit(indent + 1, f"out.append({tag!r})")
        self.write(other, value, indent + 1, namespace)

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
    compiler = EncoderCompiler()
    compiler.emit(0, "def encode(datum):")
    compiler.emit(1, "out = []")
    compiler.write(dict(schema), "datum", 1, None)
    compiler.emit(1, "return b''.join(out)")
    encode: Callable[[Mapping[str, Any]], bytes] = compiler.function(
        "encode", f"encoder {schema.get('name')}"
    )
    return encode


# -- decoders ------------------------------------------------------------------------------


class MalformedAvro(ValueError):
    """The bytes are not a value of the schema: truncated, a union or enum index out of
    range, a negative length. The message says what and, from the tracking decoder, in
    which field."""


def _long_rest(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``first`` had its continuation bit set:
    (zigzag-decoded value, position after it)."""
    n = first & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 128:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


def _long_memo(data: bytes, pos: int, first: int, memo: dict[bytes, int]) -> tuple[int, int]:
    """:func:`_long_rest`, keeping the value of a six-byte varint in ``memo`` under its
    bytes (emptied at _CACHE_LIMIT entries). A decoder looks those bytes up before it
    calls this: varints are prefix-free, so six bytes that were one whole varint are
    that varint wherever they stand (times repeat: events are dated by term, quarter or
    day; at the end of the data fewer than six bytes are left, which match no key)."""
    value, end = _long_rest(data, pos, first)
    if end - pos == 5:
        if len(memo) >= _CACHE_LIMIT:
            memo.clear()
        memo[data[pos - 1 : end]] = value
    return value, end


def _index_at(data: bytes, pos: int) -> int:
    """The varint at ``pos`` (for an error message about a bad index)."""
    first = data[pos]
    if first < 128:
        return (first >> 1) ^ -(first & 1)
    return _long_rest(data, pos + 1, first)[0]


def _size_rest(data: bytes, pos: int) -> tuple[int, int]:
    """A length that is not one non-negative byte: (length, position after it);
    MalformedAvro if it is negative."""
    first = data[pos]
    if first < 128:
        size, pos = (first >> 1) ^ -(first & 1), pos + 1
    else:
        size, pos = _long_rest(data, pos + 1, first)
    if size < 0:
        raise MalformedAvro(f"negative length {size}")
    return size, pos


# the length a one-byte varint stands for, -1 if it is not a one-byte non-negative length
_SHORT_SIZE = tuple(b >> 1 if b < 128 and not b & 1 else -1 for b in range(256))

_new_object = object.__new__
# UUID is immutable (its __setattr__ refuses): its two slots are set through their descriptors
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def _uuid(raw: bytes) -> uuid.UUID:
    """uuid.UUID(raw.decode()), built directly when the text is 32 ASCII letters and digits
    once its hyphens are removed (the constructor would then parse exactly those, at three
    times the cost); any other text goes to the constructor."""
    digits = raw.replace(b"-", b"")
    if len(digits) == 32 and digits.isalnum():
        value: uuid.UUID = _new_object(uuid.UUID)
        _set_int(value, int(digits, 16))
        _set_is_safe(value, _SAFE_UNKNOWN)
        return value
    return uuid.UUID(raw.decode())


_UUID_TEXT = b"0123456789abcdef-"


def _uuid_text(raw: bytes) -> str:
    """``str(_uuid(raw))``: the text itself when it is already in that form (36 characters,
    lower-case hex digits and the four hyphens at 8, 13, 18 and 23), else through
    :func:`_uuid`, so that exactly the same texts are accepted."""
    if (
        len(raw) == 36
        and raw[8] == raw[13] == raw[18] == raw[23] == 45  # "-"
        and raw.count(b"-") == 4
        and not raw.translate(None, _UUID_TEXT)
    ):
        return raw.decode()
    return str(_uuid(raw))


def _memo(convert: Callable[[Any], Any]) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    """A cache of ``convert``'s results and the function filling it on a miss. Times and
    dates repeat (events are dated by term, quarter or day: the bench's 59,097 linked events
    carry 384 distinct times); the values are immutable, so sharing them is safe. Emptied
    when it reaches _CACHE_LIMIT entries."""
    cache: dict[Any, Any] = {}

    def miss(raw: Any) -> Any:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        value = cache[raw] = convert(raw)
        return value

    return cache, miss


def _millis(epoch: datetime.datetime) -> Callable[[int], datetime.datetime]:
    return lambda raw: epoch + datetime.timedelta(0, 0, 0, raw)


def _micros(epoch: datetime.datetime) -> Callable[[int], datetime.datetime]:
    return lambda raw: epoch + datetime.timedelta(0, 0, raw)


def _days(raw: int) -> datetime.date:
    return datetime.date.fromordinal(raw + _EPOCH_ORDINAL)


def _decimal_reader(precision: int, scale: int) -> Callable[[bytes], decimal.Decimal]:
    # As fastavro: the unscaled integer rounded to ``precision`` digits, then scaled. One
    # multiplication by 10**-scale in that context rounds the same way and costs less.
    context = decimal.Context(prec=precision)
    multiply, factor = context.multiply, decimal.Decimal(1).scaleb(-scale)
    make, from_bytes = decimal.Decimal, int.from_bytes

    def read(raw: bytes) -> decimal.Decimal:
        return multiply(make(from_bytes(raw, "big", signed=True)), factor)

    return read


# logical types fastavro converts on read that the compiler does not: left to fastavro
_UNCOMPILED_LOGICAL = frozenset(
    {"int-time-millis", "long-time-micros", "fixed-decimal", "fixed-duration"}
)


def _describe(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(branch) for branch in schema) + "]"
    return str(schema.get("name") or schema.get("logicalType") or schema.get("type"))


class _DecoderCompiler(_Generator):
    """Emits ``decode(data, pos) -> (value, pos)``. With ``track``, the function also
    keeps the field it is in (``at``) and checks every length against the end of the
    data, so that its error says where the bytes went wrong; the fast one leaves those
    checks to the caller's final position check and to IndexError."""

    def __init__(self, track: bool, uuid_text: bool = False) -> None:
        super().__init__()
        self.track = track
        self.in_progress: set[int] = set()
        self.env = {
            "_long_rest": _long_rest,
            "_index_at": _index_at,
            "MalformedAvro": MalformedAvro,
            "_uuid": _uuid_text if uuid_text else _uuid,
            "_size_rest": _size_rest,
            "_SHORT_SIZE": _SHORT_SIZE,
            "_FLOAT_AT": struct.Struct("<f").unpack_from,
            "_DOUBLE_AT": struct.Struct("<d").unpack_from,
        }

    def long(self, target: str, indent: int) -> None:
        """Read a zigzag varint into ``target``: values of one to three bytes (|n| under
        2**20: lengths, indexes, years, dates) inline; one of six bytes (a time in
        milliseconds from mid-1970 to 2039) looked up by its bytes in the function's memo
        of six-byte varints (:func:`_long_memo`, which reads and keeps it on a miss);
        any other length by :func:`_long_rest`'s loop, through the same miss."""
        self.env["_long_memo"] = _long_memo
        self.env.setdefault("_six", {})  # one memo per generated function
        self.emit(indent, "b = data[pos]")
        self.emit(indent, "pos += 1")
        self.emit(indent, "if b < 128:")
        self.emit(indent + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(indent, "elif data[pos] < 128:")
        self.emit(indent + 1, "b = (b & 127) | (data[pos] << 7)")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(indent, "elif data[pos + 1] < 128:")
        self.emit(indent + 1, "b = (b & 127) | ((data[pos] & 127) << 7) | (data[pos + 1] << 14)")
        self.emit(indent + 1, "pos += 2")
        self.emit(indent + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target} = _six.get(data[pos - 1 : pos + 5])")
        self.emit(indent + 1, f"if {target} is None:")
        self.emit(indent + 2, f"{target}, pos = _long_memo(data, pos, b, _six)")
        self.emit(indent + 1, "else:")
        self.emit(indent + 2, "pos += 5")

    def sized(self, target: str, indent: int, suffix: str = "") -> None:
        """Read a length-prefixed byte string into ``target`` (with ``suffix`` applied, as
        ``.decode()``); lengths under 64 (one byte) inline."""
        size = self.var("n")
        self.emit(indent, f"{size} = _SHORT_SIZE[data[pos]]")
        self.emit(indent, f"if {size} < 0:")
        self.emit(indent + 1, f"{size}, pos = _size_rest(data, pos)")
        self.emit(indent, "else:")
        self.emit(indent + 1, "pos += 1")
        self.slice(target, size, indent, suffix)

    def slice(self, target: str, size: str, indent: int, suffix: str = "") -> None:
        end = self.var("end")
        self.emit(indent, f"{end} = pos + {size}")
        if self.track:
            self.emit(indent, f"if {end} > len(data):")
            self.emit(
                indent + 1,
                f"raise MalformedAvro(f'the body ends early: {{{size}}} byte(s) needed at "
                f"byte {{pos}} of {{len(data)}}')",
            )
        self.emit(indent, f"{target} = data[pos:{end}]{suffix}")
        self.emit(indent, f"pos = {end}")

    def read(self, schema: Any, target: str, indent: int, namespace: str | None, path: str) -> None:
        """Emit code reading one value of ``schema`` at ``pos`` into ``target``."""
        if isinstance(schema, str):
            named = self.lookup(schema, namespace)
            if named is not None:
                if id(named) in self.in_progress:
                    raise UnsupportedSchema(f"recursive type {schema!r}")
                self.read(named, target, indent, namespace, path)
                return
            self.primitive(schema, target, indent)
            return
        if isinstance(schema, list):
            self.union(schema, target, indent, namespace, path)
            return
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if isinstance(kind, str) and logical is not None:
            if f"{kind}-{logical}" in _UNCOMPILED_LOGICAL:
                raise UnsupportedSchema(f"logical type {logical} on {kind}")
            if self.logical(schema, kind, str(logical), target, indent):
                return
        if kind in ("record", "error"):
            self.record(schema, target, indent, namespace, path)
        elif kind == "enum":
            self.register(schema, namespace)
            self.enum(schema, target, indent)
        elif kind == "fixed":
            self.register(schema, namespace)
            self.slice(target, str(int(schema["size"])), indent)
        elif kind == "array":
            self.array(schema, target, indent, namespace, path)
        elif kind == "map":
            self.map(schema, target, indent, namespace, path)
        elif isinstance(kind, (str, list, dict)):
            self.read(kind, target, indent, namespace, path)
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def logical(self, schema: dict[str, Any], kind: str, logical: str, t: str, i: int) -> bool:
        """Emit a logical type's read (as fastavro converts it); False if it has none."""
        raw = self.var("raw")
        convert: Callable[[int], Any] | None = None
        if kind == "long" and logical in ("timestamp-millis", "local-timestamp-millis"):
            convert = _millis(_EPOCH if logical == "timestamp-millis" else _EPOCH_NAIVE)
        elif kind == "long" and logical in ("timestamp-micros", "local-timestamp-micros"):
            convert = _micros(_EPOCH if logical == "timestamp-micros" else _EPOCH_NAIVE)
        elif kind == "int" and logical == "date":
            convert = _days
        if convert is not None:
            cache, miss = self.var("_cache"), self.var("_miss")
            self.env[cache], self.env[miss] = _memo(convert)
            self.long(raw, i)
            self.emit(i, f"{t} = {cache}.get({raw})")
            self.emit(i, f"if {t} is None:")
            self.emit(i + 1, f"{t} = {miss}({raw})")
        elif kind == "string" and logical == "uuid":
            self.sized(raw, i)
            self.emit(i, f"{t} = _uuid({raw})")
        elif kind == "bytes" and logical == "decimal":
            if "precision" not in schema:
                raise UnsupportedSchema("decimal without precision")
            reader = self.var("_decimal")
            self.env[reader] = _decimal_reader(
                int(schema["precision"]), int(schema.get("scale", 0))
            )
            self.sized(raw, i)
            self.emit(i, f"{t} = {reader}({raw})")
        else:
            return False
        return True

    def primitive(self, name: str, target: str, indent: int) -> None:
        if name == "null":
            self.emit(indent, f"{target} = None")
        elif name == "boolean":
            self.emit(indent, f"{target} = data[pos] != 0")
            self.emit(indent, "pos += 1")
        elif name in ("int", "long"):
            self.long(target, indent)
        elif name == "float":
            self.emit(indent, f"{target} = _FLOAT_AT(data, pos)[0]")
            self.emit(indent, "pos += 4")
        elif name == "double":
            self.emit(indent, f"{target} = _DOUBLE_AT(data, pos)[0]")
            self.emit(indent, "pos += 8")
        elif name == "string":
            self.sized(target, indent, ".decode()")
        elif name == "bytes":
            self.sized(target, indent)
        else:
            raise UnsupportedSchema(f"named type {name!r} is not defined before use")

    def union(
        self, branches: list[Any], target: str, indent: int, namespace: str | None, path: str
    ) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchema(f"union {branches!r} (only [null, X] is compiled)")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        described = _describe(branches)
        self.emit(indent, "b = data[pos]")
        self.emit(indent, "pos += 1")
        self.emit(indent, f"if b == {null_index << 1}:")
        self.emit(indent + 1, f"{target} = None")
        self.emit(indent, f"elif b == {(1 - null_index) << 1}:")
        self.read(other, target, indent + 1, namespace, path)
        self.emit(indent, "else:")
        self.emit(
            indent + 1,
            f"raise MalformedAvro(f'union index {{_index_at(data, pos - 1)}} is not a branch "
            f"of {described} (0 or 1)')",
        )

    def record(
        self, schema: dict[str, Any], target: str, indent: int, namespace: str | None, path: str
    ) -> None:
        inner_ns = self.register(schema, namespace)
        self.in_progress.add(id(schema))
        names = []
        for field in schema["fields"]:
            name = str(field["name"])
            where = f"{path}.{name}" if path else name
            if self.track:
                self.emit(indent, f"at = {where!r}")
            value = self.var("v")
            self.read(field["type"], value, indent, inner_ns, where)
            names.append(f"{name!r}: {value}")
        self.in_progress.discard(id(schema))
        self.emit(indent, f"{target} = {{{', '.join(names)}}}")

    def enum(self, schema: dict[str, Any], target: str, indent: int) -> None:
        symbols = tuple(str(s) for s in schema["symbols"])
        if len(symbols) > 64:  # indexes of two bytes: no table by first byte
            raise UnsupportedSchema(f"enum {schema['name']} of more than 64 symbols")
        table = self.var("_symbols")
        # symbol by the index's one byte (zigzag 2i); None where no symbol is
        self.env[table] = tuple(
            symbols[b >> 1] if not b & 1 and b >> 1 < len(symbols) else None for b in range(256)
        )
        self.emit(indent, f"{target} = {table}[data[pos]]")
        self.emit(indent, f"if {target} is None:")
        self.emit(
            indent + 1,
            f"raise MalformedAvro(f'enum index {{_index_at(data, pos)}} is not one of the "
            f"{len(symbols)} symbols of {schema['name']}')",
        )
        self.emit(indent, "pos += 1")

    def blocks(self, count: str, indent: int) -> None:
        """Emit the block header of an array or map: a count, negative with a byte size."""
        self.long(count, indent)
        self.emit(indent, f"if {count} == 0:")
        self.emit(indent + 1, "break")
        self.emit(indent, f"if {count} < 0:")
        self.emit(indent + 1, f"{count} = -{count}")
        self.long("_", indent + 1)

    def array(
        self, schema: dict[str, Any], target: str, indent: int, namespace: str | None, path: str
    ) -> None:
        count, item = self.var("count"), self.var("item")
        self.emit(indent, f"{target} = []")
        self.emit(indent, "while True:")
        self.blocks(count, indent + 1)
        self.emit(indent + 1, f"for _ in range({count}):")
        self.read(schema["items"], item, indent + 2, namespace, f"{path}[]")
        self.emit(indent + 2, f"{target}.append({item})")

    def map(
        self, schema: dict[str, Any], target: str, indent: int, namespace: str | None, path: str
    ) -> None:
        count, key, value = self.var("count"), self.var("key"), self.var("val")
        self.emit(indent, f"{target} = {{}}")
        self.emit(indent, "while True:")
        self.blocks(count, indent + 1)
        self.emit(indent + 1, f"for _ in range({count}):")
        self.primitive("string", key, indent + 2)
        self.read(schema["values"], value, indent + 2, namespace, f"{path}{{}}")
        self.emit(indent + 2, f"{target}[{key}] = {value}")


DecodeFunction = Callable[[bytes, int], tuple[Any, int]]


def _build_decoder(
    schema: Mapping[str, Any], track: bool, uuid_text: bool = False
) -> DecodeFunction:
    compiler = _DecoderCompiler(track, uuid_text)
    compiler.emit(0, "def decode(data, pos):")
    if track:
        compiler.emit(1, "at = '(start)'")
        compiler.emit(1, "try:")
        compiler.read(dict(schema), "value", 2, None, "")
        compiler.emit(1, "except MalformedAvro as exc:")
        compiler.emit(2, "raise MalformedAvro(f'{exc} (field {at})') from None")
        compiler.emit(1, "except (IndexError, _StructError):")
        compiler.emit(
            2,
            "raise MalformedAvro(f'the body ends early: {len(data)} byte(s), in field {at}') "
            "from None",
        )
        compiler.emit(1, "except Exception as exc:")
        compiler.emit(2, "raise MalformedAvro(f'field {at}: {exc!r}') from None")
        compiler.env["_StructError"] = struct.error
    else:
        compiler.read(dict(schema), "value", 1, None, "")
    compiler.emit(1, "return value, pos")
    decode: DecodeFunction = compiler.function("decode", f"decoder {schema.get('name')}")
    return decode


class CompiledDecoder:
    """Reads values written with one schema. :attr:`decode` ``(data, pos)`` returns
    ``(value, position after it)`` and may raise anything on bad bytes (IndexError for
    truncation, MalformedAvro, UnicodeDecodeError...), or stop short of or past the end:
    the caller checks the position and, on any failure, asks :meth:`explain` why.
    With ``uuid_text``, uuid values come as their text (``str(uuid.UUID(...))``, the same
    texts accepted) instead of uuid.UUID objects: a reader that wants only the text is
    spared building the object and printing it again."""

    def __init__(self, schema: Mapping[str, Any], *, uuid_text: bool = False) -> None:
        self.schema = dict(schema)
        self.uuid_text = uuid_text
        self.decode: DecodeFunction = _build_decoder(schema, track=False, uuid_text=uuid_text)
        self._tracking: DecodeFunction | None = None

    def explain(self, data: bytes, pos: int) -> str:
        """Why ``data`` from ``pos`` is not a value of the schema, naming the field (the
        slower tracking decoder reads it again). Called after :attr:`decode` failed."""
        if self._tracking is None:
            self._tracking = _build_decoder(self.schema, track=True)
        try:
            _value, end = self._tracking(data, pos)
        except MalformedAvro as exc:
            return str(exc)
        if end != len(data):
            return (
                f"{len(data) - end} byte(s) left over after the record: the body belongs to "
                "another schema"
            )
        return "the fast decoder failed where the tracking one did not (a compiler bug)"


def compile_decoder(schema: Mapping[str, Any], *, uuid_text: bool = False) -> CompiledDecoder:
    """A decoder for data written with exactly ``schema`` (no resolution; ``uuid_text``:
    see :class:`CompiledDecoder`). Raises UnsupportedSchema if the schema is outside the
    compiled subset."""
    return CompiledDecoder(schema, uuid_text=uuid_text)


# -- row decoders: chosen fields of a record, as one flat row --------------------------------


def _uuid_int(raw: bytes) -> int:
    """The 128-bit value of the UUID text ``raw`` (what uuid.UUID(raw.decode()).int gives,
    without the object); ValueError if it is not a UUID."""
    digits = raw.replace(b"-", b"")
    if len(digits) == 32 and digits.isalnum():
        return int(digits, 16)
    return uuid.UUID(raw.decode()).int


class _RowCompiler(_DecoderCompiler):
    """Emits ``decode(data, pos) -> (row, pos)``: the values at the chosen field paths, in
    their order, as a list; every other field is skipped as a reader schema without it
    would skip it (read past, its content unchecked). Under a null optional record each
    chosen path is None. With ``plain``, logical types come as the integers Avro stores
    them as: timestamps as milliseconds or microseconds since the epoch, dates as days
    since 1970-01-01, UUIDs as their 128-bit value (checked: a text that is not a UUID
    fails); decimals stay decimal.Decimal."""

    def __init__(
        self, paths: tuple[str, ...], plain: bool, memo_by: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(track=False)
        self.plain = plain
        self.targets = {path: f"c{index}" for index, path in enumerate(paths)}
        self.found: set[str] = set()
        self.memo_by = dict(memo_by or {})
        self.env["_uuid_int"] = _uuid_int

    def logical(self, schema: dict[str, Any], kind: str, logical: str, t: str, i: int) -> bool:
        if not self.plain:
            return super().logical(schema, kind, logical, t, i)
        if (kind == "long" and logical.endswith(("timestamp-millis", "timestamp-micros"))) or (
            kind == "int" and logical == "date"
        ):
            self.long(t, i)
        elif kind == "string" and logical == "uuid":
            raw, digits = self.var("raw"), self.var("digits")
            self.sized(raw, i)
            # _uuid_int's fast case inline (a call less an event); the others through it
            self.emit(i, f"{digits} = {raw}.replace(b'-', b'')")
            self.emit(
                i,
                f"{t} = int({digits}, 16) if len({digits}) == 32 and {digits}.isalnum() "
                f"else _uuid_int({raw})",
            )
        else:
            return super().logical(schema, kind, logical, t, i)
        return True

    def chosen_under(self, path: str) -> list[str]:
        return [p for p in self.targets if p == path or p.startswith(f"{path}.")]

    def deref(self, schema: Any, namespace: str | None) -> Any:
        """A named reference or a ``{"type": X}`` wrapper resolved to what it stands for."""
        while True:
            if isinstance(schema, str):
                named = self.lookup(schema, namespace)
                if named is None:
                    return schema
                schema = named
            elif (
                isinstance(schema, dict)
                and not schema.get("logicalType")
                and isinstance(schema.get("type"), (dict, list))
            ) or (
                isinstance(schema, dict)
                and isinstance(schema.get("type"), str)
                and (
                    schema["type"] not in ("record", "error", "enum", "fixed", "array", "map")
                    and not schema.get("logicalType")
                )
            ):
                schema = schema["type"]
            else:
                return schema

    def project(self, schema: Any, path: str, indent: int, namespace: str | None) -> None:
        """Emit code reading the value of ``schema`` at ``path``: into its target if the
        path is chosen, its chosen fields if it is a record holding some, else skipped."""
        if path in self.targets:
            self.found.add(path)
            self.read(schema, self.targets[path], indent, namespace, path)
            return
        below = self.chosen_under(path) if path else list(self.targets)
        if not below:
            self.skip(schema, indent, namespace)
            return
        if path in self.memo_by:
            self.memoized(schema, path, below, indent, namespace)
            return
        self.chosen(schema, path, below, indent, namespace)

    def memoized(
        self, schema: Any, path: str, below: list[str], indent: int, namespace: str | None
    ) -> None:
        """Emit the reading of the chosen fields under ``path`` through a memo keyed by
        the value of the field ``memo_by[path]`` read before it: the bytes the value at
        ``path`` took last time under that key, and the fields read from them. Where the
        same bytes stand at ``pos`` again, those are the fields (a value's encoding is
        read the same way wherever it stands: it is its own end); anything else is read
        and kept (the memo is emptied at _CACHE_LIMIT keys), unless the reading went past
        the end of the data (a string cut short reads fewer bytes without failing: such
        bytes, kept, would stand for the whole value in the next message). Meant for
        scalars that repeat under a key: a person's attributes under their id (a chosen
        record, array or map would be the same object in every row that hits)."""
        key = self.memo_by[path]
        if key not in self.found:
            raise UnsupportedSchema(f"the memo of {path} is keyed by {key}, not read before it")
        memo, start, kept = self.var("_memo"), self.var("start"), self.var("kept")
        self.env[memo] = {}
        self.env["_CACHE_LIMIT"] = _CACHE_LIMIT
        targets = ", ".join(self.targets[chosen] for chosen in below)
        self.emit(indent, f"{kept} = {memo}.get({self.targets[key]})")
        self.emit(indent, f"if {kept} is not None and data.startswith({kept}[0], pos):")
        self.emit(indent + 1, f"{targets}, = {kept}[1]")
        self.emit(indent + 1, f"pos += {kept}[2]")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{start} = pos")
        self.chosen(schema, path, below, indent + 1, namespace)
        self.emit(indent + 1, "if pos <= len(data):  # read whole, not cut short")
        self.emit(indent + 2, f"if len({memo}) >= _CACHE_LIMIT:")
        self.emit(indent + 3, f"{memo}.clear()")
        self.emit(
            indent + 2,
            f"{memo}[{self.targets[key]}] = (data[{start}:pos], ({targets},), pos - {start})",
        )

    def chosen(
        self, schema: Any, path: str, below: list[str], indent: int, namespace: str | None
    ) -> None:
        """Emit the reading of the chosen fields ``below`` under ``path`` (a record, or a
        [null, record] union: each None under a null)."""
        resolved = self.deref(schema, namespace)
        if isinstance(resolved, list):
            if len(resolved) != 2 or "null" not in resolved:
                raise UnsupportedSchema(f"fields chosen under the union {resolved!r} at {path}")
            null_index = resolved.index("null")
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if b == {null_index << 1}:")
            for chosen in below:
                self.emit(indent + 1, f"{self.targets[chosen]} = None")
            self.emit(indent, f"elif b == {(1 - null_index) << 1}:")
            self.chosen(resolved[1 - null_index], path, below, indent + 1, namespace)
            self.emit(indent, "else:")
            self.emit(
                indent + 1,
                f"raise MalformedAvro(f'union index {{_index_at(data, pos - 1)}} is not a "
                f"branch of {_describe(resolved)} (0 or 1)')",
            )
            return
        if not isinstance(resolved, dict) or resolved.get("type") not in ("record", "error"):
            raise UnsupportedSchema(f"fields chosen under {_describe(resolved)} at {path}")
        inner_ns = self.register(resolved, namespace)
        for field in resolved["fields"]:
            name = str(field["name"])
            self.project(field["type"], f"{path}.{name}" if path else name, indent, inner_ns)

    def skip(self, schema: Any, indent: int, namespace: str | None) -> None:
        """Emit code moving ``pos`` past one value of ``schema`` without keeping it."""
        resolved = self.deref(schema, namespace)
        kind = resolved.get("type") if isinstance(resolved, dict) else resolved
        if kind in ("string", "bytes"):  # whatever their logical type: a length and bytes
            size = self.var("n")
            self.emit(indent, f"{size} = _SHORT_SIZE[data[pos]]")
            self.emit(indent, f"if {size} < 0:")
            self.emit(indent + 1, f"{size}, pos = _size_rest(data, pos)")
            self.emit(indent + 1, f"pos += {size}")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"pos += 1 + {size}")
        elif kind in ("int", "long"):
            self.long("_", indent)
        elif kind == "null":
            return
        elif kind == "float" or kind == "double" or kind == "boolean":
            self.emit(indent, f"pos += {({'float': 4, 'double': 8, 'boolean': 1})[kind]}")
        elif isinstance(resolved, list) and len(resolved) == 2 and "null" in resolved:
            null_index = resolved.index("null")
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if b == {(1 - null_index) << 1}:")
            self.skip(resolved[1 - null_index], indent + 1, namespace)
            self.emit(indent, f"elif b != {null_index << 1}:")
            self.emit(
                indent + 1,
                f"raise MalformedAvro(f'union index {{_index_at(data, pos - 1)}} is not a "
                f"branch of {_describe(resolved)} (0 or 1)')",
            )
        elif isinstance(resolved, dict) and kind in ("record", "error"):
            inner_ns = self.register(resolved, namespace)
            for field in resolved["fields"]:
                self.skip(field["type"], indent, inner_ns)
        else:  # enums (their index is checked), fixed, arrays, maps: read and dropped
            self.read(resolved, self.var("skipped"), indent, namespace, "")


class CompiledRowDecoder:
    """Reads chosen fields of values written with one schema, as one flat row.
    :attr:`decode` ``(data, pos)`` returns ``(row, position after it)``: a list of the
    values at :attr:`paths`, in order (dotted field names: ``attributes.sex``). Like
    :class:`CompiledDecoder` it may raise anything on bad bytes or stop short of or past
    the end; the caller checks the position, and a full decoder says what was wrong."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        paths: tuple[str, ...],
        plain: bool,
        memo_by: Mapping[str, str] | None = None,
    ) -> None:
        self.schema = dict(schema)
        self.paths = paths
        self.plain = plain
        self.memo_by = dict(memo_by or {})
        compiler = self._compiler()
        compiler.emit(0, "def decode(data, pos):")
        compiler.project(self.schema, "", 1, None)
        missing = [path for path in paths if path not in compiler.found]
        if missing:
            raise UnsupportedSchema(f"no field {', '.join(missing)} in {schema.get('name')}")
        compiler.emit(1, f"return [{', '.join(compiler.targets.values())}], pos")
        self.decode: DecodeFunction = compiler.function("decode", f"rows {schema.get('name')}")

    def _compiler(self) -> _RowCompiler:
        return _RowCompiler(self.paths, self.plain, self.memo_by)

    def whole(self, prefix: bytes, otherwise: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """A function of one message: the row of ``data`` when it is ``prefix`` followed
        by exactly one value (what :attr:`decode` from ``len(prefix)`` reads to the end),
        else what ``otherwise(data)`` returns (or raises): bytes that do not start with
        the prefix, fail to decode, or leave bytes over. One call a message, where a
        wrapper checking the frame and the end around :attr:`decode` is two."""
        compiler = self._compiler()
        compiler.env["_PREFIX"], compiler.env["_otherwise"] = prefix, otherwise
        compiler.emit(0, "def whole(data):")
        compiler.emit(1, f"if data[:{len(prefix)}] == _PREFIX:")
        compiler.emit(2, "try:")
        compiler.emit(3, f"pos = {len(prefix)}")
        compiler.project(self.schema, "", 3, None)
        compiler.emit(2, "except Exception:  # bad bytes: otherwise() says what and where")
        compiler.emit(3, "pass")
        compiler.emit(2, "else:")
        compiler.emit(3, "if pos == len(data):")
        compiler.emit(4, f"return [{', '.join(compiler.targets.values())}]")
        compiler.emit(1, "return _otherwise(data)  # outside the handler: no chained exception")
        whole: Callable[[bytes], Any] = compiler.function(
            "whole", f"messages {self.schema.get('name')}"
        )
        return whole


def compile_row_decoder(
    schema: Mapping[str, Any],
    paths: tuple[str, ...],
    *,
    plain: bool = False,
    memo_by: Mapping[str, str] | None = None,
) -> CompiledRowDecoder:
    """A decoder of the fields at ``paths`` (see :class:`CompiledRowDecoder`; ``plain``:
    logical types as integers, see :class:`_RowCompiler`) for data written with exactly
    ``schema``. ``memo_by`` maps the path of a record (or optional record) holding chosen
    fields to a chosen path read before it: that record's fields are remembered under
    that value with the bytes they were read from, and taken again where the same bytes
    follow the same value (:meth:`_RowCompiler.memoized`); the rows are the same.
    UnsupportedSchema if a path is not a field of the schema, lies under an array, a map
    or a union other than [null, X], or a memo's key is not read before its record."""
    return CompiledRowDecoder(schema, paths, plain, memo_by)

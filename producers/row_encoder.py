"""A provider's row straight to its message: parse, check and encode in one function.

The reference path (:class:`producers.mapping.RowMapper`, then the compiled validator, then
:class:`c2c.serde.AvroEncoder`) builds an event of nested dicts for every row and walks it
twice more. :func:`compile_row_encoder` generates, for one provider format, one file header
and the schema of each kind of event, a single function from a row's cells to its message
(topic, key, Confluent wire-format value, event id, event time), over local variables:
the format's parsers, then the checks :class:`c2c.validation.CheckCompiler` emits for each
field (each returning None at once where it fails; a value that its parser gives as text
or a whole number is not asked its type), then the writes
:class:`c2c._avro_compiled.EncoderCompiler` emits for it, in the schema's order.

It only ever accepts. A row it does not take as valid, for whatever reason (a parser
refuses a cell, a check fails, anything raises), gets None, and the caller maps that row
the reference way, which says why it is rejected (or accepts it, and then publishes the
same message). What it accepts is exactly what the reference accepts, as the same bytes:
tests/unit/test_row_encoder.py compares the two on every row of every format changed every
way. Where the reference would reject every row of a record type with this header (a
column the schema requires is not in the file, a column's target is not a field of the
schema), that record type gets no code and its rows all go the reference way; a header
for which no record type compiles gets no function at all.

Plain code, no I/O.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from c2c._avro_compiled import EncoderCompiler, compile_encoder
from c2c.validation import CheckCompiler, DateLimits, date_limits
from producers.formats import KIND_TOPICS, EventTime, ProviderFormat, RecordType
from producers.mapping import DEVELOPMENT_KEY, event_id_prefix, event_id_with
from producers.parsing import (
    FEW_VALUES,
    Codes,
    Parser,
    Table,
    academic_year,
    cip,
    digits,
    integer,
    text,
    year_quarter,
)

__all__ = ["EncodedRow", "RowEncode", "compile_row_encoder"]

EncodedRow = tuple[str, bytes, bytes, str, datetime.datetime]
"""(topic, key, value, event id, event time) of a row's message; the value is b'' in a dry
run; the event time is the event's (an aware UTC timestamp), to order rows by."""

RowEncode = Callable[[Sequence[str], bytes], EncodedRow | None]
"""A compiled row encoder: (the row's cells in the header's order, its bytes as read) to
its message, or None when the reference path must decide."""

# What a parser, a check or a write raises on a value it cannot take.
_FAILURES = (ValueError, TypeError, KeyError, AttributeError, IndexError, ArithmeticError)


class _Unavailable(Exception):
    """Every row with this header would be rejected (or the schema is outside what this
    compiler handles): no function, the reference path maps every row."""


class _Names:
    """One counter for the variables of both compilers: they emit into one function."""

    def __init__(self) -> None:
        self._count: Iterator[int] = itertools.count(1)

    def var(self, prefix: str) -> str:
        return f"{prefix}{next(self._count)}"


class _Shared:
    """Variables named by one counter (mixed into both compilers)."""

    names: _Names

    def var(self, prefix: str) -> str:
        return self.names.var(prefix)


class _Checks(_Shared, CheckCompiler):
    """The validator's checks, for a function that only accepts: a failing check returns
    None at once (the reference path then says why), and a value whose variable holds what
    a parser gives (``known``: text or a whole number, or None) is not asked its type."""

    known: dict[str, str]

    def problem(self, indent: int, path: str, value: str, text: str, shown: bool = True) -> None:
        self.emit(indent, "return None")

    def string(self, field: Mapping[str, Any], v: str, path: str, indent: int) -> None:
        if self.known.get(v) != "string":
            super().string(field, v, path, indent)
            return
        # pydantic's checks but the type's, on text (None is not text: rejected too)
        failing = [f"{v} is None"]
        if "minLength" in field:
            failing.append(f"len({v}) < {int(field['minLength'])}")
        if "maxLength" in field:
            failing.append(f"len({v}) > {int(field['maxLength'])}")
        if "pattern" in field:
            failing.append(f"{self.mismatch(str(field['pattern']), v)}")
        self.emit(indent, f"if {' or '.join(failing)}:")
        self.problem(indent + 1, path, v, "")

    def primitive(
        self, name: str, field: Mapping[str, Any], v: str, path: str, indent: int
    ) -> None:
        if name not in ("int", "long") or self.known.get(v) != "int":
            super().primitive(name, field, v, path, indent)
            return
        self.emit(indent, f"if {v} is None:")  # a whole number or None: not asked its type
        self.problem(indent + 1, path, v, "")
        self.bounds(field, v, v, path, indent)


class _Writes(_Shared, EncoderCompiler):
    pass


class _EventTimes:
    """The event time of a row from the values its :class:`EventTime` reads, encoded and
    as it is (the encoder's bytes, the aware UTC timestamp): as the mapper computes it,
    makes a date an aware UTC timestamp, and the encoder writes it; None where it places
    the row nowhere. Remembered by the values (``compute`` is a pure
    function of them, and each path's value has the one type its parser gives): a file
    has few distinct dates, quarters, years."""

    def __init__(self, event_time: EventTime, field_type: Any) -> None:
        self._compute = event_time.compute
        self._encode = compile_encoder(
            {"type": "record", "name": "EventTime", "fields": [{"name": "t", "type": field_type}]}
        )
        self._known: dict[tuple[Any, ...], tuple[bytes, datetime.datetime] | None] = {}

    def __call__(self, values: tuple[Any, ...]) -> tuple[bytes, datetime.datetime] | None:
        try:
            return self._known[values]
        except KeyError:
            pass
        when = self._compute(*values)
        encoded = None
        if when is not None:
            at = (
                when
                if isinstance(when, datetime.datetime)
                else datetime.datetime(when.year, when.month, when.day, tzinfo=datetime.UTC)
            )
            encoded = (self._encode({"t": at}), at)
        if len(self._known) >= 4096:
            self._known.clear()
        self._known[values] = encoded
        return encoded


class _Memo:
    """What cells parsed to, for a parser of values that repeat (producers.parsing.
    FEW_VALUES): at most 4096, forgotten all at once when full."""

    def __init__(self, parse: Parser) -> None:
        self.parse = parse
        self.known: dict[str, Any] = {}

    def fill(self, cell: str) -> Any:
        value = self.parse(cell)  # raises ValueError for a bad cell: nothing remembered
        if len(self.known) >= 4096:
            self.known.clear()
        self.known[cell] = value
        return value


@dataclass
class _Leaf:
    """A field of the event: its schema field, dotted path, the expression holding its value
    and the namespace its type's names resolve in."""

    field: Mapping[str, Any]
    path: str
    value: str
    namespace: str | None


@dataclass
class _Record:
    """A record field of the event, and its fields. ``null_index`` is the null branch's
    index for a nullable record; ``none_if_empty``: written as null when every field is
    None (demographics, as the mapper does)."""

    schema: dict[str, Any]
    namespace: str | None
    leaves: list[_Leaf]
    null_index: int | None
    none_if_empty: bool


_Item = _Leaf | _Record | str  # str: the special fields event_id and event_time


class _Generator:
    """Emits the function of one format and header; see :func:`compile_row_encoder`."""

    def __init__(
        self, fmt: ProviderFormat, columns: tuple[str, ...], dates: DateLimits, secret: bytes
    ) -> None:
        self.fmt = fmt
        self.dates = dates
        self.position = {name: index for index, name in enumerate(columns)}
        self.names = _Names()
        self.checks = _Checks()
        self.writes = _Writes()
        self.checks.names = self.writes.names = self.names
        self.checks.known = {"rid": "string", "pid": "string"}  # cells: text
        env: dict[str, Any] = {}
        for part in (self.checks.env, self.writes.env):
            for key, value in part.items():
                if key in env and env[key] is not value:
                    raise _Unavailable(f"the compilers both define {key}")  # pragma: no cover
                env[key] = value
        env["_FAILURES"] = _FAILURES
        env["_event_id"] = event_id_with
        env["_PREFIX"] = event_id_prefix(fmt.provider, secret)
        self.env = env
        self.checks.env = self.writes.env = env
        self.lines: list[str] = []
        self.checks.lines = self.writes.lines = self.lines
        self.pending: list[bytes] = []

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def const(self, prefix: str, value: Any) -> str:
        name = self.names.var(f"_{prefix}")
        self.env[name] = value
        return name

    def cell(self, at: int, indent: int) -> str:
        name = f"c{at}"
        self.emit(indent, f"{name} = cells[{at}]")
        return name

    # -- the function --------------------------------------------------------------------

    def function(
        self,
        schemas: Mapping[str, Mapping[str, Any]],
        schema_ids: Mapping[str, int] | None,
    ) -> RowEncode:
        fmt, position = self.fmt, self.position
        record_at = position.get(fmt.record_id_column)
        person_at = position.get(fmt.person_id_column)
        if record_at is None or person_at is None:
            raise _Unavailable("an id column is missing")
        self.emit(0, "def encode(cells, raw):")
        self.emit(1, "try:")
        self.emit(2, f"rid = cells[{record_at}]")
        self.emit(2, f"pid = cells[{person_at}]")
        self.emit(2, "if not rid or not pid:")
        self.emit(3, "return None")
        if fmt.type_column is None:
            record_type = fmt.record_types.get("")  # the mapper's code for every row
            if record_type is None:
                raise _Unavailable("no record type for rows without a type column")
            self.record_type(record_type, schemas, schema_ids, 2)
        else:
            type_at = position.get(fmt.type_column)
            if type_at is None:
                raise _Unavailable(f"no {fmt.type_column} column")
            self.emit(2, f"code = cells[{type_at}].upper()")
            compiled = 0
            for code, record_type in fmt.record_types.items():
                start = len(self.lines)
                self.emit(2, f"if code == {code!r}:")
                try:
                    self.record_type(record_type, schemas, schema_ids, 3)
                except _Unavailable:
                    del self.lines[start:]  # rows of this type go to the reference path
                else:
                    compiled += 1
            if not compiled:
                raise _Unavailable("no record type compiles")
        self.emit(2, "return None")
        self.emit(1, "except _FAILURES:")
        self.emit(2, "return None")
        source = "\n".join(self.lines)
        namespace = dict(self.env)
        exec(compile(source, f"<row encoder {fmt.provider}>", "exec"), namespace)
        encode: RowEncode = namespace["encode"]
        return encode

    def record_type(
        self,
        record_type: RecordType,
        schemas: Mapping[str, Mapping[str, Any]],
        schema_ids: Mapping[str, int] | None,
        indent: int,
    ) -> None:
        """The body for rows of ``record_type``: parse, place, check, write, return."""
        topic = KIND_TOPICS[record_type.kind]
        schema = dict(schemas[topic])
        values = self.parse(record_type, indent)
        heads = self.heads(record_type)
        items = self.place(schema, values, heads, record_type)
        # the event time, from the values as the mapper places them
        time_field = next(f for f in schema["fields"] if f["name"] == "event_time")
        times = self.const("times", _EventTimes(record_type.event_time, time_field["type"]))
        args = "".join(f"{values.get(path, 'None')}, " for path in record_type.event_time.paths)
        self.emit(indent, f"timed = {times}(({args}))")
        self.emit(indent, "if timed is None:")
        self.emit(indent + 1, "return None")
        self.emit(indent, "when, at = timed")
        self.emit(indent, "eid = _event_id(_PREFIX, rid, raw)")
        for leaf in _leaves(items):
            if self.constant(leaf):
                self.check_constant(leaf)
            else:
                self.checks.value(
                    leaf.field["type"], leaf.field, leaf.value, leaf.path, indent, leaf.namespace
                )
        # the date limits (c2c.validation.DATE_RULES), on the values checked above
        for leaf in _leaves(items):
            limit = self.dates.get(leaf.path)
            kind = self.checks.date_kind(schema, leaf.path) if limit is not None else None
            if limit is not None and kind is not None and not self.constant(leaf):
                self.checks.date_limit(limit, kind, leaf.value, indent)
        limit = self.dates.get("event_time")
        if limit is not None and self.checks.date_kind(schema, "event_time") == "timestamp":
            self.checks.date_limit(limit, "timestamp", "at", indent)
        topic_name = self.const("topic", topic)
        if schema_ids is None:
            self.emit(indent, f"return ({topic_name}, pid.encode(), b'', eid, at)")
            return
        self.emit(indent, "out = []")
        self.pending = [b"\x00" + schema_ids[topic].to_bytes(4, "big")]
        self.writes.register(schema, None)
        for item in items:
            if item == "event_id":
                self.pending.append(b"\x48")  # its length: a UUID string has 36 characters
                self.flush(indent)
                self.emit(indent, "out.append(eid.encode())")
            elif item == "event_time":
                self.flush(indent)
                self.emit(indent, "out.append(when)")
            elif isinstance(item, _Leaf):
                self.write_leaf(item, indent)
            elif isinstance(item, _Record):
                self.write_record(item, indent)
        self.flush(indent)
        self.emit(indent, f"return ({topic_name}, pid.encode(), b''.join(out), eid, at)")

    # -- constants: checked and encoded once, here ------------------------------------------

    def constant(self, leaf: _Leaf) -> bool:
        """Whether ``leaf`` holds the same value on every row (a default, a constant)."""
        return leaf.value == "None" or leaf.value in self.env

    def scratch(self, emit: Callable[[], None], body: str, result: str) -> Any:
        """Run code that ``emit`` emits (with ``body`` before and returning ``result``) at
        once, in the function's namespace: what it computes on a constant."""
        lines: list[str] = []
        self.checks.lines = self.writes.lines = lines
        try:
            emit()
        finally:
            self.checks.lines = self.writes.lines = self.lines
        source = "\n".join(["def run():", f"    {body}", *lines, f"    return {result}"])
        namespace = dict(self.env)
        exec(compile(source, "<row encoder constant>", "exec"), namespace)
        return namespace["run"]()

    def check_constant(self, leaf: _Leaf) -> None:
        kind, field = leaf.field["type"], leaf.field
        passes = self.scratch(
            lambda: self.checks.value(kind, field, leaf.value, leaf.path, 1, leaf.namespace),
            "pass",
            "True",
        )
        if passes is None:  # a failing check returns None
            raise _Unavailable(f"{leaf.path}: the constant {leaf.value} fails its check")

    def flush(self, indent: int) -> None:
        """Emit the constant bytes written since the last code that writes."""
        if self.pending:
            name = self.const("bytes", b"".join(self.pending))
            self.emit(indent, f"out.append({name})")
            self.pending = []

    def write_leaf(self, leaf: _Leaf, indent: int) -> None:
        kind = leaf.field["type"]
        if self.constant(leaf):
            self.pending.append(
                self.scratch(
                    lambda: self.writes.write(kind, leaf.value, 1, leaf.namespace),
                    "out = []",
                    "b''.join(out)",
                )
            )
        else:
            self.flush(indent)
            self.writes.write(kind, leaf.value, indent, leaf.namespace)

    def parse(self, record_type: RecordType, indent: int) -> dict[str, str]:
        """Emit the parsing of every column present; the expression holding each path's
        value (the last column placed there wins, as in the mapper; every column is parsed
        though, since a bad cell rejects the row even where another column wins)."""
        values: dict[str, str] = {
            "source_record_id": "rid",
            "person.source_person_id": "pid",
            "provider": self.const("provider", self.fmt.provider),
        }
        for column in (*self.fmt.shared, *record_type.columns):
            at = self.position.get(column.name)
            if at is None:
                if column.required:
                    raise _Unavailable(f"required column {column.name} is missing")
                continue
            cell = self.cell(at, indent)
            if column.required:
                self.emit(indent, f"if not {cell}:")
                self.emit(indent + 1, "return None")
            # text of a cell known not to be empty is the cell
            expression = (
                cell
                if column.required and column.parse is text
                else self.parsing(column.parse, cell)
            )
            parsed = self.names.var("x")
            self.emit(indent, f"{parsed} = {expression}")
            gives = _gives(column.parse)
            if isinstance(column.target, tuple):
                for index, target in enumerate(column.target):
                    part = self.names.var("x")
                    self.emit(indent, f"{part} = None if {parsed} is None else {parsed}[{index}]")
                    values[target] = part
                    if gives is not None and gives.startswith("pair of "):
                        self.checks.known[part] = gives.removeprefix("pair of ")
            else:
                values[column.target] = parsed
                if gives is not None:
                    self.checks.known[parsed] = gives
        for path, value in record_type.constants.items():
            values[path] = self.const("constant", value)
        return values

    def parsing(self, parse: Parser, cell: str) -> str:
        """The expression parsing ``cell``, which raises (ValueError, KeyError) where
        ``parse`` would: text and table look-ups inline, parsers of values that repeat
        remembered, the others called. Every parser gives None for an empty cell."""
        if parse is text:
            return f"{cell} or None"
        if isinstance(parse, Table):
            table = self.const("table", parse.table)
            return f"{table}[{cell}.{parse.fold}()] if {cell} else None"
        if parse in FEW_VALUES:
            memo = _Memo(parse)
            known, fill = self.const("known", memo.known), self.const("fill", memo.fill)
            # a value that is false (a year 0) is just parsed again
            return f"({known}.get({cell}) or {fill}({cell})) if {cell} else None"
        return f"{self.const('parse', parse)}({cell})"

    def heads(self, record_type: RecordType) -> set[str]:
        """The records the mapper's event has (as dicts): person, and the head of every
        dotted path a column of the record type (in the file or not) or a constant sets."""
        heads = {"person"}
        for column in (*self.fmt.shared, *record_type.columns):
            targets = column.target if isinstance(column.target, tuple) else (column.target,)
            heads.update(t.partition(".")[0] for t in targets if "." in t)
        heads.update(p.partition(".")[0] for p in record_type.constants if "." in p)
        return heads

    def place(
        self,
        schema: dict[str, Any],
        values: dict[str, str],
        heads: set[str],
        record_type: RecordType,
    ) -> list[_Item]:
        """The event's fields in the schema's order, each with the expression of its value;
        _Unavailable where the mapper's event would not validate or encode on any row."""
        internal = {p for p in record_type.event_time.paths if p.startswith("_")}
        top = {p.partition(".")[0] for p in values if p not in internal}
        items: list[_Item] = []
        known = set()
        namespace = self.checks.register(schema, None)
        for field in schema["fields"]:
            name = str(field["name"])
            known.add(name)
            if name in ("event_id", "event_time"):
                self.special(field)
                items.append(name)
                continue
            if name in heads:
                items.append(self.record(field, values, namespace))
            elif name in values:
                items.append(_Leaf(field, name, values[name], namespace))
            elif name == "demographics" and record_type.kind != "optout":
                # the mapper sets demographics None when the format has no such column
                items.append(_Leaf(field, name, "None", namespace))
            else:
                items.append(self.unset(field, name, namespace))
        extra = (top | heads) - known
        if extra:
            raise _Unavailable(f"not fields of {schema['name']}: {sorted(extra)}")
        return items

    def special(self, field: Mapping[str, Any]) -> None:
        """event_id and event_time are made here, right by construction (a UUID string, a
        timestamp), so their checks are not emitted; a schema typing them otherwise is
        left to the reference path."""
        kind = field["type"]
        if field["name"] == "event_id":
            ok = kind == {"type": "string", "logicalType": "uuid"} and not (
                {"pattern", "minLength", "maxLength"} & set(field)
            )
        else:
            ok = isinstance(kind, dict) and kind.get("logicalType") in (
                "timestamp-millis",
                "timestamp-micros",
            )
        if not ok:
            raise _Unavailable(f"{field['name']} typed {kind!r}")

    def unset(self, field: Mapping[str, Any], path: str, namespace: str | None) -> _Leaf:
        """A field no column sets: fine only if the validator lets it be absent (a union
        with null first) and the encoder writes its default (it has one)."""
        kind = field["type"]
        optional = isinstance(kind, list) and bool(kind) and kind[0] == "null"
        if not optional or "default" not in field:
            raise _Unavailable(f"{path} is set by no column")
        return _Leaf(field, path, self.const("default", field["default"]), namespace)

    def record(
        self, field: Mapping[str, Any], values: dict[str, str], namespace: str | None
    ) -> _Record:
        """A record field the mapper's event holds as a dict of the values under it."""
        name = str(field["name"])
        kind = field["type"]
        null_index = None
        if isinstance(kind, list) and len(kind) == 2 and "null" in kind:
            null_index = kind.index("null")
            kind = kind[1 - null_index]
        if isinstance(kind, str):
            kind = self.checks.lookup(kind, namespace)
        if not isinstance(kind, dict) or kind.get("type") != "record":
            raise _Unavailable(f"{name} is not a record")
        schema = dict(kind)
        inner = self.checks.register(schema, namespace)
        prefix = f"{name}."
        under = {p[len(prefix) :]: v for p, v in values.items() if p.startswith(prefix)}
        leaves = []
        for sub in schema["fields"]:
            sub_name = str(sub["name"])
            path = f"{prefix}{sub_name}"
            if sub_name in under:
                leaves.append(_Leaf(sub, path, under.pop(sub_name), inner))
            else:
                leaves.append(self.unset(sub, path, inner))
        if under:
            raise _Unavailable(f"not fields of {schema['name']}: {sorted(under)}")
        return _Record(schema, namespace, leaves, null_index, name == "demographics")

    def write_record(self, record: _Record, indent: int) -> None:
        inner = self.writes.register(record.schema, record.namespace)
        assert all(leaf.namespace == inner for leaf in record.leaves)
        if record.null_index is None:
            for leaf in record.leaves:
                self.write_leaf(leaf, indent)
            return
        null = (b"\x00", b"\x02")[record.null_index]
        other = (b"\x00", b"\x02")[1 - record.null_index]
        varying = [leaf for leaf in record.leaves if not self.constant(leaf)]
        # a field no column sets is written as its default: None counts as None
        fixed_none = all(
            leaf.value == "None" or self.env.get(leaf.value) is None
            for leaf in record.leaves
            if self.constant(leaf)
        )
        if record.none_if_empty and fixed_none:
            if not varying:
                self.pending.append(null)  # every field None on every row
                return
            self.flush(indent)
            self.emit(indent, f"if {' and '.join(f'{leaf.value} is None' for leaf in varying)}:")
            self.emit(indent + 1, f"out.append({null!r})")
            self.emit(indent, "else:")
            indent += 1
        self.pending.append(other)
        for leaf in record.leaves:
            self.write_leaf(leaf, indent)
        self.flush(indent)


# What parsers give besides None, where the checks need not ask a value its type.
_GIVES: dict[Parser, str] = {
    text: "string",
    digits: "string",
    cip: "string",
    integer: "int",
    academic_year: "int",
    year_quarter: "pair of int",
}


def _gives(parse: Parser) -> str | None:
    """ "string" or "int" if ``parse`` gives only that (or None), "pair of int" for a pair
    of them; None if anything else."""
    if isinstance(parse, Codes):
        return "string"  # a provider's codes map to schema symbols
    return _GIVES.get(parse)


def _leaves(items: list[_Item]) -> Iterator[_Leaf]:
    for item in items:
        if isinstance(item, _Leaf):
            yield item
        elif isinstance(item, _Record):
            yield from item.leaves


def compile_row_encoder(
    fmt: ProviderFormat,
    columns: tuple[str, ...],
    schemas: Mapping[str, Mapping[str, Any]],
    schema_ids: Mapping[str, int] | None,
    dates: DateLimits | None = None,
    *,
    secret: bytes = DEVELOPMENT_KEY,
) -> RowEncode | None:
    """The row encoder for rows of ``fmt`` with the header ``columns``: ``schemas`` maps
    each raw topic the format publishes to to its schema, ``schema_ids`` to its registered
    id (None in a dry run: nothing is encoded, values are b''). None if every row with this
    header would be rejected, or the schemas are outside what it compiles: then the
    reference path maps every row. ``dates``: the date limits, as the reference path's
    (default: as of today, c2c.validation.date_limits). ``secret``: the identity secret,
    which keys the event ids (producers.mapping.event_id_for)."""
    limits = dates if dates is not None else date_limits()
    try:
        return _Generator(fmt, columns, limits, secret).function(schemas, schema_ids)
    except _Unavailable:
        return None

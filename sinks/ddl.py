"""The ClickHouse tables and views of every linked kind, rendered from its Avro schema.

Each kind of linked event (c2c.kinds.LINKED_KINDS) has a fact table, its ``*_current``
view, a wire table (engine Null) that the sink inserts the messages into as they came off
the wire, and two materialized views on it writing the fact table and ``dim_person``
(sinks/wire.py). All of them follow from the linked record: its leaves, flattened, are the
fact table's columns (``attributes.demographics.sex`` is ``sex``), typed by the rules below
from their Avro types and bounds, commented with their ``doc``; the wire table is the
container's writer schema (:func:`sinks.wire.wire_schema`) as ClickHouse reads it.

Every fact table also has ``published_at``: when the row's linked message was published
(:data:`sinks.rows.PUBLISHED_AT`; the wire's :data:`sinks.wire.PUBLISHED_FIELD`), by
which an opt-out's delete keeps the rows published after its decision.

Pure functions from schemas to statements, tested as text against the migrations that
created the five kinds' tables, with the columns later migrations added to them
(tests/unit/test_ddl.py). Migrations stay plain versioned
files: ``python -m sinks.ddl`` prints a migration creating what no migration has created
yet for some kind (a kind added to c2c/kinds.py), and ``--write`` adds it to
sinks/migrations/ as the next version.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2c.kinds import LINKED_KINDS, EventKind
from c2c.schemas import SchemaLibrary
from sinks.migrate import MIGRATIONS_DIR, migrations, split_statements
from sinks.rows import DIM_PERSON_COLUMNS, PUBLISHED_AT
from sinks.wire import PUBLISHED_FIELD, SEPARATOR, wire_schema

__all__ = [
    "Column",
    "current_view_sql",
    "fact_columns",
    "fact_index_sql",
    "fact_settings_sql",
    "fact_table_sql",
    "kind_sqls",
    "main",
    "migration_text",
    "missing_kinds",
    "published_column_sql",
    "wire_sqls",
]

# The fact tables' minmax index of the publication time (migration 0014)
PUBLISHED_INDEX = "published_at_minmax"

# ClickHouse's Date holds 1970-01-01 to 2149-06-06; the wire's Date32 more. A date outside
# is refused, not wrapped (the views' throwIf).
_DATE_RANGE = "BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06')"
_REFUSED = (
    "'a linked message in this insert was cut short or too long, or holds a value out of "
    "its column''s range'"
)
_PRIMITIVE_WIRE = {
    "string": "String",
    "bytes": "String",
    "int": "Int32",
    "long": "Int64",
    "boolean": "Bool",
    "float": "Float32",
    "double": "Float64",
}


@dataclass(frozen=True)
class Column:
    """One column of a fact table: a leaf of the linked record.

    ``path`` is where it is in the record (``("attributes", "sex")``), ``wire`` its type as
    ClickHouse reads it from the wire (Nullable included), ``fact`` its type in the fact
    table, ``doc`` the field's doc (its comment), ``date`` whether it is a date (Date32 on
    the wire, Date in the table: range-checked by the views).
    """

    name: str
    path: tuple[str, ...]
    wire: str
    fact: str
    doc: str | None
    date: bool

    @property
    def expression(self) -> str:
        """Its value in a wire table's row: the column, or tupleElement of its tuples."""
        expression = self.path[0]
        for name in self.path[1:]:
            expression = f"tupleElement({expression}, '{name}')"
        return expression

    @property
    def selected(self) -> str:
        """:attr:`expression`, cast to the fact table's integer type where the wire's is
        wider (accurateCast: a value that does not fit is an error, not wrapped)."""
        wire_base = _unwrapped(self.wire)
        fact_base = _unwrapped(self.fact)
        if wire_base != fact_base and re.fullmatch(r"U?Int\d+", fact_base):
            return f"accurateCast({self.expression}, '{self.fact}')"
        return self.expression


def _unwrapped(kind: str) -> str:
    """``kind`` without LowCardinality(...) and Nullable(...)."""
    for wrapper in ("LowCardinality(", "Nullable("):
        if kind.startswith(wrapper):
            kind = _unwrapped(kind[len(wrapper) : -1])
    return kind


def _branches(kind: Any) -> tuple[Any, bool]:
    """(the type, whether null is allowed) of a field's type: a union with null or not."""
    if isinstance(kind, list):
        others = [branch for branch in kind if branch != "null"]
        if len(others) != 1:
            raise ValueError(f"a union of {kind!r} has no column type (null and one type only)")
        return others[0], len(others) < len(kind)
    return kind, False


def _wire_type(kind: Any) -> str:
    """The ClickHouse type that ClickHouse's Avro input reads ``kind`` into (enums as
    String, records as named Tuples, dates as Date32)."""
    kind, nullable = _branches(kind)
    if isinstance(kind, str):
        if kind not in _PRIMITIVE_WIRE:
            raise ValueError(f"{kind!r} is a name: resolve the schema first (SchemaLibrary)")
        base = _PRIMITIVE_WIRE[kind]
    else:
        base = _wire_named(kind)
    return f"Nullable({base})" if nullable else base


def _wire_named(kind: Mapping[str, Any]) -> str:
    logical = kind.get("logicalType")
    if logical == "uuid":
        return "UUID"
    if logical == "timestamp-millis":
        return "DateTime64(3, 'UTC')"
    if logical == "timestamp-micros":
        return "DateTime64(6, 'UTC')"
    if logical == "date":
        return "Date32"
    if logical == "decimal":
        return f"Decimal({kind['precision']}, {kind.get('scale', 0)})"
    if kind["type"] == "enum":
        return "String"
    if kind["type"] == "fixed":
        return f"FixedString({kind['size']})"
    if kind["type"] == "record":
        inner = ", ".join(f"{f['name']} {_wire_type(f['type'])}" for f in kind["fields"])
        return f"Tuple({inner})"
    return _PRIMITIVE_WIRE[kind["type"]]


def _fact_type(field: Mapping[str, Any], nullable: bool) -> str:
    """The fact table's type of a leaf field: enums LowCardinality, dates Date, decimals
    Decimal(18 or 38, scale), integers the least unsigned type their bounds fit."""
    kind, null = _branches(field["type"])
    nullable = nullable or null
    logical = kind.get("logicalType") if isinstance(kind, dict) else None
    name = kind if isinstance(kind, str) else kind["type"]
    if name == "enum":
        return "LowCardinality(Nullable(String))" if nullable else "LowCardinality(String)"
    if logical == "date":
        base = "Date"
    elif logical == "decimal":
        base = f"Decimal({18 if kind['precision'] <= 18 else 38}, {kind.get('scale', 0)})"
    elif name == "int" and logical is None:
        base = _integer(field.get("minimum"), field.get("maximum"))
    else:
        base = _wire_type(kind)
    return f"Nullable({base})" if nullable else base


def _integer(low: Any, high: Any) -> str:
    if isinstance(low, int) and isinstance(high, int) and low >= 0:
        for bits in (8, 16, 32):
            if high < 2**bits:
                return f"UInt{bits}"
    return "Int32"


def _inlined(schema: Any) -> Any:
    """``schema`` (fully resolved) with each reference to a named type replaced by its
    definition: SchemaLibrary.resolve defines a named type where it is first used and
    refers to it by name after (a second field of one enum type, say)."""
    defined: dict[str, Any] = {}

    def visit(node: Any, namespace: str | None) -> Any:
        if isinstance(node, str):
            full = node if "." in node or namespace is None else f"{namespace}.{node}"
            return defined.get(full, defined.get(node, node))
        if isinstance(node, list):
            return [visit(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            name = str(node["name"])
            if "." in name:
                namespace = name.rpartition(".")[0]
            else:
                namespace = node.get("namespace", namespace)
                name = f"{namespace}.{name}" if namespace else name
            defined[name] = node
            if node["type"] == "record":
                node["fields"] = [
                    {**field, "type": visit(field["type"], namespace)} for field in node["fields"]
                ]
        elif isinstance(node.get("type"), dict | list):
            node["type"] = visit(node["type"], namespace)
        return node

    return visit(schema, None)


def fact_columns(schema: Mapping[str, Any]) -> list[Column]:
    """The fact table's columns of the linked record ``schema`` (fully resolved), in its
    order: every leaf, records flattened (a leaf of a nullable record is nullable)."""
    schema = _inlined(schema)
    columns: list[Column] = []

    def walk(fields: Sequence[Mapping[str, Any]], path: tuple[str, ...], nullable: bool) -> None:
        for field in fields:
            kind, null = _branches(field["type"])
            where = (*path, str(field["name"]))
            if isinstance(kind, dict) and kind.get("type") == "record":
                walk(kind["fields"], where, nullable or null)
                continue
            columns.append(
                Column(
                    name=str(field["name"]),
                    path=where,
                    wire=_wire_type(field["type"]) if not nullable else _nullable_wire(field),
                    fact=_fact_type(field, nullable),
                    doc=field.get("doc"),
                    date=isinstance(kind, dict) and kind.get("logicalType") == "date",
                )
            )

    walk(schema["fields"], (), False)
    names = [column.name for column in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{schema.get('name')}: leaves {repeated} would be one column each")
    return columns


def _nullable_wire(field: Mapping[str, Any]) -> str:
    wire = _wire_type(field["type"])
    return wire if wire.startswith("Nullable(") else f"Nullable({wire})"


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def fact_table_sql(kind: EventKind, schema: Mapping[str, Any]) -> str:
    """CREATE TABLE of ``kind``'s fact table, from its linked record ``schema``."""
    lines = [
        f"    {c.name} {c.fact}" + (f" COMMENT {_quoted(c.doc)}" if c.doc else "") + ","
        for c in fact_columns(schema)
    ]
    return "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {kind.fact_table}",
            "(",
            *lines,
            "    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) "
            "COMMENT 'When the sink wrote the row',",
            f"    {published_column_sql()}",
            ")",
            "ENGINE = ReplacingMergeTree(ingested_at)",
            "ORDER BY event_id",
            f"COMMENT {_quoted(_table_comment(kind))}",
        ]
    )


def published_column_sql() -> str:
    """The fact tables' publication time column (migration 0013 added it): rows written
    before it have 1970, the time no decision precedes (any decision's delete takes them,
    as every delete did before)."""
    return (
        f"{PUBLISHED_AT} DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') "
        "COMMENT 'When its linked message was published (its Kafka timestamp, set by the "
        "resolver); 1970 for rows written before migration 0013'"
    )


def _table_comment(kind: EventKind) -> str:
    return f"{kind.linked_description or kind.description}, one row per linked event"


def fact_settings_sql(kind: EventKind) -> str:
    """The settings that lightweight deletes by patch parts need (migration 0007)."""
    return (
        f"ALTER TABLE {kind.fact_table} MODIFY SETTING "
        "enable_block_number_column = 1, enable_block_offset_column = 1"
    )


def fact_index_sql(kind: EventKind) -> str:
    """The minmax index of the publication time (migration 0014), by which the sink's
    look-up reads only the parts holding copies published lately (sinks/dedupe.py): a
    table ordered by event id keeps each part's times together, not its granules'."""
    return (
        f"ALTER TABLE {kind.fact_table} ADD INDEX IF NOT EXISTS {PUBLISHED_INDEX} "
        f"{PUBLISHED_AT} TYPE minmax GRANULARITY 1"
    )


def current_view_sql(kind: EventKind) -> str:
    """CREATE VIEW of ``kind``'s facts under each person's current id (migration 0002)."""
    return "\n".join(
        [
            f"CREATE VIEW IF NOT EXISTS {kind.current_view}",
            f"COMMENT '{kind.fact_table}, one row per event, person_key = the current person id'",
            "AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key",
            f"FROM {kind.fact_table} AS f FINAL",
            "LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m "
            "ON f.person_id = m.person_id",
        ]
    )


def wire_sqls(kind: EventKind, schema: Mapping[str, Any]) -> list[str]:
    """The wire table of ``kind`` and its two materialized views (migration 0008), from its
    linked record ``schema`` (fully resolved)."""
    writer = _inlined(wire_schema(schema))
    table = kind.wire_table
    separators = [str(field["name"]) for field in writer["fields"][-len(SEPARATOR) :]]
    columns = fact_columns(schema)
    by_name = {column.name: column for column in columns}
    create = "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {table}",
            "(",
            ",\n".join(f"    {f['name']} {_wire_type(f['type'])}" for f in writer["fields"]),
            ")",
            "ENGINE = Null",
            f"COMMENT 'Linked {kind.name} messages as they came off the wire (sinks/wire.py); "
            f"keeps nothing: its views write {kind.fact_table} and dim_person'",
        ]
    )
    pattern = " AND ".join(
        name if bit else f"NOT {name}" for name, bit in zip(separators, SEPARATOR, strict=True)
    )
    refused = [f"throwIf(NOT ({pattern})"] + [
        f"    OR NOT ifNull({c.expression} {_DATE_RANGE}, true)" for c in columns if c.date
    ]
    where = "WHERE " + "\n".join(refused) + f",\n    {_REFUSED}) = 0"
    facts = "\n".join(
        [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_facts TO {kind.fact_table}",
            "AS SELECT",
            ",\n".join(
                [
                    *(f"    {c.selected} AS {c.name}" for c in columns),
                    f"    {PUBLISHED_FIELD} AS {PUBLISHED_AT}",
                ]
            ),
            f"FROM {table}",
            where,
        ]
    )
    person = DIM_PERSON_COLUMNS[1:-1]  # between the person id and updated_at
    latest = ", ".join(by_name[name].selected for name in person)
    persons = "\n".join(
        [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_persons TO dim_person",
            "AS SELECT",
            f"    {DIM_PERSON_COLUMNS[0]},",
            *(f"    latest.{n} AS {name}," for n, name in enumerate(person, start=1)),
            f"    {DIM_PERSON_COLUMNS[-1]}",
            "FROM",
            "(",
            f"    SELECT person_id, argMax(tuple({latest}), event_time) AS latest, "
            "max(event_time) AS updated_at",
            f"    FROM {table}",
            f"    {where}",
            "    GROUP BY person_id",
            ")",
        ]
    )
    return [create, facts, persons]


def kind_sqls(kind: EventKind, library: SchemaLibrary | None = None) -> list[str]:
    """Every statement that creates ``kind``'s tables and views, in the order they can
    run: fact table, its settings, its index, current view, wire table and its views."""
    lib = library if library is not None else SchemaLibrary()
    schema = lib.resolve(kind.linked_schema)
    return [
        fact_table_sql(kind, schema),
        fact_settings_sql(kind),
        fact_index_sql(kind),
        current_view_sql(kind),
        *wire_sqls(kind, schema),
    ]


def missing_kinds(folder: Path = MIGRATIONS_DIR) -> list[EventKind]:
    """The linked kinds whose fact table no migration in ``folder`` creates."""
    created = {
        statement.split()[5]
        for migration in migrations(folder)
        for statement in split_statements(migration.text)
        if statement.startswith("CREATE TABLE IF NOT EXISTS ")
    }
    return [kind for kind in LINKED_KINDS if kind.fact_table not in created]


def migration_text(kinds: Sequence[EventKind], library: SchemaLibrary | None = None) -> str:
    """A migration creating the tables and views of ``kinds``."""
    names = ", ".join(kind.name for kind in kinds)
    header = [
        f"-- The tables and views of {names}, rendered from the linked schemas by",
        "-- `python -m sinks.ddl --write` (sinks/ddl.py). Once applied, never edited: a change",
        "-- to a linked schema is a new migration.",
        "",
    ]
    statements = [sql for kind in kinds for sql in kind_sqls(kind, library)]
    return "\n".join(header) + "\n" + ";\n\n".join(statements) + ";\n"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sinks.ddl [KIND ...] [--write]`: print (or write as the next migration)
    the statements of the given kinds, by default of those no migration has created."""
    parser = argparse.ArgumentParser(
        prog="python -m sinks.ddl",
        description="Print the migration that creates the tables and views of linked kinds "
        "(by default those no migration has created yet), or write it as the next one.",
    )
    parser.add_argument("kinds", nargs="*", help="kinds to render (default: the missing ones)")
    parser.add_argument("--write", action="store_true", help="add it to the migrations")
    parser.add_argument("--migrations", type=Path, default=MIGRATIONS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder: Path = args.migrations
    by_name = {kind.name: kind for kind in LINKED_KINDS}
    unknown = [name for name in args.kinds if name not in by_name]
    if unknown:
        parser.error(f"not linked kinds: {', '.join(unknown)}; choose from {', '.join(by_name)}")
    kinds = [by_name[name] for name in args.kinds] or missing_kinds(folder)
    if not kinds:
        print(f"every linked kind's tables are in {folder}: nothing to add")
        return 0
    text = migration_text(kinds)
    if not args.write:
        sys.stdout.write(text)
        return 0
    version = max((m.version for m in migrations(folder)), default=0) + 1
    path = folder / f"{version:04d}_{'_'.join(kind.name for kind in kinds)}.sql"
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

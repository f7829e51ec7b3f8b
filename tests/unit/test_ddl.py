"""The tables and views of every linked kind, rendered from its schema (sinks/ddl.py), as
text against the migrations that created them by hand.

What the renderer gives for the five kinds is, statement for statement, what migrations
0002 (current views), 0007 (the fact tables' settings) and 0008 (wire tables and their
views) hold. The fact tables of 0001 have the same columns, types, order, engine and key;
their comments differ: 0001's were written by hand, the renderer takes each field's doc
from the schema (and "DESCRIPTION, one row per linked event" for the table).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from c2c.kinds import LINKED_KINDS, EventKind
from c2c.schemas import SchemaLibrary
from sinks.ddl import (
    current_view_sql,
    fact_columns,
    fact_table_sql,
    kind_sqls,
    main,
    migration_text,
    missing_kinds,
    wire_sqls,
)
from sinks.migrate import MIGRATIONS_DIR, migrations, split_statements
from sinks.rows import ATTRIBUTE_COLUMNS, FACT_COLUMNS
from tests.grant_kind import grant_library

LIBRARY = SchemaLibrary()
STATEMENTS = {
    migration.name: split_statements(migration.text) for migration in migrations(MIGRATIONS_DIR)
}
_COMMENT = re.compile(r"\s?COMMENT '(?:[^']|'')*'")


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_wire_tables_and_their_views_are_migration_0008s(kind: EventKind) -> None:
    rendered = wire_sqls(kind, LIBRARY.resolve(kind.linked_schema))
    assert [sql.split("\n")[0] for sql in rendered] == [
        f"CREATE TABLE IF NOT EXISTS {kind.wire_table}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {kind.wire_table}_facts TO {kind.fact_table}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {kind.wire_table}_persons TO dim_person",
    ]
    for sql in rendered:
        assert sql in STATEMENTS["wire"]


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_current_views_and_settings_are_migrations_0002_and_0007s(kind: EventKind) -> None:
    assert current_view_sql(kind) in STATEMENTS["current_facts"]
    assert kind_sqls(kind)[1] in STATEMENTS["patch_part_deletes"]


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_fact_tables_are_migration_0001s_but_for_their_comments(kind: EventKind) -> None:
    rendered = fact_table_sql(kind, LIBRARY.resolve(kind.linked_schema))
    (written,) = [
        sql for sql in STATEMENTS["facts"] if sql.split("\n")[0] == rendered.split("\n")[0]
    ]
    assert _COMMENT.sub("", rendered) == _COMMENT.sub("", written)
    assert rendered != written  # the comments: docs here, hand-written there


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_fact_columns_are_the_sinks_rows(kind: EventKind) -> None:
    names = [column.name for column in fact_columns(LIBRARY.resolve(kind.linked_schema))]
    assert names == [*ATTRIBUTE_COLUMNS, *FACT_COLUMNS[kind.fact_table]]


def test_every_kinds_tables_are_in_the_migrations_and_the_generator_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert missing_kinds() == []
    assert main([]) == 0
    assert "nothing to add" in capsys.readouterr().out


def test_the_generator_writes_the_next_migration_for_what_none_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("0001_facts.sql", "0002_current_facts.sql"):
        shutil.copy(MIGRATIONS_DIR / name, tmp_path / name)
    # as if wage and credential were new kinds: no migration creates their tables
    kept = [
        sql
        for sql in split_statements((tmp_path / "0001_facts.sql").read_text())
        if not re.search(r"EXISTS fact_(wage|credential)\b", sql)
    ]
    (tmp_path / "0001_facts.sql").write_text(";\n\n".join(kept) + ";\n")
    assert [kind.name for kind in missing_kinds(tmp_path)] == ["wage", "credential"]

    assert main(["--write", "--migrations", str(tmp_path)]) == 0
    written = tmp_path / "0003_wage_credential.sql"
    assert capsys.readouterr().out == f"wrote {written}\n"
    wage, credential = LINKED_KINDS[3], LINKED_KINDS[4]
    assert split_statements(written.read_text()) == [*kind_sqls(wage), *kind_sqls(credential)]
    assert written.read_text() == migration_text([wage, credential])
    assert missing_kinds(tmp_path) == []


def test_a_new_kind_is_rendered_from_its_schema_alone(tmp_path: Path) -> None:
    """A kind of another shape (a long, a double, a nullable date, a required enum, a
    bounded int that needs 32 bits, an enum used twice, a timestamp in microseconds) gets
    its tables and views with no code of its own."""
    library = grant_library(tmp_path)
    grant = EventKind("grant", "GrantEvent", "Grants", linked_record="LinkedGrant")

    table, settings, view, wire, wire_facts, persons = kind_sqls(grant, library)
    assert table.splitlines()[14:21] == [
        "    grant_id Int64 COMMENT 'Grant''s number.',",
        "    hours Nullable(Float64),",
        "    ends Nullable(Date),",
        "    term LowCardinality(String),",
        "    cents UInt32,",
        "    next_term LowCardinality(Nullable(String)),",
        "    signed DateTime64(6, 'UTC'),",
    ]
    assert table.endswith("COMMENT 'Grants, one row per linked event'")
    assert settings.startswith("ALTER TABLE fact_grant MODIFY SETTING")
    assert view.splitlines()[0] == "CREATE VIEW IF NOT EXISTS grant_current"
    assert (
        "    facts Tuple(grant_id Int64, hours Nullable(Float64), ends Nullable(Date32), "
        "term String, cents Int32, next_term Nullable(String), signed DateTime64(6, 'UTC')),"
        in wire.splitlines()
    )
    assert "    accurateCast(tupleElement(facts, 'cents'), 'UInt32') AS cents," in wire_facts
    assert "    tupleElement(facts, 'grant_id') AS grant_id," in wire_facts
    assert (
        "    OR NOT ifNull(tupleElement(facts, 'ends') BETWEEN toDate32('1970-01-01') AND "
        "toDate32('2149-06-06'), true)," in wire_facts.splitlines()
    )
    assert "FROM wire_grant" in persons


def test_a_union_without_one_column_type_is_refused() -> None:
    schema = {
        "type": "record",
        "name": "Odd",
        "fields": [{"name": "either", "type": ["null", "int", "string"]}],
    }
    with pytest.raises(ValueError, match="null and one type only"):
        fact_columns(schema)

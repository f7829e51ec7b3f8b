"""The tables and views of every linked kind, rendered from its schema (sinks/ddl.py), as
text against the migrations that created them by hand.

What the renderer gives for the five kinds is, statement for statement, what the
migrations leave: each table and view as its last creating statement made it (0002's
current views, which 0013 replaces by the same; 0008, made again by 0013: wire tables
and their views), with the columns
later migrations added to it (``ALTER TABLE ... ADD COLUMN``, 0013's publication time),
and 0007's settings. The fact tables of 0001 have the same columns, types, order, engine
and key; their comments differ: 0001's were written by hand, the renderer takes each
field's doc from the schema (and "DESCRIPTION, one row per linked event" for the table).
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
    published_column_sql,
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
_CREATE = re.compile(
    r"^CREATE (?P<replace>OR REPLACE )?(?:TABLE|VIEW|MATERIALIZED VIEW) (?:IF NOT EXISTS )?(\w+)"
)
_DROP = re.compile(r"^DROP (?:TABLE|VIEW) (?:IF EXISTS )?(\w+)$")
_ADD_COLUMN = re.compile(r"^ALTER TABLE (\w+) ADD COLUMN (?:IF NOT EXISTS )?(.+)$", re.DOTALL)


def _migrated() -> dict[str, str]:
    """Each table and view the migrations leave -> the statement that would create it as
    it is: its last creating statement, with the columns each later ``ADD COLUMN`` added
    written last in its column list (where ClickHouse adds a column given no position)."""
    made: dict[str, str] = {}
    for migration in migrations(MIGRATIONS_DIR):
        for statement in split_statements(migration.text):
            if created := _CREATE.match(statement):
                if created.group("replace") or created.group(2) not in made:
                    made[created.group(2)] = statement
            elif dropped := _DROP.match(statement):
                made.pop(dropped.group(1), None)
            elif added := _ADD_COLUMN.match(statement):
                lines = made[added.group(1)].split("\n")
                end = lines.index(")")  # the column list's end
                lines[end - 1] += ","
                lines.insert(end, f"    {added.group(2)}")
                made[added.group(1)] = "\n".join(lines)
    return made


MIGRATED = _migrated()


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_wire_tables_and_their_views_are_the_migrations(kind: EventKind) -> None:
    rendered = wire_sqls(kind, LIBRARY.resolve(kind.linked_schema))
    names = [kind.wire_table, f"{kind.wire_table}_facts", f"{kind.wire_table}_persons"]
    assert [sql.split("\n")[0] for sql in rendered] == [
        f"CREATE TABLE IF NOT EXISTS {names[0]}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {names[1]} TO {kind.fact_table}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {names[2]} TO dim_person",
    ]
    assert rendered == [MIGRATED[name] for name in names]
    for sql in rendered:  # made again by 0013, with the publication time
        assert sql in STATEMENTS["publication_time"]
    assert rendered[0] not in STATEMENTS["wire"]
    assert "    wire_published AS published_at" in rendered[1].split("\n")


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_current_views_settings_and_index_are_migrations_0002_0007_0014s(
    kind: EventKind,
) -> None:
    rendered = current_view_sql(kind)
    assert rendered in STATEMENTS["current_facts"]
    # made again by 0013, to show the fact table's new column
    head = f"CREATE VIEW IF NOT EXISTS {kind.current_view}"
    replaced = rendered.replace(head, f"CREATE OR REPLACE VIEW {kind.current_view}", 1)
    assert rendered.startswith(head)
    assert MIGRATED[kind.current_view] == replaced
    assert kind_sqls(kind)[1] in STATEMENTS["patch_part_deletes"]
    assert kind_sqls(kind)[2] in STATEMENTS["published_at_index"]


@pytest.mark.parametrize("kind", LINKED_KINDS, ids=lambda kind: kind.name)
def test_fact_tables_are_the_migrations_but_for_their_comments(kind: EventKind) -> None:
    """0001's table with 0013's publication time added last."""
    rendered = fact_table_sql(kind, LIBRARY.resolve(kind.linked_schema))
    (written,) = [
        sql for sql in STATEMENTS["facts"] if sql.split("\n")[0] == rendered.split("\n")[0]
    ]
    migrated = MIGRATED[kind.fact_table]
    assert _COMMENT.sub("", rendered) == _COMMENT.sub("", migrated)
    assert rendered != migrated  # the comments: docs here, hand-written there
    assert _COMMENT.sub("", migrated) != _COMMENT.sub("", written)
    ingested = "    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote"
    assert rendered.split("\n")[-6:-4] == [f"{ingested} the row',", f"    {published_column_sql()}"]


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

    table, settings, index, view, wire, wire_facts, persons = kind_sqls(grant, library)
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
    assert index.startswith("ALTER TABLE fact_grant ADD INDEX IF NOT EXISTS published_at_minmax")
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

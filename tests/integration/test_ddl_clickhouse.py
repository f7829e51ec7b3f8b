"""The tables a new kind's rendered migration creates (sinks/ddl.py) work in ClickHouse
(embedded chdb): linked messages inserted as they came off the wire become its fact rows,
its current view's rows and dim_person's, and a date out of range refuses the insert."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.kinds import LINKED_KINDS, EventKind
from c2c.serde import AvroEncoder
from c2c.settings import Settings
from sinks.ddl import kind_sqls, migration_text
from sinks.migrate import migrate, split_statements
from sinks.wire import WireFormat
from sinks.writer import TableWriter
from tests.grant_kind import grant_library

pytestmark = pytest.mark.integration

SIGNED = datetime.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
READ = SIGNED.replace(tzinfo=None)  # as clickhouse-connect reads a DateTime64 in UTC
GRANT = EventKind("grant", "GrantEvent", "Workforce training grants", linked_record="LinkedGrant")


def _event(index: int, ends: datetime.date | None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=index + 1)),
        "event_time": datetime.datetime(2025, 3, index + 1, tzinfo=datetime.UTC),
        "provider": "other",
        "person_id": f"c2c-{index % 2:012d}",
        "attributes": {
            "birth_year": 1990 + index,
            "sex": "FEMALE",
            "demographics": None if index == 1 else {
                "race_ethnicity": "ASIAN",
                "county_fips": "06037",
                "foster_youth": None,
                "homeless": False,
                "socioeconomically_disadvantaged": True,
                "english_learner": None,
            },
        },
        "facts": {
            "grant_id": 2**40 + index,
            "hours": None if index == 2 else 12.5 * index,
            "ends": ends,
            "term": "SPRING",
            "cents": 1000 * index,
            "next_term": "FALL" if index == 0 else None,
            "signed": SIGNED,
        },
    }  # fmt: skip


def test_a_new_kinds_rendered_tables_take_its_messages(tmp_path: Path) -> None:
    library = grant_library(tmp_path)
    schema = library.resolve(GRANT.linked_schema)
    text = migration_text([GRANT], library)
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="g"))
    try:
        migrate(client, min_cell=11)  # dim_person and person_map come from migration 0001
        for statement in split_statements(text):
            client.command(statement)
        encoder = AvroEncoder(schema, 42)
        events = [
            _event(index, datetime.date(2026, 6, 30) if index else None) for index in range(3)
        ]
        writer = TableWriter(client)
        writer.insert_container(
            "wire_grant", WireFormat(schema).container([encoder.encode(e) for e in events])
        )

        rows = client.query(
            "SELECT toString(event_id), provider, person_id, birth_year, race_ethnicity, grant_id, "
            "hours, ends, term, cents, next_term, signed FROM grant_current ORDER BY event_id"
        ).result_rows
        assert rows == [
            ("00000000-0000-0000-0000-000000000001", "other", "c2c-000000000000", 1990, "ASIAN",
             2**40, 0.0, None, "SPRING", 0, "FALL", READ),
            ("00000000-0000-0000-0000-000000000002", "other", "c2c-000000000001", 1991, None,
             2**40 + 1, 12.5, datetime.date(2026, 6, 30), "SPRING", 1000, None, READ),
            ("00000000-0000-0000-0000-000000000003", "other", "c2c-000000000000", 1992, "ASIAN",
             2**40 + 2, None, datetime.date(2026, 6, 30), "SPRING", 2000, None, READ),
        ]  # fmt: skip
        persons = client.query(
            "SELECT person_id, birth_year, race_ethnicity FROM dim_person FINAL ORDER BY person_id"
        ).result_rows
        assert persons == [("c2c-000000000000", 1992, "ASIAN"), ("c2c-000000000001", 1991, None)]

        late = [_event(3, datetime.date(2160, 1, 1))]  # past Date's range: refused, not wrapped
        with pytest.raises(Exception, match=r"out of its column"):
            writer.insert_container(
                "wire_grant", WireFormat(schema).container([encoder.encode(e) for e in late])
            )
        assert client.query("SELECT count() FROM fact_grant").result_rows[0][0] == 3
    finally:
        client.close()


def test_the_five_kinds_rendered_tables_are_the_migrations_tables(tmp_path: Path) -> None:
    """Created from the renderer alone, in a database of their own, the five kinds' tables
    and views have the columns and types that the migrations gave them."""
    path = f"chdb://{tmp_path / 'ch'}"
    client = connect(Settings(clickhouse_url=path, clickhouse_database="migrated"))
    rendered = connect(Settings(clickhouse_url=path, clickhouse_database="rendered"))
    try:
        migrate(client, min_cell=11)
        rendered.command("CREATE TABLE person_map AS migrated.person_map")
        rendered.command("CREATE TABLE dim_person AS migrated.dim_person")
        for kind in LINKED_KINDS:
            for statement in kind_sqls(kind):
                rendered.command(statement)

        def shape(database: str, table: str) -> list[tuple[Any, ...]]:
            described = client.query(f"DESCRIBE TABLE {database}.{table}").result_rows
            return [(name, kind) for name, kind, *_ in described]

        for kind in LINKED_KINDS:
            wire = kind.wire_table
            for table in (
                kind.fact_table,
                kind.current_view,
                wire,
                f"{wire}_facts",
                f"{wire}_persons",
            ):
                assert shape("rendered", table) == shape("migrated", table), table
        tables = "SELECT count() FROM system.tables WHERE database = 'rendered'"
        assert rendered.query(tables).result_rows[0][0] == 2 + 5 * len(LINKED_KINDS)
    finally:
        rendered.close()
        client.close()


def test_every_cluster_statement_parses_in_the_clickhouse_compose_names(tmp_path: Path) -> None:
    """The cluster form of every statement (sinks/cluster.py) is ClickHouse's grammar, as
    the embedded engine (the version compose.yaml's servers run: tests/unit/test_compose.py)
    parses it, ON CLUSTER and engines included. Parsed only: no cluster runs here."""
    from sinks.access import definer_statements, role_statements
    from sinks.cluster import cluster_form
    from sinks.migrate import SCHEMA_MIGRATIONS, cluster_schema, migrations
    from sinks.optouts import PERSON_TABLES, delete_statement
    from sinks.public import public_view_statements

    schema = cluster_schema("c2c_cluster", "c2c")
    statements = [SCHEMA_MIGRATIONS]
    statements += [s for m in migrations() for s in split_statements(m.text)]
    statements += public_view_statements(11) + role_statements("c2c")
    statements += definer_statements(["public_outcome_completion"])
    statements += [delete_statement(table) for table in PERSON_TABLES]
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}"))
    try:
        parsed = 0
        for statement in statements:
            for sql in cluster_form(statement, schema):
                sql = sql.replace("%(ids)s", "('c2c-000000000001')")  # bound when it runs
                sql = sql.replace("%(upto)s", "[1767225600000]")
                [[formatted]] = client.query(
                    "SELECT formatQuery({sql:String})", parameters={"sql": sql}
                ).result_rows
                assert "ON CLUSTER c2c_cluster" in formatted, sql[:200]
                for engine in ("ENGINE = Replicated", "ENGINE = Distributed("):
                    assert (engine in sql) == (engine in formatted), sql[:200]
                parsed += 1
        assert parsed > len(statements)
    finally:
        client.close()

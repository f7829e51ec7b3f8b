"""The schema's cluster form (sinks/cluster.py), as text: every statement that `c2c sink
migrate` and the sink send, rendered from the same migrations, public views and roles.

Nothing here runs on a cluster (none runs here); tests/integration/test_ddl_clickhouse.py
parses each statement with the embedded ClickHouse of the version compose names."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sinks.access import ROLES, definer_statements, role_statements
from sinks.cluster import (
    KEEPER_PATH,
    ClusterFormError,
    ClusterSchema,
    cluster_form,
    replicated_tables,
    sharding_key,
)
from sinks.migrate import (
    SCHEMA_MIGRATIONS,
    cluster_schema,
    migrate,
    migrations,
    split_statements,
)
from sinks.optouts import PERSON_TABLES, delete_statement
from sinks.public import PUBLIC_VIEWS, public_view_statements

CLUSTER = "c2c_cluster"
SCHEMA = cluster_schema(CLUSTER, "c2c")
MIGRATION_STATEMENTS = [s for m in migrations() for s in split_statements(m.text)]
RUNTIME = [
    *public_view_statements(11),
    *definer_statements(["outcome_completion", "public_outcome_completion"]),
    *role_statements("c2c"),
    *(delete_statement(table) for table in PERSON_TABLES),
]
EVERY = [SCHEMA_MIGRATIONS, *MIGRATION_STATEMENTS, *RUNTIME]
RENDERED = [each for statement in EVERY for each in cluster_form(statement, SCHEMA)]
_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER c2c_cluster\n")


def _tables() -> dict[str, str]:
    """Every table the cluster form creates, by name: its statement."""
    return {m.group(1): sql for sql in RENDERED if (m := _CREATE.match(sql))}


def test_every_statement_runs_on_the_cluster() -> None:
    assert len(RENDERED) > len(EVERY)  # each MergeTree table became two
    for sql in RENDERED:
        assert f" ON CLUSTER {CLUSTER}" in sql.splitlines()[0], sql[:200]


def test_every_table_is_replicated_with_the_macros_or_distributed_or_null() -> None:
    tables = _tables()
    engines = {name: re.search(r"\)\s*ENGINE = (\w+)", sql) for name, sql in tables.items()}
    assert all(engines.values())
    kinds = {name: match.group(1) for name, match in engines.items() if match}
    local = {name for name, engine in kinds.items() if engine.startswith("Replicated")}
    distributed = {name for name, engine in kinds.items() if engine == "Distributed"}
    null = {name for name, engine in kinds.items() if engine == "Null"}
    assert local | distributed | null == set(tables)
    assert null == {name for name in tables if name.startswith("wire_")}
    assert {f"{name}_local" for name in distributed} == local
    assert distributed == set(SCHEMA.replicated)
    for name in local:
        assert kinds[name].endswith("MergeTree")
        assert f"ENGINE = {kinds[name]}('{KEEPER_PATH}', '{{replica}}'" in tables[name]
    assert KEEPER_PATH == "/clickhouse/tables/{shard}/{database}/{table}"


def test_each_distributed_table_has_its_local_tables_columns_and_shards_by_person() -> None:
    tables = _tables()
    for name in SCHEMA.replicated:
        local, distributed = tables[f"{name}_local"], tables[name]
        columns = distributed.split("\n(", 1)[1].rsplit(")\nENGINE", 1)[0]
        assert local.split("\n(", 1)[1].startswith(columns + ")")
        key = "cityHash64(person_id)" if re.search(r"\bperson_id String\b", columns) else None
        engine = f"Distributed('{CLUSTER}', 'c2c', '{name}_local', "
        assert engine in distributed
        if key is not None:
            assert f"{engine}{key})" in distributed
    # every table of a person's rows, and the opt-out tables, shard by the person id
    for name in (*PERSON_TABLES, "optout_person"):
        assert "cityHash64(person_id))" in tables[name]
    # the others by their sorting key: the copies a ReplacingMergeTree collapses meet
    assert "cityHash64(request_id, decision_id))" in tables["optout_audit"]
    assert "cityHash64(provider))" in tables["source_horizon"]
    assert "cityHash64(version))" in tables["schema_migrations"]


def test_single_server_statements_are_the_migration_files_unchanged() -> None:
    """What migrate sends a single server: the files' statements as they are (an applied
    migration is never edited: its checksum is in every database it ran on)."""
    plain = _Recorder()
    migrate(plain, min_cell=11, server=True)
    expected = [SCHEMA_MIGRATIONS, *MIGRATION_STATEMENTS, *public_view_statements(11)]
    expected += role_statements("c2c")
    assert plain.commands == expected
    assert all("ON CLUSTER" not in sql and "_local" not in sql for sql in plain.commands)


def test_migrate_on_a_cluster_sends_each_statements_cluster_form() -> None:
    recorder = _Recorder()
    migrate(recorder, min_cell=11, server=True, cluster=CLUSTER)
    statements = [SCHEMA_MIGRATIONS, *MIGRATION_STATEMENTS, *public_view_statements(11)]
    statements += role_statements("c2c")
    assert recorder.commands == [s for each in statements for s in cluster_form(each, SCHEMA)]
    assert recorder.inserted == [m.version for m in migrations()]  # through schema_migrations


def _reads(sql: str) -> set[str]:
    """The names a view's query reads (FROM and JOIN), CTE names among them."""
    return set(re.findall(r"\b(?:FROM|JOIN)\s+`?([A-Za-z_][A-Za-z0-9_]*)", sql))


def test_the_public_views_read_only_distributed_tables() -> None:
    """Through every view under them: a view reads views and Distributed tables, never a
    node's local table, so every reader sees every shard."""
    tables = _tables()
    views = {
        m.group(1): sql
        for sql in RENDERED
        if (m := re.match(r"^CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(\w+) ON", sql))
    }
    seen: set[str] = set()
    todo = [view.name for view in PUBLIC_VIEWS]
    read_tables: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert "_local" not in views[name]
        for read in _reads(views[name]):
            if read in views:
                todo.append(read)
            elif read in tables:
                read_tables.add(read)
    assert {f"public_{v.outcome}" for v in PUBLIC_VIEWS} <= seen
    assert read_tables  # the facts, person_map, source_horizon
    for name in read_tables:
        assert "\nENGINE = Distributed(" in tables[name], name


def test_materialized_views_write_distributed_tables_from_each_nodes_wire_table() -> None:
    """The sink inserts into a node's Null wire table; its views fire on that node and
    write the Distributed tables, which send each row to its person's shard."""
    tables = _tables()
    found = set()  # each made by 0008, and again by 0013 (sinks/migrations)
    for sql in RENDERED:
        view = re.match(
            r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) ON CLUSTER \S+ TO (\w+)", sql
        )
        if view is None:
            continue
        found.add(view.group(1))
        assert "\nENGINE = Distributed(" in tables[view.group(2)]
        (source,) = {name for name in _reads(sql) if name in tables}
        assert "\nENGINE = Null" in tables[source]
    assert len(found) == 10


def test_settings_and_deletes_go_to_the_local_tables_and_column_changes_to_both() -> None:
    settings = next(s for s in MIGRATION_STATEMENTS if "MODIFY SETTING" in s)
    table = settings.split()[2]
    assert cluster_form(settings, SCHEMA) == [
        settings.replace(f"{table} MODIFY", f"{table}_local ON CLUSTER {CLUSTER} MODIFY")
    ]
    # a column added by a later migration: the local tables first, then the Distributed one
    added = "ALTER TABLE fact_wage ADD COLUMN published_at DateTime64(3, 'UTC') DEFAULT now64(3)"
    assert cluster_form(added, SCHEMA) == [
        f"ALTER TABLE fact_wage_local ON CLUSTER {CLUSTER} ADD COLUMN published_at "
        "DateTime64(3, 'UTC') DEFAULT now64(3)",
        f"ALTER TABLE fact_wage ON CLUSTER {CLUSTER} ADD COLUMN published_at "
        "DateTime64(3, 'UTC') DEFAULT now64(3)",
    ]
    mutation = "ALTER TABLE dim_person DELETE WHERE person_id = ''"  # a mutation: the rows
    assert cluster_form(mutation, SCHEMA) == [
        f"ALTER TABLE dim_person_local ON CLUSTER {CLUSTER} DELETE WHERE person_id = ''"
    ]
    for table in PERSON_TABLES:
        (delete,) = cluster_form(delete_statement(table), SCHEMA)
        assert delete.startswith(f"DELETE FROM {table}_local ON CLUSTER {CLUSTER} WHERE ")
        assert delete.endswith("SETTINGS lightweight_delete_mode = 'lightweight_update'")
    (view,) = cluster_form("ALTER TABLE wage_current MODIFY SQL SECURITY DEFINER", SCHEMA)
    assert view == f"ALTER TABLE wage_current ON CLUSTER {CLUSTER} MODIFY SQL SECURITY DEFINER"


def test_roles_and_grants_are_on_every_node_with_the_local_tables_granted_too() -> None:
    rendered = [s for each in role_statements("c2c") for s in cluster_form(each, SCHEMA)]
    for role in ROLES:
        assert f"CREATE ROLE IF NOT EXISTS {role.name} ON CLUSTER {CLUSTER}" in rendered
    grants = [s for s in rendered if s.startswith("GRANT")]
    assert all(s.startswith(f"GRANT ON CLUSTER {CLUSTER} SELECT ON ") for s in grants)
    # a Distributed table read as the querying user reads its shards' local tables so
    assert f"GRANT ON CLUSTER {CLUSTER} SELECT ON c2c.dim_person_local TO researcher" in grants
    assert f"GRANT ON CLUSTER {CLUSTER} SELECT ON c2c.person_map_local TO researcher" in grants
    assert not any("public_" in s and "_local" in s for s in grants)


def test_a_new_migration_is_covered_or_refused_by_name(tmp_path: Path) -> None:
    for migration in migrations():
        (tmp_path / migration.path.name).write_text(migration.text)
    (tmp_path / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra\n(\n    person_id String,\n    n UInt8\n)\n"
        "ENGINE = ReplacingMergeTree\nORDER BY person_id;\n\n"
        "CREATE MATERIALIZED VIEW IF NOT EXISTS extra_mv TO extra AS SELECT person_id, 1 AS n "
        "FROM wire_wage;\n"
    )
    schema = cluster_schema(CLUSTER, "c2c", tmp_path)
    assert "extra" in schema.replicated
    create, _view = split_statements((tmp_path / "0099_extra.sql").read_text())
    local, distributed = cluster_form(create, schema)
    assert f"ENGINE = ReplicatedReplacingMergeTree('{KEEPER_PATH}', '{{replica}}')" in local
    assert "'extra_local', cityHash64(person_id))" in distributed
    for statement in ("OPTIMIZE TABLE fact_wage FINAL", "TRUNCATE TABLE fact_wage"):
        with pytest.raises(ClusterFormError, match="no cluster form for: "):
            cluster_form(statement, schema)
    with pytest.raises(ClusterFormError, match="writes TO a table"):
        cluster_form("CREATE MATERIALIZED VIEW m ENGINE = Memory AS SELECT 1", schema)


def test_replicated_tables_and_sharding_keys_come_from_the_statements_alone() -> None:
    assert replicated_tables(MIGRATION_STATEMENTS) == SCHEMA.replicated - {"schema_migrations"}
    assert sharding_key(SCHEMA_MIGRATIONS) == "cityHash64(version)"
    assert "wire_wage" not in SCHEMA.replicated  # Null: a table on every node
    one = ClusterSchema("one", "db", frozenset())
    assert cluster_form("CREATE ROLE IF NOT EXISTS r", one) == [
        "CREATE ROLE IF NOT EXISTS r ON CLUSTER one"
    ]
    # a comment holding what looks like an engine does not change the table's engine
    quoted = "CREATE TABLE t\n(\n    a String COMMENT 'ENGINE = MergeTree, (x'\n)\nENGINE = Null"
    assert replicated_tables([quoted]) == frozenset()


class _Recorder:
    """A stand-in ClickHouse client that keeps the statements it is sent; every query
    finds nothing (a new database) but its name."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.inserted: list[int] = []

    def command(self, sql: str, parameters: Any = None) -> None:
        self.commands.append(sql)

    def query(self, sql: str, parameters: Any = None) -> Any:
        rows: Sequence[Sequence[Any]] = (
            [["c2c"]] if "currentDatabase()" in sql.split("FROM")[0] else []
        )
        return type("Result", (), {"result_rows": rows})()

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Any = None) -> None:
        assert table == "schema_migrations"
        self.inserted += [int(row[0]) for row in rows]


def test_an_engines_arguments_are_kept_whole() -> None:
    statement = (
        "CREATE TABLE IF NOT EXISTS t\n(\n    k String,\n    v DateTime\n)\n"
        "ENGINE = ReplacingMergeTree(toUInt64(v))\nORDER BY (k, v)\n"
        "SETTINGS index_granularity = 1024"
    )
    local, distributed = cluster_form(statement, ClusterSchema("c", "db", frozenset({"t"})))
    assert local.endswith(
        f"ENGINE = ReplicatedReplacingMergeTree('{KEEPER_PATH}', '{{replica}}', toUInt64(v))\n"
        "ORDER BY (k, v)\nSETTINGS index_granularity = 1024"
    )
    assert distributed.endswith("ENGINE = Distributed('c', 'db', 't_local', cityHash64(k, v))")

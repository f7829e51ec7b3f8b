"""Versioned migrations of the ClickHouse schema, and the public views.

Migrations are the files ``sinks/migrations/NNNN_name.sql``, applied once each, in order,
and recorded in ``schema_migrations`` (version, name, checksum, applied_at). A file already
applied that has since changed is an error: write a new migration instead. The public_*
views are not versioned: they are re-created on every run from the suppression threshold
in settings (``C2C_SUPPRESSION_MIN_CELL``), so changing it needs no migration.

On a cluster (``C2C_CLICKHOUSE_CLUSTER``) each of these statements runs in its cluster form
(:func:`sinks.cluster.cluster_form`); on a single server, exactly as written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2c.errors import C2CError
from sinks.access import definer_statements, role_statements
from sinks.cluster import ClusterSchema, cluster_form, replicated_tables
from sinks.public import public_view_statements

__all__ = [
    "SCHEMA_MIGRATIONS",
    "Migration",
    "MigrationError",
    "cluster_schema",
    "migrate",
    "migrations",
    "split_statements",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
    "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = MergeTree ORDER BY version "
    "COMMENT 'Migrations applied by `c2c sink migrate`'"
)


class MigrationError(C2CError):
    """A migration could not be applied, or an applied one was edited."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="sink.migration")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; MigrationError for a misnamed or repeated one."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def split_statements(text: str) -> list[str]:
    """The statements of a migration: ';' at a line's end ends one; '--' lines are comments."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().removesuffix(";").strip()
            if statement:
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def cluster_schema(cluster: str, database: str, folder: Path = MIGRATIONS_DIR) -> ClusterSchema:
    """The schema of ``folder``'s migrations on ``cluster``, in ``database``: which tables
    are Replicated local tables under Distributed ones (those of every migration, applied
    or not, and ``schema_migrations``)."""
    statements = [SCHEMA_MIGRATIONS]
    statements += [s for migration in migrations(folder) for s in split_statements(migration.text)]
    return ClusterSchema(cluster, database, replicated_tables(statements))


def migrate(
    client: Any,
    *,
    min_cell: int,
    folder: Path = MIGRATIONS_DIR,
    server: bool = False,
    cluster: str | None = None,
) -> list[str]:
    """Apply pending migrations, re-create the public views, make every view run with its
    definer's rights, and on a ``server`` create the roles (sinks/access.py); names the
    migrations it applied. With ``cluster`` (a server's cluster name), every statement runs
    in its cluster form (sinks/cluster.py)."""
    schema: ClusterSchema | None = None
    if cluster is not None:
        database = str(client.query("SELECT currentDatabase()").result_rows[0][0])
        schema = cluster_schema(cluster, database, folder)

    def run(statement: str) -> None:
        for each in [statement] if schema is None else cluster_form(statement, schema):
            client.command(each)

    run(SCHEMA_MIGRATIONS)
    applied = {
        int(row[0]): (str(row[1]), str(row[2]))
        for row in client.query("SELECT version, name, checksum FROM schema_migrations").result_rows
    }
    done = []
    for migration in migrations(folder):
        if migration.version in applied:
            if applied[migration.version][1] != migration.checksum:
                raise MigrationError(
                    f"{migration.path.name} was applied (checksum {applied[migration.version][1]}) "
                    "and has changed since; add a new migration instead of editing this one"
                )
            continue
        for number, statement in enumerate(split_statements(migration.text), start=1):
            try:
                run(statement)
            except Exception as exc:  # clickhouse-connect raises several types
                raise MigrationError(
                    f"{migration.path.name}, statement {number}: {exc}".splitlines()[0]
                ) from exc
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration.path.name)
    for statement in public_view_statements(min_cell):
        run(statement)
    views = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View'"
    ).result_rows
    access = definer_statements(str(row[0]) for row in views)
    if server:
        access += role_statements(str(client.query("SELECT currentDatabase()").result_rows[0][0]))
    for statement in access:
        run(statement)
    return done

"""Who may read what in ClickHouse: three roles, declared once, rendered for each engine.

- ``public_reader``: the public zone, the suppressed ``public_*`` views only.
- ``researcher``: authorized researchers, de-identified microdata (facts, the person
  dimension, merges, the current-person views) and the unsuppressed ``outcome_*`` tables;
  not who opted out (``optout_*``) nor the migrations' bookkeeping.
- ``operator``: every table of the database, the opt-out audit among them, and the system
  tables (lag, parts, queries).

On a server, :func:`migrate <sinks.migrate.migrate>` creates the roles and their grants
(:func:`role_statements`); an administrator grants a role to each user. Embedded chdb creates
no users or roles with SQL (it has no writable access storage): its roles come from a users
file given at start (:func:`users_xml`, ``config-file=`` in the connection string), and every
reader is the one local process, so there ``SET ROLE`` narrows a connection but does not
guard against the process itself; outside readers reach it only through the sink's web port
(loopback by default). Either way the views run with their definer's rights (``SQL SECURITY
DEFINER``, :func:`definer_statements`), so that a role granted a view needs no grant on
what the view reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from sinks.rows import FACT_TABLES

__all__ = ["ROLES", "Role", "definer_statements", "role_statements", "users_xml"]


@dataclass(frozen=True)
class Role:
    """A role and what it may read: table names or name prefixes ending in ``*`` in the
    project's database; ``system`` adds the system tables."""

    name: str
    description: str
    reads: tuple[str, ...]
    system: bool = False


_CURRENT_VIEWS = tuple(f"{table.removeprefix('fact_')}_current" for table in FACT_TABLES.values())

ROLES: tuple[Role, ...] = (
    Role("public_reader", "the public: suppressed aggregates (public_*) only", ("public_*",)),
    Role(
        "researcher",
        "authorized researchers: de-identified microdata and unsuppressed outcomes",
        (
            "public_*",
            "outcome_*",
            "fact_*",
            "dim_person",
            "person_map",
            "person_current",
            *_CURRENT_VIEWS,
        ),
    ),
    Role("operator", "operators: every table, the opt-out audit, system tables", ("*",), True),
)


def _grants(role: Role, database: str) -> list[str]:
    grants = [f"GRANT SELECT ON {database}.{pattern} TO {role.name}" for pattern in role.reads]
    if role.system:
        grants.append(f"GRANT SELECT ON system.* TO {role.name}")
    return grants


def role_statements(database: str, roles: Iterable[Role] = ROLES) -> list[str]:
    """CREATE ROLE and GRANT statements for a ClickHouse server (idempotent)."""
    statements: list[str] = []
    for role in roles:
        statements.append(f"CREATE ROLE IF NOT EXISTS {role.name}")
        statements += _grants(role, database)
    return statements


def definer_statements(views: Iterable[str]) -> list[str]:
    """Make each view run with its definer's rights."""
    return [f"ALTER TABLE {view} MODIFY SQL SECURITY DEFINER" for view in views]


def users_xml(database: str, roles: Iterable[Role] = ROLES) -> str:
    """A users file for embedded chdb: the roles, all granted to chdb's one user
    (``default``), which also keeps full rights through an ``admin`` role so that the
    migrations and the sink work; ``SET ROLE name`` then narrows a connection to one role."""
    roles = tuple(roles)
    parts = [
        "<clickhouse>",
        "  <profiles><default/></profiles><quotas><default/></quotas>",
        "  <roles>",
        "    <admin><grants><query>GRANT ALL ON *.* WITH GRANT OPTION</query></grants></admin>",
    ]
    for role in roles:
        queries = "".join(
            f"<query>{escape(grant.removesuffix(f' TO {role.name}'))}</query>"
            for grant in _grants(role, database)
        )
        parts.append(f"    <{role.name}><grants>{queries}</grants></{role.name}>")
    granted = ", ".join(["admin", *(role.name for role in roles)])
    parts += [
        "  </roles>",
        "  <users><default><password></password><networks><ip>::/0</ip></networks>",
        "    <profile>default</profile><quota>default</quota>",
        f"    <grants><query>GRANT {granted}</query></grants></default></users>",
        "</clickhouse>",
    ]
    return "\n".join(parts) + "\n"

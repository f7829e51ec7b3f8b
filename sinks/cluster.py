"""The schema on a ClickHouse cluster: each statement of the migrations, the public views,
the roles and the opt-out deletes, turned into its cluster form.

With ``C2C_CLICKHOUSE_CLUSTER`` set, every statement runs ``ON CLUSTER`` and each table of
the MergeTree family becomes a pair:

- ``NAME_local``: the rows, ``Replicated*MergeTree`` with its Keeper path under the
  ``{shard}`` and ``{replica}`` macros of each node (:data:`KEEPER_PATH`);
- ``NAME``: a ``Distributed`` table over them with the same columns, which routes inserts
  to a shard by ``cityHash64(person_id)`` (a person's rows live together on one shard;
  a table without a person id by a hash of its sorting key, so that the copies a
  ReplacingMergeTree collapses meet) and reads from every shard.

Everything else keeps its name, so that every view, grant and query of the single server
reads the Distributed tables unchanged. Null tables (the wire tables) and views exist on
every node; a materialized view fires on the node that took the insert and writes the
Distributed table it names, which sends the rows to their person's shard. Column changes
(``ALTER TABLE ... ADD|DROP|MODIFY|COMMENT|RENAME COLUMN``) go to both tables of a pair,
other changes (settings) and lightweight deletes to the local one.

Pure text: :func:`cluster_form` of one statement, given the :class:`ClusterSchema` (the
cluster, the database, and which tables are pairs, found from every migration by
:func:`replicated_tables`). A statement of a kind it does not know is refused
(:class:`ClusterFormError`), so a new migration that needs a new rule fails its test
(tests/unit/test_cluster.py) rather than running half-clustered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from c2c.errors import C2CError

__all__ = [
    "KEEPER_PATH",
    "LOCAL_SUFFIX",
    "ClusterFormError",
    "ClusterSchema",
    "cluster_form",
    "replicated_tables",
    "sharding_key",
]

# The Keeper path of each replicated table: one per shard, the same for a shard's replicas
# ({shard} and {replica} are each node's macros; {database} and {table} ClickHouse's own).
KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
LOCAL_SUFFIX = "_local"

_NAME = r"`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)`?"
_CREATE_TABLE = re.compile(rf"^CREATE TABLE (?P<exists>IF NOT EXISTS )?{_NAME}\s*\(")
_CREATE_VIEW = re.compile(
    rf"^CREATE (?P<kind>(?:OR REPLACE )?VIEW|MATERIALIZED VIEW) (?P<exists>IF NOT EXISTS )?{_NAME}"
)
_ALTER = re.compile(rf"^ALTER TABLE {_NAME} (?P<rest>.*)$", re.DOTALL)
_COLUMN_CHANGE = re.compile(r"^(?:(?:ADD|DROP|MODIFY|COMMENT|RENAME) COLUMN|MODIFY COMMENT)\b")
_DELETE = re.compile(rf"^DELETE FROM {_NAME} (?P<rest>WHERE .*)$", re.DOTALL)
_DROP = re.compile(rf"^DROP (?P<kind>TABLE|VIEW) (?P<exists>IF EXISTS )?{_NAME}(?P<rest>.*)$")
_ROLE = re.compile(r"^CREATE ROLE (?:IF NOT EXISTS )?[A-Za-z_][A-Za-z0-9_]*$")
_GRANT = re.compile(
    r"^GRANT (?P<what>.+?) ON (?P<database>[A-Za-z_][A-Za-z0-9_]*)\."
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*|\*|[A-Za-z_][A-Za-z0-9_]*\*) TO (?P<to>.+)$"
)
_ENGINE = re.compile(r"\bENGINE = (?P<engine>\w+)")
_ORDER_BY = re.compile(r"\bORDER BY (?P<key>\([^()]*\)|\w+)")


class ClusterFormError(C2CError):
    """A statement that has no cluster form here (a kind of statement without a rule)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="sink.cluster")


@dataclass(frozen=True)
class ClusterSchema:
    """The cluster a schema lives on: its name in the servers' ``remote_servers``, the
    database, and the tables kept as Replicated local tables under a Distributed one."""

    cluster: str
    database: str
    replicated: frozenset[str]

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER {self.cluster}"


def _unquoted(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, depth of parentheses after it) of each character of ``text``
    from ``start`` that is outside quotes ('it''s' and 'it\\'s' are one quoted text)."""
    depth = 0
    quoted = False
    index = start
    while index < len(text):
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == "'":
                if text[index + 1 : index + 2] == "'":
                    index += 1
                else:
                    quoted = False
        elif char == "'":
            quoted = True
        else:
            depth += {"(": 1, ")": -1}.get(char, 0)
            yield index, char, depth
        index += 1


def _closing(text: str, opening: int) -> int:
    """The index of the parenthesis closing the one at ``opening``."""
    for index, char, depth in _unquoted(text, opening):
        if char == ")" and depth == 0:
            return index
    raise ClusterFormError(f"unbalanced parentheses in: {text[:80]}...")


def _top_level(text: str) -> list[str]:
    """``text`` cut at its commas outside parentheses and quotes."""
    cuts = [index for index, char, depth in _unquoted(text) if char == "," and depth == 0]
    return [text[a + 1 : b] for a, b in zip([-1, *cuts], [*cuts, len(text)], strict=True)]


@dataclass(frozen=True)
class _Table:
    """A CREATE TABLE taken apart: its head (up to the name), name, columns (the text
    between the parentheses) and what follows them (engine, keys, comment, settings)."""

    head: str
    name: str
    columns: str
    tail: str

    @classmethod
    def of(cls, statement: str) -> _Table | None:
        match = _CREATE_TABLE.match(statement)
        if match is None:
            return None
        opening = match.end() - 1
        closing = _closing(statement, opening)
        return cls(
            f"CREATE TABLE {match.group('exists') or ''}",
            match.group("name"),
            statement[opening + 1 : closing],
            statement[closing + 1 :],
        )

    @property
    def engine(self) -> tuple[str, str | None, slice]:
        """The engine's name, its arguments (None without parentheses), and where the
        whole of it is in :attr:`tail` (after the columns: a column's comment is never
        taken for it)."""
        match = _ENGINE.search(self.tail)
        if match is None:
            raise ClusterFormError(f"CREATE TABLE {self.name} names no engine")
        if self.tail[match.end() : match.end() + 1] != "(":
            return match.group("engine"), None, slice(match.start(), match.end())
        closing = _closing(self.tail, match.end())
        args = self.tail[match.end() + 1 : closing]
        return match.group("engine"), args, slice(match.start(), closing + 1)

    @property
    def merge_tree(self) -> bool:
        return self.engine[0].endswith("MergeTree")

    @property
    def column_names(self) -> list[str]:
        return [part.split()[0].strip("`") for part in _top_level(self.columns) if part.strip()]

    @property
    def comment(self) -> str:
        found = re.search(r"\bCOMMENT '(?:[^'\\]|''|\\.)*'\s*$", self.tail)
        return found.group(0).strip() if found else ""


def replicated_tables(statements: Iterable[str]) -> frozenset[str]:
    """The tables that ``statements`` (every migration's, in order) create with an engine
    of the MergeTree family: on a cluster, each is a Replicated local table and a
    Distributed one."""
    return frozenset(
        table.name for table in map(_Table.of, statements) if table is not None and table.merge_tree
    )


def sharding_key(statement: str) -> str:
    """The Distributed table's sharding key of the CREATE TABLE ``statement``: the person
    id's hash where the table has one, else its sorting key's hash."""
    table = _Table.of(statement)
    if table is None:
        raise ClusterFormError(f"not a CREATE TABLE: {statement[:80]}")
    if "person_id" in table.column_names:
        return "cityHash64(person_id)"
    order = _ORDER_BY.search(table.tail)
    if order is None:
        raise ClusterFormError(f"{table.name} has no ORDER BY to shard by")
    return f"cityHash64({order.group('key').strip('()')})"


def _create_table(statement: str, table: _Table, schema: ClusterSchema) -> list[str]:
    on = schema.on_cluster
    if not table.merge_tree:  # Null and other per-node tables: one on every node
        return [f"{table.head}{table.name} {on}\n({table.columns}){table.tail}"]
    engine, args, where = table.engine
    local = f"{table.name}{LOCAL_SUFFIX}"
    replicated = f"Replicated{engine}('{KEEPER_PATH}', '{{replica}}'" + (
        f", {args})" if args else ")"
    )
    tail = f"{table.tail[: where.start]}ENGINE = {replicated}{table.tail[where.stop :]}"
    distributed = (
        f"Distributed('{schema.cluster}', '{schema.database}', '{local}', "
        f"{sharding_key(statement)})"
    )
    comment = f"\n{table.comment}" if table.comment else ""
    return [
        f"{table.head}{local} {on}\n({table.columns}){tail}",
        f"{table.head}{table.name} {on}\n({table.columns})\nENGINE = {distributed}{comment}",
    ]


def cluster_form(statement: str, schema: ClusterSchema) -> list[str]:
    """The statements that do on ``schema``'s cluster what ``statement`` does on a single
    server, in the order they run. Raises :class:`ClusterFormError` for a statement of a
    kind without a rule here."""
    statement = statement.strip()
    on = schema.on_cluster
    table = _Table.of(statement)
    if table is not None:
        return _create_table(statement, table, schema)
    view = _CREATE_VIEW.match(statement)
    if view is not None:
        if view.group("kind") == "MATERIALIZED VIEW" and not re.search(
            rf"^CREATE MATERIALIZED VIEW [^\n]*{view.group('name')} TO ", statement
        ):
            raise ClusterFormError(
                f"materialized view {view.group('name')} keeps its own table; on a cluster a "
                "materialized view writes TO a table (a Distributed one, to reach every shard)"
            )
        return [f"{statement[: view.end()]} {on}{statement[view.end() :]}"]
    alter = _ALTER.match(statement)
    if alter is not None:
        name, rest = alter.group("name"), alter.group("rest")
        if name not in schema.replicated:
            return [f"ALTER TABLE {name} {on} {rest}"]
        local = [f"ALTER TABLE {name}{LOCAL_SUFFIX} {on} {rest}"]
        return [*local, f"ALTER TABLE {name} {on} {rest}"] if _COLUMN_CHANGE.match(rest) else local
    delete = _DELETE.match(statement)
    if delete is not None:
        name = delete.group("name")
        target = f"{name}{LOCAL_SUFFIX}" if name in schema.replicated else name
        return [f"DELETE FROM {target} {on} {delete.group('rest')}"]
    drop = _DROP.match(statement)
    if drop is not None:
        head = f"DROP {drop.group('kind')} {drop.group('exists') or ''}"
        name, rest = drop.group("name"), drop.group("rest")
        dropped = [f"{head}{name} {on}{rest}"]
        if name in schema.replicated:
            dropped.append(f"{head}{name}{LOCAL_SUFFIX} {on}{rest}")
        return dropped
    if _ROLE.match(statement):
        return [f"{statement} {on}"]
    grant = _GRANT.match(statement)
    if grant is not None:
        what, database, name, to = grant.group("what", "database", "name", "to")
        names = [name, f"{name}{LOCAL_SUFFIX}"] if name in schema.replicated else [name]
        return [f"GRANT {on} {what} ON {database}.{n} TO {to}" for n in names]
    raise ClusterFormError(
        f"no cluster form for: {statement.splitlines()[0][:120]}; add its rule to "
        "sinks/cluster.py (cluster_form)"
    )

"""Where the explorer's numbers come from: a query (:mod:`sinks.explorer.query`) run on
ClickHouse, and when each table last changed. Two ways in, as in :mod:`sinks.reading`:
ClickHouse itself (:class:`DirectSource`), or, while a running sink holds embedded
ClickHouse, the sink's ``/explore/*`` pages (:class:`SinkSource`), which run the same
functions. :func:`open_source` chooses."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

from c2c.clickhouse import connect, embedded_owner, embedded_path
from c2c.errors import C2CError, ServiceError
from c2c.settings import Settings
from sinks.explorer.measures import MEASURES
from sinks.explorer.query import Query, QueryRefused, Table, columns, parse_query, render_sql
from sinks.reading import ask

__all__ = ["DirectSource", "SinkSource", "Source", "open_source", "read_freshness", "run_query"]


def run_query(client: Any, query: Query) -> Table:
    """The query's rows, read through ``client`` (its SQL names one public view)."""
    sql, params = render_sql(query)
    result = client.query(sql, parameters=params)
    rows = [[_plain(v) for v in row] for row in result.result_rows]
    return Table(columns(query), rows)


def read_freshness(client: Any, database: str) -> dict[str, Any]:
    """When each fact table last took a row (ISO time, None: none yet), and each public
    view the latest of its sources': ``{"tables": {...}, "views": {...}, "version": str}``;
    ``version`` changes whenever a table does."""
    facts = sorted({t for m in MEASURES for t in m.sources})
    present = {
        name
        for [name] in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} "
            "AND name IN {tables:Array(String)}",
            parameters={"db": database, "tables": facts},
        ).result_rows
    }
    tables: dict[str, str | None] = {t: None for t in facts}
    if present:
        union = " UNION ALL ".join(
            f"SELECT '{name}' AS t, maxOrNull(ingested_at) AS at, count() AS n "
            f"FROM `{database}`.`{name}`"
            for name in sorted(present)
        )
        counts = []
        for name, at, n in client.query(union).result_rows:
            if at is not None:
                tables[name] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
            counts.append(f"{name}:{n}")
    views = {}
    for m in MEASURES:
        times = [at for t in m.sources if (at := tables[t]) is not None]
        views[m.table] = max(times) if times else None
    version = "|".join(f"{t}={tables[t]}" for t in facts)
    return {"tables": tables, "views": views, "version": version}


class Source(Protocol):
    """What the explorer asks; answers are plain data."""

    def query(self, query: Query) -> Table: ...

    def freshness(self) -> dict[str, Any]: ...


class DirectSource:
    """Reads ClickHouse through ``client`` (``lock``: a client shared with a writer, the
    sink's own); ``meta``: the client freshness is read with (default ``client``)."""

    def __init__(
        self,
        client: Any,
        *,
        database: str,
        lock: threading.Lock | None = None,
        meta: Any = None,
    ) -> None:
        self.client = client
        self.meta = meta if meta is not None else client
        self.database = database
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()

    def query(self, query: Query) -> Table:
        table: Table = self._ask(lambda: run_query(self.client, query))
        return table

    def freshness(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._ask(lambda: read_freshness(self.meta, self.database))
        return answer

    def close(self) -> None:
        for client in {id(self.client): self.client, id(self.meta): self.meta}.values():
            client.close()

    def _ask(self, read: Any) -> Any:
        return ask(self._lock, read, "ClickHouse, for the explorer,")


class SinkSource:
    """Asks a running sink's ``/explore/query`` and ``/explore/freshness`` at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def query(self, query: Query) -> Table:
        answer = self._get("/explore/query?" + urllib.parse.urlencode(query.params()))
        return Table(answer["columns"], answer["rows"])

    def freshness(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._get("/explore/freshness")
        return answer

    def close(self) -> None:
        return

    def _get(self, page: str) -> Any:
        url = f"{self.base_url}{page}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = json.loads(exc.read()).get("error", str(exc))
            if exc.code == 400:
                raise QueryRefused(message) from exc
            raise C2CError(message, code="clickhouse.query") from exc
        except OSError as exc:
            raise ServiceError(
                f"the running sink holds embedded ClickHouse, and nothing answers at {url} "
                f"({exc}); is C2C_SINK_WEB_PORT right?",
                code="outcomes.sink_unreachable",
            ) from exc


def sink_page(client: Any, database: str, path: str, query: str) -> dict[str, Any]:
    """The sink's answer to ``/explore/...`` (its web port calls this under its lock);
    QueryRefused for a query off the whitelist, KeyError for no such page."""
    if path == "/explore/freshness":
        return read_freshness(client, database)
    if path == "/explore/query":
        parsed = parse_query(urllib.parse.parse_qsl(query, keep_blank_values=True))
        return run_query(client, parsed).to_dict()
    raise KeyError(path)


def open_source(settings: Settings) -> DirectSource | SinkSource:
    """The sink's pages while a running sink holds embedded ClickHouse, else ClickHouse: on
    a server the queries run as the ``public_reader`` role (freshness, which reads only the
    fact tables' latest times, on a connection of its own)."""
    path = embedded_path(settings)
    if path is not None and embedded_owner(path) is not None:
        return SinkSource(f"http://{settings.sink_web_host}:{settings.sink_web_port}")
    client = connect(settings)
    # one query at a time on a client: chdb's connection, and an HTTP session (which
    # holds the role), take one at a time
    lock = threading.Lock()
    if settings.clickhouse_embedded:
        # chdb runs every query as its one user (sinks/access.py): the whitelist is the guard
        return DirectSource(client, database=settings.clickhouse_database, lock=lock)
    public = connect(settings)
    public.command("SET ROLE public_reader")
    return DirectSource(public, database=settings.clickhouse_database, meta=client, lock=lock)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):  # the view's list of suppressed cells
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)

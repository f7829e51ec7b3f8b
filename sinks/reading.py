"""Reading what the sink wrote, from any process: outcome tables, the opt-out audit and the
sink's freshness.

One reader, two ways in. Embedded ClickHouse (chdb) lets one process open a path at a time, so
while a running sink holds it, other processes ask the sink's web pages
(:class:`SinkPagesReader`); otherwise they read ClickHouse themselves
(:class:`DirectReader`). The sink's pages answer with a :class:`DirectReader` on its own
client, so both ways give the same JSON. :func:`open_reader` chooses; `c2c outcomes`, `c2c
optout status` and `c2c status` use it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from c2c.clickhouse import connect, embedded_owner, embedded_path
from c2c.errors import C2CError, ServiceError
from c2c.settings import Settings
from sinks.audit import read_audit
from sinks.horizons import declare_horizon, read_horizons
from sinks.optouts import request_key
from sinks.outcomes import read_outcome
from sinks.rows import FACT_TABLES

__all__ = [
    "DirectReader",
    "Freshness",
    "SinkPagesReader",
    "SinkReader",
    "ask",
    "open_reader",
    "read_freshness",
]

# Seconds since the newest row reached ClickHouse (None: no row yet), and where that was read
# ("sink": its web port; "clickhouse": the fact tables).
Freshness = tuple[float | None, str]

T = TypeVar("T")


class SinkReader(Protocol):
    """What readers of the sink's tables ask; every answer is JSON-ready."""

    def outcome(self, name: str) -> dict[str, Any]:
        """Outcome table ``name`` (``outcome_*`` or ``public_*``): name, columns, rows."""
        ...

    def audit(self, request_id: str) -> dict[str, Any]:
        """The opt-out audit of ``request_id``: ``{"request_id", "decisions": [...]}``."""
        ...

    def freshness(self) -> Freshness: ...

    def declare_horizon(self, provider: str, through: date, *, declared_by: str = "") -> None:
        """Record ``provider``'s horizon (sinks/horizons.py)."""
        ...

    def horizons(self) -> dict[str, date]:
        """Each source's declared horizon."""
        ...


def ask(lock: AbstractContextManager[Any], read: Callable[[], T], where: str) -> T:
    """``read()`` under ``lock`` (the sink's, while it writes the same embedded ClickHouse);
    a ClickHouse refusal becomes a C2CError that names ``where`` and, for a missing table,
    the migration to run."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        with lock:
            return read()
    except DatabaseError as exc:
        first = str(exc).splitlines()[0][:300]
        hint = " (run `c2c sink migrate`)" if "UNKNOWN_TABLE" in str(exc) else ""
        raise C2CError(f"{where} could not answer{hint}: {first}", code="clickhouse.query") from exc


class DirectReader:
    """Reads ClickHouse through ``client``; ``lock`` serialises use of a client shared with a
    writer (the sink's own). Unknown tables and ClickHouse errors raise C2CError."""

    def __init__(
        self,
        client: Any,
        *,
        database: str,
        lock: threading.Lock | None = None,
        where: str = "ClickHouse",
        secret: bytes,
    ) -> None:
        self.client = client
        self._request_key = request_key(secret)
        self.database = database
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._where = where

    def outcome(self, name: str) -> dict[str, Any]:
        try:
            return self._ask(lambda: read_outcome(self.client, name)).to_dict()
        except ValueError as exc:
            raise C2CError(str(exc), code="outcomes.unknown") from exc

    def declare_horizon(self, provider: str, through: date, *, declared_by: str = "") -> None:
        self._ask(lambda: declare_horizon(self.client, provider, through, declared_by=declared_by))

    def horizons(self) -> dict[str, date]:
        return self._ask(lambda: read_horizons(self.client))

    def audit(self, request_id: str) -> dict[str, Any]:
        decisions = self._ask(lambda: read_audit(self.client, request_id, key=self._request_key))
        return {"request_id": request_id, "decisions": decisions}

    def freshness(self) -> Freshness:
        present = self._ask(
            lambda: (
                self.client.query(
                    "SELECT name FROM system.tables WHERE database = {db:String} "
                    "AND name IN {tables:Array(String)}",
                    parameters={"db": self.database, "tables": list(FACT_TABLES.values())},
                ).result_rows
            )
        )
        if not present:  # not migrated yet: no rows, which is no problem of its own
            return None, "clickhouse: no fact tables yet (`c2c sink migrate` creates them)"
        newest = " UNION ALL ".join(
            f"SELECT maxOrNull(ingested_at) AS t FROM `{self.database}`.`{name}`"
            for [name] in present
        )
        [[value]] = self._ask(
            lambda: self.client.query(f"SELECT max(t) FROM ({newest})").result_rows
        )
        if value is None:
            return None, "clickhouse"
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - value).total_seconds()), "clickhouse"

    def _ask(self, read: Callable[[], T]) -> T:
        return ask(self._lock, read, self._where)


class SinkPagesReader:
    """Asks a running sink's web pages (``/outcomes/NAME``, ``/optouts/ID``,
    ``/metrics/counts``) at ``base_url``; ``holder`` names what the sink holds, for errors."""

    def __init__(self, base_url: str, *, holder: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._holder = holder
        self._token = token

    def outcome(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._get(f"/outcomes/{name}")
        return answer

    def audit(self, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._get(f"/optouts/{request_id}")
        return answer

    def freshness(self) -> Freshness:
        age = self._get("/metrics/counts", timeout_s=5).get("freshness_s")
        return (None if age is None else float(age)), "sink"

    def declare_horizon(self, provider: str, through: date, *, declared_by: str = "") -> None:
        body = {"complete_through": through.isoformat(), "declared_by": declared_by}
        self._get(f"/horizons/{provider}", body=body)

    def horizons(self) -> dict[str, date]:
        answer = self._get("/horizons")
        return {k: date.fromisoformat(v) for k, v in answer.items()}

    def _get(self, page: str, *, timeout_s: float = 30, body: Any = None) -> Any:
        url = f"{self.base_url}{urllib.parse.quote(page)}"
        request = urllib.request.Request(
            url, data=None if body is None else json.dumps(body).encode()
        )
        if self._token is not None:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            codes = {
                400: "horizon.invalid",
                401: "outcomes.refused",
                403: "outcomes.refused",
                404: "outcomes.unknown",
            }
            code = codes.get(exc.code, "clickhouse.query")
            raise C2CError(json.loads(exc.read())["error"], code=code) from exc
        except OSError as exc:
            raise ServiceError(
                f"{self._holder}, and no sink answers at {url} ({exc}); "
                "is C2C_SINK_WEB_PORT right?",
                code="outcomes.sink_unreachable",
            ) from exc


def open_reader(settings: Settings, *, create_database: bool = True) -> SinkReader:
    """The sink's pages while a running sink holds embedded ClickHouse, else ClickHouse
    (``create_database=False``: a reader that must not create it)."""
    path = embedded_path(settings)
    owner = None if path is None else embedded_owner(path)
    if owner is not None:
        token = settings.sink_web_token
        return SinkPagesReader(
            f"http://{settings.sink_web_host}:{settings.sink_web_port}",
            holder=f"embedded ClickHouse at {path} is held by process {owner}",
            token=None if token is None else token.get_secret_value(),
        )
    return DirectReader(
        connect(settings, create_database=create_database),
        database=settings.clickhouse_database,
        where=f"ClickHouse at {settings.clickhouse_dsn}",
        secret=settings.identity_secret.get_secret_value().encode(),
    )


def read_freshness(settings: Settings) -> Freshness:
    """The sink's freshness, read as :func:`open_reader` reads; an embedded folder not made
    yet holds no rows (and is not created by asking)."""
    path = embedded_path(settings)
    if path is not None and not path.exists():
        return None, "clickhouse"
    reader = open_reader(settings, create_database=False)
    try:
        return reader.freshness()
    finally:
        if isinstance(reader, DirectReader):
            reader.client.close()

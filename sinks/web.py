"""The sink's web port: health, counts and, in embedded mode, the outcome tables, the
sources' horizons and the opt-out audit (chdb lets one process open a path, so other
processes ask the sink; `c2c outcomes`, `c2c sink horizon` and `c2c optout status` do).

The public_* views are served to anyone, and so are the explorer's whitelisted queries over
them (``/explore/query``, ``/explore/freshness``: sinks/explorer/source.py). The
unsuppressed outcome_* tables, and declaring a horizon, need ``Authorization: Bearer
C2C_SINK_WEB_TOKEN`` (a researcher's or operator's); without a token configured nobody gets
them here (401 without or with a wrong token, 403 when the sink has none)."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import threading
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from c2c.errors import C2CError
from c2c.health import readiness
from sinks.explorer.query import QueryRefused
from sinks.explorer.source import sink_page
from sinks.horizons import HorizonError, declare_horizon, read_horizons
from sinks.outcomes import unsuppressed
from sinks.reading import DirectReader
from sinks.sink import Sink

__all__ = ["serve"]


def serve(sink: Sink, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``sink``'s pages on host:port from a daemon thread; returns the server."""
    reader = DirectReader(
        sink.client,
        database=sink.settings.clickhouse_database,
        lock=sink.lock,
        secret=sink.settings.identity_secret.get_secret_value().encode(),
    )
    token = sink.settings.sink_web_token

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet: operators read metrics
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self, what: str) -> bool:
            """Answers 401 or 403 and returns True unless the request carries the token."""
            if token is None:
                self._send(
                    403,
                    {
                        "error": f"{what} is not served here: this sink has no "
                        "C2C_SINK_WEB_TOKEN (the public_* views are served to anyone)"
                    },
                )
                return True
            given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                self._send(
                    401,
                    {
                        "error": f"{what} needs a researcher's or operator's credentials: "
                        "send Authorization: Bearer C2C_SINK_WEB_TOKEN (the public_* views "
                        "need none)"
                    },
                )
                return True
            return False

        def do_POST(self) -> None:
            path = self.path.rstrip("/")
            if not path.startswith("/horizons/"):
                self._send(404, {"error": f"no page {path} to post to"})
                return
            if self._refused("declaring a horizon"):
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                through = dt.date.fromisoformat(str(body["complete_through"]))
                with sink.lock:
                    declare_horizon(
                        sink.client,
                        path.removeprefix("/horizons/"),
                        through,
                        declared_by=str(body.get("declared_by", "")),
                    )
                    horizons = read_horizons(sink.client)
            except (KeyError, ValueError, HorizonError) as exc:
                self._send(400, {"error": f"{path}: {exc}"})
                return
            self._send(200, {k: v.isoformat() for k, v in horizons.items()})

        def do_GET(self) -> None:
            path = self.path.rstrip("/")
            if path == "/health/live":
                self._send(200, {"live": True})
            elif path == "/health/ready":
                answer = readiness(
                    connected=sink.connected and sink.positioned,
                    recovering=False,
                    lag=sink.lag(),
                    max_lag=sink.settings.ready_max_lag,
                )
                body = answer.as_json()
                if sink.clickhouse_error:
                    body["ready"] = False
                    body["reasons"] = [*answer.reasons, f"ClickHouse: {sink.clickhouse_error}"]
                self._send(200 if body["ready"] else 503, body)
            elif path == "/metrics/counts":
                age = None
                if sink.newest_row_time is not None:
                    age = (datetime.now(UTC) - sink.newest_row_time).total_seconds()
                marks = {}
                for name, mark in (
                    ("positioned", sink.positioned_at),
                    ("written", sink.written_at),
                ):
                    if mark is not None:
                        marks[f"{name}_at"], marks[f"{name}_cpu_s"] = mark
                self._send(
                    200,
                    {
                        **sink.counts,
                        "last_insert_s": sink.last_insert_s,
                        "freshness_s": age,
                        **marks,
                    },
                )
            elif path == "/horizons":
                with sink.lock:
                    horizons = read_horizons(sink.client)
                self._send(200, {k: v.isoformat() for k, v in horizons.items()})
            elif path.startswith("/outcomes/"):
                name = path.removeprefix("/outcomes/")
                if unsuppressed(name) and self._refused(f"the unsuppressed table {name}"):
                    return
                try:
                    self._send(200, reader.outcome(name))
                except C2CError as exc:
                    self._send(
                        404 if exc.code == "outcomes.unknown" else 500, {"error": exc.args[0]}
                    )
            elif path.startswith("/optouts/"):
                audit = reader.audit(urllib.parse.unquote(path.removeprefix("/optouts/")))
                for decision in audit["decisions"]:  # this sink's own share, if it applied it
                    decision["sink_s"] = sink.optout_applied_s.get(decision["decision_id"])
                self._send(200, audit)
            elif path.startswith("/explore/"):  # the explorer's reads (`c2c explore`)
                page, _, query = path.partition("?")
                try:
                    with sink.lock:
                        explored = sink_page(
                            sink.client, sink.settings.clickhouse_database, page, query
                        )
                    self._send(200, explored)
                except QueryRefused as exc:
                    self._send(400, {"error": exc.args[0]})
                except KeyError:
                    self._send(404, {"error": f"no page {page}"})
                except Exception as exc:  # ClickHouse's errors: the explorer shows them
                    self._send(500, {"error": f"{page}: {str(exc).splitlines()[0][:300]}"})
            else:
                self._send(404, {"error": f"no page {path}"})

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sink-web", daemon=True).start()
    return server

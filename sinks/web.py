"""The sink's web port: health, counts and, in embedded mode, the outcome tables and the
opt-out audit (chdb lets one process open a path, so other processes ask the sink; `c2c
outcomes` and `c2c optout status` do)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from c2c.errors import C2CError
from c2c.health import readiness
from sinks.reading import DirectReader
from sinks.sink import Sink

__all__ = ["serve"]


def serve(sink: Sink, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``sink``'s pages on host:port from a daemon thread; returns the server."""
    reader = DirectReader(sink.client, database=sink.settings.clickhouse_database, lock=sink.lock)

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
            elif path.startswith("/outcomes/"):
                try:
                    self._send(200, reader.outcome(path.removeprefix("/outcomes/")))
                except C2CError as exc:
                    self._send(
                        404 if exc.code == "outcomes.unknown" else 500, {"error": exc.args[0]}
                    )
            elif path.startswith("/optouts/"):
                audit = reader.audit(urllib.parse.unquote(path.removeprefix("/optouts/")))
                for decision in audit["decisions"]:  # this sink's own share, if it applied it
                    decision["sink_s"] = sink.optout_applied_s.get(decision["decision_id"])
                self._send(200, audit)
            else:
                self._send(404, {"error": f"no page {path}"})

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sink-web", daemon=True).start()
    return server

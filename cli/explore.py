"""`c2c explore`: the public outcomes explorer (sinks/explorer/) on a local web port; and
:class:`ExplorerProcess`, the same in a child process (tests, the load test, the demo)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from c2c.child import ChildService
from c2c.settings import Settings
from cli.common import context_settings, reports_errors

__all__ = ["ExplorerProcess", "explore", "serve_explorer"]


def serve_explorer(settings: Settings, *, host: str, port: int, cache_s: float = 1.0) -> None:
    """Serve the explorer until interrupted (reads as sinks.explorer.source chooses)."""
    from aiohttp import web

    from sinks.explorer.app import make_app
    from sinks.explorer.source import open_source

    source = open_source(settings)
    try:
        app = make_app(source, cache_s=cache_s)
        web.run_app(app, host=host, port=port, print=None)
    finally:
        source.close()


class ExplorerProcess(ChildService):
    """`c2c explore` in a child process on loopback port ``port``, reading ``settings``'
    ClickHouse (or, while a sink holds it embedded, the sink at ``settings.sink_web_port``)."""

    def __init__(self, settings: Settings, log: Path, *, port: int, cache_s: float = 1.0) -> None:
        env = {
            **os.environ,
            "C2C_DATA_DIR": str(settings.data_dir),
            "C2C_CLICKHOUSE_URL": settings.clickhouse_dsn,
            "C2C_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "C2C_SINK_WEB_PORT": str(settings.sink_web_port),
        }
        command = [sys.executable, "-m", "cli", "explore", "--port", str(port)]
        command += ["--cache-s", str(cache_s)]
        super().__init__("explorer", command, env, port, log)
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 60) -> None:
        """Start and wait until it reads its source."""
        self.launch()

        def ready(answer: dict[str, Any], _counts: dict[str, Any]) -> bool:
            return bool(answer.get("ready"))

        self.wait(ready, "ready", timeout_s)


@click.command()
@click.option("--host", default=None, help="Address to bind (default C2C_EXPLORE_HOST, loopback).")
@click.option("--port", type=int, default=None, help="Port (default C2C_EXPLORE_PORT, 6068).")
@click.option(
    "--cache-s",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Seconds an answer is kept for every reader of the same page.",
)
@click.pass_context
@reports_errors
def explore(ctx: click.Context, host: str | None, port: int | None, cache_s: float) -> None:
    """Serve the public outcomes explorer: a summary of the seven measures, a dashboard per
    measure, a query builder (CSV, the SQL it ran) and freshness, over the public_* views
    only. Reads ClickHouse, or the running sink's pages while it holds embedded ClickHouse."""
    settings = context_settings(ctx)
    host = host or settings.explore_host
    port = port or settings.explore_port
    click.echo(f"explorer: http://{host}:{port}/ (Ctrl-C stops it)")
    serve_explorer(settings, host=host, port=port, cache_s=cache_s)

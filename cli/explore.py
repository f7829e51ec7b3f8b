"""`c2c explore`: the public outcomes explorer (sinks/explorer/) on a local web port."""

from __future__ import annotations

import click

from c2c.settings import Settings
from cli.common import context_settings, reports_errors

__all__ = ["explore", "explorer_url", "serve_explorer"]


def explorer_url(settings: Settings, port: int | None = None) -> str:
    return f"http://{settings.explore_host}:{port or settings.explore_port}/"


def serve_explorer(settings: Settings, *, host: str, port: int, cache_s: float = 1.0) -> None:
    """Serve the explorer until interrupted (reads as sinks.explorer.source chooses)."""
    from aiohttp import web

    from sinks.explorer.app import make_app
    from sinks.explorer.source import open_source

    source = open_source(settings)
    try:
        web.run_app(
            make_app(source, cache_s=cache_s),
            host=host,
            port=port,
            print=None,
            handle_signals=True,
        )
    finally:
        source.close()


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

"""The explorer's web server (aiohttp, Jinja2 templates and the package's own CSS and
script): read-only, public views only, a strict Content-Security-Policy. Pages:

- ``/``: the headline of each measure for its latest observable year, with its trend;
- ``/measure/KEY``: a measure's dashboard (over the years, and by each breakdown);
- ``/query``: the query builder; ``/query.csv``: its table as CSV;
- ``/freshness.json``: when each table last changed (the page polls it and refreshes);
- ``/health/ready`` and ``/metrics/counts``: for operators (requests answered, refused).

Every request that names an ``outcome_*`` table or carries SQL punctuation is refused
with 400, before any page is built."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from sinks.explorer.cells import NOT_OBSERVABLE, SUPPRESSED, shown_columns
from sinks.explorer.labels import label
from sinks.explorer.measures import MEASURES, measure
from sinks.explorer.pages import dashboard, headline_query, query_page, summary
from sinks.explorer.query import (
    Query,
    QueryRefused,
    Table,
    check_text,
    inline_sql,
    parse_query,
    table_csv,
)
from sinks.explorer.source import Source

__all__ = ["CSP", "make_app"]

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Cache:
    """Answers kept ``ttl_s`` seconds, so that many readers of one page make one query."""

    def __init__(self, source: Source, ttl_s: float) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self._kept: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, asyncio.Lock] = {}

    async def get(self, key: Any, read: Callable[[], Any]) -> Any:
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.ttl_s:
            return kept[1]
        async with self._locks.setdefault(key, asyncio.Lock()):
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept[0] < self.ttl_s:
                return kept[1]
            value = await asyncio.get_running_loop().run_in_executor(None, read)
            self._kept[key] = (time.monotonic(), value)
            return value

    async def query(self, query: Query) -> Table:
        table: Table = await self.get(query, lambda: self.source.query(query))
        return table

    async def freshness(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self.get("freshness", self.source.freshness)
        return answer


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    counts = request.app[COUNTS]
    counts["requests"] += 1
    try:
        check_text("path", urllib.parse.unquote(request.path))
        for name, value in request.query.items():
            check_text(name, value)
        response = await handler(request)
    except QueryRefused as exc:
        counts["refused"] += 1
        response = _error(request, 400, exc.args[0])
    except web.HTTPNotFound:
        response = _error(request, 404, f"no page {request.path}")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


CACHE: web.AppKey[_Cache] = web.AppKey("cache", _Cache)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)
COUNTS: web.AppKey[dict[str, int]] = web.AppKey("counts", dict)


def _error(request: web.Request, status: int, message: str) -> web.Response:
    if request.path.endswith((".json", ".csv")):
        return web.json_response({"error": message}, status=status)
    body = (
        request.app[TEMPLATES]
        .get_template("error.html")
        .render(status=status, message=message, measures=MEASURES)
    )
    return web.Response(text=body, status=status, content_type="text/html")


def _page(request: web.Request, template: str, **values: Any) -> web.Response:
    body = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(measures=MEASURES, suppressed=SUPPRESSED, not_observable=NOT_OBSERVABLE, **values)
    )
    return web.Response(text=body, content_type="text/html")


async def _summary(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    tables = await asyncio.gather(*(cache.query(headline_query(m)) for m in MEASURES))
    cards = [summary(m, t) for m, t in zip(MEASURES, tables, strict=True)]
    return _page(request, "summary.html", cards=cards, freshness=await cache.freshness())


async def _measure(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    try:
        spec = measure(key)
    except KeyError as exc:
        raise web.HTTPNotFound() from exc
    cache = request.app[CACHE]
    rows = await cache.query(Query(spec.key, spec.headline))
    board = dashboard(spec, rows)
    return _page(request, "measure.html", board=board, freshness=await cache.freshness())


def _values(rows: Table, column: str) -> list[str]:
    at = rows.columns.index(column)
    return sorted({str(r[at]) for r in rows.rows if r[at] is not None})


async def _query(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    chosen = MEASURES[0] if "measure" not in request.query else None
    query = None
    if chosen is None:
        query = parse_query(list(request.query.items()))
        chosen = query.spec
    every = await cache.query(Query(chosen.key, chosen.headline))
    options = {d: _values(every, d) for d in chosen.dimensions}
    years = _values(every, chosen.year)
    result = None
    if query is not None:
        table = await cache.query(query)
        shown, chart = query_page(query, table)
        result = {
            "columns": shown_columns(table),
            "cells": shown,
            "chart": chart,
            "sql": inline_sql(query),
            "csv": "/query.csv?" + urllib.parse.urlencode(query.params()),
        }
    return _page(
        request,
        "query.html",
        chosen=chosen,
        query=query,
        options=options,
        years=years,
        result=result,
        freshness=await cache.freshness(),
    )


async def _query_csv(request: web.Request) -> web.Response:
    query = parse_query(list(request.query.items()))
    table = await request.app[CACHE].query(query)
    return web.Response(
        text=table_csv(query.spec, table),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{query.spec.table}.csv"'},
    )


async def _freshness(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CACHE].freshness())


async def _ready(request: web.Request) -> web.Response:
    try:
        await request.app[CACHE].freshness()
    except Exception as exc:  # whatever stops it reading is the reason it is not ready
        return web.json_response({"ready": False, "reasons": [str(exc)]}, status=503)
    return web.json_response({"ready": True, "reasons": []})


async def _counts(request: web.Request) -> web.Response:
    return web.json_response(request.app[COUNTS])


def make_app(source: Source, *, cache_s: float = 1.0) -> web.Application:
    """The explorer over ``source``; answers are kept ``cache_s`` seconds."""
    app = web.Application(middlewares=[_guard])
    app[CACHE] = _Cache(source, cache_s)
    app[COUNTS] = {"requests": 0, "refused": 0}
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app[TEMPLATES].filters["label"] = label
    app.router.add_get("/", _summary)
    app.router.add_get("/measure/{key}", _measure)
    app.router.add_get("/query", _query)
    app.router.add_get("/query.csv", _query_csv)
    app.router.add_get("/freshness.json", _freshness)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/metrics/counts", _counts)
    app.router.add_static("/static/", HERE / "static")
    return app

"""The explorer's web app over a source of fixed rows (no ClickHouse): its headers, the
guard that refuses outcome_* names and SQL before any page is built, and what a suppressed
cell becomes on the page and in the CSV. tests/integration/test_explorer.py runs it for real."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sinks.explorer.app import CSP, make_app
from sinks.explorer.query import Query, Table, columns


class FixedSource:
    """Answers every query with the same rows of its measure's columns; counts queries."""

    def __init__(self) -> None:
        self.asked: list[Query] = []

    def query(self, query: Query) -> Table:
        self.asked.append(query)
        if query.measure != "college_going":
            return Table(columns(query), [])
        return Table(
            columns(query),
            [
                [2019, "all", "all", 600, 340, 0.567, 1.0, []],
                [2019, "race", "ASIAN", 59, None, None, 1.0, ["within_12"]],
                [2019, "race", "WHITE", 114, 70, 0.614, 0.9, []],
            ],
        )

    def freshness(self) -> dict[str, Any]:
        return {"tables": {"fact_completion": None}, "views": {}, "version": "v1"}


def _run(check: Callable[[TestClient[Any, Any], FixedSource], Awaitable[None]]) -> None:
    async def main() -> None:
        source = FixedSource()
        async with TestClient(TestServer(make_app(source, cache_s=0.0))) as client:
            await check(client, source)

    asyncio.run(main())


def test_every_page_is_served_with_the_strict_policy() -> None:
    async def check(client: TestClient[Any, Any], _source: FixedSource) -> None:
        for path in ("/", "/measure/college_going", "/query", "/freshness.json", "/nothing"):
            answer = await client.get(path)
            assert answer.headers["Content-Security-Policy"] == CSP, path
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP
        assert (await client.get("/nothing")).status == 404

    _run(check)


def test_outcome_tables_and_sql_are_refused_before_any_query() -> None:
    async def check(client: TestClient[Any, Any], source: FixedSource) -> None:
        for path in (
            "/query?measure=outcome_college_going",
            "/query.csv?measure=college_going&group_value=x%27%20OR%201%3D1",
            "/query.csv?measure=college_going&group_value=a;b",
            "/query.csv?measure=college_going&group_value=a--b",
            "/measure/outcome_college_going",
            "/static/..%2F..%2Fapp.py",
            "/query?measure=college_going&sql=SELECT%201",
        ):
            answer = await client.get(path)
            assert answer.status in (400, 403, 404), path
            assert answer.status != 200
        assert all(q.measure == "college_going" for q in source.asked)
        outcome = await client.get("/measure/outcome_college_going")
        assert outcome.status == 400
        assert "public_* views only" in await outcome.text()

    _run(check)


def test_a_suppressed_cell_reads_suppressed_on_the_page_and_empty_in_the_csv() -> None:
    async def check(client: TestClient[Any, Any], _source: FixedSource) -> None:
        page = await (await client.get("/query?measure=college_going&breakdown=race")).text()
        assert '<td class="missing suppressed">suppressed</td>' in page
        assert "61.4%" in page
        csv = await (await client.get("/query.csv?measure=college_going")).text()
        assert "2019,race,ASIAN,59,,,1.0,within_12 rate" in csv.splitlines()

    _run(check)

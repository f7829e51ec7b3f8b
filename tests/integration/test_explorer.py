"""The public outcomes explorer (`c2c explore`) in a real browser (Debian's chromium, driven
by Playwright) over the pipeline's own data: synth -> replay -> identity worker -> sink, the
sink holding embedded ClickHouse, the explorer reading through the sink's /explore pages.
Numbers on the pages are checked against the public views as the sink serves them
(``/outcomes/public_*``: ``SELECT *`` of the view); and, with no sink running, the explorer
reading ClickHouse itself against a SELECT written in the test and the SQL the page says it
ran. Screenshots of every page at desktop and phone width are saved under
C2C_DATA_DIR/screenshots."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from bench.suppression import load_population
from c2c.child import free_port
from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from cli.demo import EXAMPLES, declare_synth_horizons
from cli.explore import ExplorerProcess
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, produce_file, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.explorer.labels import label
from sinks.explorer.measures import MEASURES, measure
from sinks.migrate import migrate
from sinks.outcomes import read_outcome
from tests.conftest import free_port_pair

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"  # Debian's (make tools); Playwright downloads no browser
WIDTHS = {"desktop": 1280, "phone": 390}


@dataclass
class Explored:
    url: str
    sink: SinkProcess
    stack: Settings
    screenshots: Path

    def view(self, name: str) -> list[dict[str, Any]]:
        """Every row of public view ``name`` as the sink serves it (SELECT * FROM name)."""
        table = self.sink.page(f"/outcomes/{name}")
        return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


@pytest.fixture(scope="module")
def explored(
    stack: Settings, registry: SchemaRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Explored]:
    tmp = tmp_path_factory.mktemp("explorer")
    synth = tmp / "synth"
    config = SynthConfig(people=800, seed=int(uuid.uuid4().int % 10**6), optout_rate=0.0)
    synthesize(config, NoiseConfig(), synth)
    events = [e for _s, e in mapped_events(synth)]
    linked = sum(1 for e in events if "request_id" not in e)
    settings = stack.model_copy(
        update={"clickhouse_url": f"chdb://{tmp / 'ch'}", "clickhouse_database": "explore"}
    )
    declare_synth_horizons(settings, synth)
    sink = SinkProcess(settings, tmp / "sink.log", port=free_port_pair())
    worker = WorkerProcess(stack, tmp / "worker.log", port=free_port_pair())
    explorer = ExplorerProcess(
        settings.model_copy(update={"sink_web_port": sink.port}),
        tmp / "explorer.log",
        port=free_port(),
        cache_s=0.0,
    )
    screenshots = stack.data_dir / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    try:
        sink.start()
        worker.start()
        replay(stack, synth)
        worker.drained(len(events))
        sink.caught_up(linked)
        explorer.start()
        yield Explored(explorer.url, sink, stack, screenshots)
        explorer.stop()
        worker.stop()
        sink.stop()
    finally:
        explorer.kill()
        worker.kill()
        sink.kill()
    print(f"explorer screenshots: {screenshots}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def _page(browser: Browser, width: int, problems: list[str]) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):  # a CSP violation is reported as an error
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page


def _number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%"))


def _latest_rate(rows: list[dict[str, Any]], key: str) -> str | None:
    """The headline as the summary should show it, worked out here from the view's rows:
    the latest year with a published count, its counts summed over the published cells."""
    spec = measure(key)
    by_year: dict[int, list[int]] = {}
    for row in rows:
        if any(row[c] != v for c, v in spec.headline_filters):
            continue
        count, den = row[spec.headline], row[spec.view.denominator]
        if count is not None and den is not None:
            total = by_year.setdefault(row[spec.year], [0, 0])
            total[0] += count
            total[1] += den
    shown = [(y, n, d) for y, (n, d) in sorted(by_year.items()) if d > 0]
    if not shown:
        return None
    _year, n, d = shown[-1]
    return f"{100 * n / d:.1f}%"


def test_the_summary_shows_each_measures_latest_figure_from_the_pipeline(
    explored: Explored, browser: Browser
) -> None:
    problems: list[str] = []
    page = _page(browser, WIDTHS["desktop"], problems)
    response = page.goto(explored.url + "/")
    assert response is not None
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    shown = 0
    for m in MEASURES:
        expected = _latest_rate(explored.view(m.table), m.key)
        figure = page.locator(f'.figure[data-measure="{m.key}"]')
        if expected is None:
            assert figure.count() == 0
            continue
        assert figure.inner_text() == expected, m.key
        shown += 1
    assert _latest_rate(explored.view("public_outcome_college_going"), "college_going")
    assert shown >= 3  # the pipeline's data fills most measures (small ones are suppressed)
    assert problems == []
    page.close()


def _table(page: Page, caption: str) -> list[list[str]]:
    rows = page.locator(f'table:has(caption:text-is("{caption}")) tbody tr')
    return [row.locator("td").all_inner_texts() for row in rows.all()]


def test_a_query_builder_round_trip_gives_the_views_numbers(
    explored: Explored, browser: Browser
) -> None:
    problems: list[str] = []
    page = _page(browser, WIDTHS["desktop"], problems)
    page.goto(explored.url + "/query")
    with page.expect_navigation():
        page.get_by_label("Measure", exact=True).select_option("completion")  # reloads its choices
    page.get_by_label("Count (as a share of entrants)").select_option("within_8_years")
    page.get_by_label("breakdown (student group, program, institution)").select_option("all")
    page.get_by_label("segment", exact=True).select_option("ccc")
    with page.expect_navigation():
        page.get_by_role("button", name="Run query").click()
    shown = _table(page, "Query result")

    view = [
        r
        for r in explored.view("public_outcome_completion")
        if r["breakdown"] == "all" and r["segment"] == "ccc"
    ]
    assert len(shown) == len(view) > 0
    for cells, row in zip(shown, sorted(view, key=lambda r: r["entry_year"]), strict=True):
        assert int(cells[0]) == row["entry_year"]
        for at, column in ((4, "entrants"), (5, "within_8_years")):
            if row[column] is None:
                assert cells[at] in ("suppressed", "not yet observable")
            else:
                assert _number(cells[at]) == row[column]
    sql = page.locator("#sql").inner_text()
    assert "FROM public_outcome_completion" in sql
    assert "toString(segment) = 'ccc'" in sql
    assert "outcome_completion" not in sql.replace("public_outcome_completion", "")

    # the CSV download holds the same rows, NULL as an empty cell
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    lines = text.splitlines()
    header = lines[0].split(",")
    for line, row in zip(lines[1:], sorted(view, key=lambda r: r["entry_year"]), strict=True):
        record = dict(zip(header, line.split(","), strict=True))
        for column in ("entry_year", "entrants", "within_8_years"):
            assert record[column] == ("" if row[column] is None else str(row[column]))
    assert problems == []
    page.close()


def test_a_suppressed_cell_never_shows_a_number(explored: Explored, browser: Browser) -> None:
    page = _page(browser, WIDTHS["desktop"], [])
    page.goto(explored.url + "/query?measure=college_going&breakdown=race")
    shown = _table(page, "Query result")
    view = [r for r in explored.view("public_outcome_college_going") if r["breakdown"] == "race"]
    assert len(shown) == len(view)
    columns = page.locator("table:has(caption:text-is('Query result')) thead th").all_inner_texts()
    nulls = 0
    for cells, row in zip(shown, view, strict=True):
        for column, text in zip(columns, cells, strict=True):
            if column in row and row[column] is None:
                nulls += 1
                # exactly as the view lists the row's suppressed cells
                listed = column in row["suppressed"]
                assert text == ("suppressed" if listed else "not yet observable"), (column, row)
                assert not re.search(r"\d", text)
    assert nulls > 0  # small race groups of a few hundred completers are suppressed
    suppressed = page.locator("td.suppressed")
    assert suppressed.count() > 0
    assert all(not re.search(r"\d", t) for t in suppressed.all_inner_texts())
    page.close()


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    "request_path",
    [
        "/query?measure=outcome_completion",
        "/query?measure=completion&table=outcome_completion",
        "/query.csv?measure=completion&segment=ccc'%20OR%201=1--",
        "/query.csv?measure=completion&segment=ccc%3B%20DROP%20TABLE%20fact_wage",
        "/query?measure=completion&count=sleep(3)",
        "/query?measure=completion&person_id=1",
        "/query.csv?measure=completion&suppressed=within_150",  # an output, never an input
        "/measure/outcome_completion",
        "/outcome_earnings",
    ],
)
def test_outcome_tables_and_injections_are_refused(
    explored: Explored, browser: Browser, request_path: str
) -> None:
    status, body = _status(explored.url + request_path)
    assert status == 400, body
    assert "outcome_completion\t" not in body
    page = _page(browser, WIDTHS["desktop"], [])
    response = page.goto(explored.url + request_path)
    assert response is not None
    assert response.status == 400
    if not request_path.startswith("/query.csv"):
        assert page.locator("h1").inner_text() == "Request refused"
    page.close()
    # the sink's own explorer page refuses the same
    query = urllib.parse.urlsplit(request_path).query
    if request_path.startswith("/query"):
        code, _ = _status(f"http://127.0.0.1:{explored.sink.port}/explore/query?{query}")
        assert code == 400


def test_the_page_updates_while_events_arrive(explored: Explored, browser: Browser) -> None:
    page = _page(browser, WIDTHS["desktop"], [])
    page.goto(explored.url + "/")
    before = page.locator("main").get_attribute("data-version")
    changed = page.locator("#changed").inner_text()
    produce_file(explored.stack, "k12", EXAMPLES / "k12.csv")  # new events through it all
    page.wait_for_function(
        "v => document.getElementById('main').dataset.version !== v", arg=before, timeout=120_000
    )
    assert page.locator("#live").inner_text().strip() == "(updated as new events arrived)"
    assert page.locator("#changed").inner_text() > changed
    fresh = json.loads(_status(explored.url + "/freshness.json")[1])
    assert fresh["tables"]["fact_completion"] is not None
    page.close()


def test_every_page_at_desktop_and_phone_width(explored: Explored, browser: Browser) -> None:
    paths = {
        "summary": "/",
        **{f"measure-{m.key}": f"/measure/{m.key}" for m in MEASURES},
        "query": "/query?measure=college_going&breakdown=race",
    }
    for size, width in WIDTHS.items():
        problems: list[str] = []
        page = _page(browser, width, problems)
        for name, path in paths.items():
            response = page.goto(explored.url + path)
            assert response is not None
            assert response.status == 200, path
            page.screenshot(path=explored.screenshots / f"{name}-{size}.png", full_page=True)
            # nothing wider than the screen but the scrolling table regions
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, (path, size, overflow)
            # every form control has a label
            for control in page.locator("select, input").all():
                label = page.locator(f'label[for="{control.get_attribute("id")}"]')
                assert label.count() == 1
        assert problems == [], (size, problems)
        page.close()
    print(f"explorer screenshots: {explored.screenshots}")
    assert len(list(explored.screenshots.glob("*.png"))) >= 2 * len(paths)


def _known_nulls(settings: Settings) -> tuple[tuple[str, str], tuple[str, str]]:
    """A query page of one row and the column of it that is suppressed (a value in the
    unsuppressed outcome_* table, NULL in the public view), and one whose window is open
    (NULL in both, and its row published): worked out here from the two tables."""
    client = connect(settings)
    try:
        tables = {
            name: read_outcome(client, name).to_dict()
            for m in MEASURES
            for name in (m.view.outcome, m.table)
        }
    finally:
        client.close()
    found: dict[str, tuple[str, str]] = {}
    for m in MEASURES:
        truth, public = tables[m.view.outcome], tables[m.table]
        for true_row, row in zip(truth["rows"], public["rows"], strict=True):
            true = dict(zip(truth["columns"], true_row, strict=True))
            shown = dict(zip(public["columns"], row, strict=True))
            if any(shown[k] is None for k in m.view.keys):
                continue  # a NULL key is not a filter the query builder takes
            for column in (m.view.denominator, *m.view.numerators):
                if shown[column] is not None:
                    continue
                kind = "hidden" if true[column] is not None else "open"
                if kind == "open" and column in shown["suppressed"]:
                    continue  # an open cell of a suppressed row reads suppressed
                count = column if column in m.view.numerators else m.headline
                params = {"measure": m.key, "count": count}
                params |= {"year_from": str(shown[m.year]), "year_to": str(shown[m.year])}
                params |= {d: str(shown[d]) for d in m.dimensions}
                found.setdefault(kind, ("/query?" + urllib.parse.urlencode(params), column))
    assert set(found) == {"hidden", "open"}, found  # synth's data has both
    return found["hidden"], found["open"]


def test_reading_clickhouse_itself_the_page_and_its_sql_give_a_direct_selects_numbers(
    browser: Browser, tmp_path: Path
) -> None:
    """No sink running: the explorer opens embedded ClickHouse itself. The table on the
    page, its CSV, and the SQL the page says it ran (run afterwards in a client of our own)
    all equal a SELECT written here against the public view."""
    settings = Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="x")
    client = connect(settings)
    try:
        migrate(client, min_cell=settings.suppression_min_cell)
        load_population(client, SynthConfig(people=1500, seed=7, optout_rate=0.0))
        direct = client.query(
            "SELECT entry_year, segment, group_value, entrants, within_150 "
            "FROM public_outcome_completion "
            "WHERE breakdown = 'received_aid' AND entry_year >= 2017 "
            "ORDER BY segment, entry_year, group_value"
        ).result_rows
    finally:
        client.close()
    assert any(row[4] is not None for row in direct)  # some numbers to compare
    assert any(row[4] is None for row in direct)  # and some suppressed or open
    hidden, unobserved = _known_nulls(settings)
    asked = "?measure=completion&year_from=2017&breakdown=received_aid"
    explorer = ExplorerProcess(settings, tmp_path / "explorer.log", port=free_port())
    try:
        explorer.start()
        problems: list[str] = []
        page = _page(browser, WIDTHS["desktop"], problems)
        # a cell the unsuppressed table has and the public view hides reads suppressed; one
        # whose window is open (NULL in the unsuppressed table too) reads not yet observable
        for (path, column), expected in (
            (hidden, "suppressed"),
            (unobserved, "not yet observable"),
        ):
            page.goto(explorer.url + path)
            heads = page.locator(
                "table:has(caption:text-is('Query result')) thead th"
            ).all_inner_texts()
            [cells] = _table(page, "Query result")
            assert cells[heads.index(column)] == expected, (path, column)
        page.goto(explorer.url + "/query" + asked)
        shown = _table(page, "Query result")
        sql = page.locator("#sql").inner_text()
        page.get_by_role("button", name="Copy the SQL").click()
        expect(page.locator("#copied")).to_have_text("Copied.")  # the clipboard answers later
        _code, csv_text = _status(explorer.url + "/query.csv" + asked)
        assert problems == []
        page.close()
        explorer.stop()
    finally:
        explorer.kill()

    assert len(shown) == len(direct)
    for cells, (year, segment, group, entrants, within) in zip(shown, direct, strict=True):
        # the page reads a code as words ("ccc" as "Community colleges"); the CSV keeps it
        assert [int(cells[0]), cells[1], cells[2], cells[3]] == [
            year,
            label(segment),
            "received_aid",
            label(group),
        ]
        for text, value in ((cells[4], entrants), (cells[5], within)):
            if value is None:
                assert text in ("suppressed", "not yet observable")
            else:
                assert _number(text) == value
    lines = csv_text.splitlines()
    assert lines[0].split(",")[:6] == [
        "entry_year",
        "segment",
        "breakdown",
        "group_value",
        "entrants",
        "within_150",
    ]
    for line, row in zip(lines[1:], direct, strict=True):
        year, segment, group, entrants, within = row
        expected = [str(year), segment, "received_aid", group]
        expected += ["" if v is None else str(v) for v in (entrants, within)]
        assert line.split(",")[:6] == expected

    client = connect(settings)  # the explorer has let go of the path
    try:
        ran = client.query(sql).result_rows
    finally:
        client.close()
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in ran] == [tuple(r) for r in direct]

"""End to end: synth -> replay -> identity worker -> sink -> outcome tables, compared with
synth's truth; and no PII anywhere in ClickHouse."""

from __future__ import annotations

import csv
import datetime
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.migrate import migrate
from sinks.outcomes import read_outcome
from sinks.sink import Sink
from streams.process import WorkerProcess
from tests.conftest import free_port_pair

pytestmark = pytest.mark.integration


def _wait(check: Any, what: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not {what} in {timeout_s} s")


def test_outcomes_from_the_pipeline_match_synth_truth_and_hold_no_pii(
    stack: Settings, registry: SchemaRegistry, tmp_path: Path
) -> None:
    synth = tmp_path / "synth"
    synthesize(SynthConfig(people=400, seed=int(uuid.uuid4().int % 10**6)), NoiseConfig(), synth)
    events = [e for _s, e in mapped_events(synth)]
    linked = sum(1 for e in events if "request_id" not in e)  # opt-outs are not linked

    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{tmp_path / 'ch'}",
            "clickhouse_database": "e2e",
            "sink_start": "latest",  # this test's events only, not the topics' history
        }
    )
    client = connect(settings)
    migrate(client, min_cell=settings.suppression_min_cell)
    sink = Sink(settings, registry, client, group_id=f"test-sink-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    worker = WorkerProcess(stack, tmp_path / "worker.log", port=free_port_pair())
    try:
        _wait(lambda: sink.positioned, "sink reading")
        worker.start()
        replay(stack, synth)
        worker.drained(len(events))
        _wait(
            lambda: sink.counts["rows"] >= linked and sum(sink.lag().values()) == 0,
            f"sink done with {linked} linked events ({sink.counts})",
        )
    finally:
        worker.kill()
        stop.set()
        thread.join(60)

    with sink.lock:
        counted = client.query(
            "SELECT sum(c) FROM (SELECT count() AS c FROM fact_enrollment FINAL UNION ALL "
            "SELECT count() FROM fact_completion FINAL UNION ALL SELECT count() FROM "
            "fact_financial_aid FINAL UNION ALL SELECT count() FROM fact_wage FINAL UNION ALL "
            "SELECT count() FROM fact_credential FINAL)"
        ).result_rows[0][0]
        assert counted == linked  # every linked event once, replays collapsed
        truth = json.loads((synth / "truth" / "outcomes.json").read_text())
        going = read_outcome(client, "outcome_college_going")
        working = read_outcome(client, "outcome_working_while_enrolled")
        aid = read_outcome(client, "outcome_financial_aid")
        _assert_no_pii(client, synth)
    client.close()

    for row in going.rows:
        values = dict(zip(going.columns, row, strict=True))
        group = (
            "all"
            if values["breakdown"] == "all"
            else f"{values['breakdown']}={values['group_value']}"
        )
        expected = truth["college_going"].get(f"{values['class_year']}|{group}", {})
        for column in ("completers", "within_12", "within_16", "within_12_ccc", "within_16_uc"):
            assert values[column] == expected.get(column, 0), (values, expected)
    for table, key, measure in (
        (working, "working_while_enrolled", "with_wages"),
        (aid, "financial_aid", "with_aid"),
    ):
        for row in table.rows:
            values = dict(zip(table.columns, row, strict=True))
            expected = truth[key].get(f"{values['segment']}|{values['academic_year']}", {})
            assert values["students"] == expected.get("students", 0), (key, values, expected)
            assert values[measure] == expected.get(measure, 0), (key, values, expected)


_IDENTIFYING = ("name", "ssn", "ssid", "itin", "address", "street")


def _birth_date_forms(value: str) -> set[str]:
    text = value.strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return {value.strip(), datetime.date.fromisoformat(text).isoformat()}
    except ValueError:
        return {value.strip()}


def _assert_no_pii(client: Any, synth: Path) -> None:
    """No name, SSN, SSID, ITIN, address or full birth date of the input in any column of
    any table."""
    needles: set[str] = set()
    for extract in synth.glob("*.csv"):
        with extract.open(newline="") as handle:
            for row in csv.DictReader(handle):
                for column, value in row.items():
                    lowered = column.lower()
                    if not value or len(value) < 4:
                        continue
                    if any(k in lowered for k in _IDENTIFYING):
                        needles.add(value.strip().lower())
                    elif "birth" in lowered or "dob" in lowered:
                        needles |= _birth_date_forms(value)
    assert len(needles) > 100  # the search has something to find
    tables = [r[0] for r in client.query("SHOW TABLES").result_rows]
    assert "fact_enrollment" in tables
    for table in tables:
        names = [r[0] for r in client.query(f"DESCRIBE TABLE {table}").result_rows]
        for name in names:
            values = client.query(f"SELECT DISTINCT lower(toString(`{name}`)) FROM {table}")
            found = {str(v[0]) for v in values.result_rows} & needles
            assert not found, f"{table}.{name} holds input PII: {sorted(found)[:3]}"

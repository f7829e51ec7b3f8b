"""The metrics catalogue: which counts feed which metric, the names Prometheus shows, and
dashboards that ask only for metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from c2c.metrics import (
    CLICKHOUSE_ERRORS,
    DEAD_LETTERS,
    IDENTITY_CHANGES,
    METRICS,
    OPTOUTS,
    REVIEWS,
    Instruments,
    count_observations,
)

ROOT = Path(__file__).resolve().parents[2]


def test_counts_feed_their_metrics_and_new_optout_counts_need_no_code() -> None:
    counts = {
        "linked": 7,
        "dead_letter": 2,
        "review": 1,
        "change.PERSON_CREATED": 5,
        "change.PERSONS_MERGED": 1,
        "optout.applied": 3,
        "optout.rows_removed": 40,
    }
    found = count_observations("identity", counts)
    assert found[DEAD_LETTERS] == [(2.0, {"stage": "identity"})]
    assert found[REVIEWS] == [(1.0, {"stage": "identity"})]
    assert sorted(found[IDENTITY_CHANGES], key=str) == [
        (1.0, {"stage": "identity", "change_type": "PERSONS_MERGED"}),
        (5.0, {"stage": "identity", "change_type": "PERSON_CREATED"}),
    ]
    assert sorted(found[OPTOUTS], key=str) == [
        (3.0, {"stage": "identity", "kind": "applied"}),
        (40.0, {"stage": "identity", "kind": "rows_removed"}),
    ]
    assert set(found) == {DEAD_LETTERS, REVIEWS, IDENTITY_CHANGES, OPTOUTS}  # not "linked"
    sink = count_observations("sink", {"clickhouse_errors": 4, "rows": 100})
    assert sink == {CLICKHOUSE_ERRORS: [(4.0, {})]}


def _exposition() -> str:
    """Every catalogue metric once, through the real Prometheus exporter."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    instruments = Instruments(provider.get_meter("test"))
    for spec in METRICS:
        attributes = dict.fromkeys(spec.attributes, "x")
        if spec.kind == "histogram":
            instruments.histogram(spec).record(1.0, attributes)
        elif spec.kind == "counter" and spec.name.startswith("c2c.events"):
            instruments.counter(spec).add(1, attributes)
        else:
            instruments.observe(spec, lambda a=attributes: [(1.0, a)])
    text = generate_latest(registry).decode()
    provider.shutdown()
    return text


def test_prometheus_names_are_the_exporters() -> None:
    text = _exposition()
    shown = {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line}
    for spec in METRICS:
        if spec.kind == "histogram":
            assert f"{spec.prometheus_name}_bucket" in shown, spec
        else:
            assert spec.prometheus_name in shown, spec


def test_dashboards_ask_only_for_metrics_in_the_catalogue() -> None:
    folder = ROOT / "observability" / "config" / "grafana" / "dashboards"
    health = json.loads((folder / "stream-health.json").read_text())
    exprs = [t["expr"] for p in health["panels"] for t in p["targets"]]
    known = set()
    for spec in METRICS:
        name = spec.prometheus_name
        known |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    asked = {name for expr in exprs for name in re.findall(r"\bc2c_[a-z_]+", expr)}
    assert asked, exprs
    assert asked <= known, asked - known
    # every metric of the catalogue is on the dashboard
    assert {spec.prometheus_name for spec in METRICS} <= {
        re.sub(r"_(bucket|sum|count)$", "", name) for name in asked
    }
    outcomes = json.loads((folder / "outcomes.json").read_text())
    sql = " ".join(t["rawSql"] for p in outcomes["panels"] for t in p["targets"])
    assert "public_outcome_college_going" in sql
    assert "ops_heartbeat" not in sql

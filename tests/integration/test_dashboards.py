"""The provisioned outcomes dashboard's queries run on the sink's ClickHouse schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.migrate import migrate

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_every_outcomes_panel_query_runs_on_a_migrated_database(tmp_path: Path) -> None:
    # the dashboards name the database c2c, as the compose stack's sink creates it
    client = connect(
        Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="c2c")
    )
    try:
        migrate(client, min_cell=11)
        dashboard = ROOT / "observability" / "config" / "grafana" / "dashboards" / "outcomes.json"
        panels = json.loads(dashboard.read_text())["panels"]
        rows = {
            panel["title"]: client.query(target["rawSql"]).result_rows  # raises if it fails
            for panel in panels
            for target in panel["targets"]
        }
        assert len(rows) == len(panels) == 8  # every public outcome view and freshness
        assert len(rows["Sink freshness: newest fact row per table"]) == 5  # one per table
    finally:
        client.close()

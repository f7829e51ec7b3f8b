"""What the end-to-end tests need to read outcome tables from a running sink: the sources'
horizons declared (as synth's providers would, `c2c sink horizon`), and a researcher's
token for the unsuppressed tables."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.horizons import declare_horizon
from sinks.migrate import migrate
from sinks.outcomes import OutcomeTable
from sinks.reading import SinkPagesReader

TOKEN = "researcher-token-for-tests-only-0123456789"


def with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sinks started from now on (their environment is this one's) take :data:`TOKEN`."""
    monkeypatch.setenv("C2C_SINK_WEB_TOKEN", TOKEN)


def declare_synth_horizons(settings: Settings, synth: Path) -> dict[str, str]:
    """Declare the horizons of synth's folder ``synth`` in ``settings``' ClickHouse (before
    a sink holds it); returns them."""
    horizons: dict[str, str] = json.loads((synth / "truth" / "outcomes.json").read_text())[
        "horizons"
    ]
    client = connect(settings)
    try:
        migrate(client, min_cell=settings.suppression_min_cell)
        for provider, through in horizons.items():
            declare_horizon(client, provider, datetime.date.fromisoformat(through))
    finally:
        client.close()
    return horizons


def researcher_table(sink: Any, name: str) -> OutcomeTable:
    """Outcome table ``name`` from ``sink``'s page, with the researcher's token."""
    reader = SinkPagesReader(f"http://127.0.0.1:{sink.port}", holder="the sink", token=TOKEN)
    return OutcomeTable(**reader.outcome(name))

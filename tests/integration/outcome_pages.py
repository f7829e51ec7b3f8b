"""What the end-to-end tests need to read outcome tables from a running sink: the sources'
horizons declared (as synth's providers would, `c2c sink horizon`), and a researcher's
token for the unsuppressed tables."""

from __future__ import annotations

from typing import Any

import pytest

from sinks.outcomes import OutcomeTable
from sinks.reading import SinkPagesReader

TOKEN = "researcher-token-for-tests-only-0123456789"


def with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sinks started from now on (their environment is this one's) take :data:`TOKEN`."""
    monkeypatch.setenv("C2C_SINK_WEB_TOKEN", TOKEN)


def researcher_table(sink: Any, name: str) -> OutcomeTable:
    """Outcome table ``name`` from ``sink``'s page, with the researcher's token."""
    reader = SinkPagesReader(f"http://127.0.0.1:{sink.port}", holder="the sink", token=TOKEN)
    return OutcomeTable(**reader.outcome(name))

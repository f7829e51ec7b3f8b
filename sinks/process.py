"""The sink as a child process (`c2c sink run`), for the demo and tests."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from c2c.child import ChildService
from c2c.settings import Settings

__all__ = ["SinkProcess"]


class SinkProcess(ChildService):
    """`c2c sink run` in a child process, writing to ``settings``' ClickHouse. ``group``
    None: a fresh consumer group (``start_at`` latest reads only what comes after ready)."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        port: int,
        group: str | None = None,
        start_at: str = "latest",
    ) -> None:
        self.group = group or f"c2c-sink-{uuid.uuid4().hex[:10]}"
        env = {
            **os.environ,
            "C2C_SINK_WEB_PORT": str(port),
            "C2C_SINK_START": start_at,
            "C2C_DATA_DIR": str(settings.data_dir),
            "C2C_CLICKHOUSE_URL": settings.clickhouse_dsn,
            "C2C_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "C2C_SINK_DECODE": settings.sink_decode,
        }
        command = [sys.executable, "-m", "cli", "sink", "run", "--group", self.group]
        super().__init__("sink", command, env, port, log)

    def start(self, timeout_s: float = 120) -> None:
        """Start and wait until it is assigned and positioned."""
        self.launch()

        def reading(ready: dict[str, Any], _counts: dict[str, Any]) -> bool:
            reasons = [r for r in ready.get("reasons", []) if "lag more than" not in r]
            return "reasons" in ready and not reasons

        self.wait(reading, "reading", timeout_s)

    def caught_up(self, facts: int, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until it handled at least ``facts`` linked events (written, or not written
        because they were published before their person opted out) and lags nowhere."""

        def done(ready: dict[str, Any], counts: dict[str, Any]) -> bool:
            handled = int(counts.get("facts", 0)) + int(counts.get("optout.not_written", 0))
            return handled >= facts and ready.get("total_lag") == 0

        return self.wait(done, f"done with {facts} fact rows", timeout_s)

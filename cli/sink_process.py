"""The sink as a child process (`c2c sink run`), for the demo and tests."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from c2c.child import ChildService, commit_ends, committed_lag
from c2c.settings import Settings
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC
from sinks.rows import FACT_TABLES

__all__ = ["SINK_TOPICS", "SinkProcess"]

SINK_TOPICS = (*FACT_TABLES, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC)  # what the sink reads


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
            # a local server's roles come from its users file, not from the sink's migrations
            "C2C_CLICKHOUSE_SERVE": str(settings.clickhouse_serve).lower(),
            "C2C_SINK_DECODE": settings.sink_decode,
            "C2C_SINK_DEDUPE": str(settings.sink_dedupe).lower(),
            # its broker and principal: the settings', not only the environment's
            **settings.kafka_environment(),
        }
        command = [sys.executable, "-m", "cli", "sink", "run", "--group", self.group]
        super().__init__("sink", command, env, port, log)
        self.settings = settings

    def begin_here(self) -> None:
        """Commit the current ends of the topics it reads for its group, so that it reads
        exactly what is published from now on, also when launched again after a crash
        before it committed anything."""
        commit_ends(self.settings, self.group, SINK_TOPICS)

    def committed_lag(self) -> int:
        """Messages of its topics its group has not committed: 0 once everything
        published was written (or passed over) and committed."""
        return committed_lag(self.settings, self.group, SINK_TOPICS)

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

"""The identity worker as a child process, for the demo, benches and tests: start it with
its own group, intake topic and web port, wait until it is done with what was published,
stop it."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from c2c.child import ChildService
from c2c.kafka import ensure_topics
from c2c.settings import Settings
from c2c.topics import Topic
from streams.resolution import OUTCOMES

__all__ = ["WorkerProcess"]

_HANDLED = OUTCOMES


class WorkerProcess(ChildService):
    """`c2c identity worker` in a child process. ``app_id`` None: a fresh group, intake
    topic and state (``start_at`` latest reads only what is published after it is ready)."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        port: int,
        app_id: str | None = None,
        start_at: str = "latest",
    ) -> None:
        self.app_id = app_id or f"c2c-identity-{uuid.uuid4().hex[:10]}"
        self.intake = f"c2c.identity.intake.{self.app_id}" if app_id is None else None
        if self.intake is not None:
            ensure_topics(settings, [Topic(self.intake, "", "identity", "intake", partitions=1)])
        command = [sys.executable, "-m", "c2c", "identity", "worker", "--app-id", self.app_id]
        if self.intake is not None:
            command += ["--intake-topic", self.intake]
        env = {
            **os.environ,
            "C2C_WORKER_WEB_PORT": str(port),
            "C2C_STREAMS_START": start_at,
            "C2C_DATA_DIR": str(settings.data_dir),
        }
        super().__init__("identity worker", command, env, port, log)

    def start(self, timeout_s: float = 120) -> None:
        """Start and wait until it is ready and reading every raw partition."""
        self.launch()
        # high-water marks known for all 36 raw partitions: positions are set ("latest" is
        # resolved) before anyone publishes
        self.wait(
            lambda ready, _counts: (
                bool(ready.get("ready"))
                and sum(1 for tp in ready.get("lag", {}) if tp.startswith("c2c.raw.")) == 36
            ),
            "ready",
            timeout_s,
        )

    def handled(self) -> int:
        counts = self.counts()
        return sum(int(counts.get(k, 0)) for k in _HANDLED)

    def drained(self, handled: int, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until the worker has handled ``handled`` messages and lags nowhere."""

        def done(ready: dict[str, Any], counts: dict[str, Any]) -> bool:
            total = sum(int(counts.get(k, 0)) for k in _HANDLED)
            return total >= handled and bool(ready.get("ready")) and ready["total_lag"] == 0

        return self.wait(done, f"done with {handled} messages", timeout_s)

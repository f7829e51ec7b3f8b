"""The identity worker as a child process, for the demo, benches and tests: start it with
its own group, intake topic and web port, watch its health pages, wait until it is done
with what was published, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from c2c.errors import ServiceError
from c2c.kafka import ensure_topics
from c2c.settings import Settings
from c2c.topics import Topic

__all__ = ["WorkerProcess"]

Check = Callable[[dict[str, Any], dict[str, Any]], bool]
_HANDLED = ("linked", "optout", "review", "dead_letter")


class WorkerProcess:
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
        run = uuid.uuid4().hex[:10]
        self.app_id = app_id or f"c2c-identity-{run}"
        self.intake = f"c2c.identity.intake.{self.app_id}" if app_id is None else None
        self.port = port
        self.log = log
        if self.intake is not None:
            ensure_topics(settings, [Topic(self.intake, "", "identity", "intake", partitions=1)])
        self.env = {
            **os.environ,
            "C2C_WORKER_WEB_PORT": str(port),
            "C2C_STREAMS_START": start_at,
            "C2C_DATA_DIR": str(settings.data_dir),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        """Start and wait until it is ready and reading every raw partition."""
        command = [sys.executable, "-m", "c2c", "identity", "worker", "--app-id", self.app_id]
        if self.intake is not None:
            command += ["--intake-topic", self.intake]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
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

    def stop(self, timeout_s: float = 60) -> None:
        """Stop gracefully (SIGTERM), as an orchestrator would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def page(self, path: str) -> dict[str, Any]:
        """One of the worker's JSON pages (a 503 readiness answer is an answer too)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                answer: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        return answer

    def counts(self) -> dict[str, Any]:
        return self.page("/metrics/counts")

    def handled(self) -> int:
        counts = self.counts()
        return sum(int(counts.get(k, 0)) for k in _HANDLED)

    def wait(self, done: Check, what: str, timeout_s: float = 300) -> dict[str, Any]:
        """Poll readiness and counts until ``done(ready, counts)``; ServiceError (with the
        log's tail) if the worker exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        ready: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServiceError(
                    f"identity worker exited ({code}); log {self.log}:\n{self._tail()}",
                    code="worker.exited",
                )
            try:
                ready = self.page("/health/ready")
                counts = self.counts()
            except (OSError, ValueError):
                time.sleep(0.2)
                continue
            if done(ready, counts):
                return counts
            time.sleep(0.2)
        raise ServiceError(
            f"identity worker not {what} in {timeout_s:.0f} s (readiness {ready}, counts "
            f"{counts}); log {self.log}:\n{self._tail()}",
            code="worker.timeout",
        )

    def drained(self, handled: int, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until the worker has handled ``handled`` messages and lags nowhere."""

        def done(ready: dict[str, Any], counts: dict[str, Any]) -> bool:
            total = sum(int(counts.get(k, 0)) for k in _HANDLED)
            return total >= handled and bool(ready.get("ready")) and ready["total_lag"] == 0

        return self.wait(done, f"done with {handled} messages", timeout_s)

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

"""The identity worker as child processes, for the demo, benches and tests: start it with
its own groups, intake topic and web port, wait until it is done with what was published,
stop it.

``split`` runs the forwarder and the resolver as two processes (`c2c identity worker
--role forward` on ``forward_port``, by default the port after ``port``, and `--role
resolve` on ``port``), so that the two can use two cores; otherwise one process (`--role
all`) runs both."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from c2c.child import ChildService, commit_ends, committed_lag
from c2c.kafka import ensure_topics
from c2c.settings import Settings
from c2c.topics import intake_topic
from streams.forwarder import forward_group
from streams.resolution import INPUT_TOPICS, OUTCOMES

__all__ = ["RAW_PARTITIONS", "WorkerProcess"]

_HANDLED = OUTCOMES
RAW_PARTITIONS = 36  # six raw topics of six partitions


def _raw_read(ready: dict[str, Any]) -> int:
    """How many raw partitions a readiness page lists (the forwarder's share)."""
    return sum(1 for tp in ready.get("lag", {}) if tp.startswith("c2c.raw."))


class WorkerProcess:
    """`c2c identity worker` in one child process (two with ``split``). ``app_id`` None: a
    fresh group, intake topic and state (``start_at`` latest reads only what is published
    after it is ready). ``app_id`` given: that group and state, on ``intake`` if given (a
    worker started again with both resumes where the last one left off), else on the
    shared default intake topic."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        port: int,
        app_id: str | None = None,
        start_at: str = "latest",
        split: bool = False,
        forward_port: int | None = None,
        intake: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.app_id = app_id or f"c2c-identity-{uuid.uuid4().hex[:10]}"
        if intake is None and app_id is None:
            intake = f"c2c.identity.intake.{self.app_id}"
        self.intake = intake
        if self.intake is not None:
            ensure_topics(settings, [intake_topic(self.intake)])
        command = [sys.executable, "-m", "cli", "identity", "worker", "--app-id", self.app_id]
        if self.intake is not None:
            command += ["--intake-topic", self.intake]
        env = {
            **os.environ,
            "C2C_STREAMS_START": start_at,
            "C2C_DATA_DIR": str(settings.data_dir),
            # its broker and principal: the settings', not only the environment's
            **settings.kafka_environment(),
            **(environment or {}),
        }
        if split:
            roles = [("forward", forward_port or port + 1), ("resolve", port)]
        else:
            roles = [("all", port)]
        self.children = [
            ChildService(
                f"identity worker ({role})",
                [*command, "--role", role],
                {**env, "C2C_WORKER_WEB_PORT": str(role_port)},
                role_port,
                log if not split else log.with_name(f"{log.stem}-{role}{log.suffix}"),
            )
            for role, role_port in roles
        ]
        self._forwarder = self.children[0]
        self._resolver = self.children[-1]

    @property
    def pids(self) -> list[int]:
        """Process ids of the running children."""
        return [c.process.pid for c in self.children if c.process is not None]

    def begin_here(self) -> None:
        """Commit the raw topics' current ends for this worker's forwarder group, so that
        the worker, whenever it is launched (or launched again after a crash), reads
        exactly what is published from now on (a backlog for a bench)."""
        commit_ends(self.settings, forward_group(self.app_id), INPUT_TOPICS)

    def committed_lag(self) -> int:
        """Raw messages its forwarder group has not committed, plus intake messages its
        resolver group has not: 0 once everything published was resolved, confirmed and
        committed (whatever crashes happened on the way). Needs ``intake``."""
        if self.intake is None:
            raise ValueError("committed_lag needs the worker's own intake topic")
        return committed_lag(
            self.settings, forward_group(self.app_id), INPUT_TOPICS
        ) + committed_lag(self.settings, self.app_id, [self.intake])

    def launch(self) -> None:
        """Start the process(es) without waiting."""
        for child in self.children:
            child.launch()

    def start(self, timeout_s: float = 120) -> None:
        """Start and wait until it is ready and reading every raw partition."""
        self.launch()
        # high-water marks known for all 36 raw partitions: positions are set ("latest" is
        # resolved) before anyone publishes
        self._forwarder.wait(
            lambda ready, _counts: bool(ready.get("ready")) and _raw_read(ready) == RAW_PARTITIONS,
            "ready",
            timeout_s,
        )
        if self._resolver is not self._forwarder:
            self._resolver.wait(lambda ready, _c: bool(ready.get("ready")), "ready", timeout_s)

    def raw_partitions(self) -> int:
        """How many raw partitions its forwarder reads now (0 while it does not answer):
        with several workers in one group, each forwards its share of the 36."""
        try:
            ready = self._forwarder.page("/health/ready")
        except (OSError, ValueError):
            return 0
        return _raw_read(ready)

    def holds_intake(self) -> bool:
        """Whether this worker holds the resolver's shard (its intake partition) now and is
        ready: with several workers in one group, one does (False while it does not
        answer)."""
        try:
            ready = self._resolver.page("/health/ready")
        except (OSError, ValueError):
            return False
        shard = f"{self.intake}["
        return bool(ready.get("ready")) and any(tp.startswith(shard) for tp in ready.get("lag", {}))

    def stop(self, timeout_s: float = 60) -> None:
        """Stop gracefully (SIGTERM), as an orchestrator would."""
        for child in self.children:
            child.stop(timeout_s)

    def kill(self) -> None:
        for child in self.children:
            child.kill()

    def counts(self) -> dict[str, Any]:
        """The resolver's counts, with the forwarder's when it runs apart."""
        counts = self._resolver.counts()
        if self._forwarder is not self._resolver:
            counts = {**self._forwarder.counts(), **counts}
        return counts

    def page(self, path: str) -> dict[str, Any]:
        """One of the resolver's JSON pages."""
        return self._resolver.page(path)

    def handled(self) -> int:
        counts = self._resolver.counts()
        return sum(int(counts.get(k, 0)) for k in _HANDLED)

    def drained(self, handled: int, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until the worker has handled ``handled`` messages and lags nowhere."""

        def done(ready: dict[str, Any], counts: dict[str, Any]) -> bool:
            total = sum(int(counts.get(k, 0)) for k in _HANDLED)
            return total >= handled and bool(ready.get("ready")) and ready["total_lag"] == 0

        if self._forwarder is not self._resolver:
            self.forwarded(timeout_s)
        return self._resolver.wait(done, f"done with {handled} messages", timeout_s)

    def forwarded(self, timeout_s: float = 300) -> None:
        """Wait until the forwarder lags nowhere on the raw topics (as of its last lag
        check, at most half a second old). With the worker in one process, its readiness
        also counts the intake: then this waits until the worker lags nowhere at all."""

        def done(ready: dict[str, Any], _counts: dict[str, Any]) -> bool:
            return bool(ready.get("ready")) and ready["total_lag"] == 0

        self._forwarder.wait(done, "done forwarding", timeout_s)

"""A project service (worker, sink) in a child process, watched through its JSON pages:
start it, wait for a condition on its readiness and counts, stop it. Used by the demo,
benches and tests."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from c2c.errors import ServiceError
from c2c.kafka import end_offsets
from c2c.settings import Settings

__all__ = [
    "ChildService",
    "commit_ends",
    "committed_lag",
    "free_port",
    "free_port_pair",
    "free_port_run",
]

Check = Callable[[dict[str, Any], dict[str, Any]], bool]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a child's web port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A free TCP port p on 127.0.0.1 such that p+1 is free too."""
    return free_port_run(2)


def free_port_run(count: int) -> int:
    """A free TCP port p on 127.0.0.1 such that p+1 ... p+count-1 are free too (a local
    Kafka cluster's nodes: two ports a node)."""
    for _ in range(50):
        with contextlib.ExitStack() as bound:
            first = bound.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                for offset in range(1, count):
                    bound.enter_context(socket.socket()).bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no {count} adjacent free ports on 127.0.0.1")


def _ends(settings: Settings, topics: Iterable[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p, high) for (t, p), high in end_offsets(settings, topics).items()]


def commit_ends(settings: Settings, group: str, topics: Iterable[str]) -> None:
    """Commit the current end of every partition of ``topics`` for consumer group
    ``group``: whenever the group's consumer starts, and after any crash, it reads exactly
    what was published from now on, whatever its start setting."""
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(offsets=_ends(settings, topics), asynchronous=False)
    finally:
        consumer.close()


def committed_lag(settings: Settings, group: str, topics: Iterable[str]) -> int:
    """Messages of ``topics`` after what consumer group ``group`` committed (a partition
    with no committed offset counts whole): 0 when the group has processed and committed
    everything published."""
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        ends = _ends(settings, topics)
        committed = consumer.committed([TopicPartition(e.topic, e.partition) for e in ends], 10)
    finally:
        consumer.close()
    return sum(end.offset - max(done.offset, 0) for end, done in zip(ends, committed, strict=True))


class ChildService:
    """``command`` run with ``env``; its web port ``port`` serves /health/ready and
    /metrics/counts."""

    def __init__(
        self, name: str, command: list[str], env: Mapping[str, str], port: int, log: Path
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=log)

    def stop(self, timeout_s: float = 60) -> None:
        """Stop gracefully (SIGTERM), as an orchestrator would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """Kill it at once (SIGKILL, as a crash would: nothing flushed, committed or closed).
        :meth:`launch` starts it again with the same command and environment."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def page(self, path: str) -> dict[str, Any]:
        """One of its JSON pages (a 503 readiness answer is an answer too)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                answer: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        return answer

    def counts(self) -> dict[str, Any]:
        return self.page("/metrics/counts")

    def wait(self, done: Check, what: str, timeout_s: float = 300) -> dict[str, Any]:
        """Poll readiness and counts until ``done(ready, counts)``; ServiceError (with the
        log's tail) if the process exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        ready: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServiceError(
                    f"{self.name} exited ({code}); log {self.log}:\n{self._tail()}",
                    code="child.exited",
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
            f"{self.name} not {what} in {timeout_s:.0f} s (readiness {ready}, counts "
            f"{counts}); log {self.log}:\n{self._tail()}",
            code="child.timeout",
        )

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

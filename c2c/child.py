"""A project service (worker, sink) in a child process, watched through its JSON pages:
start it, wait for a condition on its readiness and counts, stop it. Used by the demo,
benches and tests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from c2c.errors import ServiceError

__all__ = ["ChildService", "free_port"]

Check = Callable[[dict[str, Any], dict[str, Any]], bool]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a child's web port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

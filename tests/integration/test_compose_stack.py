"""compose.yaml without Docker: its c2c commands, in the order its depends_on gives, with
its environment, against the local services; the pipeline must work.

What differs from a Docker run, and only that: the endpoints (service names become the
local stack's addresses: C2C_KAFKA_BOOTSTRAP, C2C_SCHEMA_REGISTRY_URL, C2C_CLICKHOUSE_URL
and its user), the ports each container would have to itself (web, metrics) become free
ports, telemetry goes nowhere (no collector runs here), and the demo runs 150 people. The
services' images are checked against the settings in tests/unit/test_compose.py, and so is
the cluster profile, which is not run here (no ClickHouse server or Keeper runs here)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from c2c.settings import Settings
from tests.conftest import free_port_pair

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCAL = (
    "C2C_KAFKA_BOOTSTRAP",
    "C2C_SCHEMA_REGISTRY_URL",
    "C2C_CLICKHOUSE_URL",
    "C2C_DATA_DIR",
    "C2C_LIB_DIR",
)


def _order(services: dict[str, Any]) -> list[str]:
    """Service names in an order that satisfies every depends_on."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for before in services[name].get("depends_on") or {}:
            visit(before)
        done.append(name)

    for name in services:
        visit(name)
    return done


def _commands(service: dict[str, Any]) -> list[list[str]]:
    """The c2c commands a service runs: its command, or the `&&` chain a shell runs."""
    command = service.get("command") or []
    if service.get("entrypoint") == ["sh", "-ec"]:
        return [shlex.split(part) for part in command[0].split("&&")]
    return [list(command)] if command and command[0] == "c2c" else []


def _environment(service: dict[str, Any], stack: Settings, ports: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C2C_") or k in LOCAL}
    for key, value in (service.get("environment") or {}).items():
        if key in LOCAL or key in ("C2C_CLICKHOUSE_USER", "C2C_CLICKHOUSE_PASSWORD"):
            continue  # the local stack's endpoints (embedded ClickHouse has no user)
        env[key] = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))
    env.update(ports)
    env["C2C_OTEL_EXPORTER"] = "none"  # no collector here
    env["C2C_KAFKA_BOOTSTRAP"] = stack.kafka_bootstrap
    env["C2C_SCHEMA_REGISTRY_URL"] = stack.schema_registry_url
    return env


def _healthy(service: dict[str, Any], port: str, default: int, deadline_s: float) -> None:
    """The service's own healthcheck command (its port made ours) exits 0, in time."""
    test = [part.replace(f":{default}/", f":{port}/") for part in service["healthcheck"]["test"]]
    assert test[0] == "CMD"
    command = [sys.executable if test[1] == "python" else test[1], *test[2:]]
    deadline = time.monotonic() + deadline_s
    while subprocess.run(command, capture_output=True, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{command} did not pass in {deadline_s} s"
        time.sleep(1)


def test_the_compose_commands_run_in_order_and_the_pipeline_works(
    stack: Settings, registry: Any, tmp_path: Path
) -> None:
    every = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    # `docker compose up` without `--profile cluster`: the ClickHouse cluster, its migrations
    # and its sink are not started (tests/unit/test_compose.py checks them as text)
    services = {n: s for n, s in every.items() if "cluster" not in (s.get("profiles") or [])}
    assert {"init-cluster", "sink-cluster"} <= set(every) - set(services)
    order = [name for name in _order(services) if _commands(services[name])]
    assert order.index("init") < order.index("identity-worker") < order.index("demo")
    assert order.index("init") < order.index("sink") < order.index("demo")

    web = {"identity-worker": str(free_port_pair()), "sink": str(free_port_pair())}
    ports = {
        "C2C_WORKER_WEB_PORT": web["identity-worker"],
        "C2C_SINK_WEB_PORT": web["sink"],
    }
    defaults = {"identity-worker": 6066, "sink": 6067}
    running: list[subprocess.Popen[bytes]] = []
    try:
        for name in order:
            service = services[name]
            env = _environment(service, stack, ports)
            if "C2C_METRICS_PORT" in env:
                env["C2C_METRICS_PORT"] = str(free_port_pair())  # one per container there
            for command in _commands(service):
                argv = [sys.executable, "-m", "cli", *command[1:]]
                if name == "demo":
                    argv += ["--people", "150"]
                if name in web:  # a long-running service: started, then its healthcheck
                    log = (tmp_path / f"{name}.log").open("wb")
                    running.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))
                    _healthy(service, web[name], defaults[name], 180)
                    continue
                done = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=1800, check=False
                )
                assert done.returncode == 0, (
                    f"{name}: {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
                if name == "demo":
                    assert "feeding the running stages" in done.stdout
                    assert "worker and sink: caught up" in done.stdout
                    assert "public_outcome_college_going (" in done.stdout
        # what the pipeline wrote is in ClickHouse, through the running sink
        with urllib.request.urlopen(
            f"http://127.0.0.1:{web['sink']}/metrics/counts", timeout=10
        ) as answer:
            counts = json.loads(answer.read())
        assert counts["facts"] > 0
    finally:
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()

"""`c2c services up|status|down` on a second, private stack (own ports and data folder), so
that killing its broker does not disturb the stack the other tests use."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from c2c.errors import ServiceError
from c2c.settings import Settings
from services import services_down, services_up
from tests.conftest import private_stack_env, run_c2c

pytestmark = pytest.mark.integration


_c2c = run_c2c


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = _c2c(env, "services", "status", "--json", check=False)
    return {row["name"]: row for row in json.loads(result.stdout)}


def _alive(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a while for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture
def private_env(tmp_path: Path, settings: Settings) -> dict[str, str]:
    return private_stack_env(tmp_path, settings)


def test_up_status_kill_and_down(private_env: dict[str, str]) -> None:
    try:
        up = _c2c(private_env, "services", "up")
        assert "started kafka, schema_registry" in up.stdout

        rows = _status(private_env)
        assert {name: row["up"] for name, row in rows.items()} == {
            "kafka": True,
            "schema_registry": True,
            "clickhouse": True,
        }
        assert rows["kafka"]["address"] == private_env["C2C_KAFKA_BOOTSTRAP"]
        assert rows["kafka"]["version"].startswith("4.")
        assert rows["schema_registry"]["version"].startswith("3.")
        broker_pid = rows["kafka"]["pid"]
        registry_pid = rows["schema_registry"]["pid"]
        assert isinstance(broker_pid, int)
        assert isinstance(registry_pid, int)

        os.kill(broker_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _status(private_env)["kafka"]["up"] and time.monotonic() < deadline:
            time.sleep(0.5)
        rows = _status(private_env)
        assert rows["kafka"]["up"] is False
        assert rows["kafka"]["pid"] is None
        assert rows["kafka"]["log"].endswith("kafka.log")
        assert _c2c(private_env, "services", "status", check=False).returncode == 3
    finally:
        down = _c2c(private_env, "services", "down")
    assert "schema_registry" in down.stdout
    for pid_name in ("kafka.pid", "schema_registry.pid"):
        assert not (Path(private_env["C2C_DATA_DIR"]) / "run" / pid_name).exists()
    assert not _alive(registry_pid)


def test_up_names_the_service_and_its_log_when_not_ready_in_time(
    private_env: dict[str, str], settings: Settings
) -> None:
    private = Settings(
        data_dir=Path(private_env["C2C_DATA_DIR"]),
        lib_dir=settings.lib_path.resolve(),
        kafka_bootstrap=private_env["C2C_KAFKA_BOOTSTRAP"],
        kafka_controller_port=int(private_env["C2C_KAFKA_CONTROLLER_PORT"]),
        schema_registry_url=private_env["C2C_SCHEMA_REGISTRY_URL"],
        service_start_timeout_s=0.5,
    )
    try:
        with pytest.raises(ServiceError) as caught:
            services_up(private, ["kafka"])
        message = str(caught.value)
        assert ("kafka" in message and "not ready within 0 s" in message) or "exited" in message
        assert str(private.log_dir.resolve() / "kafka.log") in message
        # A failed `up` leaves nothing it started running.
        assert not (private.run_dir / "kafka.pid").exists()
    finally:
        services_down(private)


def test_down_and_status_find_every_node_that_up_started(
    tmp_path: Path, settings: Settings
) -> None:
    """`up --brokers 3` on a stack whose C2C_KAFKA_BROKERS is 1: `status` and `down` without
    `--brokers` still see and stop the second and third nodes (up records how many it
    started in the data folder)."""
    nodes = ("kafka", "kafka-2", "kafka-3")
    pids: list[int] = []
    for attempt in range(3):
        # the ports of three nodes, for a stack that names one
        env = {
            **private_stack_env(tmp_path / str(attempt), settings, brokers=3),
            "C2C_KAFKA_BROKERS": "1",
            "C2C_KAFKA_HEAP": "384m",
        }
        up = _c2c(env, "services", "up", "--only", "kafka", "--brokers", "3", check=False)
        # a free port may be taken by another process before a node binds it (`up` stops
        # what it started when one fails): take other ports
        if "Address already in use" not in up.stderr:
            break
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        rows = {
            row["name"]: row
            for row in json.loads(
                _c2c(env, "services", "status", "--only", "kafka", "--json").stdout
            )
        }
        assert sorted(rows) == sorted(nodes)
        assert all(rows[name]["up"] for name in nodes), rows
        pids = [rows[name]["pid"] for name in nodes]
        assert all(isinstance(pid, int) for pid in pids)
    finally:
        down = _c2c(env, "services", "down")
    for name in nodes:
        assert name in down.stdout
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)
    run = Path(env["C2C_DATA_DIR"]) / "run"
    assert not any((run / f"{name}.pid").exists() for name in nodes)
    # stopped: status names the one broker of C2C_KAFKA_BROKERS again, down
    after = _status(env)
    assert "kafka-2" not in after
    assert after["kafka"]["up"] is False

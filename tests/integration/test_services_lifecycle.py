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

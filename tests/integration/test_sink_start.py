"""`c2c sink run` waits for ClickHouse at start, as it does mid-run, instead of exiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from c2c.settings import Settings

pytestmark = pytest.mark.integration


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_sink_waits_for_an_unreachable_clickhouse_and_stops_when_asked(
    stack: Settings,
) -> None:
    env = {
        **os.environ,
        "C2C_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "C2C_SCHEMA_REGISTRY_URL": stack.schema_registry_url,
        "C2C_CLICKHOUSE_URL": f"http://127.0.0.1:{_unused_port()}",  # nobody listens
        "C2C_SINK_WEB_PORT": str(_unused_port()),
    }
    sink = subprocess.Popen(
        [sys.executable, "-m", "cli", "sink", "run"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)
        assert sink.poll() is None, sink.communicate()  # it used to exit at once
    finally:
        sink.send_signal(signal.SIGTERM)
        _out, err = sink.communicate(timeout=60)
    assert sink.returncode == 0, err
    waits = [line for line in err.splitlines() if "ClickHouse is not answering" in line]
    assert len(waits) >= 2, err  # 0.5 s, then 1 s, then 2 s
    assert "again in 0.5 s" in waits[0]
    assert "again in 1.0 s" in waits[1]

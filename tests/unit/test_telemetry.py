"""Telemetry from settings, without services: where metrics go, and clear errors."""

from __future__ import annotations

import socket

import pytest

from c2c.errors import ServiceError
from c2c.metrics import lag_observations
from c2c.settings import Settings
from c2c.telemetry import Telemetry, _otlp_endpoint, setup_telemetry


def test_lag_map_becomes_one_gauge_value_per_group_and_partition() -> None:
    lag = {"c2c.linked.wage[3]": 7, "c2c.identity.changes[0]": 0}
    assert lag_observations("c2c-sink", lag) == [
        (7.0, {"group": "c2c-sink", "topic": "c2c.linked.wage", "partition": "3"}),
        (0.0, {"group": "c2c-sink", "topic": "c2c.identity.changes", "partition": "0"}),
    ]


def test_a_busy_metrics_port_is_named_in_the_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port} \\(C2C_METRICS_PORT\\)"):
            setup_telemetry(Settings(metrics_port=port), "sink")


def test_otlp_metrics_go_beside_the_traces() -> None:
    old = Settings(otel_endpoint="http://collector:4318/v1/traces")
    assert _otlp_endpoint(old, "metrics") == "http://collector:4318/v1/metrics"
    base = Settings(otel_endpoint="http://c:4318/")
    assert _otlp_endpoint(base, "traces") == "http://c:4318/v1/traces"
    assert _otlp_endpoint(Settings(), "metrics") == "http://127.0.0.1:4318/v1/metrics"


def test_without_exporter_or_port_nothing_is_recorded() -> None:
    telemetry = setup_telemetry(Settings(otel_exporter="none"), "sink")
    assert not telemetry.tracing
    assert not telemetry.measuring
    assert not Telemetry.disabled().tracing
    console = setup_telemetry(Settings(otel_exporter="console"), "sink")
    assert console.tracing
    assert console.measuring
    console.shutdown()

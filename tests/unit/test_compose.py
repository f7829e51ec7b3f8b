"""compose.yaml must stay valid for users who run the stack with Docker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "neither `docker compose` nor `docker-compose` is installed (make tools)"
    return [legacy]


def test_compose_file_passes_compose_config() -> None:
    result = subprocess.run(
        [
            *_compose(),
            "-f",
            str(ROOT / "compose.yaml"),
            "--profile",
            "jobs",
            "config",
            "--services",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {
        "kafka",
        "schema-registry",
        "clickhouse",
        "demo",
        "otel-collector",
        "prometheus",
        "grafana",
    } <= services


def test_provisioned_dashboards_are_valid_and_query_our_metrics() -> None:
    import json

    folder = ROOT / "observability" / "config" / "grafana" / "dashboards"
    health = json.loads((folder / "stream-health.json").read_text())
    exprs = " ".join(t["expr"] for p in health["panels"] for t in p["targets"])
    # OpenTelemetry counters c2c.events.out, c2c.rows.rejected and c2c.events.failed as
    # Prometheus names them:
    for name in ("c2c_events_out_total", "c2c_rows_rejected_total", "c2c_events_failed_total"):
        assert name in exprs
    json.loads((folder / "outcomes.json").read_text())

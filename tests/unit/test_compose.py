"""compose.yaml must stay valid for users who run the stack with Docker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_CONFIG = ROOT / "services" / "clickhouse-cluster"
CLUSTER_NODES = ("clickhouse-1", "clickhouse-2")
CLUSTER_SERVICES = ("clickhouse-keeper", *CLUSTER_NODES, "init-cluster", "sink-cluster")


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
            "--profile",
            "cluster",
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
        *CLUSTER_SERVICES,
    } <= services


def test_provisioned_dashboards_are_valid_and_query_our_metrics() -> None:
    folder = ROOT / "observability" / "config" / "grafana" / "dashboards"
    health = json.loads((folder / "stream-health.json").read_text())
    exprs = " ".join(t["expr"] for p in health["panels"] for t in p["targets"])
    # OpenTelemetry counters c2c.events.out, c2c.rows.rejected and c2c.events.failed as
    # Prometheus names them:
    for name in ("c2c_events_out_total", "c2c_rows_rejected_total", "c2c_events_failed_total"):
        assert name in exprs
    json.loads((folder / "outcomes.json").read_text())


def _file() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _interpolated(value: str) -> str:
    """``value`` with each ``${NAME:-default}`` as compose gives it when NAME is unset."""
    import re

    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _pom_version(name: str) -> str:
    import re

    found = re.search(rf"<{name}>([^<]+)</{name}>", (ROOT / "services" / "pom.xml").read_text())
    assert found, name
    return found.group(1)


def test_images_are_the_versions_the_local_services_and_tests_run() -> None:
    import chdb

    services = _file()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{_pom_version('kafka.version')}"
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    registry = f"apicurio/apicurio-registry:{_pom_version('apicurio.version')}"
    assert services["schema-registry"]["image"] == registry
    major_minor = ".".join(chdb.engine_version.split(".")[:2])
    assert services["clickhouse"]["image"] == f"clickhouse/clickhouse-server:{major_minor}"
    for name in ("clickhouse-keeper", *CLUSTER_NODES):  # the cluster's nodes and its Keeper
        assert services[name]["image"] == services["clickhouse"]["image"], name
    # opt-out deletes are lightweight updates (patch parts): ClickHouse 25.7 or later
    assert tuple(int(n) for n in major_minor.split(".")) >= (25, 7)


def test_every_c2c_variable_is_a_setting_and_the_environment_is_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from c2c.settings import ENV_PREFIX, Settings, load_settings

    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    services = _file()["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if key.startswith(ENV_PREFIX) and name not in ("grafana", "clickhouse"):
                assert key in fields, f"{name}: {key} is not a setting (c2c/settings.py)"
                monkeypatch.setenv(key, _interpolated(str(value)))
    settings = load_settings()  # every problem at once, as each process would see it
    assert settings.schema_registry_url.startswith("http://schema-registry:8080/")
    assert settings.kafka_bootstrap == "kafka:9092"


def test_ports_agree_with_the_settings_and_prometheus() -> None:
    from c2c.settings import Settings

    services = _file()["services"]
    defaults = Settings.model_fields
    worker_check = " ".join(services["identity-worker"]["healthcheck"]["test"])
    sink_check = " ".join(services["sink"]["healthcheck"]["test"])
    assert f":{defaults['worker_web_port'].default}/health/live" in worker_check
    assert f":{defaults['sink_web_port'].default}/health/live" in sink_check
    prometheus = (ROOT / "observability" / "config" / "prometheus.yml").read_text()
    for name in ("identity-worker", "sink"):
        port = services[name]["environment"]["C2C_METRICS_PORT"]
        assert f"{name}:{port}" in prometheus
    assert services["schema-registry"]["ports"] == ["127.0.0.1:8081:8080"]


def test_init_runs_before_the_stages_and_every_service_has_a_healthcheck() -> None:
    services = _file()["services"]
    jobs = {"kafka-init", "init", "demo", "init-cluster"}
    for name, service in services.items():
        if name not in jobs:
            assert "healthcheck" in service, f"{name} has no healthcheck"
    init = " ".join(services["init"]["command"])
    assert init == "c2c topics create && c2c schemas register && c2c sink migrate"
    for stage in ("identity-worker", "sink"):
        after = services[stage]["depends_on"]["init"]["condition"]
        assert after == "service_completed_successfully"
    assert services["init"]["depends_on"] == {
        "schema-registry": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    assert {k: v["condition"] for k, v in services["demo"]["depends_on"].items()} == {
        "identity-worker": "service_healthy",
        "sink": "service_healthy",
    }


def test_grafana_reads_clickhouse_as_a_public_reader_and_needs_a_login() -> None:
    import yaml

    from sinks.access import ROLES

    services = _file()["services"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    folder = ROOT / "observability" / "config"
    sources = yaml.safe_load(
        (folder / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )["datasources"]
    (clickhouse,) = [s for s in sources if s["uid"] == "clickhouse"]
    user = clickhouse["jsonData"]["username"]
    script = (folder / "clickhouse" / "grafana-user.sh").read_text()
    public = [role for role in ROLES if role.reads == ("public_*",)]
    assert [role.name for role in public] == ["public_reader"]
    assert f"CREATE USER IF NOT EXISTS {user} " in script
    assert f"DEFAULT ROLE public_reader;\nGRANT public_reader TO {user};" in script
    mounts = services["clickhouse"]["volumes"]
    assert any(m.startswith("./observability/config/clickhouse/grafana-user.sh:") for m in mounts)


def _xml(name: str) -> Any:
    import xml.etree.ElementTree as ET

    return ET.parse(CLUSTER_CONFIG / name).getroot()


def test_the_cluster_profile_is_two_replicas_a_keeper_and_a_sink_of_its_own() -> None:
    services = _file()["services"]
    profiled = {name for name, s in services.items() if "cluster" in (s.get("profiles") or [])}
    assert profiled == set(CLUSTER_SERVICES)  # `up` without the profile starts none of them
    for name in CLUSTER_SERVICES:
        assert services[name]["profiles"] == ["cluster"]
    # the sink: its own group (the default stack's sink keeps c2c-sink), after the migrations
    sink = services["sink-cluster"]
    assert sink["command"] == ["c2c", "sink", "run", "--group", "c2c-sink-cluster"]
    assert sink["depends_on"] == {"init-cluster": {"condition": "service_completed_successfully"}}
    assert services["init-cluster"]["command"] == ["c2c", "sink", "migrate"]
    assert {k: v["condition"] for k, v in services["init-cluster"]["depends_on"].items()} == {
        "init": "service_completed_successfully",
        **dict.fromkeys(CLUSTER_NODES, "service_healthy"),
    }
    keeper_check = " ".join(services["clickhouse-keeper"]["healthcheck"]["test"])
    assert "keeper-client" in keeper_check
    for node in CLUSTER_NODES:
        assert services[node]["hostname"] == node
        assert services[node]["depends_on"] == {
            "clickhouse-keeper": {"condition": "service_healthy"}
        }
        assert "system.zookeeper" in " ".join(services[node]["healthcheck"]["test"])


def test_the_cluster_config_macros_and_keeper_agree() -> None:
    """remote_servers names each node service once, each node's macros name its shard and
    itself as that replica, every node reads the one cluster file, and the Keeper they
    reach is the keeper service at its port."""
    services = _file()["services"]
    (cluster,) = _xml("cluster.xml").find("remote_servers")
    assert cluster.find("secret").get("from_env") == "CLICKHOUSE_CLUSTER_SECRET"
    placed: dict[str, str] = {}
    for number, shard in enumerate(cluster.findall("shard"), start=1):
        assert shard.findtext("internal_replication") == "true"
        for replica in shard.findall("replica"):
            placed[replica.findtext("host", "")] = f"{number:02d}"
            assert replica.findtext("port") == "9000"
    assert set(placed) == set(CLUSTER_NODES)
    for node in CLUSTER_NODES:
        mounts = dict(m.split(":")[:2] for m in services[node]["volumes"])
        assert mounts["./services/clickhouse-cluster/cluster.xml"] == (
            "/etc/clickhouse-server/config.d/cluster.xml"
        )
        assert mounts["./services/clickhouse-cluster/profile.xml"].startswith(
            "/etc/clickhouse-server/users.d/"
        )
        (macros_file,) = [
            f for f, inside in mounts.items() if inside.endswith("config.d/macros.xml")
        ]
        macros = _xml(Path(macros_file).name).find("macros")
        assert macros.findtext("replica") == node
        assert macros.findtext("shard") == placed[node]
        environment = services[node]["environment"]
        assert "CLICKHOUSE_CLUSTER_SECRET" in environment
    keeper = _xml("keeper.xml").find("keeper_server")
    (node,) = _xml("cluster.xml").find("zookeeper")
    assert node.findtext("host") == "clickhouse-keeper"
    assert node.findtext("port") == keeper.findtext("tcp_port")
    (server,) = keeper.find("raft_configuration")
    assert server.findtext("hostname") == "clickhouse-keeper"
    assert server.findtext("id") == keeper.findtext("server_id")
    mounts = services["clickhouse-keeper"]["volumes"]
    assert "./services/clickhouse-cluster/keeper.xml:/etc/clickhouse-keeper/keeper.xml:ro" in mounts
    assert services["clickhouse-keeper"]["entrypoint"][-1].endswith("/keeper.xml")
    profile = _xml("profile.xml").find("profiles/default")
    assert profile.findtext("distributed_foreground_insert") == "1"
    assert profile.findtext("distributed_product_mode") == "local"


def test_the_cluster_sinks_settings_name_the_cluster_of_its_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from urllib.parse import urlsplit

    from c2c.settings import ENV_PREFIX, load_settings

    services = _file()["services"]
    (cluster,) = _xml("cluster.xml").find("remote_servers")
    for name in ("init-cluster", "sink-cluster"):
        for key in list(__import__("os").environ):
            if key.startswith(ENV_PREFIX):
                monkeypatch.delenv(key)
        for key, value in services[name]["environment"].items():
            monkeypatch.setenv(key, _interpolated(str(value)))
        settings = load_settings()
        assert settings.clickhouse_cluster == cluster.tag
        assert urlsplit(settings.clickhouse_dsn).hostname in CLUSTER_NODES
        assert not settings.clickhouse_embedded
        assert (
            settings.clickhouse_user == services["clickhouse-1"]["environment"]["CLICKHOUSE_USER"]
        )


def test_the_outcomes_dashboard_writes_a_missing_cell_as_words_never_blank_or_zero() -> None:
    dashboard = ROOT / "observability" / "config" / "grafana" / "dashboards" / "outcomes.json"
    panels = json.loads(dashboard.read_text())["panels"]
    public = [p for p in panels if "public_outcome" in p["targets"][0]["rawSql"]]
    assert len(public) == 7
    for panel in public:
        no_value = panel["fieldConfig"]["defaults"].get("noValue", "")
        assert "suppressed" in no_value, panel["title"]

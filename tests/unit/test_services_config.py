from pathlib import Path

import pytest

from c2c.errors import ConfigError
from c2c.settings import Settings, load_settings
from c2c.topics import CATALOGUE, REGISTRY_JOURNAL, get_topic
from services.base import is_loopback
from services.clickhouse import ClickHouseService
from services.clickhouse_server import render_config
from services.kafka import KafkaService, kafka_nodes, render_server_properties
from services.manager import _record_nodes, _with_started_nodes, started_nodes
from services.registry import RegistryService


def _props(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_server_properties_bind_the_bootstrap_address_and_controller_port() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:29092", kafka_controller_port=29093)
    props = _props(render_server_properties(settings, Path("/data/kafka")))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["log.dirs"] == "/data/kafka"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"


def test_loopback_endpoints_are_local_and_others_remote() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("localhost")
    assert is_loopback("::1")
    assert not is_loopback("10.0.0.5")
    assert not is_loopback("kafka.example.org")
    assert KafkaService(Settings()).local
    assert not KafkaService(Settings(kafka_bootstrap="kafka:9092")).local
    assert not RegistryService(
        Settings(schema_registry_url="https://sr.example/apis/ccompat/v7")
    ).local


def test_registry_binds_api_and_management_ports_to_its_host(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    settings = Settings(
        schema_registry_url="http://127.0.0.1:18181/apis/ccompat/v7", lib_dir=lib, data_dir=tmp_path
    )
    env = RegistryService(settings).process_spec().env
    assert env["QUARKUS_HTTP_HOST"] == "127.0.0.1"
    assert env["QUARKUS_HTTP_PORT"] == "18181"
    assert env["QUARKUS_MANAGEMENT_HOST"] == "127.0.0.1"
    assert env["QUARKUS_MANAGEMENT_PORT"] == "18182"
    assert env["APICURIO_STORAGE_KIND"] == "kafkasql"


def test_catalogue_names_are_unique_and_the_journal_keeps_order_and_data() -> None:
    names = [topic.name for topic in CATALOGUE]
    assert len(names) == len(set(names))
    assert get_topic("c2c.ops.heartbeat").value_subject == "c2c.ops.heartbeat-value"
    assert REGISTRY_JOURNAL.partitions == 1
    assert REGISTRY_JOURNAL.config["retention.ms"] == "-1"


def test_cluster_ids_never_look_like_options() -> None:
    from services.kafka import _cluster_id

    ids = [_cluster_id() for _ in range(3000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_local_broker_runs_few_threads_and_the_serial_collector(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, lib_dir=tmp_path / "lib")
    props = _props(render_server_properties(settings, tmp_path / "data"))
    assert props["num.network.threads"] == "1"
    assert props["num.io.threads"] == "2"
    assert props["background.threads"] == "2"
    argv = list(KafkaService(settings).process_spec().argv)
    assert "-XX:+UseSerialGC" in argv
    assert "-XX:+UseG1GC" not in argv
    assert not [flag for flag in argv if "jmxremote" in flag]


def test_broker_jmx_is_served_on_loopback_only_when_asked(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, lib_dir=tmp_path / "lib", kafka_jmx_port=29099)
    argv = list(KafkaService(settings).process_spec().argv)
    assert "-Dcom.sun.management.jmxremote.port=29099" in argv
    assert "-Dcom.sun.management.jmxremote.host=127.0.0.1" in argv
    assert argv.index("-Dcom.sun.management.jmxremote.port=29099") < argv.index("kafka.Kafka")


def test_a_secured_broker_takes_scram_clients_and_allows_only_what_an_acl_allows() -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:29092", kafka_controller_port=29093, kafka_acls=True
    )
    props = _props(render_server_properties(settings, Path("/data/kafka"), "s3cret"))
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092"
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:c2c-admin"
    jaas = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert 'username="c2c-admin" password="s3cret"' in jaas
    assert 'user_c2c-admin="s3cret"' in props["listener.name.controller.plain.sasl.jaas.config"]


def test_acls_are_on_by_default_outside_development_only() -> None:
    assert not Settings().kafka_secured
    secret = "vJ3q8Lw0Rk2PzX9nTf6Yb4Hc1Md7Sg5Ue0Ai8Oy2Kt"  # random, as outside development
    assert Settings(environment="test", identity_secret=secret).kafka_secured
    assert Settings(environment="production", identity_secret=secret).kafka_secured
    assert not Settings(environment="test", identity_secret=secret, kafka_acls=False).kafka_secured
    assert Settings(kafka_acls=True).kafka_secured


def test_three_brokers_make_a_local_cluster_of_three_nodes_with_a_quorum_of_three(
    tmp_path: Path,
) -> None:
    settings = Settings(
        kafka_brokers=3,
        kafka_bootstrap="127.0.0.1:29092",
        kafka_controller_port=29093,
        kafka_jmx_port=29099,
        data_dir=tmp_path,
        lib_dir=tmp_path / "lib",
    )
    # every client bootstraps from the three nodes
    assert settings.kafka_bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    nodes = kafka_nodes(settings)
    assert [node.name for node in nodes] == ["kafka", "kafka-2", "kafka-3"]
    assert [node.address for node in nodes] == settings.kafka_bootstrap.split(",")
    props = _props(render_server_properties(settings, Path("/data/n2"), node=2))
    assert props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29094"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    )
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    # each node its own pid, log, marker and JMX port
    specs = [node.process_spec() for node in nodes]
    assert len({spec.pid_file for spec in specs}) == 3
    assert len({spec.log_file for spec in specs}) == 3
    assert len({spec.marker for spec in specs}) == 3
    assert "-Dcom.sun.management.jmxremote.port=29103" in specs[2].argv


def test_one_broker_keeps_its_address_and_a_remote_bootstrap_is_not_expanded() -> None:
    assert Settings(kafka_bootstrap="127.0.0.1:29092").kafka_bootstrap == "127.0.0.1:29092"
    remote = Settings(kafka_brokers=3, kafka_bootstrap="kafka:9092")
    assert remote.kafka_bootstrap == "kafka:9092"
    assert KafkaService(Settings()).name == "kafka"
    assert [node.address for node in kafka_nodes(remote)] == ["kafka:9092"]


def test_settings_with_another_broker_count_are_those_the_variable_would_give(
    tmp_path: Path,
) -> None:
    one = Settings(kafka_bootstrap="127.0.0.1:29092", data_dir=tmp_path)
    three = one.with_kafka_brokers(3)
    assert three == Settings(kafka_brokers=3, kafka_bootstrap="127.0.0.1:29092", data_dir=tmp_path)
    assert three.with_kafka_brokers(1) == one
    assert one.with_kafka_brokers(1) is one
    remote = Settings(kafka_bootstrap="kafka:9092")
    assert remote.with_kafka_brokers(3).kafka_bootstrap == "kafka:9092"


def test_down_and_status_widen_to_the_nodes_up_started(tmp_path: Path) -> None:
    three = Settings(kafka_brokers=3, kafka_bootstrap="127.0.0.1:29092", data_dir=tmp_path)
    one = three.with_kafka_brokers(1)
    assert started_nodes(one) is None
    assert _with_started_nodes(one) is one
    _record_nodes(three)
    assert started_nodes(one) == 3
    assert [node.name for node in kafka_nodes(_with_started_nodes(one))] == [
        "kafka",
        "kafka-2",
        "kafka-3",
    ]
    # asking for more nodes than were started keeps the larger number
    assert _with_started_nodes(three.with_kafka_brokers(5)).kafka_brokers == 5


def test_a_local_clickhouse_server_listens_on_the_urls_loopback_port_and_the_next(
    tmp_path: Path,
) -> None:
    settings = Settings(
        clickhouse_url="http://127.0.0.1:28123", clickhouse_serve=True, data_dir=tmp_path
    )
    config = render_config(settings)
    assert "<listen_host>127.0.0.1</listen_host>" in config
    assert "<http_port>28123</http_port>" in config
    assert "<tcp_port>28124</tcp_port>" in config
    assert settings.clickhouse_roles_from_file
    service = ClickHouseService(settings)
    assert service.local
    spec = service.process_spec()
    assert spec is not None
    assert spec.cwd == tmp_path.resolve() / "clickhouse-server"
    assert service.marker in spec.argv
    # only a loopback http URL can be served here; embedded and remote servers are not
    for url in ("http://clickhouse:8123", "chdb:///tmp/x", "https://127.0.0.1:8443"):
        with pytest.raises(ConfigError, match="C2C_CLICKHOUSE_SERVE"):
            load_settings(clickhouse_url=url, clickhouse_serve=True)
    remote = ClickHouseService(Settings(clickhouse_url="http://127.0.0.1:28123"))
    assert not remote.local
    assert remote.process_spec() is None

import secrets
from pathlib import Path

import pytest

from c2c.errors import ConfigError
from c2c.settings import (
    DEVELOPMENT_SECRET,
    MIN_SECRET_BITS,
    Settings,
    load_settings,
    secret_bits,
    weak_secret,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("C2C_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_local_services() -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.schema_registry_url == "http://127.0.0.1:8081/apis/ccompat/v7"
    assert settings.clickhouse_embedded
    assert settings.clickhouse_dsn == f"chdb://{Path('.c2c/clickhouse').resolve()}"
    assert settings.lib_path == Path(".c2c/lib").resolve()  # found from here, said whole


def test_environment_variables_are_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("C2C_CLICKHOUSE_URL", "https://ch.example:8443")
    monkeypatch.setenv("C2C_CLICKHOUSE_PASSWORD", "s3cret")
    settings = load_settings()
    assert settings.kafka_bootstrap == "broker-1:9092,broker-2:9092"
    assert not settings.clickhouse_embedded
    assert settings.is_external("kafka_bootstrap")
    assert not settings.is_external("schema_registry_url")
    assert "s3cret" not in repr(settings)


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_KAFKA_BOOTSTRAP", "no-port-here")
    monkeypatch.setenv("C2C_SCHEMA_REGISTRY_URL", "ftp://registry")
    monkeypatch.setenv("C2C_CLICKHOUSE_URL", "mysql://db")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "3 invalid setting(s)" in message
    assert "C2C_KAFKA_BOOTSTRAP" in message
    assert "'no-port-here'" in message
    assert "C2C_SCHEMA_REGISTRY_URL" in message
    assert "C2C_CLICKHOUSE_URL" in message


def test_security_problems_come_with_the_others_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("C2C_SERVICE_START_TIMEOUT_S", "-5")
    monkeypatch.setenv("C2C_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("C2C_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("C2C_KAFKA_SASL_PASSWORD", "hunter2-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "2 invalid setting(s)" in message
    assert "C2C_SERVICE_START_TIMEOUT_S" in message
    assert "needs C2C_KAFKA_SASL_USERNAME" in message
    assert "hunter2-secret" not in message


def test_kafka_security_passes_through_to_librdkafka() -> None:
    settings = Settings(
        kafka_bootstrap="b:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
        kafka_ssl_ca_location=Path("/etc/ca.pem"),
    )
    config = settings.kafka_config(**{"group.id": "g"})
    assert config == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "pw",
        "ssl.ca.location": "/etc/ca.pem",
        "fetch.wait.max.ms": 50,
        "fetch.min.bytes": 256 * 1024,
        "group.id": "g",
    }


def test_consumers_get_the_fetch_settings_producers_and_admin_clients_not() -> None:
    settings = Settings(kafka_fetch_wait_max_ms=80, kafka_fetch_min_bytes=1000)
    consumer = settings.kafka_config(**{"group.id": "g", "enable.auto.commit": False})
    assert consumer["fetch.wait.max.ms"] == 80
    assert consumer["fetch.min.bytes"] == 1000
    # librdkafka warns about consumer properties given to a producer or an admin client
    producer = settings.kafka_config(**{"acks": "all"})
    assert "fetch.wait.max.ms" not in producer
    assert "fetch.min.bytes" not in producer
    assert "fetch.wait.max.ms" not in settings.kafka_config()
    # a caller's own value wins
    mine = settings.kafka_config(**{"group.id": "g", "fetch.wait.max.ms": 5})
    assert mine["fetch.wait.max.ms"] == 5
    assert mine["fetch.min.bytes"] == 1000


def test_fetch_settings_out_of_range_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_KAFKA_FETCH_WAIT_MAX_MS", "-1")
    monkeypatch.setenv("C2C_KAFKA_FETCH_MIN_BYTES", "0")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "C2C_KAFKA_FETCH_WAIT_MAX_MS (got '-1')" in str(raised.value)
    assert "C2C_KAFKA_FETCH_MIN_BYTES (got '0')" in str(raised.value)


def test_registry_basic_auth_passes_through() -> None:
    settings = Settings(schema_registry_basic_auth="user:pw")
    assert settings.schema_registry_config()["basic.auth.user.info"] == "user:pw"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.kafka_bootstrap = "x:1"  # type: ignore[misc]


def test_outside_development_the_default_identity_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().environment == "development"  # the default secret serves here
    monkeypatch.setenv("C2C_ENVIRONMENT", "production")
    monkeypatch.setenv("C2C_KAFKA_BOOTSTRAP", "no-port-here")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "2 invalid setting(s)" in message  # reported with the other problems
    assert (
        "C2C_IDENTITY_SECRET (value hidden): Value error, the identity secret contains the "
        "development secret" in message
    )
    monkeypatch.setenv("C2C_KAFKA_BOOTSTRAP", "broker:9092")
    for weak, why in (
        ("too-short", "fewer than 32"),
        ("a" * 32, "1 distinct characters"),
        (f"{DEVELOPMENT_SECRET}-production-2026", "contains the development secret"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "bits, fewer than"),
        ("Password123!" * 3, "bits, fewer than"),
        ("0123456789abcdef" * 2, "bits, fewer than"),
    ):
        monkeypatch.setenv("C2C_IDENTITY_SECRET", weak)
        with pytest.raises(ConfigError, match=why) as caught:
            load_settings()
        assert weak not in str(caught.value)
    strong = secrets.token_urlsafe(32)
    monkeypatch.setenv("C2C_IDENTITY_SECRET", strong)
    assert load_settings().identity_secret.get_secret_value() == strong


def test_random_secrets_pass_the_strength_check() -> None:
    # what the message tells to run, and a hex key of 128 bits
    for _ in range(200):
        assert weak_secret(secrets.token_urlsafe(32)) is None
        assert secret_bits(secrets.token_hex(16)) >= MIN_SECRET_BITS
    assert secret_bits("a" * 64) < 16


def test_earlier_key_versions_keep_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_IDENTITY_SECRET", "new")
    monkeypatch.setenv("C2C_IDENTITY_KEY_VERSION", "2")
    monkeypatch.setenv("C2C_IDENTITY_PREVIOUS_SECRETS", '{"1": "old"}')
    settings = load_settings()
    assert settings.identity_secrets() == {1: b"old", 2: b"new"}
    assert "old" not in repr(settings)
    monkeypatch.setenv("C2C_IDENTITY_PREVIOUS_SECRETS", '{"2": "old"}')
    with pytest.raises(ConfigError, match="list only earlier ones"):
        load_settings()


def test_a_clickhouse_cluster_needs_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().clickhouse_cluster is None
    monkeypatch.setenv("C2C_CLICKHOUSE_CLUSTER", "c2c")
    with pytest.raises(ConfigError) as caught:
        load_settings()  # embedded chdb by default: no cluster
    assert "C2C_CLICKHOUSE_CLUSTER" in str(caught.value)
    assert "needs a ClickHouse server" in str(caught.value)
    monkeypatch.setenv("C2C_CLICKHOUSE_URL", "http://clickhouse-1:8123")
    assert load_settings().clickhouse_cluster == "c2c"
    monkeypatch.setenv("C2C_CLICKHOUSE_CLUSTER", "c2c; DROP")
    with pytest.raises(ConfigError, match="C2C_CLICKHOUSE_CLUSTER"):
        load_settings()

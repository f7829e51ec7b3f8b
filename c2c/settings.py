"""All configuration, in one object read from ``C2C_*`` environment variables.

:func:`load_settings` is the only way in: it validates everything at once and raises
:class:`~c2c.errors.ConfigError` listing every problem with the variable's name. Nothing
here reads the environment at import time, and nothing holds a process-wide instance:
callers load settings once and pass them down.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from c2c.errors import ConfigError

__all__ = [
    "DEVELOPMENT_SECRET",
    "ENV_PREFIX",
    "MIN_SECRET_BITS",
    "Settings",
    "find_data_dir",
    "kafka_node_port",
    "load_settings",
    "secret_bits",
    "weak_secret",
]

ENV_PREFIX = "C2C_"
DATA_DIR_NAME = ".c2c"


# A local cluster's node i listens on the first node's ports + _KAFKA_NODE_PORT_STEP * (i - 1):
# with the controller on the client port + 1 (the default), the nodes' ports interleave
# (9092, 9093; 9094, 9095; 9096, 9097).
_KAFKA_NODE_PORT_STEP = 2
# The sink's look-up window at most (C2C_SINK_DEDUPE_WINDOW_S): longer than any history here
_TEN_YEARS_S = 10 * 365 * 86_400


def kafka_node_port(first: int, node: int) -> int:
    """The port of the local cluster's ``node`` (1-based) whose first node's port is
    ``first`` (a client or controller port)."""
    return first + _KAFKA_NODE_PORT_STEP * (node - 1)


def _loopback_server(server: str) -> bool:
    host = server.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _local_cluster_bootstrap(bootstrap: str, brokers: int) -> str:
    """``bootstrap`` with every node of a local cluster of ``brokers`` nodes when it is a
    single loopback address (every client then bootstraps from all of them); else as given."""
    servers = [server.strip() for server in bootstrap.split(",")]
    if brokers <= 1 or len(servers) != 1 or not _loopback_server(servers[0]):
        return bootstrap
    host, _, port = servers[0].rpartition(":")
    return ",".join(f"{host}:{kafka_node_port(int(port), node)}" for node in range(1, brokers + 1))


def find_data_dir(start: Path) -> Path:
    """The project's data folder: ``.c2c`` in ``start`` or the nearest folder above it that
    has one (as git finds its repository), else ``start/.c2c``. A command run in a
    subfolder so opens the project's services and data, not an empty new folder."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / DATA_DIR_NAME).is_dir():
            return folder / DATA_DIR_NAME
    return start / DATA_DIR_NAME


# Identifier hashes keyed with this are for development only (settings refuse it elsewhere).
DEVELOPMENT_SECRET = "c2c-development-only-identity-secret"
_SECRET_WORDS = ("password", "secret", "auth", "key")

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


# By the estimate of secret_bits, 32 random URL-safe characters carry about 190 bits and 32
# random hex digits about 120; a repeated or sequential pattern carries far fewer. The
# estimate is rough, so the bar is below a random hex key's 128 true bits.
MIN_SECRET_BITS = 100


def weak_secret(secret: str) -> str | None:
    """Why ``secret`` is too weak to key identifier hashes, or None. An SSN has 1e9 values,
    so whoever holds the hashes and can guess the key has every SSN: the key must be
    random. Refused: the development secret inside it, fewer than 32 characters, fewer than
    10 distinct ones, or fewer than :data:`MIN_SECRET_BITS` by :func:`secret_bits`."""
    if DEVELOPMENT_SECRET in secret:
        return "the identity secret contains the development secret"
    if len(secret) < 32:
        return f"the identity secret has {len(secret)} characters, fewer than 32"
    if len(set(secret)) < 10:
        return f"the identity secret has {len(set(secret))} distinct characters, fewer than 10"
    bits = secret_bits(secret)
    if bits < MIN_SECRET_BITS:
        return (
            f"the identity secret carries about {bits:.0f} bits, fewer than {MIN_SECRET_BITS} "
            "(repeated or predictable characters)"
        )
    return None


def secret_bits(secret: str) -> float:
    """An estimate of the bits of ``secret``: log2 of the alphabet it draws from (hex
    digits; else digits, lower case, upper case, other) for each character that adds
    something: one that continues a run (``aaaa``, ``abcd``, ``4321``) or ends three
    characters seen before (a repeated word) adds nothing."""
    if all(c in string.hexdigits for c in secret) and (secret.islower() or secret.isupper()):
        alphabet = 16
    else:
        alphabet = 0
        for chars, size in (
            (string.digits, 10),
            (string.ascii_lowercase, 26),
            (string.ascii_uppercase, 26),
        ):
            if any(c in chars for c in secret):
                alphabet += size
        if any(not (c.isascii() and c.isalnum()) for c in secret):
            alphabet += 32
    seen: set[str] = set()
    adding = 0
    for at, char in enumerate(secret):
        gram = secret[max(0, at - 2) : at + 1]
        # the third of three characters a step of -1, 0 or 1 apart continues a run
        run = len(gram) == 3 and ord(char) - ord(gram[1]) == ord(gram[1]) - ord(gram[0])
        if not (run and abs(ord(char) - ord(gram[1])) <= 1) and gram not in seen:
            adding += 1
        seen.add(gram)
    return adding * math.log2(max(alphabet, 2))


class Settings(BaseSettings):
    """Every setting of every service. Field ``x`` is read from ``C2C_X``.

    Instances are frozen: derive a changed copy with ``model_copy(update=...)``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    # -- where local state lives ---------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: find_data_dir(Path.cwd()),
        description="Local services' jars (lib/), data, logs (logs/) and pid files (run/). "
        "Default: the nearest .c2c folder in the current directory or one above it, as git "
        "finds its repository; ./.c2c if there is none.",
    )
    lib_dir: Path | None = Field(
        default=None,
        description="Where fetched jars go (default: <data_dir>/lib); data dirs may share it.",
    )
    environment: Literal["development", "test", "production"] = Field(
        default="development",
        description="Outside development, services refuse insecure defaults.",
    )

    # -- Kafka ---------------------------------------------------------------------------------
    # before kafka_bootstrap, which its validator expands from it
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description=(
            "Nodes of the local KRaft cluster (`c2c services up --brokers N`), each a broker "
            "and a controller; with more than one, a single loopback C2C_KAFKA_BOOTSTRAP is "
            "the first node's, and node i listens on its port + 2(i-1) (controller: "
            "C2C_KAFKA_CONTROLLER_PORT + 2(i-1)): see services/README.md."
        ),
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    kafka_acls: bool | None = Field(
        default=None,
        description=(
            "Run the local broker with SASL/SCRAM and ACLs, one principal per role (c2c/acls.py); "
            "default: on in test and production, off in development."
        ),
    )
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="Local KRaft controller listener port."
    )
    kafka_fetch_wait_max_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description=(
            "Longest a librdkafka consumer's fetch waits at the broker for "
            "C2C_KAFKA_FETCH_MIN_BYTES (librdkafka's fetch.wait.max.ms; its default is 500)."
        ),
    )
    kafka_fetch_min_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        le=100_000_000,
        description=(
            "Bytes a librdkafka consumer's fetch waits for, at most C2C_KAFKA_FETCH_WAIT_MAX_MS "
            "(fetch.min.bytes; librdkafka's default, 1, answers each fetch as soon as one "
            "message is there: under a steady load, hundreds of small fetches a second)."
        ),
    )
    kafka_heap: str = Field(default="1g", description="Local broker's JVM heap (-Xmx).")
    kafka_jmx_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Serve the local broker's JMX on this loopback port, without authentication "
            "(request counts by type: kafka.network:type=RequestMetrics; services/README.md)."
        ),
    )
    kafka_java_home: Path | None = Field(
        default=None, description="JDK (17+) for the local broker; default: found on the machine."
    )

    # -- schema registry -----------------------------------------------------------------------
    schema_registry_url: str = Field(
        default="http://127.0.0.1:8081/apis/ccompat/v7",
        description="Confluent-compatible schema registry API (Apicurio's ccompat/v7).",
    )
    schema_registry_basic_auth: SecretStr | None = Field(
        default=None, description="'user:password' for the registry's basic auth."
    )
    schema_registry_ca_location: Path | None = None
    registry_heap: str = Field(default="512m", description="Local registry's JVM heap (-Xmx).")
    registry_java_home: Path | None = Field(
        default=None,
        description="JDK (21+) for the local registry; default: the first found on the machine.",
    )

    # -- ClickHouse ----------------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        default=None,
        description=(
            "chdb://PATH for embedded ClickHouse (default: chdb://<data_dir>/clickhouse) or "
            "http(s)://host:port for a server."
        ),
    )
    clickhouse_serve: bool = Field(
        default=False,
        description=(
            "Run a local ClickHouse server at C2C_CLICKHOUSE_URL (http://127.0.0.1:PORT; "
            "native TCP on PORT + 1) with `c2c services up`, from the engine of the installed "
            "chdb (services/clickhouse_server.py): several processes then share one ClickHouse."
        ),
    )
    clickhouse_database: str = Field(default="c2c", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_user: str | None = None
    clickhouse_password: SecretStr | None = None
    clickhouse_verify_tls: bool = True
    clickhouse_ca_cert: Path | None = None
    clickhouse_cluster: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=(
            "A cluster of the server's remote_servers: migrations then run ON CLUSTER, each "
            "table Replicated on its shard under a Distributed one (sinks/cluster.py). "
            "Unset: one server (or embedded chdb)."
        ),
    )

    # -- identity resolution ---------------------------------------------------------------
    identity_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description=(
            "Key of the HMAC-SHA256 hashes of SSNs, SSIDs, ITINs and source ids in identity "
            "state, and (derived from it) of the encryption of person values."
        ),
    )
    identity_key_version: int = Field(
        default=1,
        ge=1,
        le=255,
        description=(
            "Version of C2C_IDENTITY_SECRET: person values are sealed under it, and values "
            "sealed under an earlier version open with C2C_IDENTITY_PREVIOUS_SECRETS."
        ),
    )
    identity_previous_secrets: dict[int, SecretStr] = Field(
        default_factory=dict,
        description=(
            'Earlier identity secrets by key version, as JSON ({"1": "..."}). Each key '
            "version's secret hashes the hash of the one before, so keep every one "
            "(streams/README.md, key rotation)."
        ),
    )

    identity_model: Path | None = Field(
        default=None,
        description="Match model file from `c2c identity train` (default: built-in weights).",
    )

    identity_review_min_weight: float | None = Field(
        default=None,
        description=(
            "Hold a possible match for review (`c2c review link|separate`) when a record's "
            "best other candidate scores this many bits or more but below the model's "
            "threshold (unset: none are held)."
        ),
    )

    # -- stream workers ----------------------------------------------------------------------
    streams_store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description=(
            "Where Faust tables keep state between changelog reads: rocksdb (on disk under "
            "<data_dir>/streams, a restart reads only the changelog's tail) or memory."
        ),
    )
    streams_state: Literal["memory", "disk"] = Field(
        default="memory",
        description=(
            "Where the identity worker keeps its resolver state: disk (a RocksDB store under "
            "<data_dir>/streams with a bounded cache, sealed; a restart reads only the "
            "changelogs' tail: streams/durable.py) or memory (the default; rebuilt from the "
            "tables' changelogs at every start)."
        ),
    )
    streams_state_cache_mb: int = Field(
        default=32,
        ge=0,
        description=(
            "MB of each state map's values held in memory with C2C_STREAMS_STATE=disk, each "
            "counted as its pickled size plus 512 bytes (a small value's Python objects "
            "take about that): at most about 2,000 entries a MB."
        ),
    )
    streams_start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description=(
            "Where a worker with no committed offsets starts reading raw topics: earliest (all "
            "history) or latest (only what arrives from now on)."
        ),
    )
    streams_batch_size: int = Field(
        default=2000, ge=1, le=100_000, description="Records the identity worker takes at once."
    )
    streams_batch_wait_s: float = Field(
        default=0.02, gt=0, le=5, description="Longest wait to fill a worker batch."
    )
    streams_standby_replicas: int = Field(
        default=0,
        ge=0,
        le=2,
        description=(
            "Standby copies of the identity worker's tables that other workers keep up to date "
            "from the changelogs (Faust's table_standby_replicas), so that a lost worker's "
            "shard moves to one that holds its state. 0 keeps none; 1 for production."
        ),
    )
    identity_hash_cache: int = Field(
        default=262_144,
        ge=1_024,
        description=(
            "Identifiers whose keyed hashes (and an SSN's masks, about 2.4 kB) the resolver "
            "keeps cached: up to about 600 MB at the default; 16,384 keeps a shard host or a "
            "worker with C2C_STREAMS_STATE=disk to about 40 MB of them, at some CPU."
        ),
    )
    streams_resolver: Literal["one", "shards"] = Field(
        default="one",
        description=(
            "Where the identity worker resolves: `one` (its own resolver, state in its "
            "tables) or `shards` (the worker holding the intake decides each batch as an "
            "epoch over the `c2c identity shard-host` processes of its app id, "
            "C2C_STREAMS_SHARDS shards, logging it first; streams/worker_decider.py)."
        ),
    )
    streams_shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Shards of the sharded resolver (streams/shards.py): partitions of its "
            "shard-calls topic, served by however many `c2c identity shard-host` processes "
            "run. Fixed once state exists (a key's shard is its hash modulo this)."
        ),
    )
    worker_web_port: int = Field(
        default=6066, ge=1, le=65535, description="Identity worker's health and metrics web port."
    )
    worker_web_host: str = Field(
        default="127.0.0.1", description="Address of the worker's web port."
    )
    ready_max_lag: int = Field(
        default=10_000, ge=0, description="A worker or sink is ready while no partition lags more."
    )

    # -- sink --------------------------------------------------------------------------------
    sink_batch_rows: int = Field(
        default=20_000, ge=1, le=1_000_000, description="Rows the sink inserts at most at once."
    )
    sink_batch_wait_s: float = Field(
        default=0.5, gt=0, le=60, description="Longest a row waits in the sink before insert."
    )
    sink_decode: Literal["clickhouse", "python"] = Field(
        default="clickhouse",
        description=(
            "Where the sink decodes linked events: 'clickhouse' passes their bytes to "
            "ClickHouse (sinks/wire.py), 'python' decodes them in the sink."
        ),
    )
    sink_dedupe: bool = Field(
        default=True,
        description=(
            "Whether the sink looks up each batch's event ids before writing it, so that a "
            "fact table holds one row an event before FINAL too (sinks/dedupe.py)."
        ),
    )
    sink_dedupe_window_s: int = Field(
        default=3_600,
        description=(
            "How long (seconds) before a batch's earliest copy the sink's look-up searches "
            "for stored copies of its events (sinks/dedupe.py): the sink's own replays are "
            "always found; a copy republished later than this after the first (a worker "
            "down longer, a file produced again) is written as a second row, which FINAL "
            "collapses. Its cost follows the rows published in the window."
        ),
    )
    sink_start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a sink group with no committed offsets starts: earliest or latest.",
    )
    sink_web_port: int = Field(
        default=6067, ge=1, le=65535, description="Sink's health, metrics and outcomes port."
    )
    sink_web_host: str = Field(default="127.0.0.1", description="Address of the sink's web port.")
    sink_web_token: SecretStr | None = Field(
        default=None,
        description="Bearer token a researcher or operator sends to read the unsuppressed "
        "outcome_* tables and declare horizons on the sink's web port; unset: nobody can.",
    )
    explore_host: str = Field(
        default="127.0.0.1",
        description="Address `c2c explore` binds (loopback: put a proxy in front to publish it).",
    )
    explore_port: int = Field(
        default=6068, ge=1, le=65535, description="Port of `c2c explore`, the public explorer."
    )
    suppression_min_cell: int = Field(
        default=11, ge=1, description="public_* views hide cells counting fewer people."
    )

    # -- observability ------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING",
        description="Long-running processes' log level (the worker, the sink); --log-level "
        "overrides it.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or as one JSON object a line (time, level, logger, "
        "message) for a log collector.",
    )
    otel_exporter: Literal["none", "console", "otlp-http", "otlp-grpc"] = Field(
        default="none",
        description="Where traces go, and metrics unless C2C_METRICS_PORT is set; 'none': no-op.",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP collector (default http://127.0.0.1:4318: /v1/traces, /v1/metrics; "
        "http://127.0.0.1:4317 for gRPC).",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve Prometheus metrics on this port."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics port.")

    # -- local service management --------------------------------------------------------------
    service_start_timeout_s: float = Field(
        default=120.0, gt=0, description="How long `c2c services up` waits for each service."
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str, info: ValidationInfo) -> str:
        servers = [server.strip() for server in value.split(",")]
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port (for example 127.0.0.1:9092)")
        return _local_cluster_bootstrap(value, info.data.get("kafka_brokers", 1))

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} is not an http(s) URL "
                "(for example http://127.0.0.1:8081/apis/ccompat/v7)"
            )
        return value.rstrip("/")

    @field_validator("clickhouse_url")
    @classmethod
    def _check_clickhouse_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("chdb", "http", "https"):
            raise ValueError(
                f"{value!r} is neither chdb://PATH (embedded) nor an http(s):// server URL"
            )
        return value

    @field_validator("clickhouse_serve")
    @classmethod
    def _check_clickhouse_serve(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("clickhouse_url")
        parts = urlsplit(str(url)) if url is not None else None
        if value and (
            parts is None
            or parts.scheme != "http"
            or parts.port is None
            or not _loopback_server(f"{parts.hostname}:{parts.port}")
        ):
            raise ValueError(
                "a local ClickHouse server needs C2C_CLICKHOUSE_URL=http://127.0.0.1:PORT "
                f"(got {url!r}); unset C2C_CLICKHOUSE_SERVE for embedded chdb or a remote server"
            )
        return value

    @field_validator("clickhouse_cluster")
    @classmethod
    def _check_clickhouse_cluster(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = info.data.get("clickhouse_url")
        if value is not None and (url is None or str(url).startswith("chdb://")):
            raise ValueError(
                f"cluster {value!r} needs a ClickHouse server: set C2C_CLICKHOUSE_URL to one "
                "of its nodes (http(s)://host:port), or unset C2C_CLICKHOUSE_CLUSTER for "
                "embedded chdb"
            )
        return value

    @field_validator("sink_dedupe_window_s")
    @classmethod
    def _check_dedupe_window(cls, value: int) -> int:
        if not 0 <= value <= _TEN_YEARS_S:
            raise ValueError(
                f"the sink's look-up window must be 0 to {_TEN_YEARS_S} seconds (got {value}): "
                "0 finds the sink's own replays only, 3600 (the default) also the worker's "
                "copies republished within an hour; a window longer than the tables' history "
                "searches every stored row"
            )
        return value

    @field_validator("identity_secret", mode="after")
    @classmethod
    def _check_identity_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Keyed hashes of SSNs and SSIDs are only as private as this key: outside
        # development, the published default (or a short key) is refused.
        environment = info.data.get("environment", "development")
        if environment == "development":
            return value
        problem = weak_secret(value.get_secret_value())
        if problem is not None:
            raise ValueError(
                f"{problem}; in {environment} the identity secret must be random: set it to "
                "the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("identity_previous_secrets", mode="after")
    @classmethod
    def _check_previous_secrets(
        cls, value: dict[int, SecretStr], info: ValidationInfo
    ) -> dict[int, SecretStr]:
        current = info.data.get("identity_key_version", 1)
        if not all(1 <= version < current for version in value):
            raise ValueError(
                f"key versions {sorted(value)} are not all earlier than the current one "
                f"({current}, C2C_IDENTITY_KEY_VERSION): list only earlier ones"
            )
        return value

    @field_validator("kafka_sasl_password", mode="after")
    @classmethod
    def _check_sasl(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A field validator (not a model validator) so that this problem is reported together
        # with every other invalid field; kafka_sasl_password is declared after the fields it
        # reads, so they are in info.data.
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        mechanism = info.data.get("kafka_sasl_mechanism")
        if not str(protocol).startswith("SASL_") or mechanism == "OAUTHBEARER":
            return value
        given = {
            "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": info.data.get("kafka_sasl_username"),
            "kafka_sasl_password": value,
        }
        missing = [f"{ENV_PREFIX}{name.upper()}" for name, got in given.items() if got is None]
        if missing:
            raise ValueError(f"security protocol {protocol} needs {', '.join(missing)}")
        return value

    # -- derived values ------------------------------------------------------------------------
    def identity_secrets(self) -> dict[int, bytes]:
        """Every identity secret by key version, in version order: the previous ones and
        the current one (each key of the identifier hashes' chain, and each key that
        sealed person values)."""
        secrets = {
            v: s.get_secret_value().encode() for v, s in self.identity_previous_secrets.items()
        }
        secrets[self.identity_key_version] = self.identity_secret.get_secret_value().encode()
        return secrets

    @property
    def clickhouse_dsn(self) -> str:
        """The ClickHouse URL in effect: the configured one, or the embedded default."""
        if self.clickhouse_url is not None:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def kafka_secured(self) -> bool:
        """Whether the local broker runs with SASL/SCRAM and ACLs (C2C_KAFKA_ACLS, else on
        outside development)."""
        if self.kafka_acls is not None:
            return self.kafka_acls
        return self.environment != "development"

    def kafka_environment(self) -> dict[str, str]:
        """The C2C_KAFKA_* variables (and the registry's URL) that make a child process
        connect as these settings do: same bootstrap, same principal, same schema ids."""
        env = {
            f"{ENV_PREFIX}SCHEMA_REGISTRY_URL": self.schema_registry_url,
            f"{ENV_PREFIX}KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism is not None:
            env[f"{ENV_PREFIX}KAFKA_SASL_MECHANISM"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username is not None:
            env[f"{ENV_PREFIX}KAFKA_SASL_USERNAME"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            env[f"{ENV_PREFIX}KAFKA_SASL_PASSWORD"] = self.kafka_sasl_password.get_secret_value()
        return env

    @property
    def clickhouse_embedded(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb://")

    @property
    def clickhouse_roles_from_file(self) -> bool:
        """Whether ClickHouse's roles come from a users file (sinks.access.users_xml), not
        from `CREATE ROLE`: embedded chdb and the local server run from its engine have no
        writable user storage."""
        return self.clickhouse_embedded or self.clickhouse_serve

    def is_external(self, field: str) -> bool:
        """Whether ``field`` was set explicitly (environment or constructor), not defaulted.

        Test fixtures use this to decide between endpoints given to them and local services.
        """
        return field in self.model_fields_set

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka configuration for a confluent-kafka client, security included.

        A consumer's (``overrides`` name a ``group.id``, which librdkafka's consumer needs and
        producers and admin clients do not take) also gets the fetch settings
        (C2C_KAFKA_FETCH_WAIT_MAX_MS, C2C_KAFKA_FETCH_MIN_BYTES) unless ``overrides`` set them.
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if "group.id" in overrides:
            config["fetch.wait.max.ms"] = self.kafka_fetch_wait_max_ms
            config["fetch.min.bytes"] = self.kafka_fetch_min_bytes
        if self.kafka_sasl_mechanism is not None:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username is not None:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        for key, path in (
            ("ssl.ca.location", self.kafka_ssl_ca_location),
            ("ssl.certificate.location", self.kafka_ssl_certificate_location),
            ("ssl.key.location", self.kafka_ssl_key_location),
        ):
            if path is not None:
                config[key] = str(path)
        if self.kafka_ssl_key_password is not None:
            config["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        config.update(overrides)
        return config

    def schema_registry_config(self) -> dict[str, Any]:
        """Configuration for confluent-kafka's SchemaRegistryClient."""
        config: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth is not None:
            config["basic.auth.user.info"] = self.schema_registry_basic_auth.get_secret_value()
        if self.schema_registry_ca_location is not None:
            config["ssl.ca.location"] = str(self.schema_registry_ca_location)
        return config

    # -- local paths ---------------------------------------------------------------------------
    @property
    def lib_path(self) -> Path:
        """Where fetched jars live: ``lib_dir`` if set, else <data_dir>/lib."""
        return self.lib_dir if self.lib_dir is not None else self.data_dir / "lib"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def with_kafka_brokers(self, brokers: int) -> Settings:
        """These settings for a local Kafka cluster of ``brokers`` nodes, as
        C2C_KAFKA_BROKERS=``brokers`` would give them: a loopback bootstrap names each node
        (the first node's address is kept); a remote bootstrap is left as it is."""
        if brokers == self.kafka_brokers:
            return self
        servers = [server.strip() for server in self.kafka_bootstrap.split(",")]
        local = len(servers) == self.kafka_brokers or len(servers) == 1
        first = servers[0] if local and _loopback_server(servers[0]) else self.kafka_bootstrap
        return self.model_copy(
            update={
                "kafka_brokers": brokers,
                "kafka_bootstrap": _local_cluster_bootstrap(first, brokers),
            }
        )


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (``C2C_*``), with ``overrides`` taking precedence.

    Raises ConfigError naming every invalid variable at once.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(part) for part in error["loc"])
            name = f"{ENV_PREFIX}{loc.upper()}" if loc else "settings"
            value = error.get("input")
            if any(word in loc for word in _SECRET_WORDS):
                shown = " (value hidden)"
            elif loc == "" or isinstance(value, dict):
                shown = ""
            else:
                shown = f" (got {value!r})"
            problems.append(f"  {name}{shown}: {error['msg']}")
        raise ConfigError(
            f"{len(problems)} invalid setting(s):\n"
            + "\n".join(problems)
            + "\nFix the environment variables above; README lists every setting.",
            code="config.invalid",
        ) from exc

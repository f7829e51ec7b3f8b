"""The Kafka broker: a KRaft node (broker and controller in one process), one or several
(C2C_KAFKA_BROKERS: a local cluster whose every node is a broker and a controller).

Each local node's configuration is rendered from settings as text (see
:func:`render_server_properties`), its storage formatted once with kafka.tools.StorageTool,
and the server run as kafka.Kafka with the machine's Java 17+. A remote cluster (a bootstrap
address that is not loopback) is only probed.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from c2c.acls import ADMIN, username
from c2c.errors import ServiceError
from c2c.settings import Settings, kafka_node_port
from c2c.topics import replication_factor
from services._process import ProcessSpec, tail
from services.base import Probe, is_loopback
from services.fetch import SERVICES_DIR
from services.java import find_java
from services.principals import SCRAM_MECHANISM, as_role, local_secured, role_passwords

__all__ = [
    "JVM_OPTIONS",
    "KafkaService",
    "jmx_options",
    "kafka_nodes",
    "render_server_properties",
]

_QUIET = logging.getLogger("services.kafka.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


# The local broker's JVM, for a small machine it shares with the workers (2 cores here):
# the serial collector runs no GC threads beside the broker's own (G1 runs concurrent
# refinement and marking threads), and a broker's garbage is short-lived request buffers
# that a young collection of this heap clears in a few ms. See services/README.md.
JVM_OPTIONS = ("-XX:+UseSerialGC", "-Xms256m")

# Threads for one node on a few cores; Kafka's defaults (3 network, 8 I/O, 10 background,
# 4 group-coordinator threads per listener or node) are sized for a cluster's many cores.
_THREADS = (
    "num.network.threads=1",
    "num.io.threads=2",
    "background.threads=2",
    "group.coordinator.threads=1",
    "share.coordinator.threads=1",
)


def _listener(settings: Settings, node: int = 1) -> tuple[str, int]:
    """Node ``node``'s client listener: its entry of the bootstrap list (settings expand a
    single loopback address to the local cluster's nodes), the first for a single broker."""
    servers = settings.kafka_bootstrap.split(",")
    server = (
        servers[node - 1] if settings.kafka_brokers > 1 and node <= len(servers) else servers[0]
    )
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


def _controller(settings: Settings, node: int) -> tuple[str, int]:
    return _listener(settings, node)[0], kafka_node_port(settings.kafka_controller_port, node)


def _voters(settings: Settings) -> str:
    """The static controller quorum: every node of the local cluster."""
    return ",".join(
        f"{node}@{host}:{port}"
        for node in range(1, settings.kafka_brokers + 1)
        for host, port in [_controller(settings, node)]
    )


def _security(settings: Settings, admin_password: str | None, node: int = 1) -> list[str]:
    """The listeners, and with C2C_KAFKA_ACLS the SASL and authorizer settings: clients
    authenticate with SCRAM-SHA-512 (users kept in the metadata log), the controller listener
    with PLAIN and a user of its own in the file (SCRAM users live in the metadata the
    controller serves, so they cannot authenticate it), and nothing is allowed that no ACL
    allows. The admin is the super user: the broker itself, `c2c services up`, `c2c topics`."""
    host, port = _listener(settings, node)
    controller = _controller(settings, node)[1]
    common = [
        f"controller.quorum.voters={_voters(settings)}",
        "controller.listener.names=CONTROLLER",
    ]
    if not settings.kafka_secured:
        return [
            *common,
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]
    if admin_password is None:
        raise ValueError("a secured broker needs the admin's password")
    user, password = username(ADMIN), admin_password
    return [
        *common,
        f"listeners=SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
        f"advertised.listeners=SASL_PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config="
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{password}" user_{user}="{password}";',
        f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";',
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:{user}",
    ]


def render_server_properties(
    settings: Settings, log_dirs: Path, admin_password: str | None = None, *, node: int = 1
) -> str:
    """server.properties for node ``node`` of the local KRaft cluster (C2C_KAFKA_BROKERS
    nodes, each a broker and a controller, the quorum all of them).

    Replication factors are c2c.topics.replication_factor's for the cluster (1 on one node, 3
    on three, with min.insync.replicas 2 so that acks=all survives one node lost); partitions
    default to 3 so that consumers can be scaled out in tests as they would be on a cluster.
    Threads are sized for one node on a few cores (``_THREADS``). With C2C_KAFKA_ACLS,
    ``admin_password`` is the super user's (see :func:`_security`).
    """
    replicas = replication_factor(settings.kafka_brokers)
    insync = 2 if replicas >= 3 else 1
    lines = [
        "# Rendered by c2c from settings; edits are overwritten at the next `c2c services up`.",
        "process.roles=broker,controller",
        f"node.id={node}",
        *_security(settings, admin_password, node),
        f"log.dirs={log_dirs}",
        "num.partitions=3",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={insync}",
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={insync}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={insync}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "log.retention.hours=168",
        "log.segment.bytes=104857600",
        *_THREADS,
    ]
    return "\n".join(lines) + "\n"


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of 16 bytes). Like Kafka's
    own Uuid.randomUuid, never one starting with '-': the storage tool would read it as an
    option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def jmx_options(port: int | None) -> list[str]:
    """JVM flags that serve the broker's JMX on ``port`` of the loopback interface, without
    authentication (local use only); none if ``port`` is None."""
    if port is None:
        return []
    return [
        "-Dcom.sun.management.jmxremote",
        f"-Dcom.sun.management.jmxremote.port={port}",
        f"-Dcom.sun.management.jmxremote.rmi.port={port}",
        "-Dcom.sun.management.jmxremote.host=127.0.0.1",
        "-Djava.rmi.server.hostname=127.0.0.1",
        "-Dcom.sun.management.jmxremote.authenticate=false",
        "-Dcom.sun.management.jmxremote.ssl=false",
    ]


def kafka_nodes(settings: Settings) -> list[KafkaService]:
    """The broker (one), or each node of the local cluster (C2C_KAFKA_BROKERS); a remote
    cluster is one service, probed through its bootstrap."""
    if not KafkaService(settings).local:
        return [KafkaService(settings)]
    return [KafkaService(settings, node) for node in range(1, settings.kafka_brokers + 1)]


class KafkaService:
    """The broker, local (started here) or remote (only probed); with C2C_KAFKA_BROKERS > 1,
    one node of the local cluster: node 1 is "kafka" with the single broker's files, node
    i is "kafka-i", its files under kafka/node-i (and kafka-i.log, kafka-i.pid)."""

    def __init__(self, settings: Settings, node: int = 1) -> None:
        if not 1 <= node <= settings.kafka_brokers:
            raise ValueError(f"node {node} is not one of the {settings.kafka_brokers} broker(s)")
        self._settings = settings
        self.node = node
        self.name = "kafka" if node == 1 else f"kafka-{node}"
        root = settings.data_dir.resolve() / "kafka"
        self._root = root
        self._home = root if node == 1 else root / f"node-{node}"

    @property
    def _cluster_node(self) -> bool:
        """One node of a local cluster (not a single broker, nor a remote cluster)."""
        return self._settings.kafka_brokers > 1 and self.local

    @property
    def address(self) -> str:
        if not self._cluster_node:
            return self._settings.kafka_bootstrap
        host, port = _listener(self._settings, self.node)
        return f"{host}:{port}"

    @property
    def local(self) -> bool:
        return is_loopback(_listener(self._settings, self.node)[0])

    @property
    def log_file(self) -> Path:
        return self._settings.log_dir.resolve() / f"{self.name}.log"

    @property
    def _config_file(self) -> Path:
        return self._home / "server.properties"

    @property
    def _storage(self) -> Path:
        return self._home / "data"

    def _lib(self) -> Path:
        return self._settings.lib_path.resolve() / "kafka"

    def _java_base(self) -> list[str]:
        java = find_java(
            17,
            java_home=self._settings.kafka_java_home,
            purpose="Kafka 4",
            setting="C2C_KAFKA_JAVA_HOME",
        )
        return [
            str(java),
            f"-Dlog4j2.configurationFile={SERVICES_DIR / 'log4j2.properties'}",
            f"-Dc2c.log.file={self.log_file}",
            "-cp",
            f"{self._lib()}/*",
        ]

    def version(self) -> str | None:
        jars = sorted(self._lib().glob("kafka-clients-*.jar"))
        return jars[0].stem.removeprefix("kafka-clients-") if jars else None

    @property
    def _scram_marker(self) -> Path:
        # written when the storage is formatted with the admin's SCRAM user in it
        return self._home / "scram-admin"

    def _client_settings(self) -> Settings:
        """Settings the project's own checks connect with: the admin's on a secured local
        broker, else as configured."""
        if local_secured(self._settings):
            role_passwords(self._settings)  # the admin's, made before the broker's first start
            return as_role(self._settings, ADMIN)
        return self._settings

    @property
    def _brokers_marker(self) -> Path:
        # the cluster's size when its storage was formatted (absent: one broker)
        return self._root / "brokers"

    def _cluster_id(self) -> str:
        """The cluster's id: node 1's (written when it was formatted), or a new one."""
        marker = self._root / "cluster-id"
        if marker.exists():
            return marker.read_text().strip()
        cluster_id = _cluster_id()
        marker.write_text(cluster_id + "\n")
        return cluster_id

    def _check_cluster_size(self) -> None:
        brokers = self._settings.kafka_brokers
        root_formatted = (self._root / "data" / "meta.properties").exists()
        if not root_formatted:
            return
        formatted = int(self._brokers_marker.read_text()) if self._brokers_marker.exists() else 1
        if formatted != brokers:
            raise ServiceError(
                f"the Kafka storage in {self._root} was formatted for {formatted} broker(s), "
                f"not C2C_KAFKA_BROKERS={brokers}: stop the stack (`c2c services down "
                f"--brokers {formatted}`) and remove {self._root}, or use another "
                "C2C_DATA_DIR",
                code="service.kafka.format",
            )

    def prepare(self) -> None:
        self._home.mkdir(parents=True, exist_ok=True)
        self._check_cluster_size()
        secured = self._settings.kafka_secured
        password = role_passwords(self._settings)[ADMIN] if secured else None
        fd = os.open(self._config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:  # holds the admin's password when secured
            out.write(
                render_server_properties(self._settings, self._storage, password, node=self.node)
            )
        if (self._storage / "meta.properties").exists():
            if secured and not self._scram_marker.exists():
                raise ServiceError(
                    f"the Kafka storage in {self._storage} was formatted without C2C_KAFKA_ACLS, "
                    "so it has no admin user to secure the broker with: stop the stack "
                    f"(`c2c services down`) and remove {self._storage}, or set "
                    "C2C_KAFKA_ACLS=false",
                    code="service.kafka.format",
                )
            return
        scram = (
            ["--add-scram", f"{SCRAM_MECHANISM}=[name={username(ADMIN)},password={password}]"]
            if secured
            else []
        )
        cluster_id = self._cluster_id() if self._settings.kafka_brokers > 1 else _cluster_id()
        result = subprocess.run(
            [
                *self._java_base(),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(self._config_file),
                *scram,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"formatting Kafka storage in {self._storage} failed "
                f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}",
                code="service.kafka.format",
            )
        if secured:
            self._scram_marker.write_text(cluster_id + "\n")
        if self.node == 1:
            self._brokers_marker.write_text(f"{self._settings.kafka_brokers}\n")

    @property
    def pid_file(self) -> Path:
        return self._settings.run_dir.resolve() / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        return f"-Dc2c.service={self.name}@{self._settings.data_dir.resolve()}"

    def process_spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[
                *self._java_base()[:1],
                f"-Xmx{self._settings.kafka_heap}",
                *JVM_OPTIONS,
                "-Djava.awt.headless=true",
                *jmx_options(
                    None
                    if self._settings.kafka_jmx_port is None
                    else kafka_node_port(self._settings.kafka_jmx_port, self.node)
                ),
                self.marker,
                *self._java_base()[1:],
                "kafka.Kafka",
                str(self._config_file),
            ],
            cwd=self._home,
            log_file=self._settings.log_dir.resolve() / f"{self.name}.out",
            pid_file=self.pid_file,
            marker=self.marker,
        )

    def probe(self, timeout_s: float) -> Probe:
        settings = self._client_settings()
        cluster = self._cluster_node
        overrides: dict[str, object] = {"socket.timeout.ms": 2000}
        if cluster:  # this node only: up when it answers and is a registered broker
            overrides["bootstrap.servers"] = self.address
        admin = AdminClient(settings.kafka_config(logger=_QUIET, log_level=0, **overrides))
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            return Probe(up=False, detail=f"no metadata: {exc.args[0]}")
        brokers = len(metadata.brokers)
        if cluster and self.node not in metadata.brokers:
            return Probe(up=False, detail=f"node {self.node} not among the {brokers} broker(s)")
        return Probe(
            up=brokers > 0,
            version=self.version() if self.local else None,
            detail=f"{brokers} broker(s), {len(metadata.topics)} topic(s)",
        )

    def log_tail(self) -> str:
        return tail(self.log_file)

"""The Kafka broker: a single-node KRaft server (broker and controller in one process).

The local broker's configuration is rendered from settings as text (see
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
from c2c.settings import Settings
from services._process import ProcessSpec, tail
from services.base import Probe, is_loopback
from services.fetch import SERVICES_DIR
from services.java import find_java
from services.principals import SCRAM_MECHANISM, as_role, local_secured, role_passwords

__all__ = ["JVM_OPTIONS", "KafkaService", "jmx_options", "render_server_properties"]

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


def _listener(settings: Settings) -> tuple[str, int]:
    first = settings.kafka_bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def _security(settings: Settings, admin_password: str | None) -> list[str]:
    """The listeners, and with C2C_KAFKA_ACLS the SASL and authorizer settings: clients
    authenticate with SCRAM-SHA-512 (users kept in the metadata log), the controller listener
    with PLAIN and a user of its own in the file (SCRAM users live in the metadata the
    controller serves, so they cannot authenticate it), and nothing is allowed that no ACL
    allows. The admin is the super user: the broker itself, `c2c services up`, `c2c topics`."""
    host, port = _listener(settings)
    controller = settings.kafka_controller_port
    common = [
        f"controller.quorum.voters=1@{host}:{controller}",
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
    settings: Settings, log_dirs: Path, admin_password: str | None = None
) -> str:
    """server.properties for the local single-node KRaft broker.

    Replication factors are 1 because there is one node; partitions default to 3 so that
    consumers can be scaled out in tests as they would be on a cluster. Threads are sized
    for one node on a few cores (``_THREADS``). With C2C_KAFKA_ACLS, ``admin_password`` is
    the super user's (see :func:`_security`).
    """
    lines = [
        "# Rendered by c2c from settings; edits are overwritten at the next `c2c services up`.",
        "process.roles=broker,controller",
        "node.id=1",
        *_security(settings, admin_password),
        f"log.dirs={log_dirs}",
        "num.partitions=3",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
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


class KafkaService:
    """The broker, local (started here) or remote (only probed)."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.data_dir.resolve() / "kafka"

    @property
    def address(self) -> str:
        return self._settings.kafka_bootstrap

    @property
    def local(self) -> bool:
        return is_loopback(_listener(self._settings)[0])

    @property
    def log_file(self) -> Path:
        return self._settings.log_dir.resolve() / "kafka.log"

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

    def prepare(self) -> None:
        self._home.mkdir(parents=True, exist_ok=True)
        secured = self._settings.kafka_secured
        password = role_passwords(self._settings)[ADMIN] if secured else None
        fd = os.open(self._config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:  # holds the admin's password when secured
            out.write(render_server_properties(self._settings, self._storage, password))
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
        cluster_id = _cluster_id()
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

    @property
    def pid_file(self) -> Path:
        return self._settings.run_dir.resolve() / "kafka.pid"

    @property
    def marker(self) -> str:
        return f"-Dc2c.service=kafka@{self._settings.data_dir.resolve()}"

    def process_spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[
                *self._java_base()[:1],
                f"-Xmx{self._settings.kafka_heap}",
                *JVM_OPTIONS,
                "-Djava.awt.headless=true",
                *jmx_options(self._settings.kafka_jmx_port),
                self.marker,
                *self._java_base()[1:],
                "kafka.Kafka",
                str(self._config_file),
            ],
            cwd=self._home,
            log_file=self._settings.log_dir.resolve() / "kafka.out",
            pid_file=self.pid_file,
            marker=self.marker,
        )

    def probe(self, timeout_s: float) -> Probe:
        settings = self._client_settings()
        admin = AdminClient(
            settings.kafka_config(logger=_QUIET, log_level=0, **{"socket.timeout.ms": 2000})
        )
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            return Probe(up=False, detail=f"no metadata: {exc.args[0]}")
        brokers = len(metadata.brokers)
        return Probe(
            up=brokers > 0,
            version=self.version() if self.local else None,
            detail=f"{brokers} broker(s), {len(metadata.topics)} topic(s)",
        )

    def log_tail(self) -> str:
        return tail(self.log_file)

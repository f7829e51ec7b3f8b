"""The schema registry: Apicurio Registry 3.x with its storage in Kafka (kafkasql).

Python code talks to its Confluent-compatible API (``/apis/ccompat/v7``) through
confluent-kafka's SchemaRegistryClient; this module only runs and probes it. Schemas live in
Kafka's ``kafkasql-journal`` topic, so they survive a registry restart.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from urllib.parse import urlsplit

from c2c.acls import ADMIN
from c2c.errors import ServiceError
from c2c.kafka import ensure_topics
from c2c.settings import Settings
from c2c.topics import REGISTRY_JOURNAL
from services._process import ProcessSpec
from services.base import Probe, is_loopback
from services.java import find_java
from services.principals import as_role, local_secured

__all__ = ["RegistryService"]


class RegistryService:
    """Apicurio Registry, local (started here) or remote (only probed)."""

    name = "schema_registry"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = urlsplit(settings.schema_registry_url)

    @property
    def address(self) -> str:
        return self._settings.schema_registry_url

    @property
    def local(self) -> bool:
        return is_loopback(self._url.hostname or "")

    @property
    def log_file(self) -> Path:
        return self._settings.log_dir.resolve() / "schema_registry.log"

    @property
    def _base(self) -> str:
        return f"{self._url.scheme}://{self._url.netloc}"

    def _dist(self) -> Path:
        return self._settings.lib_path.resolve() / "apicurio"

    def prepare(self) -> None:
        """Check the distribution is unpacked and create its journal topic.

        Created here rather than by the registry, which would take the broker's default
        partition count: the journal must be one partition to keep its order.
        """
        secured = local_secured(self._settings)
        ensure_topics(
            as_role(self._settings, ADMIN) if secured else self._settings, [REGISTRY_JOURNAL]
        )
        if secured:
            self._write_kafka_config()
        if not (self._dist() / "quarkus-run.jar").is_file():
            raise ServiceError(
                f"Apicurio Registry is not unpacked in {self._dist()}; "
                "run `c2c services fetch` first.",
                code="service.registry.missing",
            )

    @property
    def _kafka_config(self) -> Path:
        return self._settings.data_dir.resolve() / "registry" / "kafka.properties"

    def _write_kafka_config(self) -> None:
        """The registry's Kafka credentials on a secured local broker (its own principal,
        c2c/acls.py), in a file only its owner reads, given to Quarkus as a config location.
        ``apicurio.kafka.common.*`` goes to each of its Kafka clients."""
        registry = as_role(self._settings, "registry")
        password = registry.kafka_sasl_password
        assert password is not None  # as_role sets it
        lines = [
            "apicurio.kafka.common.security.protocol=SASL_PLAINTEXT",
            f"apicurio.kafka.common.sasl.mechanism={registry.kafka_sasl_mechanism}",
            "apicurio.kafka.common.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{registry.kafka_sasl_username}" '
            f'password="{password.get_secret_value()}";',
            "apicurio.kafkasql.consumer.group-prefix=c2c-registry-",
        ]
        self._kafka_config.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._kafka_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")

    @property
    def pid_file(self) -> Path:
        return self._settings.run_dir.resolve() / "schema_registry.pid"

    @property
    def marker(self) -> str:
        return f"-Dc2c.service=schema_registry@{self._settings.data_dir.resolve()}"

    def process_spec(self) -> ProcessSpec:
        java = find_java(
            21,
            java_home=self._settings.registry_java_home,
            purpose="Apicurio Registry 3.3",
            setting="C2C_REGISTRY_JAVA_HOME",
        )
        port = self._url.port or (443 if self._url.scheme == "https" else 80)
        env = {
            "APICURIO_STORAGE_KIND": "kafkasql",
            "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS": self._settings.kafka_bootstrap,
            "QUARKUS_HTTP_HOST": self._url.hostname or "127.0.0.1",
            "QUARKUS_HTTP_PORT": str(port),
            # Health and metrics are served on a second port; keep it on the same host, next
            # to the API port, so that two registries on one machine do not collide.
            "QUARKUS_MANAGEMENT_HOST": self._url.hostname or "127.0.0.1",
            "QUARKUS_MANAGEMENT_PORT": str(port + 1),
            "QUARKUS_LOG_CONSOLE_JSON": "false",
            # Tests and `c2c schemas` may delete subjects, as with Confluent's registry.
            "APICURIO_REST_DELETION_ARTIFACT_ENABLED": "true",
            "APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED": "true",
            "APICURIO_REST_DELETION_GROUP_ENABLED": "true",
        }
        return ProcessSpec(
            name=self.name,
            argv=[
                str(java),
                f"-Xmx{self._settings.registry_heap}",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                self.marker,
                *(
                    [f"-Dquarkus.config.locations=file:{self._kafka_config}"]
                    if local_secured(self._settings)
                    else []
                ),
                "-jar",
                str(self._dist() / "quarkus-run.jar"),
            ],
            cwd=self._dist(),
            log_file=self.log_file,
            pid_file=self.pid_file,
            marker=self.marker,
            env=env,
        )

    def _get(self, url: str, timeout_s: float) -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        auth = self._settings.schema_registry_basic_auth
        if auth is not None:
            token = b64encode(auth.get_secret_value().encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body

    def probe(self, timeout_s: float) -> Probe:
        try:
            subjects = json.loads(self._get(f"{self.address}/subjects", timeout_s))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return Probe(up=False, detail=f"subjects endpoint: {exc}")
        version = None
        try:
            info = json.loads(self._get(f"{self._base}/apis/registry/v3/system/info", timeout_s))
            version = str(info.get("version")) if isinstance(info, dict) else None
        except (OSError, urllib.error.URLError, ValueError):
            version = None  # a non-Apicurio registry: the ccompat answer is what matters
        return Probe(up=True, version=version, detail=f"{len(subjects)} subject(s)")

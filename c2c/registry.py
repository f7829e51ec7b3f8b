"""The schema registry as the project uses it: register and check the catalogue's schemas,
and build encoders and decoders bound to registered ids.

Subjects follow the topic name strategy (``<topic>-value``) and every subject's
compatibility is BACKWARD_TRANSITIVE: a new version must read everything ever written under
the subject. Talks to any Confluent-compatible registry through confluent-kafka's
SchemaRegistryClient (here Apicurio's ccompat API).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema
from fastavro.schema import SchemaParseException

from c2c.compatibility import explain, removed_required_fields
from c2c.errors import C2CError, ServiceError
from c2c.schemas import SchemaLibrary
from c2c.serde import AvroDecoder, AvroEncoder
from c2c.settings import Settings
from c2c.topics import CATALOGUE, Topic

__all__ = [
    "COMPATIBILITY",
    "Registration",
    "RegistryError",
    "SchemaRegistry",
    "SubjectCheck",
]

COMPATIBILITY = "BACKWARD_TRANSITIVE"
_SUBJECT_NOT_FOUND = (40401, 40403)


class RegistryError(C2CError):
    """The registry refused a schema or does not know one the code needs."""

    code = "registry"


@dataclass(frozen=True)
class Registration:
    subject: str
    schema_name: str
    schema_id: int
    version: int


@dataclass(frozen=True)
class SubjectCheck:
    """Whether the registry would accept the local schema of one subject."""

    subject: str
    schema_name: str
    status: Literal["new", "registered", "compatible", "incompatible", "invalid"]
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status != "incompatible" and self.status != "invalid"


def _topics_with_schemas(topics: Iterable[Topic] | None) -> list[Topic]:
    return [topic for topic in (CATALOGUE if topics is None else topics) if topic.schema]


class SchemaRegistry:
    """The catalogue's schemas against one registry."""

    def __init__(self, settings: Settings, library: SchemaLibrary | None = None) -> None:
        self.client = SchemaRegistryClient(settings.schema_registry_config())
        self.library = library if library is not None else SchemaLibrary()
        self._url = settings.schema_registry_url

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SchemaRegistryError:
            raise
        except Exception as exc:  # connection errors come from httpx and vary
            raise ServiceError(
                f"schema registry at {self._url} did not answer while {what}: {exc}; "
                "is it up? (`c2c services status`)",
                code="service.registry.unreachable",
            ) from exc

    # -- registration -----------------------------------------------------------------------
    def register(self, topic: Topic, schema_text: str | None = None) -> Registration:
        """Register ``topic``'s value schema (idempotent: the same schema keeps its id) and
        set the subject's compatibility. RegistryError carries the registry's reason."""
        text = schema_text if schema_text is not None else self.library.resolve_text(topic.schema)
        subject = topic.value_subject
        verdict = self.check(topic, text)
        if verdict.status == "invalid" or (
            verdict.status == "incompatible" and verdict.reason.startswith("removes field")
        ):
            raise RegistryError(f"{subject}: refused: {verdict.reason}", code="registry.policy")
        try:
            self._call(
                "setting compatibility", self.client.set_compatibility, subject, COMPATIBILITY
            )
        except SchemaRegistryError as exc:
            if exc.error_code not in _SUBJECT_NOT_FOUND and exc.http_status_code != 404:
                raise RegistryError(
                    f"{subject}: cannot set compatibility {COMPATIBILITY}: {exc.error_message}",
                    code="registry.config",
                ) from exc
        try:
            self._call("registering", self.client.register_schema, subject, Schema(text, "AVRO"))
            registered = self._call(
                "looking up", self.client.lookup_schema, subject, Schema(text, "AVRO")
            )
            self._call(
                "setting compatibility", self.client.set_compatibility, subject, COMPATIBILITY
            )
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"{subject}: the registry refused {topic.schema}: {exc.error_message} "
                f"(HTTP {exc.http_status_code}, code {exc.error_code})",
                code="registry.rejected",
            ) from exc
        return Registration(
            subject=subject,
            schema_name=topic.schema,
            schema_id=int(registered.schema_id),
            version=int(registered.version),
        )

    def register_all(self, topics: Iterable[Topic] | None = None) -> list[Registration]:
        """Register every catalogue topic's schema; stops at the first refusal."""
        return [self.register(topic) for topic in _topics_with_schemas(topics)]

    # -- checking -------------------------------------------------------------------------------
    def check(self, topic: Topic, schema_text: str | None = None) -> SubjectCheck:
        """Would the registry accept ``topic``'s local schema as the subject's next version?"""
        subject = topic.value_subject
        text = schema_text if schema_text is not None else self.library.resolve_text(topic.schema)
        try:
            parse_schema(json.loads(text))
        except (SchemaParseException, ValueError, KeyError, TypeError) as exc:
            return SubjectCheck(subject, topic.schema, "invalid", f"not a valid Avro schema: {exc}")
        schema = Schema(text, "AVRO")
        try:
            self._call("looking up", self.client.lookup_schema, subject, schema)
            return SubjectCheck(subject, topic.schema, "registered")
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise RegistryError(
                    f"{subject}: lookup failed: {exc.error_message}", code="registry.lookup"
                ) from exc
        try:
            versions = self._call("listing versions", self.client.get_versions, subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return SubjectCheck(subject, topic.schema, "new")
            raise
        if not versions:
            return SubjectCheck(subject, topic.schema, "new")
        reason = self._incompatibility(subject, text, versions) or self._policy(
            subject, text, versions
        )
        if reason:
            return SubjectCheck(subject, topic.schema, "incompatible", reason)
        return SubjectCheck(subject, topic.schema, "compatible")

    def _incompatibility(self, subject: str, text: str, versions: list[int]) -> str:
        """'' if the registry accepts ``text`` against every registered version (the subject
        is BACKWARD_TRANSITIVE), else its reason, explained with Avro's checker where the
        registry gives none."""
        schema = Schema(text, "AVRO")
        for version in sorted(versions, reverse=True):
            try:
                verdict = self._call(
                    "testing compatibility",
                    self.client.test_compatibility,
                    subject,
                    schema,
                    version,
                    verbose=True,
                )
            except SchemaRegistryError as exc:
                return f"{exc.error_message} (HTTP {exc.http_status_code})"
            compatible, messages = _verdict(verdict)
            if compatible:
                continue
            if not messages:
                old = self._call("fetching a version", self.client.get_version, subject, version)
                messages = explain(text, old.schema.schema_str)
            reasons = "; ".join(messages) or "no reason given"
            return f"cannot read data written with version {version}: {reasons}"
        return ""

    def _policy(self, subject: str, text: str, versions: list[int]) -> str:
        """The project's rule on top of the registry's: no removing a field that has no
        default (consumers still on an older version could not read new data)."""
        latest = max(versions)
        old = self._call("fetching a version", self.client.get_version, subject, latest)
        removed = removed_required_fields(json.loads(text), json.loads(old.schema.schema_str))
        if not removed:
            return ""
        return (
            f"removes field(s) {', '.join(removed)} that have no default in version {latest}: "
            "consumers still on that version could not read new data. Give the field a "
            "default in one version first, then remove it."
        )

    def check_all(self, topics: Iterable[Topic] | None = None) -> list[SubjectCheck]:
        return [self.check(topic) for topic in _topics_with_schemas(topics)]

    # -- serde bound to the registry ------------------------------------------------------------
    def schema_id(self, topic: Topic) -> int:
        """The registry's id for ``topic``'s local schema; RegistryError if not registered."""
        text = self.library.resolve_text(topic.schema)
        try:
            registered = self._call(
                "looking up", self.client.lookup_schema, topic.value_subject, Schema(text, "AVRO")
            )
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"{topic.value_subject}: the local schema {topic.schema} is not registered "
                f"({exc.error_message}); run `c2c schemas register`",
                code="registry.not_registered",
            ) from exc
        return int(registered.schema_id)

    def encoder(self, topic: Topic) -> AvroEncoder:
        """An encoder writing ``topic``'s current local schema under its registered id."""
        return AvroEncoder(self.library.resolve(topic.schema), self.schema_id(topic))

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """The schema registered under ``schema_id``, parsed from JSON."""
        schema = self._call("fetching a schema", self.client.get_schema, schema_id)
        parsed: dict[str, Any] = json.loads(schema.schema_str)
        return parsed

    def decoder(self, topic: Topic) -> AvroDecoder:
        """A decoder reading any registered version into ``topic``'s current local schema."""
        try:
            reader_id: int | None = self.schema_id(topic)
        except RegistryError:
            reader_id = None  # still decodes; writer schemas come from the registry by id
        return AvroDecoder(
            self.library.resolve(topic.schema), self.writer_schema, reader_schema_id=reader_id
        )


def _verdict(verdict: Any) -> tuple[bool, list[str]]:
    """(compatible, messages) from test_compatibility's answer in its several shapes."""
    if isinstance(verdict, bool):
        return verdict, []
    if isinstance(verdict, dict):
        messages = verdict.get("messages") or []
        return bool(verdict.get("is_compatible")), [str(m) for m in messages]
    is_compatible = getattr(verdict, "is_compatible", None)
    messages = getattr(verdict, "messages", None) or []
    return bool(is_compatible), [str(m) for m in messages]

"""The topic catalogue: every Kafka topic the pipeline uses, declared as data.

Topics are created from this catalogue (:func:`c2c.kafka.ensure_topics`), never by a
broker's auto-creation, so partitions, retention and compaction are reviewed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CATALOGUE", "REGISTRY_JOURNAL", "Topic", "get_topic"]

Zone = Literal["identity", "deidentified", "operations"]


@dataclass(frozen=True)
class Topic:
    """One topic: its name, the Avro schema of its values, and how the broker keeps it.

    ``schema`` is a path relative to schemas/avro/ ('' for a topic whose values are not
    ours, such as the registry's journal). ``zone`` says what it may carry: the
    identity zone carries PII and only the identity resolver reads it.
    """

    name: str
    schema: str
    zone: Zone
    description: str
    partitions: int = 3
    config: dict[str, str] = field(default_factory=dict)

    @property
    def value_subject(self) -> str:
        """Registry subject of the value schema (topic name strategy)."""
        return f"{self.name}-value"


REGISTRY_JOURNAL = Topic(
    name="kafkasql-journal",
    schema="",
    zone="operations",
    description=(
        "Apicurio Registry's storage (kafkasql). One partition, kept forever: the registry "
        "rebuilds its state from it at start and refuses a topic that could lose data."
    ),
    partitions=1,
    config={"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
)

CATALOGUE: tuple[Topic, ...] = (
    Topic(
        name="c2c.ops.heartbeat",
        schema="ops/heartbeat.avsc",
        zone="operations",
        description="Probe events sent through the stack by `c2c demo` and health checks.",
        partitions=1,
        config={"retention.ms": str(24 * 3600 * 1000)},
    ),
)


def get_topic(name: str) -> Topic:
    """The catalogue entry for ``name``; KeyError names the known topics."""
    for topic in CATALOGUE:
        if topic.name == name:
            return topic
    known = ", ".join(topic.name for topic in CATALOGUE)
    raise KeyError(f"unknown topic {name!r}; the catalogue has: {known}")

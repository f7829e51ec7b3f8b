"""How topics are replicated: rendered from the catalogue for 1 and 3 brokers (c2c.topics)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from c2c.topics import (
    CATALOGUE,
    INTAKE_TOPIC,
    changelog_topic,
    get_topic,
    replication_factor,
    topic_config,
)
from streams.app import changelog_topics

# every topic that holds state: changelogs, intake, identity changes, opt-out decisions
STATEFUL = (
    INTAKE_TOPIC,
    "c2c.identity.changes",
    "c2c.identity.optouts",
    "c2c.identity.review",
    "c2c.deadletter",
    "c2c.ops.audit",
)


@pytest.mark.parametrize(("brokers", "replicas"), [(0, 1), (1, 1), (2, 2), (3, 3), (5, 3)])
def test_replication_is_the_clusters_up_to_three(brokers: int, replicas: int) -> None:
    assert replication_factor(brokers) == replicas


def test_one_broker_takes_the_declared_config_alone() -> None:
    for topic in CATALOGUE:
        assert topic_config(topic, 1) == topic.config, topic.name
        assert "min.insync.replicas" not in topic_config(topic, 2), topic.name


@pytest.mark.parametrize("name", STATEFUL)
def test_three_brokers_make_a_stateful_topic_wait_for_two_replicas(name: str) -> None:
    topic = get_topic(name)
    assert topic.holds_state
    assert topic_config(topic, 3) == {**topic.config, "min.insync.replicas": "2"}


def test_every_catalogue_topic_but_the_probes_holds_state() -> None:
    assert [t.name for t in CATALOGUE if not t.holds_state] == ["c2c.ops.heartbeat"]
    assert "min.insync.replicas" not in topic_config(get_topic("c2c.ops.heartbeat"), 3)


def test_the_resolver_changelogs_are_compacted_and_replicated() -> None:
    persons, sources, decisions = changelog_topics("c2c-identity")
    assert persons.name == "c2c-identity-identity-persons-changelog"
    assert sources.name == "c2c-identity-identity-sources-changelog"
    assert decisions.name == "c2c-identity-identity-decisions-changelog"
    for topic in (persons, sources, decisions):
        assert topic.zone == "identity"
        assert topic.kept
        assert topic_config(topic, 1) == {"cleanup.policy": "compact"}
        assert topic_config(topic, 3) == {
            "cleanup.policy": "compact",
            "min.insync.replicas": "2",
        }


def test_a_changelog_topic_takes_the_shards_as_partitions() -> None:
    assert changelog_topic("app", "t", partitions=4).partitions == 4


def _metadata(brokers: list[int], partitions: dict[str, list[tuple[int, int]]]) -> SimpleNamespace:
    """ClusterMetadata-like: topic -> [(replicas, in-sync replicas)] a partition."""
    return SimpleNamespace(
        brokers=dict.fromkeys(brokers),
        topics={
            name: SimpleNamespace(
                partitions={
                    i: SimpleNamespace(id=i, replicas=list(range(r)), isrs=list(range(s)))
                    for i, (r, s) in enumerate(parts)
                }
            )
            for name, parts in partitions.items()
        },
    )


def test_status_names_a_missing_broker_and_the_under_replicated_partitions() -> None:
    from observability.status import _replication_problems

    healthy = _metadata([1, 2, 3], {"c2c.raw.wage": [(3, 3), (3, 3)]})
    assert _replication_problems(healthy, 3) == ([], [])
    degraded = _metadata([1, 3], {"__consumer_offsets": [(3, 2)], "c2c.raw.wage": [(3, 3), (3, 2)]})
    lagging, problems = _replication_problems(degraded, 3)
    # the project's topics first, Kafka's internal ones last
    assert lagging == ["c2c.raw.wage[1]", "__consumer_offsets[0]"]
    assert problems[0] == "Kafka: 2 of 3 brokers in the cluster (node 2 down)"
    assert "2 under-replicated partition(s) (c2c.raw.wage[1], __consumer_offsets[0])" in problems[1]


def test_every_producer_of_the_project_is_idempotent_with_acks_all() -> None:
    """Each librdkafka Producer the project makes takes c2c.kafka.DURABLE_PRODUCER, and each
    Faust app an aiokafka producer with the same settings."""
    from c2c.kafka import DURABLE_PRODUCER, PRODUCER_CONFIG

    assert DURABLE_PRODUCER == {"enable.idempotence": True, "acks": "all"}
    assert DURABLE_PRODUCER.items() <= PRODUCER_CONFIG.items()
    root = Path(__file__).resolve().parents[2]
    found = []
    for package in ("c2c", "producers", "streams", "sinks", "observability", "services", "cli"):
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text()
            for function in ast.walk(ast.parse(source)):
                if not isinstance(function, ast.FunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Producer":
                        # the configuration is built in the function that makes the producer
                        body = ast.get_source_segment(source, function) or ""
                        found.append(path.name)
                        assert "DURABLE_PRODUCER" in body, f"{path.relative_to(root)}:{node.lineno}"
                    if isinstance(node, ast.Call) and ast.unparse(node.func) == "faust.App":
                        # Faust's own producer: the app's transport (streams.app._Transport)
                        # gives aiokafka DURABLE_PRODUCER's settings (test_worker_consumer.py)
                        body = ast.get_source_segment(source, function) or ""
                        found.append(path.name)
                        assert "app.transport = _Transport(" in body, path.relative_to(root)
                        assert "DURABLE_PRODUCER" in source, path.relative_to(root)
    assert len(found) >= 7, found
    assert "app.py" in found  # the worker's Faust app

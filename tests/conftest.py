"""Shared fixtures. Integration tests use the endpoints given in C2C_* variables if set, else
the local services, starting them if they are down (and stopping those at the end). A service
that cannot be reached fails the run: nothing is skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from c2c.child import free_port_pair as free_port_pair  # re-exported for the tests
from c2c.child import free_port_run
from c2c.kafka import ensure_topics
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import Settings, load_settings
from c2c.topics import CATALOGUE, get_topic
from services import services_down, services_up


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """Kafka, the registry and ClickHouse, ready; yields the settings that reach them."""
    started = services_up(settings)
    yield settings
    if started:
        services_down(settings, started)


@pytest.fixture(scope="session")
def registry(stack: Settings) -> SchemaRegistry:
    """The catalogue's topics created and schemas registered on the test stack."""
    ensure_topics(stack, CATALOGUE)
    registry = SchemaRegistry(stack)
    registry.register_all()
    return registry


def read_decoded(
    stack: Settings,
    registry: SchemaRegistry,
    topic: str,
    want: Callable[[dict[str, Any]], bool],
    expected: int,
    start: Mapping[tuple[str, int], int] | None = None,
) -> list[tuple[dict[str, Any], list[tuple[str, Any]]]]:
    """(record, headers) of every message of ``topic``, from the start (or from ``start``,
    offsets per (topic, partition)), whose decoded record satisfies ``want``. Reads until
    ``expected`` are found and the topic has been quiet for two polls (so extras are found
    too), or 60 s. Messages that do not decode are other runs' data in a shared topic,
    and are passed over."""
    decoder = registry.decoder(get_topic(topic))
    consumer = Consumer(stack.kafka_config(**{"group.id": f"test-{uuid.uuid4()}"}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    begin = start or {}
    consumer.assign([TopicPartition(topic, p, begin.get((topic, p), 0)) for p in partitions])
    found: list[tuple[dict[str, Any], list[tuple[str, Any]]]] = []
    deadline = time.monotonic() + 60
    idle = 0
    while time.monotonic() < deadline and (len(found) < expected or idle < 2):
        batch = consumer.consume(1000, 1.0)
        idle = 0 if batch else idle + 1
        for message in batch:
            if message.error() is not None:
                continue
            try:
                record = decoder.decode(message.value() or b"")
            except SerdeError:
                continue
            if want(record):
                found.append((record, list(message.headers() or [])))
    consumer.close()
    return found


def run_c2c(
    env: dict[str, str], *args: str, check: bool = True, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """`c2c ARGS` in a child process with ``env``; with ``check``, AssertionError (showing
    its output) if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"c2c {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def c2c_json(
    *args: str, expect: int = 0, env: dict[str, str] | None = None, timeout_s: float = 180
) -> Any:
    """`c2c ARGS --json` in a child process, as an operator runs it (with ``env``, else this
    process's environment): its JSON output. Its exit status must be ``expect``."""
    result = run_c2c(
        dict(os.environ) if env is None else env, *args, "--json", check=False, timeout_s=timeout_s
    )
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def private_stack_env(data: Path, settings: Settings, *, brokers: int = 1) -> dict[str, str]:
    """The environment of a second, private stack: its own data folder under ``data``, its
    own free ports, the jars of ``settings``; no other C2C_* variable. ``brokers`` > 1: a
    local Kafka cluster of that many nodes (C2C_KAFKA_BROKERS), two ports a node."""
    kafka_ports = 2 * brokers
    kafka_port = free_port_run(kafka_ports)
    registry_port = free_port_pair()
    # nothing is bound yet, so the registry's pair may overlap Kafka's ports: pick again
    while -2 < registry_port - kafka_port < kafka_ports:
        registry_port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C2C_")}
    env.update(
        {
            "C2C_DATA_DIR": str(data / "data"),
            "C2C_LIB_DIR": str(settings.lib_path.resolve()),
            "C2C_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "C2C_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
            "C2C_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{registry_port}/apis/ccompat/v7",
            "C2C_KAFKA_BROKERS": str(brokers),
        }
    )
    return env

"""Shared fixtures. Integration tests use the endpoints given in C2C_* variables if set, else
the local services, starting them if they are down (and stopping those at the end). A service
that cannot be reached fails the run: nothing is skipped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from c2c.kafka import ensure_topics
from c2c.registry import SchemaRegistry
from c2c.services import services_down, services_up
from c2c.settings import Settings, load_settings
from c2c.topics import CATALOGUE


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


def free_port_pair() -> int:
    """A free TCP port p on 127.0.0.1 such that p+1 is free too."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")

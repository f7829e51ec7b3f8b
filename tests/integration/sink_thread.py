"""The sink in a thread of the test process, on its own embedded ClickHouse, with the
telemetry a test gives it (the tests of its traces and metrics read what it reports)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.telemetry import Telemetry
from sinks.migrate import migrate
from sinks.sink import Sink

__all__ = ["sink_in_thread"]


@contextlib.contextmanager
def sink_in_thread(
    stack: Settings,
    registry: SchemaRegistry,
    folder: Path,
    telemetry: Telemetry,
    **settings: Any,
) -> Iterator[tuple[Sink, str]]:
    """(sink, its consumer group), running and positioned: a fresh group that starts at
    the end, ClickHouse in ``folder``, ``settings`` on top. Stopped (and its last batch
    finished) on leaving."""
    chosen = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{folder / 'ch'}",
            "clickhouse_database": "sink",
            "sink_start": "latest",
            **settings,
        }
    )
    client = connect(chosen)
    migrate(client, min_cell=11)
    group = f"test-sink-{uuid.uuid4().hex[:8]}"
    sink = Sink(chosen, registry, client, group_id=group, telemetry=telemetry)
    stop = threading.Event()
    running = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    running.start()
    try:
        deadline = time.monotonic() + 60
        while not sink.positioned and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sink.positioned, "the sink was not assigned its partitions within 60 s"
        yield sink, group
    finally:
        stop.set()
        running.join(30)
        client.close()

"""The pipeline of the opt-out and review tests: the identity worker in a child process,
the sink in a thread of the test process on its own embedded ClickHouse (so the test may
query what it holds), and a provider emitting raw events."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c.clickhouse import connect
from c2c.examples import example_raw
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from cli.shard_hosts import ShardHosts
from cli.worker_process import WorkerProcess
from producers.emitter import EventEmitter
from sinks.audit import read_audit
from sinks.migrate import migrate
from sinks.optouts import PERSON_TABLES, request_key
from sinks.rows import FACT_TABLES
from sinks.sink import Sink
from tests.conftest import free_port_pair

__all__ = ["Pipeline", "running_pipeline", "until"]


@dataclass
class Pipeline:
    """The worker in a child process, the sink in this one (so the test may query the
    ClickHouse the sink holds), and a provider emitting raw events."""

    sink: Sink
    worker: WorkerProcess
    emitter: EventEmitter
    client: Any
    published: dict[str, list[str]] = field(default_factory=dict)  # person -> event ids

    def emit(self, who: str, kind: str, person: dict[str, Any], **facts: Any) -> str:
        event = example_raw(kind, random.randrange(10**6))
        event["event_id"] = str(uuid.uuid4())
        event["source_record_id"] = f"{kind}-{uuid.uuid4().hex[:12]}"
        event["person"] = {**event["person"], **person}
        event["facts"] = {**event["facts"], **facts}
        self.emitter.emit(kind, event)
        assert self.emitter.flush().ok
        self.published.setdefault(who, []).append(event["event_id"])
        return str(event["event_id"])

    def optout(self, event: dict[str, Any]) -> None:
        self.emitter.emit("optout", event)
        assert self.emitter.flush().ok

    def query(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        with self.sink.lock:
            return list(self.client.query(sql, parameters=parameters).result_rows)

    def fact_ids(self) -> set[str]:
        union = " UNION ALL ".join(f"SELECT event_id FROM {t} FINAL" for t in FACT_TABLES.values())
        return {str(row[0]) for row in self.query(union)}

    def person_of(self, event_id: str) -> str:
        union = " UNION ALL ".join(
            f"SELECT person_id FROM {t} FINAL WHERE event_id = %(e)s" for t in FACT_TABLES.values()
        )
        [(person_id,)] = self.query(union, e=event_id)
        return str(person_id)

    def rows_of(self, person_ids: list[str]) -> dict[str, int]:
        return {
            table: int(
                self.query(
                    f"SELECT count() FROM {table} WHERE person_id IN %(ids)s", ids=person_ids
                )[0][0]
            )
            for table in PERSON_TABLES
        }

    def audit(self, request_id: str) -> list[dict[str, Any]]:
        with self.sink.lock:
            secret = self.sink.settings.identity_secret.get_secret_value().encode()
            return read_audit(self.client, request_id, key=request_key(secret))


def until(check: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running_pipeline(
    stack: Settings,
    registry: SchemaRegistry,
    folder: Path,
    database: str,
    *,
    sharded: tuple[int, int] | None = None,
) -> Iterator[Pipeline]:
    """The pipeline, running: a sink on a fresh group that starts at the end, positioned,
    writing ClickHouse ``database`` in ``folder``; the worker started with the environment
    the test gives it. ``sharded``: (shards, hosts): shard hosts of the worker's app id
    started first (the test's environment says C2C_STREAMS_RESOLVER=shards and
    C2C_STREAMS_SHARDS). Stopped on leaving."""
    settings = stack.model_copy(
        update={
            "clickhouse_url": f"chdb://{folder / 'ch'}",
            "clickhouse_database": database,
            "sink_start": "latest",
            "sink_batch_wait_s": 0.2,
        }
    )
    client = connect(settings)
    migrate(client, min_cell=settings.suppression_min_cell)
    sink = Sink(settings, registry, client, group_id=f"test-sink-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    worker = WorkerProcess(stack, folder / "worker.log", port=free_port_pair())
    pipeline = Pipeline(sink, worker, EventEmitter(stack, registry), client)
    hosts = None
    try:
        if sharded is not None:
            hosts = ShardHosts(stack, worker.app_id, *sharded, folder / "hosts")
            hosts.wait_settled()
        until(lambda: sink.positioned, "the sink to be assigned")
        worker.start()
        yield pipeline
    finally:
        pipeline.worker.kill()  # the one running now: a test may have restarted it
        if hosts is not None:
            hosts.stop()
        stop.set()
        thread.join(timeout=30)
        client.close()

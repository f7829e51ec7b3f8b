"""The main job of `make demo`: what the pipeline can do so far, run for real and printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from c2c.heartbeat import HEARTBEAT_TOPIC, send_heartbeat
from c2c.kafka import ensure_topics
from c2c.registry import SchemaRegistry
from c2c.services import services_status, services_up
from c2c.settings import Settings
from c2c.topics import CATALOGUE
from producers.formats import FORMATS

EXAMPLES = Path(__file__).resolve().parents[1] / "producers" / "examples"

__all__ = ["run_demo"]


def run_demo(settings: Settings, echo: Callable[[str], None]) -> None:
    """Bring the services up, send one event through registry, Kafka and ClickHouse, and
    print a health report. Raises C2CError if any step fails."""
    started_at = time.monotonic()
    started = services_up(settings)
    echo(
        f"services: started {', '.join(started) or 'none (all were up)'} "
        f"in {time.monotonic() - started_at:.1f} s"
    )

    result = send_heartbeat(settings, origin="c2c demo")
    echo(
        f"round trip: heartbeat {result.heartbeat_id} registered as schema id "
        f"{result.schema_id}, produced to {HEARTBEAT_TOPIC}[{result.partition}]@{result.offset} "
        f"({result.wire_bytes} bytes, Confluent wire format), consumed and decoded in "
        f"{result.kafka_round_trip_ms:.0f} ms; ClickHouse ops_heartbeat has it "
        f"({result.clickhouse_rows} row)"
    )

    created = ensure_topics(settings, CATALOGUE)
    registrations = SchemaRegistry(settings).register_all()
    echo(
        f"contracts: {len(created)} topic(s) created, {len(registrations)} schema(s) "
        "registered (BACKWARD_TRANSITIVE)"
    )
    from producers.files import produce_file

    for source in FORMATS:
        path = EXAMPLES / f"{source}.csv"
        summary = produce_file(settings, source, path)
        topics = ", ".join(f"{t} {n}" for t, n in sorted(summary.by_topic.items()))
        echo(
            f"produce {source:<6}: read {summary.read}, published {summary.published}, "
            f"rejected {summary.rejected} -> {topics}"
        )

    echo("health:")
    for row in services_status(settings):
        state = "up" if row.up else "DOWN"
        echo(f"  {row.name:<16} {state:<5} {row.version or '-':<10} {row.address}  {row.detail}")

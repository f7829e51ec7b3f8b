"""What the sink's observer costs on the sink's write path.

    .venv/bin/python -m bench.observability [--events N]

The sink's path without Kafka (decode each linked event, build its rows, insert batches of
C2C_SINK_BATCH_ROWS into embedded chdb), (a) alone, and with the observer's calls at the
sink's hook points (observability/sink.py): (b) telemetry off, as when nothing is
configured; (c) metrics on (an in-memory reader, collected once per run); (d) metrics and
tracing on, every event carrying a sampled trace context, so each gets a ``sink.write``
span (spans go through the SDK's batch processor to an exporter that drops them).
Medians of interleaved runs; needs the registry for the Avro schemas.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench._harness import compare_rates, print_table
from c2c.clickhouse import connect
from c2c.consuming import Decoded
from c2c.examples import example_linked
from c2c.registry import SchemaRegistry
from c2c.settings import Settings, load_settings
from c2c.telemetry import Telemetry, setup_telemetry
from c2c.topics import get_topic
from sinks.migrate import migrate
from sinks.observer import SinkObserver
from sinks.sink import Batch, add_linked, write_batch

TOPIC = "c2c.linked.wage"


class _Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    encoder = registry.encoder(get_topic(TOPIC))
    decoder = registry.decoder(get_topic(TOPIC))
    traced = setup_telemetry(settings, "bench", span_exporter=_Dropping())
    with traced.tracer.start_as_current_span("produce"):
        headers = tuple(
            (k, v if isinstance(v, bytes) else str(v).encode()) for k, v in traced.inject()
        )
    messages = []
    for index in range(args.events):
        event = example_linked("wage", index)
        event["event_id"] = str(uuid.uuid4())
        messages.append(encoder.encode(event))

    with tempfile.TemporaryDirectory() as tmp:
        client = connect(
            settings.model_copy(update={"clickhouse_url": f"chdb://{Path(tmp) / 'ch'}"})
        )
        migrate(client, min_cell=11)
        size = settings.sink_batch_rows

        def path(observer: SinkObserver | None, reader: InMemoryMetricReader | None) -> int:
            for table in ("fact_wage", "dim_person"):
                client.command(f"TRUNCATE TABLE {table}")
            for start in range(0, len(messages), size):
                batch = Batch()
                for offset, value in enumerate(messages[start : start + size], start):
                    decoded = Decoded(TOPIC, 0, offset, None, decoder.decode(value), headers)
                    add_linked(batch, TOPIC, decoded.value)
                    if observer is not None:
                        observer.received(decoded)
                if observer is None:
                    write_batch(client, batch)
                else:
                    with observer.inserting(batch):
                        write_batch(client, batch)
                    observer.written(batch)
            if reader is not None:
                reader.get_metrics_data()
            return len(messages)

        def observed(
            telemetry: Telemetry, reader: InMemoryMetricReader | None
        ) -> Callable[[], int]:
            observer = SinkObserver(
                telemetry,
                group="bench",
                counts=({"dead_letter": 0},),
                lag=lambda: {f"{TOPIC}[0]": 0},
                newest_row_time=lambda: None,
            )
            return lambda: path(observer, reader)

        metrics_only = InMemoryMetricReader()
        with_spans = InMemoryMetricReader()
        runs = {
            "alone": lambda: path(None, None),
            "off": observed(Telemetry.disabled(), None),
            "metrics": observed(_metrics(settings, metrics_only), metrics_only),
            "traces": observed(
                setup_telemetry(
                    settings, "bench", span_exporter=_Dropping(), metric_readers=[with_spans]
                ),
                with_spans,
            ),
        }
        started = time.perf_counter()
        rates = compare_rates(runs, repeats=5)
        elapsed = time.perf_counter() - started
        client.close()
    print(f"{args.events:,} linked wage events, batches of {size:,}; {elapsed:.0f} s in all")
    labels = {
        "alone": "sink path alone (decode + rows + insert)",
        "off": "+ observer, telemetry off",
        "metrics": "+ observer, metrics on",
        "traces": "+ observer, metrics and a span per event",
    }
    base = rates["alone"]
    print_table(
        ["path", "events/s (median of 5)", "vs alone", "us/event added"],
        [
            [
                labels[name],
                f"{rate:,.0f}",
                f"{rate / base:.2f}",
                f"{(1 / rate - 1 / base) * 1e6:+.1f}",
            ]
            for name, rate in rates.items()
        ],
    )


def _metrics(settings: Settings, reader: InMemoryMetricReader) -> Telemetry:
    return setup_telemetry(
        settings.model_copy(update={"otel_exporter": "none"}), "bench", metric_readers=[reader]
    )


if __name__ == "__main__":
    main()

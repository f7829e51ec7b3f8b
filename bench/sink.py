"""The sink's write path against a plain clickhouse-connect insert of the same rows.

    .venv/bin/python -m bench.sink [--people N] [--repeats N] [--no-freeze]

Rows: the linked events of a synthetic population (resolved in this process), encoded in
Confluent wire format as the worker publishes them. (a) the sink's path without Kafka: read
each message straight into its fact row (sinks.rows.RowReader), add it and its person to
the batch, and write the batch (sinks.sink.write_batch, through the sink's
sinks.writer.TableWriter) once one table's insert has C2C_SINK_BATCH_ROWS rows, as the sink
does at a backlog, without and with the look-up of each batch's event ids before it is
written (sinks.dedupe.FactDedupe, the sink's default: the tables grow from empty to every
event during a run, and no id is found); (a') as before: decode each message into a record,
then build its row from the record, batches of C2C_SINK_BATCH_ROWS messages, each insert
asking DESCRIBE TABLE first; (a'') the same with fastavro's decoders; (b) the limit: the
same fact rows, already built from the records, inserted column-oriented with
clickhouse-connect in inserts of C2C_SINK_BATCH_ROWS rows per table. Then parts alone:
reading rows from the wire, decoding records, building rows from records. Embedded chdb
in a temporary folder; medians of interleaved runs, wall and CPU (time.process_time: every
thread of this process, chdb's included); each run writes into freshly truncated tables.

The inputs (every message, every built row, every decoded event) stay in memory for the
whole run, as in no sink; once built they are frozen out of the garbage collector's view
(gc.freeze), so that the paths which allocate (the sink's) do not pay for rescanning the
other paths' inputs at every collection. --no-freeze shows the difference.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._harness import (
    compare_rates,
    fastavro_decoder,
    linked_messages,
    plain_insert,
    print_table,
)
from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.serde import AvroDecoder
from c2c.settings import load_settings
from c2c.topics import get_topic
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.dedupe import FactDedupe
from sinks.migrate import migrate
from sinks.rows import FACT_TABLES, fact_row
from sinks.sink import Batch, add_linked, add_row, readers, write_batch
from sinks.writer import TableWriter

_POLL = 1_000  # messages between two looks at the batch (the sink looks after each poll)
_PATHS = (
    ("sink", "sink: wire bytes to rows + insert (sinks.sink)"),
    ("sink_dedupe", "the same, each batch's event ids looked up first (sinks.dedupe)"),
    ("sink_dicts", "as before: records, then rows from them"),
    ("sink_fastavro", "the same, fastavro decoders (before)"),
    ("plain", "plain clickhouse-connect column insert"),
    ("read_rows", "part: wire bytes to rows only (RowReader)"),
    ("decode", "part: decode to records only (compiled)"),
    ("rows", "part: fact and person rows only"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the inputs in the collector's view"
    )
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    decoders = {t: registry.decoder(get_topic(t)) for t in FACT_TABLES}
    fastavro = {t: fastavro_decoder(registry, get_topic(t)) for t in FACT_TABLES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        synthesize(SynthConfig(people=args.people, seed=7), NoiseConfig(), folder)
        messages = linked_messages(registry, folder)
        events = [(topic, decoders[topic].decode(value)) for topic, value in messages]
        built: dict[str, list[list[Any]]] = {}
        for topic, event in events:
            table, row = fact_row(topic, event)
            built.setdefault(table, []).append(row)

        client = connect(
            settings.model_copy(update={"clickhouse_url": f"chdb://{Path(tmp) / 'ch'}"})
        )
        migrate(client, min_cell=11)
        size = settings.sink_batch_rows

        def truncate() -> None:
            for table in (*FACT_TABLES.values(), "dim_person"):
                client.command(f"TRUNCATE TABLE {table}")

        rows_of = readers(registry)
        writer = TableWriter(client)  # the sink's: each table's insert context kept

        def sink_path_rows(dedupe: FactDedupe | None = None) -> int:
            truncate()
            batch = Batch()

            def write(batch: Batch) -> None:
                if dedupe is not None:  # as the sink with C2C_SINK_DEDUPE (the default)
                    dedupe.apply(batch)
                write_batch(writer, batch)

            for start in range(0, len(messages), _POLL):
                for topic, value in messages[start : start + _POLL]:
                    add_row(batch, FACT_TABLES[topic], rows_of[topic].decode(value))
                if batch.largest >= size:  # as the sink: one table's insert is full
                    write(batch)
                    batch = Batch()
            write(batch)
            return len(messages)

        def sink_path(chosen: dict[str, AvroDecoder]) -> int:
            truncate()
            for start in range(0, len(messages), size):
                batch = Batch()
                for topic, value in messages[start : start + size]:
                    add_linked(batch, topic, chosen[topic].decode(value))
                write_batch(client, batch)
            return len(messages)

        def plain() -> int:
            truncate()
            return plain_insert(client, built, size)

        def read_rows_only() -> int:
            for topic, value in messages:
                rows_of[topic].decode(value)
            return len(messages)

        def decode_only() -> int:
            for topic, value in messages:
                decoders[topic].decode(value)
            return len(messages)

        def rows_only() -> int:
            for start in range(0, len(events), size):
                batch = Batch()
                for topic, event in events[start : start + size]:
                    add_linked(batch, topic, event)
            return len(events)

        if not args.no_freeze:
            gc.collect()
            gc.freeze()
        cpu: dict[str, list[float]] = {}

        def timed(key: str, run: Callable[[], int]) -> Callable[[], int]:
            def measured() -> int:
                started = time.process_time()  # every thread of this process: chdb's too
                count = run()
                cpu.setdefault(key, []).append((time.process_time() - started) * 1e6 / count)
                return count

            return measured

        started = time.perf_counter()
        paths = {
            "sink": sink_path_rows,
            "sink_dedupe": lambda: sink_path_rows(
                FactDedupe(client, window_s=settings.sink_dedupe_window_s)
            ),
            "sink_dicts": lambda: sink_path(decoders),
            "sink_fastavro": lambda: sink_path(fastavro),
            "plain": plain,
            "read_rows": read_rows_only,
            "decode": decode_only,
            "rows": rows_only,
        }
        rates = compare_rates(
            {key: timed(key, run) for key, run in paths.items()}, repeats=args.repeats
        )
        elapsed = time.perf_counter() - started
        client.close()
    print(
        f"{len(messages):,} linked events of {args.people:,} people; batches of {size:,}; "
        f"inputs {'not ' if args.no_freeze else ''}frozen; {elapsed:.0f} s in all"
    )
    print_table(
        ["path", f"rows/s (median of {args.repeats})", "vs plain", "us/row", "CPU us/row"],
        [
            [
                label,
                f"{rates[key]:,.0f}",
                f"{rates[key] / rates['plain']:.2f}",
                f"{1e6 / rates[key]:.1f}",
                f"{statistics.median(cpu[key]):.1f}",
            ]
            for key, label in _PATHS
        ],
    )


if __name__ == "__main__":
    main()

"""The sink's write path against a plain clickhouse-connect insert of the same rows.

    .venv/bin/python -m bench.sink [--people N]

Rows: the linked events of a synthetic population (resolved in this process), encoded in
Confluent wire format as the worker publishes them. (a) the sink's path without Kafka:
decode each message, build its fact row and person row (sinks/rows.py), insert per table
in batches of C2C_SINK_BATCH_ROWS; (b) the limit: the same fact rows, already built, inserted
column-oriented with clickhouse-connect. Embedded chdb in a temporary folder; medians of
interleaved runs; each run writes into freshly truncated tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._harness import compare_rates, print_table
from c2c.clickhouse import connect
from c2c.registry import SchemaRegistry
from c2c.settings import load_settings
from c2c.topics import get_topic
from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.migrate import migrate
from sinks.rows import FACT_TABLES, columns, fact_row
from sinks.sink import Batch, add_linked, write_batch
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.linking import linked_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    encoders = {t: registry.encoder(get_topic(t)) for t in FACT_TABLES}
    decoders = {t: registry.decoder(get_topic(t)) for t in FACT_TABLES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        synthesize(SynthConfig(people=args.people, seed=7), NoiseConfig(), folder)
        resolver = Resolver(IdentifierHasher(b"bench"))
        messages: list[tuple[str, bytes]] = []
        for _source, event in mapped_events(folder):
            result = resolver.resolve(event["provider"], event["person"])
            topic = _raw_topic_of(event)
            if result.person_id is None or topic is None:
                continue
            linked_topic, linked = linked_event(topic, event, result.person_id)
            messages.append((linked_topic, encoders[linked_topic].encode(linked)))
        built: dict[str, list[list[Any]]] = {}
        for topic, value in messages:
            table, row = fact_row(topic, decoders[topic].decode(value))
            built.setdefault(table, []).append(row)

        client = connect(
            settings.model_copy(update={"clickhouse_url": f"chdb://{Path(tmp) / 'ch'}"})
        )
        migrate(client, min_cell=11)
        size = settings.sink_batch_rows

        def truncate() -> None:
            for table in (*FACT_TABLES.values(), "dim_person"):
                client.command(f"TRUNCATE TABLE {table}")

        def sink_path() -> int:
            truncate()
            for start in range(0, len(messages), size):
                batch = Batch()
                for topic, value in messages[start : start + size]:
                    add_linked(batch, topic, decoders[topic].decode(value))
                write_batch(client, batch)
            return len(messages)

        def plain_insert() -> int:
            truncate()
            for table, rows in built.items():
                names = list(columns(table))
                for start in range(0, len(rows), size):
                    chunk = rows[start : start + size]
                    data = [list(col) for col in zip(*chunk, strict=True)]
                    client.insert(table, data, column_names=names, column_oriented=True)
            return sum(len(rows) for rows in built.values())

        started = time.perf_counter()
        rates = compare_rates({"sink": sink_path, "plain": plain_insert}, repeats=5)
        elapsed = time.perf_counter() - started
        client.close()
    print(f"{len(messages):,} linked events of {args.people:,} people; {elapsed:.0f} s in all")
    print_table(
        ["path", "rows/s (median of 5)", "vs plain"],
        [
            [
                "sink: decode + rows + insert (sinks.sink)",
                f"{rates['sink']:,.0f}",
                f"{rates['sink'] / rates['plain']:.2f}",
            ],
            ["plain clickhouse-connect column insert", f"{rates['plain']:,.0f}", "1.00"],
        ],
    )


def _raw_topic_of(event: dict[str, Any]) -> str | None:
    facts = event.get("facts") or {}
    if "wages" in facts:
        return "c2c.raw.wage"
    if "aid_program" in facts:
        return "c2c.raw.financial_aid"
    if "credential_type" in facts:
        return "c2c.raw.credential"
    if "award_level" in facts:
        return "c2c.raw.completion"
    if "academic_year" in facts:
        return "c2c.raw.enrollment"
    return None


if __name__ == "__main__":
    main()

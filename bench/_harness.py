"""What the benchmarks share: timing by median of interleaved repeats, a table, the
project's decoder with compilation off (the fastavro baseline), linked messages of a
synthetic population, and the plain clickhouse-connect insert the sink is compared with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from c2c.registry import SchemaRegistry
from c2c.serde import AvroDecoder, AvroEncoder
from c2c.topics import Topic, get_topic

__all__ = [
    "compare_rates",
    "fastavro_decoder",
    "linked_messages",
    "plain_insert",
    "print_table",
]


def compare_rates(runs: Mapping[str, Callable[[], int]], repeats: int = 5) -> dict[str, float]:
    """Median items/s of each run (a callable returning how many items it did).

    Runs are interleaved round by round, so that the machine's noise (2 shared cores)
    falls on every contender alike rather than on whichever ran during a busy spell.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(str(cell).rjust(width) for cell, width in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))


def fastavro_decoder(registry: SchemaRegistry, topic: Topic) -> AvroDecoder:
    """``registry.decoder(topic)`` as it was before decoders were compiled: fastavro reads
    every message."""
    return AvroDecoder(
        registry.library.resolve(topic.schema),
        registry.writer_schema,
        reader_schema_id=registry.schema_id(topic),
        compiled=False,
    )


def linked_messages(registry: SchemaRegistry, folder: Path) -> list[tuple[str, bytes]]:
    """(linked topic, wire bytes) of every linkable event of the synthetic extracts in
    ``folder``, resolved in this process and encoded as the identity worker publishes."""
    from producers.files import mapped_events
    from streams.identity.resolver import IdentifierHasher, Resolver
    from streams.linking import linked_event

    encoders: dict[str, AvroEncoder] = {}
    resolver = Resolver(IdentifierHasher(b"bench"))
    messages: list[tuple[str, bytes]] = []
    for _source, event in mapped_events(folder):
        result = resolver.resolve(event["provider"], event["person"])
        topic = _raw_topic_of(event)
        if result.person_id is None or topic is None:
            continue
        linked_topic, linked = linked_event(topic, event, result.person_id)
        if linked_topic not in encoders:
            encoders[linked_topic] = registry.encoder(get_topic(linked_topic))
        messages.append((linked_topic, encoders[linked_topic].encode(linked)))
    return messages


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


def plain_insert(client: Any, rows: Mapping[str, list[list[Any]]], batch_rows: int) -> int:
    """The limit the sink is held to: ``rows`` per fact table, already built, inserted
    column-oriented with clickhouse-connect in batches of ``batch_rows``; rows written."""
    from sinks.rows import columns

    for table, table_rows in rows.items():
        names = list(columns(table))
        for start in range(0, len(table_rows), batch_rows):
            chunk = table_rows[start : start + batch_rows]
            data = [list(col) for col in zip(*chunk, strict=True)]
            client.insert(table, data, column_names=names, column_oriented=True)
    return sum(len(table_rows) for table_rows in rows.values())

"""The sink's look-up of a batch's event ids as the fact table grows, against its insert.

    .venv/bin/python -m bench.dedupe [--sizes 60000,600000,3000000] [--batch 20000]
        [--recent 60000] [--window-s 3600] [--repeats 5]

For each size, fact_enrollment is filled afresh (embedded chdb in a temporary folder,
migrated): all but ``--recent`` rows published a day before (in inserts of 500,000, as a
backfill's merged parts), then ``--recent`` rows published in the last ten minutes (in
inserts of ``--batch``, as the sink writes). Then a batch of ``--batch`` new event ids
(random UUIDs, as the keyed hashes are spread; published now, none stored) goes through
sinks.dedupe.FactDedupe.apply: without a window (every stored row searched, as before
2026-12-07) and with ``--window-s`` (C2C_SINK_DEDUPE_WINDOW_S). The baseline is the same
batch's insert (the sink's sinks.writer.TableWriter) into an empty copy of the table.
Each size is measured three times: with the parts as written; after ClickHouse's own
background merges (left to run until none has run for 3 s), which may join the recent
parts to older ones; and the worst case of the window, the table merged into one part
(OPTIMIZE FINAL), which holds recent rows and so is read whole.

Merges are stopped on the table while it is measured, so that its parts stay as written
(or as OPTIMIZE left them) and no background merge's CPU counts in a run's. Rows read a
look-up: EXPLAIN ESTIMATE of its query (rows of the granules left after the
primary key and the skip indexes; embedded chdb has no query_log). CPU: time.process_time
(every thread of this process, chdb's included), medians of interleaved runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench._harness import print_table
from c2c.clickhouse import connect
from c2c.settings import load_settings
from sinks.batch import Batch, add_row
from sinks.dedupe import (
    LOOKUP_IDS,
    Copy,
    FactDedupe,
    joined_ids,
    lookup_since,
    lookup_statement,
)
from sinks.migrate import migrate
from sinks.rows import PUBLISHED_AT, columns, event_id_text
from sinks.writer import TableWriter

_TABLE = "fact_enrollment"
_SCRATCH = "bench_enrollment"  # the baseline's empty copy of the table
_HISTORY_CHUNK = 500_000
_DAY_MS = 86_400_000
_STATES = ("as written", "after ClickHouse's merges", "merged into one part")


def _fill(client: Any, rows: int, *, published_from: int, span_ms: int, chunk: int) -> None:
    """``rows`` rows of random event ids, published evenly over ``span_ms`` from
    ``published_from`` (epoch ms), in inserts of ``chunk``."""
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        client.command(
            f"INSERT INTO {_TABLE} (event_id, event_time, provider, person_id, institution_id, "
            f"academic_year, term, {PUBLISHED_AT}) SELECT generateUUIDv4(), now64(3), 'cde', "
            "toString(cityHash64(number) % 1000000), 'inst', 2024, 'fall', "
            f"fromUnixTimestamp64Milli(toInt64({published_from} + "
            f"intDiv(({start} + number) * {span_ms}, {rows})), 'UTC') FROM numbers({size})"
        )


def _batch(template: list[Any], size: int, now_ms: int) -> Batch:
    """``size`` rows like ``template`` under new random event ids, published at ``now_ms``."""
    batch = Batch()
    for _ in range(size):
        row = [uuid.uuid4().int, *template[1:]]
        add_row(batch, _TABLE, row)
        batch.published[id(row)] = now_ms
    return batch


def _rows_read(client: Any, batch: Batch, window_s: float | None) -> int:
    """Rows of the granules the look-up of ``batch`` reads, over its queries of at most
    LOOKUP_IDS ids (EXPLAIN ESTIMATE)."""
    published = batch.published
    copies = [Copy(event_id_text(r[0]), published[id(r)]) for r in batch.facts[_TABLE]]
    window_ms = None if window_s is None else round(window_s * 1000)
    since = lookup_since(copies, window_ms)
    ids = sorted({c.event_id for c in copies})
    read = 0
    for start in range(0, len(ids), LOOKUP_IDS):
        joined = joined_ids(ids[start : start + LOOKUP_IDS])
        sql = lookup_statement({_TABLE: joined}, {} if since is None else {_TABLE: since})
        result = client.query(f"EXPLAIN ESTIMATE {sql}", settings={"max_query_size": 2 * len(sql)})
        read += sum(int(row[3]) for row in result.result_rows)
    return read


def _settle(client: Any) -> None:
    """Wait until no merge has run for a second: a background merge's CPU would count in
    the look-up's, and merges are chosen a while after the inserts."""
    quiet = 0
    while quiet < 3:
        busy = client.query("SELECT count() FROM system.merges").result_rows[0][0]
        quiet = 0 if busy else quiet + 1
        time.sleep(0.5 if busy else 1.0)


def _timed(run: Callable[[], Any]) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="60000,600000,3000000")
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--recent", type=int, default=60_000)
    parser.add_argument("--window-s", type=float, default=3_600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    settings = load_settings()
    header = [
        "table rows",
        "state",
        "insert CPU ms",
        "rows read, no window",
        "CPU ms, no window",
        "ratio to insert",
        f"rows read, {args.window_s:g} s window",
        "CPU ms, window",
        "ratio to insert",
    ]
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        client = connect(
            settings.model_copy(update={"clickhouse_url": f"chdb://{Path(tmp) / 'ch'}"})
        )
        migrate(client, min_cell=11)
        client.command(f"CREATE TABLE {_SCRATCH} AS {_TABLE}")
        writer = TableWriter(client)
        names = (*columns(_TABLE), PUBLISHED_AT)
        for size in sizes:
            client.command(f"SYSTEM START MERGES {_TABLE}")
            client.command(f"TRUNCATE TABLE {_TABLE}")
            client.command(f"SYSTEM STOP MERGES {_TABLE}")  # the inserts' parts as written
            now_ms = int(time.time() * 1000)
            history = max(0, size - args.recent)
            _fill(
                client,
                history,
                published_from=now_ms - 2 * _DAY_MS,
                span_ms=_DAY_MS,
                chunk=_HISTORY_CHUNK,
            )
            _fill(
                client,
                size - history,
                published_from=now_ms - 600_000,
                span_ms=600_000,
                chunk=args.batch,
            )
            template = list(
                client.query(
                    f"SELECT {', '.join(columns(_TABLE))} FROM {_TABLE} LIMIT 1"
                ).result_rows[0]
            )
            for state in _STATES:
                client.command(f"SYSTEM START MERGES {_TABLE}")
                if state == _STATES[2]:
                    client.command(f"OPTIMIZE TABLE {_TABLE} FINAL")
                if state != _STATES[0]:
                    _settle(client)
                client.command(f"SYSTEM STOP MERGES {_TABLE}")
                _settle(client)
                [(parts,)] = client.query(
                    f"SELECT count() FROM system.parts WHERE table = '{_TABLE}' AND active "
                    "AND database = currentDatabase()"
                ).result_rows
                cpu: dict[str, list[float]] = {"insert": [], "none": [], "window": []}
                read: dict[str, int] = {}
                for _ in range(args.repeats):
                    client.command(f"TRUNCATE TABLE {_SCRATCH}")
                    batch = _batch(template, args.batch, int(time.time() * 1000))
                    rows = batch.facts[_TABLE]
                    times = [batch.published[id(r)] for r in rows]
                    cpu["insert"].append(
                        _timed(partial(writer.insert, _SCRATCH, names, rows, (times,)))
                    )
                    for name, window_s in (("none", None), ("window", args.window_s)):
                        batch = _batch(template, args.batch, int(time.time() * 1000))
                        dedupe = FactDedupe(client, window_s=window_s)
                        read[name] = _rows_read(client, batch, window_s)
                        cpu[name].append(_timed(partial(dedupe.apply, batch)))
                        assert dedupe.counts["dedupe.skipped"] == 0  # new ids: none found
                base = statistics.median(cpu["insert"])
                none = statistics.median(cpu["none"])
                window = statistics.median(cpu["window"])
                table.append(
                    [
                        f"{size:,}",
                        f"{state} ({parts} parts)",
                        f"{base:.1f}",
                        f"{read['none']:,}",
                        f"{none:.1f}",
                        f"{none / base:.2f}",
                        f"{read['window']:,}",
                        f"{window:.1f}",
                        f"{window / base:.2f}",
                    ]
                )
                print_table(header, table[-1:])
    print()
    print(
        f"batch {args.batch:,} new ids; {args.recent:,} rows published in the last 10 min, "
        f"the rest a day before; medians of {args.repeats}"
    )
    print_table(header, table)


if __name__ == "__main__":
    main()

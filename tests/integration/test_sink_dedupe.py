"""Each event's fact row written once (sinks/dedupe.py) against embedded ClickHouse, before
FINAL: a batch written twice (a sink replaying what it wrote before a crash), decoded and
as wire containers, is not written again; an event published again (a restarted worker's
copy, under the survivor or the same person) replaces its first copy. With a window
(C2C_SINK_DEDUPE_WINDOW_S), the same within it, a second row beyond it (which FINAL
collapses), and the parts published before it are not read; a database migrated by older
code gets the index too. (A row an opt-out deleted is not stored, so the look-up does not
keep its copy out: the opt-out filter does, tests/integration/test_optouts.py.)"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.batch import Batch
from sinks.dedupe import FactDedupe, joined_ids, lookup_statement
from sinks.migrate import MIGRATIONS_DIR, migrate
from sinks.sink import _wire_paths
from sinks.wire import event_and_person
from sinks.writer import TableWriter, write_batch
from tests.unit.test_sink_batch import REGISTRY, _builder, _linked

pytestmark = pytest.mark.integration


def _rows(client: object, sql: str) -> list[tuple[object, ...]]:
    return list(client.query(sql).result_rows)  # type: ignore[attr-defined]


@pytest.mark.parametrize("wire", [False, True])
def test_replayed_and_republished_events_leave_one_row_each(tmp_path: Path, wire: bool) -> None:
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="d"))
    try:
        migrate(client, min_cell=11)
        _persons, formats = _wire_paths(REGISTRY)  # type: ignore[arg-type]
        writer = TableWriter(client)
        dedupe = FactDedupe(client)
        builder = _builder(wire=wire, batch_rows=8)

        def write(messages: list[object]) -> None:
            batch = Batch()
            builder.take(batch, messages)  # type: ignore[arg-type]
            builder.decide_paths(batch)
            dedupe.apply(batch)
            write_batch(writer, batch, formats)

        first = [_linked("wage", i, f"P{i}", minutes=i, timestamp_ms=1_000 + i) for i in range(6)]
        write(first)
        write(first)  # the sink's replay after a crash
        # a restarted worker's copies: one under the survivor P9 of P0, one under P1 again;
        # and a new event
        again = [
            _linked("wage", 0, "P9", timestamp_ms=5_000),
            _linked("wage", 1, "P1", timestamp_ms=5_001),
            _linked("wage", 7, "P7", timestamp_ms=5_002),
        ]
        ids = [_event(m) for m in first]
        for message, event in zip(again[:2], ids[:2], strict=True):
            message._value = _with_event(message, event)
        write([*again, *first[2:4]])  # with two more replays in the same batch
        rows = _rows(client, "SELECT toString(event_id), person_id FROM fact_wage")
        assert len(rows) == len({e for e, _p in rows}) == 7, rows
        assert dict(rows)[ids[0]] == "P9"  # the later copy under another person won
        assert dict(rows)[ids[1]] == "P1"
        published = _rows(
            client, "SELECT toUnixTimestamp64Milli(published_at) FROM fact_wage ORDER BY 1"
        )
        assert [p for (p,) in published][-3:] == [5_000, 5_001, 5_002]  # the later copies'
        assert dedupe.counts["dedupe.replaced"] == 2
        assert dedupe.counts["dedupe.skipped"] == 6 + 2
        # the replaced copy is gone for FINAL too, and a later replay writes nothing
        write(first[3:])
        final = _rows(client, "SELECT toString(event_id), person_id FROM fact_wage FINAL")
        assert sorted(final) == sorted(rows)
        assert _rows(client, "SELECT count() - uniqExact(event_id) FROM fact_wage") == [(0,)]
    finally:
        client.close()


def _event(message: object) -> str:
    return event_and_person(message.value() or b"")[0]  # type: ignore[attr-defined]


def _with_event(message: object, event: str) -> bytes:
    """``message``'s bytes with the event id ``event`` (36 characters at the same place)."""
    data = message.value() or b""  # type: ignore[attr-defined]
    assert len(event) == len(str(uuid.UUID(event)))
    return data[:6] + event.encode() + data[42:]


# a publication time of these days (epoch ms), from which a window reaches back
_NOW = 1_800_000_000_000


def _lookup_rows(client: object, events: list[str], since: int | None) -> int:
    """Rows of the granules the look-up of ``events`` from ``since`` reads (EXPLAIN ESTIMATE)."""
    ids = joined_ids(sorted(events))
    sql = lookup_statement({"fact_wage": ids}, None if since is None else {"fact_wage": since})
    return sum(int(row[3]) for row in _rows(client, f"EXPLAIN ESTIMATE {sql}"))


def test_a_window_finds_copies_within_it_and_reads_no_part_published_before(
    tmp_path: Path,
) -> None:
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="d"))
    try:
        migrate(client, min_cell=11)
        client.command("SYSTEM STOP MERGES fact_wage")  # each insert's part stays apart
        writer = TableWriter(client)
        dedupe = FactDedupe(client, window_s=60)
        builder = _builder(wire=False, batch_rows=8)

        def write(messages: list[object]) -> None:
            batch = Batch()
            builder.take(batch, messages)  # type: ignore[arg-type]
            dedupe.apply(batch)
            write_batch(writer, batch)

        first = [_linked("wage", i, f"P{i}", timestamp_ms=_NOW + i) for i in range(4)]
        ids = [_event(m) for m in first]
        write(first)
        write(first)  # the sink's replay: published when the stored copies were
        # the worker's copy of P0's event under its survivor, 30 s later: within the window
        within = _linked("wage", 0, "P9", timestamp_ms=_NOW + 30_000)
        within._value = _with_event(within, ids[0])
        write([within, *first[1:]])
        rows = dict(_rows(client, "SELECT toString(event_id), person_id FROM fact_wage"))
        assert len(rows) == 4
        assert rows[ids[0]] == "P9"
        assert dedupe.counts["dedupe.skipped"] == 4 + 3
        assert dedupe.counts["dedupe.replaced"] == 1
        # a copy published an hour after the first, beyond the window: not found, written
        # as a second row (the window's limit), which FINAL collapses to the later copy
        beyond = _linked("wage", 1, "P8", timestamp_ms=_NOW + 3_600_000)
        beyond._value = _with_event(beyond, ids[1])
        write([beyond])
        count = _rows(client, "SELECT count(), uniqExact(event_id) FROM fact_wage")
        assert count == [(5, 4)]
        final = dict(_rows(client, "SELECT toString(event_id), person_id FROM fact_wage FINAL"))
        assert len(final) == 4
        assert final[ids[1]] == "P8"
        # the parts published before the window are not read; without it, every part is
        parts = "SELECT sum(rows) FROM system.parts WHERE table = 'fact_wage' AND active "
        parts += "AND NOT startsWith(name, 'patch')"  # a delete's patch part holds no row
        [(stored,)] = _rows(client, f"{parts} AND database = 'd'")
        later = _NOW + 3_600_000 - 60_000
        assert _lookup_rows(client, ids, later) == 1  # the last insert's part only
        assert _lookup_rows(client, ids, None) == stored > 1
    finally:
        client.close()


def test_a_database_of_older_code_gets_the_index_for_its_rows_too(tmp_path: Path) -> None:
    older = tmp_path / "migrations"
    older.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) <= 13:  # before the index (0014)
            shutil.copy(path, older / path.name)
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="d"))
    try:
        assert "0014_published_at_index.sql" not in migrate(client, min_cell=11, folder=older)
        writer = TableWriter(client)
        builder = _builder(wire=False, batch_rows=8)
        batch = Batch()
        builder.take(batch, [_linked("wage", 0, "P1", timestamp_ms=_NOW)])  # type: ignore[list-item]
        write_batch(writer, batch)
        indexed = (
            "SELECT min(secondary_indices_compressed_bytes) > 0 FROM system.parts "
            "WHERE database = 'd' AND table = 'fact_wage' AND active"
        )
        assert _rows(client, indexed) == [(False,)]
        assert migrate(client, min_cell=11) == ["0014_published_at_index.sql"]
        indexes = _rows(
            client,
            "SELECT table FROM system.data_skipping_indices "
            "WHERE database = 'd' AND name = 'published_at_minmax' ORDER BY table",
        )
        assert [t for (t,) in indexes] == sorted(
            [
                "fact_enrollment",
                "fact_completion",
                "fact_financial_aid",
                "fact_wage",
                "fact_credential",
            ]
        )
        pending = "SELECT count() FROM system.mutations WHERE database = 'd' AND NOT is_done"
        for _ in range(600):  # MATERIALIZE INDEX: a mutation, done in the background
            if _rows(client, pending) == [(0,)]:
                break
            time.sleep(0.1)
        assert _rows(client, indexed) == [(True,)]  # the part written before has it too
        assert migrate(client, min_cell=11) == []  # applied once
    finally:
        client.close()

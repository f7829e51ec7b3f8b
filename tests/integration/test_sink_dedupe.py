"""Each event's fact row written once (sinks/dedupe.py) against embedded ClickHouse, before
FINAL: a batch written twice (a sink replaying what it wrote before a crash), decoded and
as wire containers, is not written again; an event published again (a restarted worker's
copy, under the survivor or the same person) replaces its first copy. (A row an opt-out
deleted is not stored, so the look-up does not keep its copy out: the opt-out filter does,
tests/integration/test_optouts.py.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.batch import Batch
from sinks.dedupe import FactDedupe
from sinks.migrate import migrate
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

"""sinks.writer.TableWriter against embedded ClickHouse: inserts into several tables
through the contexts it keeps, nothing inserted for no rows, and a batch ClickHouse refuses
leaves the writer usable for the next."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from c2c.clickhouse import connect
from c2c.settings import Settings
from sinks.writer import TableWriter

pytestmark = pytest.mark.integration


def test_inserts_through_kept_contexts_and_after_a_refused_batch(tmp_path: Path) -> None:
    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="w"))
    try:
        client.command("CREATE TABLE a (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        client.command(
            "CREATE TABLE b (id UInt32, cents Int64, CONSTRAINT paid CHECK cents > 0) "
            "ENGINE = MergeTree ORDER BY id"
        )
        writer = TableWriter(client)
        assert writer.insert("a", ("id", "name"), [(1, "x"), (2, "y")]) == 2
        assert writer.insert("b", ("id", "cents"), [[7, 5]]) == 1
        assert writer.insert("a", ("id", "name"), []) == 0
        with pytest.raises(DatabaseError, match="paid"):
            writer.insert("b", ("id", "cents"), [[8, -5]])
        assert writer.insert("b", ("id", "cents"), [[9, 3]]) == 1
        assert writer.insert("a", ("id", "name"), [(3, "z")]) == 1
        rows_a = client.query("SELECT id, name FROM a ORDER BY id").result_rows
        rows_b = client.query("SELECT id, cents FROM b ORDER BY id").result_rows
    finally:
        client.close()
    assert rows_a == [(1, "x"), (2, "y"), (3, "z")]
    assert rows_b == [(7, 5), (9, 3)]


def test_an_insert_leaves_no_reference_to_its_values(tmp_path: Path) -> None:
    """The sink collects garbage itself after each batch: an insert's columns must be
    freed when the insert returns, not left to the collector (which would traverse them)."""
    import gc
    import sys

    client = connect(Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="w"))
    enabled = gc.isenabled()
    gc.disable()
    try:
        client.command("CREATE TABLE a (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        writer = TableWriter(client)
        name = "".join(["value ", "held only here"])
        before = sys.getrefcount(name)
        assert writer.insert("a", ("id", "name"), [(1, name), (2, name)]) == 2
        assert sys.getrefcount(name) == before
        assert client.query("SELECT name FROM a ORDER BY id").result_rows == [(name,), (name,)]
    finally:
        if enabled:
            gc.enable()
        client.close()

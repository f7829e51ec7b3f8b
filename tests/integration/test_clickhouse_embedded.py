"""ClickHouse through clickhouse-connect's chdb:// DSN, and the one-process-per-path rule."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from c2c.clickhouse import connect, embedded_owner
from c2c.errors import ServiceError
from c2c.settings import Settings

pytestmark = pytest.mark.integration


def test_write_and_read_through_chdb_dsn(tmp_path: Path) -> None:
    settings = Settings(clickhouse_url=f"chdb://{tmp_path / 'ch'}", clickhouse_database="t1")
    client = connect(settings)
    try:
        client.command(
            "CREATE TABLE wages (person_id String, quarter Date, cents Int64) "
            "ENGINE = MergeTree ORDER BY (person_id, quarter)"
        )
        client.insert(
            "wages",
            [
                ["p1", date(2025, 1, 1), 1_250_000],
                ["p1", date(2025, 4, 1), 1_300_000],
                ["p2", date(2025, 1, 1), 9],
            ],
            column_names=["person_id", "quarter", "cents"],
        )
        rows = client.query(
            "SELECT person_id, sum(cents) FROM wages GROUP BY person_id ORDER BY person_id"
        ).result_rows
        assert rows == [("p1", 2_550_000), ("p2", 9)]
        assert client.command("SELECT currentDatabase()") == "t1"
    finally:
        client.close()


def test_a_path_held_by_another_process_is_reported_with_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "held"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import clickhouse_connect, sys, time\n"
            f"c = clickhouse_connect.get_client(dsn='chdb://{path}')\n"
            "c.command('SELECT 1'); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        deadline = time.monotonic() + 10
        while embedded_owner(path) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert embedded_owner(path) == holder.pid
        with pytest.raises(ServiceError, match=f"open in process {holder.pid}"):
            connect(Settings(clickhouse_url=f"chdb://{path}"))
    finally:
        holder.kill()
        holder.wait()
    assert embedded_owner(path) is None

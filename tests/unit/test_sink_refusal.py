"""Finding the rows ClickHouse refuses for what they hold (sinks/refusal.py), without
ClickHouse: the inserts here refuse as clickhouse-connect does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from c2c.examples import example_linked
from sinks.batch import Batch, add_linked
from sinks.refusal import bisect, refused_for_data, salvage, summary


def test_data_errors_are_refusals_and_outages_are_not() -> None:
    assert refused_for_data(DataError("Unable to create native array for column `d`"))
    assert refused_for_data(DatabaseError("Code: 321. DB::Exception: Value out of range"))
    assert refused_for_data(DatabaseError("Code: 395. DB::Exception: throwIf"))
    assert not refused_for_data(DatabaseError("Code: 60. DB::Exception: Unknown table"))
    assert not refused_for_data(DatabaseError("Code: 243. DB::Exception: Not enough space"))
    assert not refused_for_data(OperationalError("connection refused"))
    assert not refused_for_data(ConnectionError("refused"))
    assert not refused_for_data(ValueError("anything else"))


class _Table:
    """Inserts that refuse any part holding a value in ``bad``, and count what they wrote."""

    def __init__(self, bad: set[int], outage_at: int | None = None) -> None:
        self.bad = bad
        self.written: list[int] = []
        self.inserts = 0
        self.outage_at = outage_at

    def insert(self, part: Sequence[int]) -> None:
        self.inserts += 1
        if self.outage_at is not None and self.inserts >= self.outage_at:
            raise OperationalError("ClickHouse went away")
        if self.bad & set(part):
            raise DataError("Unable to create native array for column `d`")
        self.written += part


@pytest.mark.parametrize("bad", [set(), {0}, {99}, {17}, {3, 4, 5}, set(range(0, 100, 7))])
def test_bisect_finds_every_refused_row_and_writes_every_other_once(bad: set[int]) -> None:
    table = _Table(bad)
    refused = bisect(list(range(100)), table.insert)
    assert sorted(row for row, _exc in refused) == sorted(bad)
    assert sorted(table.written) == sorted(set(range(100)) - bad)
    assert all(isinstance(exc, DataError) for _row, exc in refused)


def test_one_refused_row_among_many_costs_a_few_inserts() -> None:
    table = _Table({123_456})
    bisect(list(range(200_000)), table.insert)
    assert table.inserts <= 2 * 18 + 1


def test_an_outage_while_bisecting_is_raised_not_taken_for_refused_rows() -> None:
    table = _Table({5}, outage_at=3)
    with pytest.raises(OperationalError):
        bisect(list(range(100)), table.insert)


def test_salvage_takes_the_refused_rows_out_and_keeps_each_persons_latest_good_row() -> None:
    batch = Batch()
    events = []
    for index in range(6):
        event = example_linked("enrollment", index)
        event["person_id"] = "p-1" if index < 3 else "p-2"
        events.append(event)
        add_linked(batch, "c2c.linked.enrollment", event)
    latest = batch.persons["p-1"]
    batch.merges.append(["p-9", "p-1", latest[1]])
    refused_ids = {str(latest[0])}  # the latest event of p-1 is refused

    def insert(table: str, names: Sequence[str], rows: Sequence[list[Any]]) -> None:
        if table == "fact_enrollment" and any(str(row[0]) in refused_ids for row in rows):
            raise DataError("Unable to create native array for column `term_start_date`")

    refused = salvage(insert, batch)
    assert [(item.table, str(item.row[0])) for item in refused] == [
        ("fact_enrollment", next(iter(refused_ids)))
    ]
    assert len(batch.facts["fact_enrollment"]) == 5
    assert str(batch.persons["p-1"][0]) not in refused_ids
    assert batch.persons["p-1"] in batch.facts["fact_enrollment"]
    assert batch.merges == [["p-9", "p-1", latest[1]]]
    letter = refused[0].dead_letter()
    assert letter["error_code"] == "sink.row_refused"
    assert letter["source_topic"] == "c2c.linked.enrollment"
    assert letter["original_key"] == b"p-1"
    assert next(iter(refused_ids)) in letter["error_message"]


def test_outages_are_what_passes() -> None:
    from c2c.errors import ServiceError
    from sinks.refusal import outage

    refused = OperationalError("Error HTTPConnectionPool: Connection refused")
    wrapped = ServiceError("cannot open ClickHouse at http://127.0.0.1:1: ...")
    wrapped.__cause__ = refused
    assert outage(wrapped)
    assert outage(ConnectionRefusedError(111, "Connection refused"))
    assert outage(DatabaseError("HTTP 503 Service Unavailable"))
    assert outage(DatabaseError("Code: 243. DB::Exception: Not enough space on disk"))
    assert not outage(DatabaseError("Code: 62. DB::Exception: Syntax error"))
    assert not outage(DataError("Unable to create native array for column `d`"))
    assert not outage(ValueError("a bug"))


def test_a_summary_names_clickhouses_error_first_however_long_the_quoted_query() -> None:
    query = "SELECT 'fact_wage', toString(event_id) FROM fact_wage WHERE " + "x" * 400
    exc = RuntimeError(
        f"Code: 60. DB::Exception: Unknown table expression identifier 'fact_wage'. "
        f"In scope {query}. (UNKNOWN_TABLE) (version 26.9.2.1)\nStack trace: ..."
    )
    text = summary(exc)
    assert text.startswith("RuntimeError: Code: 60 (UNKNOWN_TABLE). DB::Exception: Unknown table")
    assert len(text) == 300
    assert summary(ValueError("bad value")) == "ValueError: bad value"  # not ClickHouse's: as is

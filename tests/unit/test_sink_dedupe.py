"""Each event's fact row written at most once (sinks/dedupe.py) without ClickHouse: the
rules (plan), the statements and their cluster forms, the ids read from a wire message's
leading bytes, and what FactDedupe takes out of a batch given what a stand-in client says
the tables hold."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from c2c.errors import ConfigError
from c2c.settings import load_settings
from sinks.batch import Batch
from sinks.cluster import ClusterSchema, cluster_form
from sinks.dedupe import (
    LOOKUP_IDS,
    Copy,
    FactDedupe,
    _queries,
    delete_statement,
    joined_ids,
    lookup_since,
    lookup_statement,
    plan,
)
from sinks.wire import event_and_person
from tests.unit.test_sink_batch import _builder, _linked


def test_a_stored_event_is_written_again_only_when_published_after_its_stored_copy() -> None:
    copies = [
        Copy("new", 10),
        Copy("same", 10),  # written before the sink's crash, replayed
        Copy("later", 30),  # the worker's copy after its restart (perhaps under the survivor)
        Copy("older", 5),  # a lagging partition's first copy, after the later one
    ]
    stored = {"same": 10, "later": 20, "older": 20}
    assert plan(copies, stored) == ([True, False, True, False], ["later"])


def test_of_an_events_copies_in_one_batch_the_one_published_last_is_written() -> None:
    copies = [Copy("e", 10), Copy("f", 10), Copy("e", 20), Copy("e", 15)]
    assert plan(copies, {}) == ([False, True, True, False], [])
    # the same time: the later in the batch (the order of its partition)
    assert plan([Copy("e", 10), Copy("e", 10)], {}) == ([False, True], [])
    # rows written before migration 0013 were published "at 0": any copy replaces them
    assert plan([Copy("e", 11)], {"e": 0}) == ([True], ["e"])


def test_statements_and_their_cluster_forms() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    lookup = lookup_statement({"fact_wage": f"{a},{b}", "fact_enrollment": a})
    wage, enrollment = lookup.split(" UNION ALL ")
    assert "FROM fact_wage " in wage
    assert f"splitByChar(',', '{a},{b}')" in wage
    assert f"splitByChar(',', '{a}')" in enrollment
    # the ids are a literal: only UUIDs go into it
    assert joined_ids([a, "x' OR 1 --", b.upper(), b]) == f"{a},{b}"
    with pytest.raises(ValueError, match="not UUIDs"):
        lookup_statement({"fact_wage": "x' OR 1 --"})
    delete = delete_statement("fact_wage", f"{a},{b}")
    assert delete.startswith("DELETE FROM fact_wage WHERE event_id IN ")
    assert f"splitByChar(',', '{a},{b}')" in delete
    assert "lightweight_update" in delete
    with pytest.raises(ValueError, match="not UUIDs"):
        delete_statement("fact_wage", "x' OR 1 --")
    # on a cluster the delete goes to every shard's local table (a copy may be on any)
    schema = ClusterSchema("c2c", "db", frozenset({"fact_wage"}))
    [clustered] = cluster_form(delete, schema)
    assert clustered.startswith("DELETE FROM fact_wage_local ON CLUSTER")


def test_the_look_up_searches_from_the_window_before_a_batchs_earliest_copy() -> None:
    copies = [Copy("a", 50_000), Copy("b", 20_000), Copy("c", 90_000)]
    assert lookup_since(copies, 5_000) == 15_000
    # a window of 0 still finds the sink's own replay: its copies were published then
    assert lookup_since(copies, 0) == 20_000
    # no window, no copies, or a copy without a publication time: every stored copy
    assert lookup_since(copies, None) is None
    assert lookup_since([], 5_000) is None
    assert lookup_since([*copies, Copy("d", 0)], 5_000) is None
    assert lookup_since(copies, 20_000) is None  # not after 1970
    with pytest.raises(ValueError, match="-1 ms"):
        lookup_since(copies, -1)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {"fact_wage": a, "fact_enrollment": b}
    wage, enrollment = lookup_statement(ids, {"fact_wage": 15_000}).split(" UNION ALL ")
    bound = "AND published_at >= fromUnixTimestamp64Milli(toInt64(15000), 'UTC') GROUP BY"
    assert bound in wage
    assert "published_at >=" not in enrollment
    assert lookup_statement(ids, {}) == lookup_statement(ids)


def test_the_window_is_a_setting_and_must_be_zero_or_more_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("C2C_SINK_DEDUPE_WINDOW_S", raising=False)
    assert load_settings().sink_dedupe_window_s == 3_600
    assert load_settings(sink_dedupe_window_s=0).sink_dedupe_window_s == 0
    for bad in ("-1", "999999999999", "an hour"):
        monkeypatch.setenv("C2C_SINK_DEDUPE_WINDOW_S", bad)
        with pytest.raises(ConfigError, match="C2C_SINK_DEDUPE_WINDOW_S") as caught:
            load_settings()
        assert repr(bad) in str(caught.value)
    monkeypatch.setenv("C2C_SINK_DEDUPE_WINDOW_S", "-1")
    with pytest.raises(ConfigError, match="0 finds the sink's own replays only"):
        load_settings()
    with pytest.raises(ValueError, match="-2 s"):
        FactDedupe(_Client([]), window_s=-2)


def test_a_wire_messages_event_and_person_are_read_from_its_leading_bytes() -> None:
    message = _linked("wage", 1, "P-07")
    batch = Batch()
    _builder().take(batch, [message])
    [row] = batch.facts["fact_wage"]
    assert event_and_person(message.value() or b"") == (str(uuid.UUID(int=row[0])), "P-07")


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class _Client:
    """What FactDedupe asks of a clickhouse-connect client; ``stored``: the rows its
    lookup answers."""

    def __init__(self, stored: list[tuple[Any, ...]]) -> None:
        self.stored = stored
        self.queries: list[tuple[str, dict[str, Any]]] = []
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, settings: dict[str, Any]) -> _Result:
        self.queries.append((sql, settings))
        return _Result(self.stored)

    def command(self, sql: str, settings: dict[str, Any]) -> None:
        self.commands.append((sql, settings))


def test_a_batchs_rows_and_wire_messages_that_are_stored_are_taken_out() -> None:
    wages = [_linked("wage", i, f"P{i}", minutes=i, timestamp_ms=1_000 + i) for i in range(8)]
    builder = _builder(wire=True, batch_rows=8)  # wire messages from 4 of a table on
    batch = Batch()
    builder.take(batch, wages[:4])
    builder.unwire(batch)  # these four decoded here, as rows
    builder.take(batch, wages[4:])  # these four stay wire messages
    ids = [event_and_person(m.value() or b"")[0] for m in wages]
    client = _Client(
        [
            ("fact_wage", ids[1], 1_001),  # a row replayed
            ("fact_wage", ids[2], 900),  # an earlier copy (the worker's first)
            ("fact_wage", ids[5], 1_005),  # a wire message replayed
        ]
    )
    dedupe = FactDedupe(client)
    dedupe.apply(batch)
    kept = [str(uuid.UUID(int=r[0])) for r in batch.facts["fact_wage"]]
    assert kept == [ids[0], ids[2], ids[3]]
    assert batch.wire["fact_wage"] == [wages[4], wages[6], wages[7]]
    [(sql, settings)] = client.queries
    assert f"splitByChar(',', '{','.join(sorted(ids))}')" in sql
    assert settings["max_query_size"] >= len(sql)
    [(delete, settings)] = client.commands
    assert delete == delete_statement("fact_wage", ids[2])
    assert dedupe.counts == {"dedupe.skipped": 2, "dedupe.replaced": 1}
    # with a window: from that long before the table's earliest copy in the batch
    windowed = _Client([])
    batch = Batch()
    builder.take(batch, wages)
    FactDedupe(windowed, window_s=0.5).apply(batch)
    [(sql, _)] = windowed.queries
    assert "published_at >= fromUnixTimestamp64Milli(toInt64(500), 'UTC')" in sql
    # nothing to look up: no query
    empty = _Client([])
    FactDedupe(empty).apply(Batch())
    assert empty.queries == []


def test_a_batchs_ids_are_looked_up_in_queries_of_at_most_lookup_ids() -> None:
    big = [f"w{i}" for i in range(LOOKUP_IDS + 5)]
    queries = _queries({"fact_wage": big, "fact_enrollment": ["e1", "e2"]})
    assert [[(t, len(ids)) for t, ids in q] for q in queries] == [
        [("fact_wage", LOOKUP_IDS)],
        [("fact_wage", 5), ("fact_enrollment", 2)],
    ]
    assert [i for q in queries for t, ids in q if t == "fact_wage" for i in ids] == big


def test_an_error_names_its_cause_without_the_ids_it_quotes() -> None:
    ids = ",".join(str(uuid.uuid4()) for _ in range(50))

    class _Refusing(_Client):
        def query(self, sql: str, settings: dict[str, Any]) -> _Result:
            raise RuntimeError(f"Unknown table 'fact_wage'. In scope {sql} (UNKNOWN_TABLE)")

    batch = Batch()
    _builder().take(batch, [_linked("wage", 1, "P1")])
    with pytest.raises(RuntimeError) as raised:
        FactDedupe(_Refusing([])).apply(batch)
    assert str(raised.value).endswith("(UNKNOWN_TABLE)")
    assert len(str(raised.value)) < 600 < len(ids)

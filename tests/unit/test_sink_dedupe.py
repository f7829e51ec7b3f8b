"""Each event's fact row written at most once (sinks/dedupe.py) without ClickHouse: the
rules (plan), the statements and their cluster forms, the ids read from a wire message's
leading bytes, and what FactDedupe takes out of a batch given what a stand-in client says
the tables hold."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sinks.batch import Batch
from sinks.cluster import ClusterSchema, cluster_form
from sinks.dedupe import (
    LOOKUP_IDS,
    Copy,
    FactDedupe,
    _queries,
    delete_statement,
    joined_ids,
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

"""Opt-out decisions applied in ClickHouse: once a batch with decisions is written, the
rows of its opted-out persons are removed from every table, and each decision is audited
(the rules and statements: sinks/optouts.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sinks.batch import Batch
from sinks.cluster import ClusterSchema, cluster_form
from sinks.optouts import (
    AUDIT_COLUMNS,
    audit_row,
    count_statement,
    delete_statement,
    removal_times,
    removed_per_decision,
    revocations_statement,
    superseded,
)

__all__ = ["OptOutRemoval"]

_APPLIED_KEPT = 10_000  # decisions whose time from read to applied is kept for /optouts


class OptOutRemoval:
    """Removes opted-out persons' rows through ``client`` (a clickhouse-connect client; the
    caller holds the sink's lock). ``audited``: the decision ids audited before; ``key``:
    :func:`sinks.optouts.request_key` of the identity secret.

    ``counts``: ``optout.rows_removed`` and ``optout.audited``. ``applied_s``: decision id
    -> seconds from reading the decision to its rows removed and audited (the latest
    10,000). ``cluster``: the schema's cluster, whose deletes run on every shard's local
    tables (sinks/cluster.py); None on a single server."""

    def __init__(
        self,
        client: Any,
        audited: Iterable[str] = (),
        *,
        key: bytes,
        cluster: ClusterSchema | None = None,
    ) -> None:
        self._client = client
        self._cluster = cluster
        self._key = key  # sinks.optouts.request_key: keys the audit's request ids
        self._audited = set(audited)
        self.counts: Counter[str] = Counter()
        self.applied_s: dict[str, float] = {}

    def apply(self, batch: Batch) -> None:
        """Remove the rows of the written ``batch``'s opted-out persons from every table,
        with one count query and one DELETE per table that holds any, for all its
        decisions at once; one audit row per decision (a replayed decision removes again,
        and is not audited twice), unless a revocation applied since has revoked it
        (:func:`sinks.optouts.superseded`: ``optout.superseded``). Raises what the client
        raised."""
        requests = sorted({str(d["request_id"]) for d in batch.decisions if d["opted_out"]})
        revoked_at: dict[str, datetime] = {}
        if requests:
            revoked_at = {
                str(request): at
                for request, at in self._client.query(
                    revocations_statement(), parameters={"ids": requests}
                ).result_rows
            }
        stale = superseded(batch.decisions, revoked_at)
        self.counts["optout.superseded"] += sum(stale)
        # each person's rows published up to its latest decision: a later one was admitted
        # after a revocation (perhaps written before this batch: a lagging partition)
        upto = removal_times(batch.decisions, stale)
        ids = sorted(upto)
        found: list[tuple[str, str, int]] = []
        if ids:
            found = self._client.query(
                count_statement(), parameters={"ids": ids, "upto": [upto[p] for p in ids]}
            ).result_rows
        for table in sorted({str(table) for table, _person, _rows in found}):
            chosen = sorted({str(p) for t, p, _rows in found if t == table})
            delete = delete_statement(table)
            chosen_upto = [upto[p] for p in chosen]
            for each in [delete] if self._cluster is None else cluster_form(delete, self._cluster):
                self._client.command(each, parameters={"ids": chosen, "upto": chosen_upto})
        applied_at = datetime.now(UTC)
        audit = []
        audited = set(self._audited)  # a decision read twice in one batch: one audit row
        removed = removed_per_decision(batch.decisions, found)
        for decision, rows_removed in zip(batch.decisions, removed, strict=True):
            self.counts["optout.rows_removed"] += sum(rows_removed.values())
            decision_id = str(decision["decision_id"])
            if decision_id in batch.unaudited:  # another sink's to audit (sinks/side_reader.py)
                continue
            if decision_id not in audited:
                audited.add(decision_id)
                audit.append(audit_row(decision, rows_removed, applied_at, key=self._key))
        if audit:
            self._client.insert("optout_audit", audit, column_names=list(AUDIT_COLUMNS))
        done = time.monotonic()
        for decision, read_at in zip(batch.decisions, batch.decisions_read, strict=True):
            decision_id = str(decision["decision_id"])
            if decision_id not in self._audited and decision_id not in batch.unaudited:
                self._audited.add(decision_id)
                self.counts["optout.audited"] += 1
            self.applied_s[decision_id] = done - read_at
            while len(self.applied_s) > _APPLIED_KEPT:
                del self.applied_s[next(iter(self.applied_s))]

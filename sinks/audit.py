"""Reading the opt-out audit (`c2c optout status`, the sink's ``/optouts/REQUEST_ID``)."""

from __future__ import annotations

from typing import Any

from sinks.optouts import AUDIT_COLUMNS, request_ref

__all__ = ["read_audit"]


def read_audit(client: Any, request_id: str, *, key: bytes) -> list[dict[str, Any]]:
    """Every decision recorded for ``request_id``, oldest first, as JSON-ready dicts (an
    empty list: nothing applied yet, or no such request). The audit holds the request id
    keyed (``key``: sinks.optouts.request_key); the answer names it as asked."""
    result = client.query(
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM optout_audit FINAL "
        "WHERE request_id = %(request_id)s ORDER BY decided_at, decision_id",
        parameters={"request_id": request_ref(key, request_id)},
    )
    rows = []
    for row in result.result_rows:
        item = dict(zip(AUDIT_COLUMNS, row, strict=True))
        item["request_id"] = request_id
        for column in ("requested_at", "decided_at", "applied_at"):
            item[column] = item[column].isoformat()
        item["rows_removed"] = {str(k): int(v) for k, v in item["rows_removed"].items()}
        item["opted_out"] = bool(item["opted_out"])
        rows.append(item)
    return rows

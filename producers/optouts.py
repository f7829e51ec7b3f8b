"""Opt-out requests and revocations from an operator (`c2c optout request|revoke`).

A provider's file of requests goes through `c2c produce optout FILE` like any extract; an
operator's request is built here from the identifying fields it was given, validated like
every raw event, and published to ``c2c.raw.optout`` by the :class:`EventEmitter`. The
identity worker resolves it as it resolves any record (streams/optouts.py).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from c2c.errors import C2CError

__all__ = ["IDENTIFYING_FIELDS", "OptOutInputError", "request_event", "revocation_event"]

IDENTIFYING_FIELDS = (
    "ssn",
    "itin",
    "ssid",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "zip",
)


class OptOutInputError(C2CError):
    """An operator's opt-out names too little to find the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="optout.input")


def request_event(
    person: Mapping[str, Any],
    *,
    request_id: str | None = None,
    requested_by: str = "OPERATOR",
    at: datetime.datetime | None = None,
) -> dict[str, Any]:
    """An OptOutEvent asking to leave the linked data set, for the person that ``person``
    (PersonIdentity fields, see :data:`IDENTIFYING_FIELDS`) identifies.

    Raises OptOutInputError when the fields could not find anyone reliably: a first and
    last name, with a trusted identifier (SSN, ITIN, SSID) or a birth date, are needed. (An
    identifier alone is not enough: SSNs are sometimes shared, and the resolver links on a
    trusted identifier only when something else agrees.)"""
    given = {k: v for k, v in person.items() if k in IDENTIFYING_FIELDS and v not in (None, "")}
    trusted = any(given.get(k) for k in ("ssn", "itin", "ssid"))
    named = all(given.get(k) for k in ("first_name", "last_name"))
    if not (named and (trusted or given.get("birth_date"))):
        raise OptOutInputError(
            "an opt-out needs a first and last name, and an SSN, ITIN, SSID or birth date, to "
            f"find the person; given: {', '.join(sorted(given)) or 'nothing'}"
        )
    request_id = request_id or f"OPR-{uuid.uuid4().hex[:16]}"
    return _event(request_id, "REQUESTED", requested_by, at, given)


def revocation_event(
    request_id: str,
    *,
    requested_by: str = "OPERATOR",
    at: datetime.datetime | None = None,
) -> dict[str, Any]:
    """An OptOutEvent withdrawing the request ``request_id`` (it carries no identity: the
    request names the person)."""
    if not request_id.strip():
        raise OptOutInputError("a revocation names the request id it revokes; none was given")
    return _event(request_id, "REVOKED", requested_by, at, {})


def _event(
    request_id: str,
    action: str,
    requested_by: str,
    at: datetime.datetime | None,
    identity: Mapping[str, Any],
) -> dict[str, Any]:
    """An OptOutEvent from an operator; its source person id is the request id."""
    return {
        "event_time": at or datetime.datetime.now(datetime.UTC),
        "provider": "other",
        "source_record_id": f"{request_id}-{action[:3]}",
        "request_id": request_id,
        "action": action,
        "requested_by": requested_by,
        "person": {"source_person_id": request_id, **identity},
    }

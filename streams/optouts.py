"""Opt-outs in the identity zone: who is out, and what downstream must remove or re-admit.

An opt-out request is resolved like any record, to a person; from then on none of that
person's linked events is published, and a :class:`Decision` tells downstream every person
id whose rows to remove. A merge that joins an opted-out person with another spreads the
opt-out to the merged person (a decision with cause ``MERGED``). A revocation names its
request; once a person has no active request left, their events are published again from
then on (a decision with ``opted_out`` false).

An opt-out follows the person's trusted identifiers, not only the grouping. Linkage is
incremental, so records of one person can stay a person of their own (the request matched
one fragment and not another; a crash changed the order records arrived in). Any person
holding an SSN or SSID that an opted-out person holds (its keyed hash) is treated as out
too: their events are withheld, and a decision with cause ``SHARED_ID`` removes what was
published of them (:meth:`OptOuts.cover`). Over-removal (two people sharing an SSN) is the
price: privacy first. A revocation lifts it with the request.

:class:`OptOuts` keeps nothing of its own: the active requests live in
:class:`~streams.identity.resolver.IdentityState` (``optouts``: person id -> request id ->
``{"at": milliseconds, "by": requester}``, plain data), so they are saved and restored with
each person's snapshot and move with merges. Plain code, no Kafka: the identity stage
(:mod:`streams.resolution`) calls it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.identity.resolver import Change, IdentityState, held_trusted_keys

__all__ = ["Decision", "OptOuts", "Request", "decision_record"]

# Decision ids are derived from the raw event that caused them, so a replay repeats them.
_DECISION_NAMESPACE = uuid.UUID("6f1d3c5e-2b0a-4c39-9a51-0c2c0b7e0a11")


@dataclass(frozen=True)
class Request:
    """One active opt-out request of a person (no identifying fields)."""

    request_id: str
    requested_at_ms: int
    requested_by: str

    def to_json(self) -> dict[str, Any]:
        return {"at": self.requested_at_ms, "by": self.requested_by}

    @classmethod
    def from_json(cls, request_id: str, data: dict[str, Any]) -> Request:
        return cls(request_id, int(data["at"]), str(data.get("by") or "UNKNOWN"))


@dataclass(frozen=True)
class Decision:
    """What downstream must do: remove (``opted_out``) or re-admit the rows of
    ``person_ids`` (the person and every id merged into it)."""

    decision_id: str
    cause: str  # REQUESTED, REVOKED, MERGED, SHARED_ID
    request: Request
    person_id: str
    person_ids: tuple[str, ...]
    opted_out: bool
    requested_at_ms: int


def decision_record(decision: Decision, decided_at: datetime.datetime) -> dict[str, Any]:
    """The OptOutDecision record (schemas/avro/linked/OptOutDecision.avsc) to publish."""
    return {
        "decision_id": decision.decision_id,
        "decided_at": decided_at,
        "requested_at": datetime.datetime.fromtimestamp(
            decision.requested_at_ms / 1000, tz=datetime.UTC
        ),
        "request_id": decision.request.request_id,
        "cause": decision.cause,
        "requested_by": decision.request.requested_by,
        "person_id": decision.person_id,
        "person_ids": list(decision.person_ids),
        "opted_out": decision.opted_out,
    }


def _number(person_id: str) -> int:
    return int(person_id.lstrip("P") or 0)


def _millis(value: Any) -> int:
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return int(value or 0)


class OptOuts:
    """Opt-out decisions over an :class:`IdentityState` (see the module docstring)."""

    def __init__(self, state: IdentityState) -> None:
        self.state = state
        # person (root) covered by another's opt-out -> (request id, its member ids) when a
        # SHARED_ID decision last named them: one decision, not one a record. In memory
        # only: a restarted worker announces a covered person once more (removing again
        # removes nothing more).
        self._announced: dict[str, tuple[str, tuple[str, ...]]] = {}

    def opted_out(self, person_id: str) -> bool:
        """Whether ``person_id`` (or the person it was merged into) has an active request."""
        return bool(self.state.optouts.get(self.state.root(person_id)))

    def withheld(self, person_id: str) -> bool:
        """Whether events of ``person_id`` must not be published: the person opted out, or
        holds a trusted identifier of a person who did (:meth:`covering`)."""
        root = self.state.root(person_id)
        return bool(self.state.optouts.get(root)) or self.covering(root) is not None

    def sharing(self, root: str) -> list[str]:
        """The other surviving persons holding an SSN or SSID (keyed hash) that ``root``
        holds, in id order: found through the resolver's blocks of those identifiers."""
        state = self.state
        found: set[str] = set()
        for key in held_trusted_keys(state.trusted.get(root, {})):
            for filed in state.block(key):
                other = state.root(filed)
                if other != root:
                    found.add(other)
        return sorted(found, key=_number)

    def covering(self, root: str) -> str | None:
        """The opted-out person (lowest id) whose trusted identifier ``root`` holds, if
        any; None when ``root`` shares none with an opted-out person."""
        if not self.state.has_optouts():
            return None
        for other in self.sharing(root):
            if self.state.optouts.get(other):
                return other
        return None

    def cover(self, person_id: str, raw: dict[str, Any]) -> list[Decision]:
        """After the record ``raw`` resolved to ``person_id``: the ``SHARED_ID`` decisions
        that remove the published rows of each person now covered by an opt-out through a
        shared trusted identifier (``person_id`` itself, or, when it is out, those sharing
        its identifiers), each once for a request and a set of member ids."""
        state = self.state
        if not state.has_optouts():
            return []
        root = state.root(person_id)
        if state.optouts.get(root):
            pairs = [(other, root) for other in self.sharing(root) if not state.optouts.get(other)]
        else:
            holder = self.covering(root)
            pairs = [(root, holder)] if holder is not None else []
        decisions = []
        for covered, holder in pairs:
            first = self._first(holder)
            members = state.members(covered)
            if self._announced.get(covered) == (first.request_id, members):
                continue
            self._announced[covered] = (first.request_id, members)
            # keyed by the opted-out person: on one partition with its request and
            # revocation, so downstream reads them in the order they were decided
            decisions.append(self._decision("SHARED_ID", first, holder, raw, covered))
        return decisions

    def after_resolution(
        self, person_id: str, raw: dict[str, Any], changes: Sequence[Change], *, request: bool
    ) -> tuple[str, list[Decision]]:
        """After the record ``raw`` resolved to ``person_id`` with ``changes``: its outcome
        (``optout`` for a ``request``; else ``withheld`` or ``linked``) and the decisions it
        causes: the request's, a merge's spreading an opt-out, and the persons now covered
        through a shared trusted identifier (:meth:`cover`). One record's whole step, so
        that the stage and the sharded resolver's decider (streams/identity/sharding.py)
        take it alike."""
        decisions: list[Decision] = []
        if request:
            decisions.append(self.request(person_id, raw))
            outcome = "optout"
        else:
            if any(c.change_type == "PERSONS_MERGED" for c in changes):
                spread = self.after_merge(person_id, raw)
                if spread is not None:
                    decisions.append(spread)
            outcome = "withheld" if self.withheld(person_id) else "linked"
        decisions += self.cover(person_id, raw)
        return outcome, decisions

    def _first(self, holder: str) -> Request:
        active = self.state.optouts[holder]
        requests = [Request.from_json(rid, data) for rid, data in active.items()]
        return min(requests, key=lambda r: (r.requested_at_ms, r.request_id))

    def request(self, person_id: str, raw: dict[str, Any]) -> Decision:
        """Record the opt-out request ``raw`` (an OptOutEvent) for the person it resolved to.

        The decision is returned even when the person was already out (a second request,
        or the same one replayed): removing rows twice removes nothing more, and the audit
        records each request."""
        root = self.state.root(person_id)
        request = Request(
            str(raw["request_id"]),
            _millis(raw.get("event_time")),
            str(raw.get("requested_by") or "UNKNOWN"),
        )
        self.state.optouts.setdefault(root, {})[request.request_id] = request.to_json()
        self.state.optout_requests[request.request_id] = root
        return self._decision("REQUESTED", request, root, raw)

    def revoke(self, raw: dict[str, Any]) -> Decision | None:
        """Withdraw the request that the revocation ``raw`` names; None when no active
        request has that id (never made, already revoked, or not resolved yet)."""
        request_id = str(raw["request_id"])
        holder = self.state.optout_requests.pop(request_id, None)
        if holder is None:
            return None
        root = self.state.root(holder)
        active = self.state.optouts.get(root, {})
        kept = active.pop(request_id, None)
        if not active:
            self.state.optouts.pop(root, None)
        if kept is None:
            return None
        request = Request.from_json(request_id, kept)
        # persons it covered are announced again should it be requested once more
        self._announced = {p: a for p, a in self._announced.items() if a[0] != request_id}
        revoked = Request(request_id, _millis(raw.get("event_time")), request.requested_by)
        return self._decision("REVOKED", revoked, root, raw)

    def after_merge(self, survivor: str, raw: dict[str, Any]) -> Decision | None:
        """After the record ``raw`` merged persons into ``survivor``: the decision that
        spreads an opt-out to everyone merged, if the survivor is now out."""
        if not self.state.optouts.get(survivor):
            return None
        return self._decision("MERGED", self._first(survivor), survivor, raw)

    def _decision(
        self,
        cause: str,
        request: Request,
        root: str,
        raw: dict[str, Any],
        covered: str | None = None,
    ) -> Decision:
        """The decision about ``root``, removing or re-admitting the rows of its members,
        or (``covered``, a SHARED_ID decision) of ``covered``'s members."""
        event_id = str(raw.get("event_id") or "")
        named = root if covered is None else f"{root}:{covered}"
        return Decision(
            decision_id=str(uuid.uuid5(_DECISION_NAMESPACE, f"{event_id}:{cause}:{named}")),
            cause=cause,
            request=request,
            person_id=root,
            person_ids=self.state.members(root if covered is None else covered),
            opted_out=bool(self.state.optouts.get(root)) or cause == "SHARED_ID",
            requested_at_ms=_millis(raw.get("event_time")),
        )

"""Operators' decisions on possible matches (`c2c review link|separate`), applied as
identity changes like any other. Plain code over the resolver's state: no Kafka or Faust.

A *possible match* is a record whose best other candidate scored close to the match
threshold without reaching it (``Resolution.near``): the record went to its own person
(or another), and the review names both persons. The worker remembers each such review
(:meth:`OperatorDecisions.possible_match`), and an operator's decision on it comes back
through the intake, in the intake's order, as an ``OperatorDecision`` message:

- **LINK**: the two persons are one. They merge as the resolver merges (the lowest id
  survives), published as ``PERSONS_MERGED`` with rule ``OPERATOR``; a separation recorded
  earlier between them is lifted.
- **SEPARATE**: they are not. The pair is recorded as never to be merged
  (``IdentityState.apart``), which the resolver's merge logic respects whatever the two are
  merged into later, and no possible match between them is held for review again. If the
  two are already one person, the review's record is split back to its own person: its
  identity, its source id and its person id (``PERSON_SPLIT``: downstream counts that id's
  rows under it again).

Each decision is applied once (by its ``decision_id``): a replayed or repeated decision
changes nothing. A decision on a review the worker does not know, one whose persons do not
match the review's, or a LINK whose persons have since been merged into others (stale) is
refused with :class:`DecisionError`, which the stage turns into a dead letter with the
reason.

What is kept (and changelogged by the worker: table ``identity-decisions``) is
:meth:`OperatorDecisions.pending`'s keys: ``review:<id>`` (the two persons, the record's
source key and identity: keyed hashes and normalised names, sealed like a person's value),
``apart:<id>:<id>`` and ``decision:<id>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from c2c.errors import C2CError
from streams.identity.matching import Identity
from streams.identity.resolver import (
    TRUSTED_KINDS,
    Change,
    IdentityState,
    Near,
    Resolver,
    _number,
    blocking_keys,
    rekeyed_snapshot,
)

__all__ = [
    "ACTIONS",
    "Applied",
    "DecisionError",
    "OperatorDecisions",
    "rekeyed_value",
]

ACTIONS = ("LINK", "SEPARATE")
_RULE = "OPERATOR"


class DecisionError(C2CError):
    """A decision the worker cannot apply: unknown review, persons that do not match it,
    or stale. Its code says which (``decision.*``)."""


@dataclass(frozen=True)
class Applied:
    """What a decision did: the identity changes to publish (none when it changed
    nothing), the persons whose kept state changed, the source ids it filed anew, and what
    it was for the counts (``linked``, ``separated``, ``split``, ``unchanged``)."""

    what: str
    changes: tuple[Change, ...] = ()
    touched: tuple[str, ...] = ()
    survivor: str | None = None
    # (provider, hashed source id) -> person id, for the worker's source table
    sources: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _Review:
    person_id: str
    candidate_person_id: str
    source: tuple[str, str] | None
    identity: Identity

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "candidate_person_id": self.candidate_person_id,
            "source": list(self.source) if self.source else None,
            "identity": self.identity.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Review:
        source = data.get("source")
        return cls(
            str(data["person_id"]),
            str(data["candidate_person_id"]),
            (str(source[0]), str(source[1])) if source else None,
            Identity.from_json(data["identity"]),
        )


def rekeyed_value(value: Mapping[str, Any], rekey: Callable[[str], str]) -> dict[str, Any]:
    """A kept value (:attr:`OperatorDecisions.pending`'s) with every keyed hash passed
    through ``rekey`` (a key rotation: a review's identity and source id); others as they
    are."""
    if "identity" not in value:
        return dict(value)
    moved = rekeyed_snapshot({"profile": [value["identity"]], "trusted": {}}, rekey)
    source = value.get("source")
    return {
        **value,
        "identity": moved["profile"][0],
        "source": [source[0], rekey(source[1])] if source else None,
    }


def _pair(a: str, b: str) -> str:
    first, second = sorted((a, b), key=_number)
    return f"apart:{first}:{second}"


@dataclass
class OperatorDecisions:
    """The reviews the worker knows, the decisions it applied, and the writes to keep."""

    resolver: Resolver
    reviews: dict[str, _Review] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    # table key -> value to write (None: delete it), taken once per batch by the worker
    pending: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def state(self) -> IdentityState:
        return self.resolver.state

    def restore(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Take back what :attr:`pending` wrote (the worker's table, after a restart)."""
        for key, value in items:
            kind, _, rest = key.partition(":")
            if kind == "review":
                self.reviews[rest] = _Review.from_json(value)
            elif kind == "decision":
                self.applied.add(rest)
            elif kind == "apart":
                a, _, b = rest.partition(":")
                self._keep_apart(a, b)

    def replay(self, writes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Take back writes :meth:`drain` gave that the table may not have (a decider's
        log keeps an epoch's, streams/worker_decider.py): applied as :meth:`restore`
        applies the table's (None: a separation lifted), and pending again, to be
        written."""
        for key, value in writes.items():
            kind, _, rest = key.partition(":")
            if value is not None:
                self.restore([(key, value)])
            elif kind == "apart":
                a, _, b = rest.partition(":")
                self.state.apart.get(a, set()).discard(b)
                self.state.apart.get(b, set()).discard(a)
            self.pending[key] = None if value is None else dict(value)

    def drain(self) -> dict[str, dict[str, Any] | None]:
        """The writes since the last call (the worker's table), and forget them."""
        taken, self.pending = self.pending, {}
        return taken

    def possible_match(
        self,
        review_id: str,
        person_id: str,
        near: Near,
        identity: Identity,
        source: tuple[str, str] | None,
    ) -> None:
        """Remember the review of a possible match: the record (``identity``, filed by its
        source under ``source``) went to ``person_id``, and scored ``near`` its candidate."""
        review = _Review(person_id, near.person_id, source, identity)
        self.reviews[review_id] = review
        self.pending[f"review:{review_id}"] = review.to_json()

    def apply(self, decision: Mapping[str, Any]) -> Applied:
        """Apply one OperatorDecision; DecisionError when it cannot be (see the module)."""
        decision_id = str(decision["decision_id"])
        review_id = str(decision["review_id"])
        action = str(decision["action"])
        if action not in ACTIONS:
            raise DecisionError(
                f"decision {decision_id} on review {review_id}: action {action!r} is not one "
                f"of {', '.join(ACTIONS)}",
                code="decision.invalid",
            )
        if decision_id in self.applied:
            return Applied("unchanged")
        review = self.reviews.get(review_id)
        if review is None:
            raise DecisionError(
                f"decision {decision_id}: review {review_id} is not a possible match this "
                "worker holds (another worker's state, or a record held without a person); "
                "`c2c review show` says what it is",
                code="decision.unknown_review",
            )
        named = (str(decision["person_id"]), str(decision["candidate_person_id"]))
        if named != (review.person_id, review.candidate_person_id):
            raise DecisionError(
                f"decision {decision_id} names persons {named[0]} and {named[1]}, but review "
                f"{review_id} is of {review.person_id} and {review.candidate_person_id}",
                code="decision.mismatch",
            )
        applied = self._link(review) if action == "LINK" else self._separate(review)
        self.applied.add(decision_id)
        self.pending[f"decision:{decision_id}"] = {"action": action, "review_id": review_id}
        return applied

    def _link(self, review: _Review) -> Applied:
        state = self.state
        a, b = review.person_id, review.candidate_person_id
        root_a, root_b = state.root(a), state.root(b)
        if root_a == root_b:
            return Applied("unchanged", survivor=root_a)
        if root_a != a or root_b != b:
            merged = ", ".join(
                f"{pid} into {root}" for pid, root in ((a, root_a), (b, root_b)) if pid != root
            )
            raise DecisionError(
                f"review of {a} and {b} is stale: {merged} since; decide on a newer review "
                "of these persons, if the worker holds one",
                code="decision.stale",
            )
        self._lift(a, b)
        survivor, absorbed = sorted((a, b), key=_number)
        self.resolver._merge(absorbed, survivor)
        change = Change("PERSONS_MERGED", survivor, previous_person_id=absorbed, rule=_RULE)
        return Applied("linked", (change,), (survivor, absorbed), survivor=survivor)

    def _separate(self, review: _Review) -> Applied:
        state = self.state
        a, b = review.person_id, review.candidate_person_id
        key = _pair(a, b)
        recorded = b in state.apart.get(a, ())
        if not recorded:
            self._keep_apart(a, b)
            self.pending[key] = {"review": True}
        root = state.root(a)
        if root != state.root(b):
            return Applied("separated" if not recorded else "unchanged")
        return self._split(review, root)

    def _split(self, review: _Review, root: str) -> Applied:
        """Split the review's record back to its own person (``review.person_id``), out of
        ``root``, which both persons are merged into."""
        state = self.state
        a, b = review.person_id, review.candidate_person_id
        # the one to bring back: the record's person, unless it is the survivor (then the
        # candidate comes back, with everything the survivor held but the record)
        out = a if a != root else b
        record = review.identity
        kept = state.profiles.get(root, [])
        rest = [identity for identity in kept if identity != record]
        holder_a = [record]
        state.merged_into.pop(out, None)
        absorbed = state.absorbed.get(root, [])
        if out in absorbed:
            absorbed.remove(out)
        repointed = []
        for person, target in list(state.merged_into.items()):
            if target == out:  # ids merged into ``out`` earlier stay with the survivor
                state.merged_into[person] = root
                repointed.append(person)
        if out == a:
            state.profiles[out], state.profiles[root] = holder_a, rest
        else:
            state.profiles[out], state.profiles[root] = rest, holder_a
        # the survivor leaves the blocks of what it no longer holds (the record's, or
        # everything but it), as a restart's blocks would have it
        state.unfile(root, kept, state.profiles[root])
        for person in (out, root):
            profile = state.profiles[person]
            state.trusted[person] = {
                kind: {value for identity in profile if (value := getattr(identity, kind))}
                for kind in TRUSTED_KINDS
            }
            for identity in profile:
                for block_key in blocking_keys(identity):
                    state.file(block_key, person)
        sources = {}
        if review.source is not None:
            state.sources[review.source] = sources[review.source] = a
        # an opted-out person stays out: the split person keeps the survivor's requests
        for request_id, data in state.optouts.get(root, {}).items():
            state.optouts.setdefault(out, {})[request_id] = dict(data)
        change = Change("PERSON_SPLIT", out, previous_person_id=root, rule=_RULE)
        return Applied("split", (change,), (out, root, *repointed), root, sources)

    def _keep_apart(self, a: str, b: str) -> None:
        self.state.apart.setdefault(a, set()).add(b)
        self.state.apart.setdefault(b, set()).add(a)

    def _lift(self, a: str, b: str) -> None:
        """Lift every separation between the persons of ``a`` and of ``b`` (a LINK
        overrides an earlier SEPARATE)."""
        state = self.state
        ours, theirs = set(state.members(a)), set(state.members(b))
        for member in ours:
            for other in list(state.apart.get(member, ())):
                if other in theirs:
                    state.apart[member].discard(other)
                    state.apart[other].discard(member)
                    self.pending[_pair(member, other)] = None

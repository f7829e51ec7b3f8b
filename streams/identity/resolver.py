"""Incremental identity resolution: each record, on arrival, against what is already known.

:class:`Resolver` decides, for one source record, which person it belongs to: the person
the same source already filed it under, persons sharing a trusted identifier (compared as
keyed hashes), and persons whose Fellegi-Sunter score reaches the model's threshold among
the few that share a blocking key. None: a new person. Several: they merge (unless two
different trusted identifiers forbid it), the lowest id surviving. Every decision comes back
as a :class:`Resolution` with the identity changes to publish.

State lives behind :class:`IdentityState` (here in memory; the Faust worker keeps the same
data in changelogged tables). Same records in the same order give the same ids, and an id
once given is never given to anyone else.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.identity.matching import (
    DEFAULT_MODEL,
    TRANSPOSED_MARK,
    TWO_DIGIT_MARK,
    Identity,
    MatchModel,
    Score,
    identifier_levels,
    names_agree,
    read_near,
    weighed_fields,
)
from streams.identity.normalize import first_name_root, name_key, name_parts

__all__ = [
    "TRUSTED_KINDS",
    "Change",
    "IdentifierHasher",
    "IdentityState",
    "Near",
    "Prepared",
    "Resolution",
    "Resolver",
    "blocking_keys",
    "held_trusted_keys",
    "identity_trusted_keys",
    "probe_keys",
    "rekeyed_snapshot",
    "trusted_keys",
]

# the identifiers a person keeps every value of (IdentityState.trusted) and opt-outs follow
TRUSTED_KINDS = ("ssn", "ssid")
_MAX_PROFILE = 12  # distinct identities kept per person
_MAX_BLOCK_SCAN = 64  # persons compared per blocking key


class IdentifierHasher:
    """Keyed hashes (HMAC-SHA256) of trusted identifiers and source ids, so that raw SSNs
    and SSIDs never sit in state, changelogs or logs.

    Key rotation: ``later`` keys (one per later key version, in order) each hash the hash
    before them: HMAC(k2, HMAC(k1, value)). So a hash kept under the first keys is brought
    under all of them by :meth:`rekey`, without the value, and a leaked earlier key alone
    no longer opens what is kept (every key of the chain is needed to test a guess)."""

    def __init__(self, secret: bytes, *later: bytes, cache_size: int = 262_144) -> None:
        if not secret or not all(later):
            raise ValueError("the identifier hashing secret is empty")
        self._secret = secret
        self._later = later
        # Wage records repeat one SSN quarter after quarter: hash each value once. The
        # cache lives in this process's memory only (never in state, changelogs or logs).
        # ``cache_size`` values each: a full masks cache holds about 2.4 kB a value (600 MB
        # at the default), so a resolver whose memory must stay bounded gives a smaller one.
        self._cached = functools.lru_cache(maxsize=cache_size)(self._digest)
        self._cached_masks = functools.lru_cache(maxsize=cache_size)(self._masks)

    def __call__(self, kind: str, value: str | None) -> str | None:
        if not value:
            return None
        digest: str = self._cached(kind, value)
        return digest

    def _first(self, kind: str, value: str) -> str:
        # hmac.digest: the same HMAC in one call to OpenSSL, no HMAC object (a new SSN
        # costs ten: the number and each digit masked)
        return hmac.digest(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hex()[:32]

    def _digest(self, kind: str, value: str) -> str:
        digest = self._first(kind, value)
        return self.rekey(digest, 1) if self._later else digest

    @property
    def keys(self) -> int:
        """How many keys hash a value (1 + later key versions)."""
        return 1 + len(self._later)

    def rekey(self, digest: str, keyed: int) -> str:
        """``digest``, made under the first ``keyed`` keys, under all of them. A hash
        marked as a transposition's (:data:`TRANSPOSED_MARK`) or a two-digit mask's
        (:data:`TWO_DIGIT_MARK`) stays marked: each key's hash of it is marked again, as
        :meth:`masks` makes them."""
        mark = next((m for m in (TRANSPOSED_MARK, TWO_DIGIT_MARK) if digest.startswith(m)), "")
        for key in self._later[keyed - 1 :]:
            digest = hmac.digest(key, digest.encode(), hashlib.sha256).hex()[:32]
            digest = mark + digest[len(mark) :]
        return digest

    def source_id(self, provider: str, value: str) -> str:
        """The keyed hash under which ``provider``'s own person id ``value`` is kept (in
        :attr:`IdentityState.sources` and the worker's ``identity-sources`` table). Every
        source id is hashed, with the same key as SSNs: some are identifiers (the wage
        source's person id is the SSN), and none is needed in clear to find it again."""
        digest: str = self._cached(f"source.{provider}", value)
        return digest

    def masks(self, kind: str, value: str | None) -> frozenset[str]:
        """Keyed hashes of ``value`` with each digit in turn masked: two identifiers one
        digit apart share exactly one of them; and of ``value`` with each pair of adjacent
        digits put in order, marked by :data:`TRANSPOSED_MARK`: two identifiers that
        differ by a transposition of adjacent digits share exactly one of those; and, for
        an SSN, of ``value`` with each pair of digits masked (36), marked by
        :data:`TWO_DIGIT_MARK`: two SSNs two digits apart share one."""
        if not value:
            return frozenset()
        masks: frozenset[str] = self._cached_masks(kind, value)
        return masks

    def _masks(self, kind: str, value: str) -> frozenset[str]:
        masked = [
            self._digest(f"{kind}-mask", f"{value[:at]}_{value[at + 1 :]}")
            for at in range(len(value))
        ]
        # the marker replaces the hash's first hex digits, so the binary snapshot form
        # still keeps each as 16 bytes
        # (under the first key, then marked and brought under the later ones by rekey, so
        # that a kept mask is re-keyed without the value)
        ordered = [
            self.rekey(
                TRANSPOSED_MARK
                + self._first(
                    f"{kind}-pair",
                    f"{at}:{value[:at]}{''.join(sorted(value[at : at + 2]))}{value[at + 2 :]}",
                )[len(TRANSPOSED_MARK) :],
                1,
            )
            for at in range(len(value) - 1)
            if value[at] != value[at + 1]
        ]
        # SSNs only: with two digits masked, marked by TWO_DIGIT_MARK (two SSNs two digits
        # apart share one); not blocked on, only compared
        two = (
            [
                self._marked(
                    TWO_DIGIT_MARK,
                    f"{kind}-two",
                    f"{value[:i]}_{value[i + 1 : j]}_{value[j + 1 :]}",
                )
                for i, j in itertools.combinations(range(len(value)), 2)
            ]
            if kind == "ssn"
            else []
        )
        return frozenset(masked + ordered + two)

    def _marked(self, mark: str, kind: str, value: str) -> str:
        """The keyed hash of ``value`` starting with ``mark``, under every key."""
        return self.rekey(mark + self._first(kind, value)[len(mark) :], 1)


# Change and Resolution are named tuples: one or more of each is built per record, and a
# frozen dataclass's __init__ (a setattr per field) cost several times as much.
class Change(NamedTuple):
    """An identity change to publish (de-identified: ids only)."""

    change_type: str  # PERSON_CREATED, RECORD_LINKED, PERSONS_MERGED
    person_id: str
    previous_person_id: str | None = None
    rule: str | None = None
    weight: float | None = None
    # the version of the match model that decided a link or merge (MatchModel.version)
    model_version: str | None = None


class Near(NamedTuple):
    """A possible match: the best candidate a record scored close to, at least the
    resolver's ``review_floor`` but below the model's threshold, and not the person the
    record went to (streams/identity/operator_decisions.py holds it for review)."""

    person_id: str
    weight: float
    levels: tuple[tuple[str, str], ...]


class Prepared(NamedTuple):
    """A record as :meth:`Resolver.decide` takes it (:meth:`Resolver.prepare`)."""

    identity: Identity
    source_key: tuple[str, str]  # (provider, keyed hash of its person id, or "")
    keys: list[str] | None  # probe_keys(identity), or None: decide computes them


class Resolution(NamedTuple):
    """Where a record went: a person (with the changes made), or review (with why)."""

    person_id: str | None
    changes: tuple[Change, ...] = ()
    rule: str | None = None
    weight: float | None = None
    review_reason: str | None = None
    # persons whose kept state the decision changed, for a store that persists person by
    # person (a record identical to one already kept changes nothing)
    touched: tuple[str, ...] = ()
    new_source: tuple[str, str] | None = None
    near: Near | None = None


@dataclass
class IdentityState:
    """Everything the resolver remembers. Plain data, so any store can hold it."""

    next_number: int = 1
    profiles: dict[str, list[Identity]] = field(default_factory=dict)
    blocks: dict[str, list[str]] = field(default_factory=dict)
    # (provider, keyed hash of the source's person id: IdentifierHasher.source_id) -> person
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    trusted: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # active opt-out requests per surviving person: request id -> {"at": ms, "by": who}
    # (streams.optouts decides with them), and which person holds each request
    optouts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    optout_requests: dict[str, str] = field(default_factory=dict)
    # surviving person -> every id merged into it (derived from merged_into)
    absorbed: dict[str, list[str]] = field(default_factory=dict)
    # person id -> ids an operator separated it from (`c2c review separate`): never merged,
    # whatever they are merged into since (streams/identity/operator_decisions.py keeps it)
    apart: dict[str, set[str]] = field(default_factory=dict)

    def block(self, key: str) -> Sequence[str]:
        """Every person filed under block ``key`` (in id order)."""
        return self.blocks.get(key, ())

    def has_optouts(self) -> bool:
        """Whether any person has an active opt-out request."""
        return bool(self.optouts)

    def candidates(self, key: str) -> list[str]:
        """The persons a record probing block ``key`` is compared with: the last
        :data:`_MAX_BLOCK_SCAN` filed under it in id order (the newest persons), oldest
        first."""
        return self.blocks.get(key, [])[-_MAX_BLOCK_SCAN:]

    def file(self, key: str, person_id: str) -> None:
        """File ``person_id`` under block ``key`` (once), in id order.

        A block holds, in id order, the live persons one of whose kept identities has the
        key: what :meth:`restore` rebuilds from the snapshots, so that a restarted worker
        compares a record with the persons one that never stopped compares it with (its
        last :data:`_MAX_BLOCK_SCAN`). Appending in filing order, and leaving a person
        under the keys of identities its profile dropped or under its own id once merged,
        gave another block after a restart (issue #19)."""
        block = self.blocks.setdefault(key, [])
        at = bisect.bisect_left(block, _number(person_id), key=_number)
        if at == len(block) or block[at] != person_id:
            block.insert(at, person_id)

    def unfile(self, person_id: str, gone: Iterable[Identity], kept: Iterable[Identity]) -> None:
        """Take ``person_id`` out of the blocks of the identities ``gone`` that none of the
        identities ``kept`` is filed under (a profile's oldest identity dropped, a person
        merged: ``kept`` empty)."""
        keys = {key for identity in gone for key in blocking_keys(identity)}
        keys.difference_update(key for identity in kept for key in blocking_keys(identity))
        for key in keys:
            self.unfile_key(key, person_id)

    def unfile_key(self, key: str, person_id: str) -> None:
        """Take ``person_id`` out of block ``key`` (if there)."""
        block = self.blocks.get(key)
        if block is None:
            return
        at = bisect.bisect_left(block, _number(person_id), key=_number)
        if at < len(block) and block[at] == person_id:
            del block[at]
            if not block:
                del self.blocks[key]

    def kept_apart(self, a: str, b: str) -> bool:
        """Whether an operator separated someone of person ``a`` (its id or an id merged
        into it) from someone of person ``b``."""
        if not self.apart:
            return False
        root_b = self.root(b)
        return any(
            self.root(other) == root_b
            for member in self.members(a)
            for other in self.apart.get(member, ())
        )

    def members(self, person_id: str) -> tuple[str, ...]:
        """The surviving id of ``person_id`` and every id merged into it, in id order: all
        the ids under which its events may have been published."""
        root = self.root(person_id)
        return tuple(sorted([root, *self.absorbed.get(root, ())], key=_number))

    def root(self, person_id: str) -> str:
        """The surviving id of ``person_id`` after every merge.

        It follows :attr:`merged_into` and changes nothing: each entry stays the survivor
        its merge named (the ``PERSONS_MERGED`` published), which is what a tombstone
        (:meth:`snapshot`) keeps. Path compression here rewrote entries on look-ups, so a
        tombstone depended on which look-ups ran before it was written, and a worker
        restarted on its tables (which never rewrites an untouched tombstone) kept another
        value than one that never stopped (tests/integration/test_worker_upgrade.py). A
        chain is as long as the merges its person went through since, a few steps."""
        merged_into = self.merged_into
        while person_id in merged_into:
            person_id = merged_into[person_id]
        return person_id

    def snapshot(self, person_id: str) -> dict[str, Any]:
        """Everything kept of ``person_id``, JSON-ready: a merged person is a tombstone
        naming its survivor. :meth:`restore` reads these back."""
        merged = self.merged_into.get(person_id)
        if merged is not None:
            return {"merged_into": merged}
        trusted = self.trusted.get(person_id, {})
        snapshot: dict[str, Any] = {
            "profile": [identity.to_json() for identity in self.profiles.get(person_id, [])],
            "trusted": {kind: sorted(values) for kind, values in trusted.items()},
        }
        optouts = self.optouts.get(person_id)
        if optouts:
            snapshot["optouts"] = {rid: dict(data) for rid, data in sorted(optouts.items())}
        return snapshot

    def file_person(self, person_id: str, record: Mapping[str, Any]) -> None:
        """Hold the live ``person_id`` as its :meth:`snapshot` ``record`` says: its profile
        (replacing any, out of the blocks of the identities it no longer holds), trusted
        identifiers and opt-outs, its identities filed in their blocks (:meth:`file`).
        Filing a record twice changes nothing."""
        profile = [Identity.from_json(item) for item in record.get("profile", [])]
        before = self.profiles.get(person_id)
        self.profiles[person_id] = profile
        self.trusted[person_id] = {
            kind: set(record.get("trusted", {}).get(kind, [])) for kind in TRUSTED_KINDS
        }
        if before:
            self.unfile(person_id, before, profile)
        for identity in profile:
            for key in blocking_keys(identity):
                self.file(key, person_id)
        optouts = {str(rid): dict(data) for rid, data in (record.get("optouts") or {}).items()}
        for request_id in self.optouts.pop(person_id, {}):
            if request_id not in optouts and self.optout_requests.get(request_id) == person_id:
                del self.optout_requests[request_id]
        if optouts:
            self.optouts[person_id] = optouts
            for request_id in optouts:
                self.optout_requests[request_id] = person_id

    @classmethod
    def restore(
        cls,
        persons: Iterable[tuple[str, Mapping[str, Any]]],
        sources: Iterable[tuple[tuple[str, str], str]],
    ) -> IdentityState:
        """The state whose :meth:`snapshot` of every person gave ``persons``, with the
        source-id map ``sources`` (:meth:`load`, the persons sorted here)."""
        state = cls()
        state.load(sorted(persons, key=lambda item: _number(item[0])), sources)
        return state

    def load(
        self,
        persons: Iterable[tuple[str, Mapping[str, Any]]],
        sources: Iterable[tuple[tuple[str, str], str]],
    ) -> None:
        """Fill this empty state (in memory, or a store's on disk) with ``persons``, each
        person's :meth:`snapshot` **in id order**, and the source-id map ``sources``, each
        read once and never held whole here (only the merges' ids are): so a state on disk
        is rebuilt in bounded memory. Blocks are rebuilt from the profiles, persons in id
        order, as the running state keeps them (:meth:`file`). New persons are numbered
        after every id that ``persons`` or ``sources`` names; a source id whose person has
        no snapshot in ``persons`` is dropped."""
        highest = 0
        merged: list[str] = []
        for person_id, record in persons:
            highest = max(highest, _number(person_id))
            survivor = record.get("merged_into")
            if survivor is not None:
                self.merged_into[person_id] = str(survivor)
                merged.append(person_id)
                highest = max(highest, _number(str(survivor)))
                continue
            self.file_person(person_id, record)
        for absorbed in sorted(merged, key=_number):
            self.absorbed.setdefault(self.root(absorbed), []).append(absorbed)
        for source, person_id in sources:
            # past every id the state refers to, not the persons table's alone: a source id
            # or a merge may name a person whose snapshot never reached the changelog (a
            # worker killed between the two changelogs' writes), whose id must not be given
            # again; such a source id is forgotten (its person's profile is): its next
            # record is resolved as a new source's, rather than looked up in a profile that
            # is not there
            highest = max(highest, _number(person_id))
            if self.root(person_id) in self.profiles:
                self.sources[source] = person_id
            else:
                self.sources.pop(source, None)  # an earlier pair of the same source
        self.next_number = highest + 1


def rekeyed_snapshot(snapshot: Mapping[str, Any], rekey: Callable[[str], str]) -> dict[str, Any]:
    """``snapshot`` (:meth:`IdentityState.snapshot`) with every keyed hash passed through
    ``rekey`` (a key rotation: :meth:`IdentifierHasher.rekey`); names and dates as they
    are."""
    if "profile" not in snapshot:
        return dict(snapshot)

    def one(value: Any) -> Any:
        return rekey(value) if isinstance(value, str) else value

    profile = []
    for identity in snapshot["profile"]:
        moved = dict(identity)
        for name in ("ssn", "ssid", "itin"):
            moved[name] = one(moved.get(name))
        for name in ("ssn_masks", "ssid_masks"):
            moved[name] = sorted(one(v) for v in moved.get(name) or [])
        profile.append(moved)
    trusted = {kind: sorted(one(v) for v in values) for kind, values in snapshot["trusted"].items()}
    return {**snapshot, "profile": profile, "trusted": trusted}


def trusted_keys(identifiers: Iterable[tuple[str, str | None]]) -> list[str]:
    """The block keys (``ssn:<keyed hash>``) of trusted identifiers given as (kind, keyed
    hash) pairs, absent ones skipped: every person holding one is filed under its key, so
    opt-outs find through it whoever shares it (:meth:`IdentityState.block`)."""
    return [f"{kind}:{value}" for kind, value in identifiers if value]


def held_trusted_keys(trusted: Mapping[str, Iterable[str]]) -> list[str]:
    """:func:`trusted_keys` of every value a person keeps (:attr:`IdentityState.trusted`:
    kind -> keyed hashes)."""
    return trusted_keys((kind, value) for kind, values in trusted.items() for value in values)


def identity_trusted_keys(identity: Identity) -> list[str]:
    """:func:`trusted_keys` of the SSN and SSID that ``identity`` carries: what a person
    holding it keeps in :attr:`IdentityState.trusted`."""
    return trusted_keys((kind, getattr(identity, kind)) for kind in TRUSTED_KINDS)


def blocking_keys(identity: Identity) -> list[str]:
    """The blocks ``identity`` is filed under: its trusted identifiers, and its SSN with
    each digit in turn masked (keyed hashes: a number typed with one digit wrong shares one
    with the right one); birth date with the surname's initial (also day and month
    swapped), with the first name's root, and birth year with surname prefix and first
    initial; surname with first initial when there is no birth date (wage records); the
    full name (first name spelled out)."""
    keys = [*identity_trusted_keys(identity), *trusted_keys([("itin", identity.itin)])]
    # (in any order: each key's block is filed and searched on its own)
    keys.extend(
        ["ssn~" + mask for mask in identity.ssn_masks if not mask.startswith(TWO_DIGIT_MARK)]
    )
    born = identity.birth_date
    if born is not None:
        if identity.last:
            keys.append(f"dob:{born.isoformat()}:{identity.last[:1]}")
            if born.day <= 12 and born.day != born.month:
                swapped = born.replace(month=born.day, day=born.month)
                keys.append(f"dob:{swapped.isoformat()}:{identity.last[:1]}")
        if identity.first_root:
            keys.append(f"dobf:{born.isoformat()}:{identity.first_root[:2]}")
        if identity.last and identity.first:
            keys.append(f"yln:{born.year}:{identity.last[:4]}:{identity.first[:1]}")
    elif identity.last and identity.first:
        keys.append(f"name:{identity.last}:{identity.first[:1]}")
    if identity.last and len(identity.first) > 1:
        # the full name, dated or not: a wage record (no birth date) meets the dated
        # records of its name here, and links when the name is rare enough to weigh
        keys.append(f"fn:{identity.last}:{identity.first}")
    return keys


def probe_keys(identity: Identity) -> list[str]:
    """The blocks whose persons ``identity`` is compared with: its :func:`blocking_keys`,
    and where a person whose first and last names were swapped on one side is filed: its
    birth date with its first name's initial and with its surname's root (read as a first
    name: Andrew filed as a surname meets Drew), and its full name the other way round
    (so two records whose names agree meet whichever of them comes first)."""
    keys = blocking_keys(identity)
    born, first, last = identity.birth_date, identity.first, identity.last
    if born is not None and last and first and first[:1] != last[:1]:
        keys.append(f"dob:{born.isoformat()}:{first[:1]}")
        keys.append(f"dobf:{born.isoformat()}:{first_name_root(last)[:2]}")
    if len(last) > 1 and len(first) > 1 and first != last:
        keys.append(f"fn:{first}:{last}")
    return keys


def _number(person_id: str) -> int:
    return int(person_id.lstrip("P") or 0)


class Resolver:
    """Resolves records one at a time against :class:`IdentityState`."""

    def __init__(
        self,
        hasher: IdentifierHasher,
        model: MatchModel = DEFAULT_MODEL,
        state: IdentityState | None = None,
        review_floor: float | None = None,
    ) -> None:
        self.hasher = hasher
        self.model = model
        self.state = state if state is not None else IdentityState()
        # a candidate scoring at least this (and below the threshold) is a possible match,
        # returned as Resolution.near for an operator to decide; None: not looked for
        self.review_floor = review_floor
        self._near: Near | None = None

    def identity(self, person: Mapping[str, Any]) -> Identity:
        """The matchable form of a raw event's ``person`` (PersonIdentity) fields."""
        born = person.get("birth_date")
        if isinstance(born, str):
            born = datetime.date.fromisoformat(born)
        first = person.get("first_name")
        return Identity(
            ssn=self.hasher("ssn", person.get("ssn")),
            ssid=self.hasher("ssid", person.get("ssid")),
            ssn_masks=self.hasher.masks("ssn", person.get("ssn")),
            ssid_masks=self.hasher.masks("ssid", person.get("ssid")),
            itin=self.hasher("itin", person.get("itin")),
            first=name_key(first),
            first_root=first_name_root(first),
            last=name_key(person.get("last_name")),
            last_parts=name_parts(person.get("last_name")),
            birth_date=born,
            sex=person.get("sex"),
            zip=person.get("zip"),
        )

    def resolve(self, provider: str, person: Mapping[str, Any]) -> Resolution:
        """Resolve one record of ``provider`` whose identifying fields are ``person``."""
        # (probe keys later, only if the record is compared: a source's repeat is not)
        return self.decide(self.prepare(provider, person, probe=False))

    def prepare(self, provider: str, person: Mapping[str, Any], probe: bool = True) -> Prepared:
        """What :meth:`decide` needs of a record, read from the record alone (no state):
        its identity, its source key and (``probe``) its probe keys."""
        identity = self.identity(person)
        source_id = person.get("source_person_id")
        source_key = (
            provider,
            self.hasher.source_id(provider, str(source_id)) if source_id else "",
        )
        return Prepared(identity, source_key, probe_keys(identity) if probe else None)

    def decide(self, record: Prepared) -> Resolution:
        """Resolve a record (from :meth:`prepare`) against the state, changing it."""
        identity, source_key, keys = record
        known = self.state.sources.get(source_key) if source_key[1] else None
        if known is None:
            reason = identity.usable()
            if reason is not None:
                return Resolution(None, review_reason=reason)
        new_source = source_key if known is None and source_key[1] else None
        if known is not None:
            root = self.state.root(known)
            profile = self.state.profiles[root]
            if identity in profile:
                # The source sent this exact identity for this person before (wages, each
                # quarter): it was matched then, and any person since that matches it found
                # it in the blocks. Nothing to compare, nothing changes.
                return Resolution(
                    root, (Change("RECORD_LINKED", root, rule="SOURCE_ID"),), rule="SOURCE_ID"
                )
            if not any(names_agree(identity, kept) for kept in profile):
                # Another person under the same source id: wage records are filed by SSN,
                # and two people may share one. Resolve it on its own; the source id stays
                # with the person it named first.
                known = None
                source_key = ("", "")
        matches = self._matches(identity, probe_keys(identity) if keys is None else keys)
        if known is not None:
            matches.setdefault(root, (float("inf"), "SOURCE_ID"))
        if not matches:
            person_id = self._create(identity, source_key)
            return self._with_near(
                Resolution(
                    person_id,
                    (Change("PERSON_CREATED", person_id, rule="NEW"),),
                    rule="NEW",
                    touched=(person_id,),
                    new_source=new_source,
                )
            )
        resolution = self._link(identity, source_key, matches, root if known else None)
        resolution = resolution._replace(new_source=new_source) if new_source else resolution
        return self._with_near(resolution)

    def _with_near(self, resolution: Resolution) -> Resolution:
        """``resolution`` with the possible match :meth:`_matches` found, unless the record
        went to that person or an operator separated the two."""
        near, self._near = self._near, None
        if near is None or resolution.person_id is None:
            return resolution
        state = self.state
        if state.root(near.person_id) == state.root(resolution.person_id):
            return resolution
        if state.kept_apart(resolution.person_id, near.person_id):
            return resolution
        return resolution._replace(near=near._replace(person_id=state.root(near.person_id)))

    def _matches(self, identity: Identity, keys: list[str]) -> dict[str, tuple[float, str]]:
        state = self.state
        scored: dict[str, tuple[float, str]] = {}
        compared: set[str] = set()  # a person filed under several of the keys
        floor = self.review_floor
        near: Near | None = None
        for key in keys:
            for candidate in state.candidates(key):
                root = state.root(candidate)
                if root in compared:
                    continue
                compared.add(root)
                best = self._score_candidate(identity, root)
                if best.weight >= self.model.threshold:
                    scored[root] = (best.weight, _rule(best))
                elif (
                    floor is not None
                    and best.weight >= floor
                    and (near is None or best.weight > near.weight)
                ):
                    near = Near(root, best.weight, best.levels)
        self._near = near
        return scored

    def _score_candidate(self, identity: Identity, root: str) -> Score:
        """:meth:`score_candidate` of ``identity`` against the surviving person ``root``."""
        return self.score_candidate(identity, self.state.profiles[root])

    def score_candidate(self, identity: Identity, profile: list[Identity]) -> Score:
        """:meth:`score` of ``identity`` against a candidate's ``profile``."""
        # A record seen before in this person's profile needs one comparison.
        return self.score(identity, [identity] if identity in profile else profile)

    def score(self, identity: Identity, profile: list[Identity]) -> Score:
        """The evidence that ``identity`` is the person whose identities are ``profile``:
        per trusted identifier, the best level against any of them (a person's numbers are
        all evidence: a twin's record finds the other twin's SSN somewhere in the
        profile); for the other fields, the best-scoring identity of the profile."""
        return _person_score(identity, profile, self.model)

    def _create(self, identity: Identity, source_key: tuple[str, str]) -> str:
        state = self.state
        person_id = f"P{state.next_number:010d}"
        state.next_number += 1
        state.profiles[person_id] = []
        state.trusted[person_id] = {kind: set() for kind in TRUSTED_KINDS}
        self._remember(person_id, identity, source_key)
        return person_id

    def _remember(self, person_id: str, identity: Identity, source_key: tuple[str, str]) -> bool:
        """Add what ``identity`` tells of ``person_id``; whether the person's kept state
        (profile or trusted identifiers) changed."""
        state = self.state
        profile = state.profiles[person_id]
        changed = False
        if identity not in profile:
            changed = True
            profile.append(identity)
            dropped = profile[:-_MAX_PROFILE]
            del profile[:-_MAX_PROFILE]
            for key in blocking_keys(identity):
                state.file(key, person_id)
            if dropped:
                state.unfile(person_id, dropped, profile)
        for kind in TRUSTED_KINDS:
            value = getattr(identity, kind)
            if value and value not in state.trusted[person_id][kind]:
                state.trusted[person_id][kind].add(value)
                changed = True
        if source_key[1]:
            state.sources[source_key] = person_id
        return changed

    def _apart(self, a: str, b: str, record: Identity, filed_under: str | None) -> bool:
        """:meth:`_conflict` of ``a`` and ``b``, the record counted as an identity of
        whichever of them its source filed it under."""
        if self.state.apart and self.state.kept_apart(a, b):
            return True  # an operator separated them (`c2c review separate`)
        if a == filed_under:
            a, b = b, a
        return self._conflict(a, b, record if b == filed_under else None)

    def _conflict(self, a: str, b: str, bridge: Identity | None = None) -> bool:
        """Whether persons ``a`` and ``b``, both matched by one record, must stay apart:
        the evidence between them (their best pair of identities, identifier levels
        included with their learned weights) is against them being one person; when they
        carry different trusted identifiers of one kind, it must reach the threshold. Two
        numbers are evidence, not a veto; one shared number is not proof either (people
        share SSNs). ``bridge``: the record, when ``b``'s source filed it under ``b`` (its
        own person id, a trusted identifier): it is then one of ``b``'s identities."""
        ta, tb = self.state.trusted[a], self.state.trusted[b]
        disjoint = any(ta[kind] and tb[kind] and not (ta[kind] & tb[kind]) for kind in ta)
        profile_b = self.state.profiles[b] + ([bridge] if bridge is not None else [])
        bound = self.model.threshold if disjoint else 0.0
        # apart unless some identity of ``a`` reaches the bound (the first that does ends it)
        return not any(
            self.score(identity, profile_b).weight >= bound for identity in self.state.profiles[a]
        )

    def _link(
        self,
        identity: Identity,
        source_key: tuple[str, str],
        matches: dict[str, tuple[float, str]],
        filed_under: str | None = None,
    ) -> Resolution:
        # The strongest match decides where the record goes; ties go to the oldest person.
        ranked = sorted(matches, key=lambda pid: (-matches[pid][0], _number(pid)))
        group = [ranked[0]]
        for candidate in ranked[1:]:
            if not any(self._apart(candidate, member, identity, filed_under) for member in group):
                group.append(candidate)
        survivor = min(group, key=_number)
        changes: list[Change] = []
        version = self.model.version
        for absorbed in sorted((pid for pid in group if pid != survivor), key=_number):
            self._merge(absorbed, survivor)
            changes.append(
                Change(
                    "PERSONS_MERGED",
                    survivor,
                    previous_person_id=absorbed,
                    rule=matches[absorbed][1],
                    weight=_shown(matches[absorbed][0]),
                    model_version=version,
                )
            )
        weight, rule = matches[ranked[0]]
        shown = _shown(weight)
        grew = self._remember(survivor, identity, source_key)
        changes.append(
            Change("RECORD_LINKED", survivor, rule=rule, weight=shown, model_version=version)
        )
        touched = [survivor] if grew or len(group) > 1 else []
        touched += sorted((pid for pid in group if pid != survivor), key=_number)
        return Resolution(survivor, tuple(changes), rule=rule, weight=shown, touched=tuple(touched))

    def _merge(self, absorbed: str, survivor: str) -> None:
        state = self.state
        state.merged_into[absorbed] = survivor
        taken = state.profiles.pop(absorbed, [])
        state.unfile(absorbed, taken, ())
        for identity in taken:
            self._remember(survivor, identity, ("", ""))
        trusted = state.trusted.pop(absorbed, {"ssn": set(), "ssid": set()})
        for kind, values in trusted.items():
            state.trusted[survivor][kind] |= values
        state.absorbed.setdefault(survivor, []).extend(
            [absorbed, *state.absorbed.pop(absorbed, [])]
        )
        # an opted-out person stays out when merged: the survivor takes their requests
        for request_id, data in state.optouts.pop(absorbed, {}).items():
            state.optouts.setdefault(survivor, {})[request_id] = data
            state.optout_requests[request_id] = survivor


def _shown(weight: float) -> float | None:
    return None if weight == float("inf") else round(weight, 2)


_IDENTIFIER_RANK = {"agree": 0, "transposed": 1, "one_digit": 2, "two_digits": 3, "disagree": 4}


def _person_score(identity: Identity, profile: list[Identity], model: MatchModel) -> Score:
    best_ids: dict[str, str] = {}
    best_fields: list[tuple[str, str]] = []
    best_weight = float("-inf")
    for kept in profile:
        fields, weight = weighed_fields(identity, kept, model)
        for kind, level in read_near(identifier_levels(identity, kept), fields):
            seen = best_ids.get(kind)
            if seen is None or _IDENTIFIER_RANK[level] < _IDENTIFIER_RANK[seen]:
                best_ids[kind] = level
        if weight > best_weight:
            best_weight, best_fields = weight, fields
    ids_levels = list(best_ids.items())
    weights = model.weights
    total = sum(weights[pair] for pair in ids_levels) + (best_weight if profile else 0.0)
    return Score(total, tuple(ids_levels + best_fields))


def _rule(score: Score) -> str:
    for kind in ("ssn", "ssid", "itin"):
        if score.level(kind) == "agree":
            return kind.upper()
    return "PROBABILISTIC"

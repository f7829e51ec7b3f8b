"""Identity resolution on N shards: the design of streams/README.md ("Scaling out: the
design") as plain code, with no Kafka and no Faust.

One order (the records as they come), cut into epochs of a fixed number of records. Per
epoch, in rounds each of which every shard serves in parallel:

1. PREPARE (stateless): every shard reads the epoch and takes the records whose
   :func:`prepare_shard` it is (by SSN, else SSID, else source id: a number is hashed and
   cached on one shard): :meth:`Resolver.prepare`'s identity and source key, and each
   distinct identity's probe keys once (:class:`PreparedSlice`; records repeat one).
2. PROBE: key shard ``shard_of(key)`` answers each probe key with its block's end as it
   stood at the epoch's start (:func:`probed_end`, in id order: the last
   ``_MAX_BLOCK_SCAN`` and ``_PROBE_SLACK`` more, since a person taken out during the
   epoch brings an earlier one into the last ``_MAX_BLOCK_SCAN``; a trusted identifier's
   block whole); an epoch taking out more than the slack has the decider ask for the
   whole block, in a round of its own. The source id's shard answers each source key with
   the person it names.
3. SCORE: person shard ``shard_of(root)`` scores each (distinct identity, candidate) pair
   of each block's end (its last ``_MAX_BLOCK_SCAN`` as the epoch starts: the persons the
   resolver compares, unless the epoch takes some out of the block, which brings earlier
   ones in: those are scored when the decider reaches them, as below)
   against the profile as of the epoch's start; it answers with the scores at or above the
   review floor (or the threshold) and the kept state of the persons at or above the
   threshold and of those a source id names (None for those the last epoch wrote: the
   decider kept them). An identity all of whose records come from a source id already
   known is not scored in this round: the resolver compares nothing for a source's repeat
   of an identity its person holds (most of a steady state's records: wages, quarter after
   quarter). A second SCORE round takes those whose person, as the first round sent it,
   does not hold the identity; one that the epoch's own changes bring to a comparison is
   scored when the decider reaches it (:class:`_ScoreLater`, a round of its own, with its
   whole blocks: rare).
4. DECIDE: one :class:`Decider` takes the epoch's records in order and applies the
   resolver's own rule (:meth:`Resolver.decide`, the same code) over an :class:`EpochView`:
   the persons the shards sent, the blocks as probed plus the persons filed in this epoch,
   and every change of this epoch. A candidate whose person changed in this epoch is scored
   again against the person as it is now; any other's score from step 3 is the score it
   has now. So each record sees exactly what the one-shard :class:`Resolver` sees.
5. APPLY: each shard takes its part of the epoch's :class:`EpochWrites`.

An epoch may also hold :class:`Named` items, which are not resolved: an opt-out
revocation (it names its request) and an operator's decision (it names two persons). PROBE
asks for the requests' holders, SCORE sends those and the persons named, and the decider
runs their step in the epoch's order (``each``, with no resolution).

Resolving a sequence on N shards therefore gives the same resolutions (ids, changes,
merges, possible matches) as one :class:`Resolver` over the same sequence, for
any N and any epoch size (tests/unit/test_identity_sharding.py). Merges are replicated:
every shard keeps every (absorbed -> survivor) pair, ids only.

The rounds go through a :class:`ShardSet`: :class:`LocalShards` calls shards in this
process; bench/shards.py runs each shard in a process of its own. The next epoch's PREPARE
overlaps this epoch's DECIDE (:func:`resolve_epochs`).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import (
    Callable,
    Collection,
    Container,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from streams.identity.matching import DEFAULT_MODEL, Identity, MatchModel, Score
from streams.identity.resolver import (
    _MAX_BLOCK_SCAN,
    TRUSTED_KINDS,
    IdentifierHasher,
    IdentityState,
    Prepared,
    Resolution,
    Resolver,
    _number,
    held_trusted_keys,
    identity_trusted_keys,
    probe_keys,
)

__all__ = [
    "EPOCH_RECORDS",
    "Decider",
    "EpochItem",
    "EpochRecords",
    "EpochView",
    "EpochWrites",
    "KeyShard",
    "LocalShards",
    "Named",
    "PersonShard",
    "PersonState",
    "PreparedSlice",
    "ProbeReply",
    "ScoreReply",
    "ScoreRequest",
    "Shard",
    "ShardEntry",
    "ShardSet",
    "ShardedResolver",
    "apply_again",
    "epochs_of",
    "prepare_shard",
    "resolve_epochs",
    "restore_entry",
    "shard_entries",
    "shard_of",
]

# The design's epoch: intake offsets [kE, (k+1)E). Fixed, whatever N: the result never
# depends on it (any size gives the one-shard result), only the rounds' overhead does.
EPOCH_RECORDS = 16_000

SourceKey = tuple[str, str]
RawRecord = tuple[str, Mapping[str, Any]]  # (provider, person fields)


class Named(NamedTuple):
    """An epoch's item that is not resolved but acts on what it names: an opt-out
    revocation names its request (``requests``); an operator's decision names persons
    (``persons``). Its step runs in the decider, in the epoch's order (``each``, with no
    resolution), over the state of the persons named and of the requests' holders, which
    the epoch's rounds fetch (PROBE asks for the requests, SCORE sends the persons)."""

    requests: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()


# What an epoch holds, in order: records to resolve, and items that are not resolved.
EpochItem = RawRecord | Named
_Item = TypeVar("_Item", RawRecord, EpochItem)

# below every threshold and floor: a candidate whose score the shard did not send
_BELOW = Score(float("-inf"), ())

# PROBE answers a block with this many persons before its last _MAX_BLOCK_SCAN: an epoch
# taking out more of its end than that has the decider ask for the whole block
_PROBE_SLACK = 64

# A step run after each record's resolution, in the decider: (the item's index in its
# epoch, the record's resolution or None for a Named item, the state as the decider sees
# it) -> the persons whose kept state the step changed (opt-outs:
# streams/optouts.OptOuts.after_resolution, and .revoke for a revocation).
EachRecord = Callable[[int, Resolution | None, IdentityState], Iterable[str]]


def shard_of(key: str, shards: int) -> int:
    """The shard owning ``key`` (a blocking key or a person id) among ``shards``: the same
    in every process and run (CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(key.encode()) % shards


def source_shard(source_key: SourceKey, shards: int) -> int:
    """The shard keeping the source id ``source_key`` (provider, keyed hash)."""
    return shard_of(f"{source_key[0]}\x00{source_key[1]}", shards)


@dataclass
class PersonState:
    """What a person shard keeps of one surviving person: :class:`IdentityState`'s
    per-person maps. (Which blocks it is filed under is not kept: the decider reads it
    from the blocks as probed, :class:`EpochView`.)"""

    profile: list[Identity]
    trusted: dict[str, set[str]]
    absorbed: list[str] = field(default_factory=list)
    optouts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> PersonState:
        return PersonState(
            list(self.profile),
            {kind: set(values) for kind, values in self.trusted.items()},
            list(self.absorbed),
            {request: dict(data) for request, data in self.optouts.items()},
        )


class ScoreRequest(NamedTuple):
    """Score identity ``at`` (its index among the epoch's distinct identities) against the
    person ``root``."""

    at: int
    identity: Identity
    root: str


class PreparedSlice(NamedTuple):
    """A shard's answer to the PREPARE round: each distinct identity of its records once
    (a source repeats an identity: wages, quarter after quarter), with its probe keys, and
    per record its index in the epoch, its identity's and its source key. Sent once, not per record:
    most records of an epoch repeat an identity already in it."""

    identities: list[Identity]
    keys: list[list[str]]
    records: list[tuple[int, int, SourceKey]]  # (index in the epoch, identity, source key)


class ProbeReply(NamedTuple):
    """A shard's answer to the PROBE round: blocks (probe key -> its last persons at the
    epoch's start), source ids (source key -> person, for those it knows), whether any
    opt-out request is active, and the person holding each request asked for that is
    active (every shard holds every request)."""

    blocks: dict[str, tuple[str, ...]]
    sources: dict[SourceKey, str]
    optouts: bool
    requests: dict[str, str]


class ScoreReply(NamedTuple):
    """A person shard's answer to the SCORE round: (identity, root) -> score, for scores
    at or above the floor; the kept state of the persons the decider may change (None: as
    the decider wrote it in the last epoch, which it keeps)."""

    scored: dict[tuple[int, str], Score]
    persons: dict[str, PersonState | None]


@dataclass
class EpochWrites:
    """What one epoch changed, for the shards to apply (:meth:`part` splits it)."""

    persons: dict[str, PersonState] = field(default_factory=dict)  # changed, surviving
    removed: list[str] = field(default_factory=list)  # merged into another this epoch
    blocks: dict[str, set[str]] = field(default_factory=dict)  # key -> persons filed
    unfiled: dict[str, set[str]] = field(default_factory=dict)  # key -> persons taken out
    sources: dict[SourceKey, str] = field(default_factory=dict)
    # absorbed -> survivor, None: taken back by a split (all shards)
    merges: dict[str, str | None] = field(default_factory=dict)
    # request -> its holder now, None: revoked (all shards)
    optout_requests: dict[str, str | None] = field(default_factory=dict)

    def parts(self, shards: int) -> list[EpochWrites]:
        """The writes each of ``shards`` shards applies, in shard order (merges and opt-out
        requests: every shard's); each key's shard found once."""
        if shards == 1:
            return [self]
        out = [
            EpochWrites(merges=self.merges, optout_requests=self.optout_requests)
            for _ in range(shards)
        ]
        for person_id, state in self.persons.items():
            out[shard_of(person_id, shards)].persons[person_id] = state
        for person_id in self.removed:
            out[shard_of(person_id, shards)].removed.append(person_id)
        for key, filed in self.blocks.items():
            out[shard_of(key, shards)].blocks[key] = filed
        for key, taken in self.unfiled.items():
            out[shard_of(key, shards)].unfiled[key] = taken
        for source, person_id in self.sources.items():
            out[source_shard(source, shards)].sources[source] = person_id
        return out


def probed_end(key: str, block: Sequence[str]) -> tuple[str, ...]:
    """What PROBE answers for block ``key``: its last ``_MAX_BLOCK_SCAN + _PROBE_SLACK``
    persons (those the resolver compares, and as many more for those the epoch may take
    out), or all of a trusted identifier's block (opt-outs read all who share one). A
    block's size grows with the population (a common name with a birth year); what a
    record is compared with does not."""
    if key.split(":", 1)[0] in TRUSTED_KINDS:
        return tuple(block)
    return tuple(block[-(_MAX_BLOCK_SCAN + _PROBE_SLACK) :])


def _maybe_cut(key: str, probed: Sequence[str]) -> bool:
    """Whether PROBE may have answered block ``key`` with its end only (:func:`probed_end`)."""
    return (
        len(probed) >= _MAX_BLOCK_SCAN + _PROBE_SLACK and key.split(":", 1)[0] not in TRUSTED_KINDS
    )


@dataclass
class KeyShard:
    """The blocks of the keys a shard owns: key -> every person filed under it."""

    blocks: dict[str, list[str]] = field(default_factory=dict)

    def probe(self, keys: Iterable[str], whole: bool = False) -> dict[str, tuple[str, ...]]:
        # each block's end (in id order; :func:`probed_end`), or (``whole``) all of it:
        # persons taken out during the epoch (a dropped identity, a merge) bring earlier
        # ones into its last _MAX_BLOCK_SCAN
        blocks = self.blocks
        if whole:
            return {key: tuple(blocks.get(key, ())) for key in keys}
        return {key: probed_end(key, blocks.get(key, ())) for key in keys}

    def apply(self, filed: Mapping[str, set[str]], unfiled: Mapping[str, set[str]]) -> None:
        # a (key, person) is in one of the two at most, as the epoch left it: taking out
        # one not there, or filing one there already, changes nothing (in id order)
        state = IdentityState(blocks=self.blocks)
        for key, persons in unfiled.items():
            for person_id in persons:
                state.unfile_key(key, person_id)
        for key, persons in filed.items():
            for person_id in persons:
                state.file(key, person_id)


@dataclass
class PersonShard:
    """The persons and source ids a shard owns, and its replica of every merge: the
    per-person maps, ``sources``, ``merged_into`` and ``optout_requests`` of ``state``
    (in memory, or on disk: streams/identity/store.py)."""

    state: IdentityState = field(default_factory=IdentityState)
    written: set[str] = field(default_factory=set)  # the persons the last epoch wrote

    def person(self, person_id: str) -> PersonState:
        """A copy of what the shard keeps of ``person_id``."""
        state = self.state
        return PersonState(
            list(state.profiles[person_id]),
            {kind: set(values) for kind, values in state.trusted.get(person_id, {}).items()},
            list(state.absorbed.get(person_id, ())),
            {request: dict(data) for request, data in state.optouts.get(person_id, {}).items()},
        )

    def lookup(self, source_keys: Iterable[SourceKey]) -> dict[SourceKey, str]:
        sources = self.state.sources
        return {key: person for key in source_keys if (person := sources.get(key)) is not None}

    def score(
        self,
        scorer: Resolver,
        requests: Iterable[ScoreRequest],
        fetch: Iterable[str],
    ) -> ScoreReply:
        """Step 3 (see the module's doc); ``scorer`` gives the model and review floor."""
        threshold = scorer.model.threshold
        floor = threshold if scorer.review_floor is None else min(threshold, scorer.review_floor)
        scored: dict[tuple[int, str], Score] = {}
        profiles = self.state.profiles
        written = self.written
        # a person an operator's decision names may not exist yet: created later in the
        # epoch, before the decision (the decider has it then)
        matched = {p for p in fetch if p in written or p in profiles}
        for at, identity, root in requests:
            best = scorer.score_candidate(identity, profiles[root])
            if best.weight >= floor:
                scored[at, root] = best
                if best.weight >= threshold:
                    matched.add(root)
        return ScoreReply(
            scored,
            {root: None if root in written else self.person(root) for root in matched},
        )

    def apply(self, writes: EpochWrites) -> None:
        state = self.state
        for person_id in writes.removed:
            restore_entry(state, "person", person_id, None)
        for person_id, person in writes.persons.items():
            restore_entry(state, "person", person_id, person)
        self.written = set(writes.persons)
        for source, person_id in writes.sources.items():
            state.sources[source] = person_id
        for absorbed, survivor in writes.merges.items():
            if survivor is None:
                state.merged_into.pop(absorbed, None)
            else:
                state.merged_into[absorbed] = survivor
        for request, holder in writes.optout_requests.items():
            if holder is None:
                state.optout_requests.pop(request, None)
            else:
                state.optout_requests[request] = holder


# One key of a shard's state and its value now (None: gone): a changelog entry.
ShardEntry = tuple[str, Any, Any]


def shard_entries(state: IdentityState, writes: EpochWrites) -> list[ShardEntry]:
    """What a shard's part of an epoch (``writes``) changed, read from ``state`` once it
    is applied: each key's value now, so that replaying the entries (:func:`restore_entry`)
    in order rebuilds the state, whatever came before (a changelog of the shard's keys,
    which compaction bounds to the state's size)."""
    out: list[ShardEntry] = [("person", p, None) for p in writes.removed]
    out += [("person", p, person) for p, person in writes.persons.items()]
    for key in dict.fromkeys([*writes.blocks, *writes.unfiled]):
        block = state.blocks.get(key)
        out.append(("block", key, list(block) if block else None))
    out += [("source", key, person_id) for key, person_id in writes.sources.items()]
    out += [("merge", absorbed, survivor) for absorbed, survivor in writes.merges.items()]
    out += [("optout", request, p) for request, p in writes.optout_requests.items()]
    return out


def restore_entry(state: IdentityState, kind: str, key: Any, value: Any) -> None:
    """One :func:`shard_entries` entry written into ``state``."""
    if kind == "person":
        per_person = (state.profiles, state.trusted, state.absorbed, state.optouts)
        if value is None:
            for kept in per_person:
                kept.pop(key, None)
            return
        state.profiles[key] = value.profile
        state.trusted[key] = value.trusted
        for kept, part in ((state.absorbed, value.absorbed), (state.optouts, value.optouts)):
            if part:
                kept[key] = part
            else:
                kept.pop(key, None)
        return
    maps: dict[str, Any] = {
        "block": state.blocks,
        "source": state.sources,
        "merge": state.merged_into,
        "optout": state.optout_requests,
    }
    if kind not in maps:
        raise ValueError(f"a shard entry of kind {kind!r}: not one of person, {', '.join(maps)}")
    if value is None:
        maps[kind].pop(key, None)
    else:
        maps[kind][key] = value


class Shard:
    """One shard of N: a key shard and a person shard over one ``state`` (in memory unless
    given: a store's, streams/identity/store.py), and a resolver for the stateless PREPARE
    step and for scoring. Every method is one round's work on this shard."""

    def __init__(
        self,
        hasher: IdentifierHasher,
        model: MatchModel = DEFAULT_MODEL,
        review_floor: float | None = None,
        state: IdentityState | None = None,
    ) -> None:
        self.resolver = Resolver(hasher, model, review_floor=review_floor)
        self.state = IdentityState() if state is None else state
        self.keys = KeyShard(self.state.blocks)
        self.persons = PersonShard(self.state)

    def prepare(self, records: Sequence[EpochItem], shard: int, shards: int) -> PreparedSlice:
        """Step 1 for the records of the epoch ``records`` whose :func:`prepare_shard` is
        ``shard`` (every shard is sent the whole epoch, as each would read the intake;
        :class:`Named` items are not prepared)."""
        prepare = self.resolver.prepare
        index: dict[Identity, int] = {}
        identities: list[Identity] = []
        keys: list[list[str]] = []
        out: list[tuple[int, int, SourceKey]] = []
        for at, item in enumerate(records):
            if isinstance(item, Named):
                continue
            provider, person = item
            if shards > 1 and prepare_shard(person, shards) != shard:
                continue
            identity, source_key, _ = prepare(provider, person, probe=False)
            local = index.get(identity)
            if local is None:
                local = index[identity] = len(identities)
                identities.append(identity)
                keys.append(probe_keys(identity))
            out.append((at, local, source_key))
        return PreparedSlice(identities, keys, out)

    def probe(
        self,
        keys: Iterable[str],
        source_keys: Iterable[SourceKey],
        requests: Iterable[str] = (),
        whole: bool = False,
    ) -> ProbeReply:
        held = self.state.optout_requests
        return ProbeReply(
            self.keys.probe(keys, whole),
            self.persons.lookup(source_keys),
            bool(held),
            {request: holder for request in requests if (holder := held.get(request))},
        )

    def score(self, requests: Iterable[ScoreRequest], fetch: Iterable[str]) -> ScoreReply:
        return self.persons.score(self.resolver, requests, fetch)

    def apply(self, writes: EpochWrites) -> None:
        self.keys.apply(writes.blocks, writes.unfiled)
        self.persons.apply(writes)


class ShardSet(Protocol):
    """N shards, reached by rounds: :meth:`send` asks every shard to run ``method`` (a
    :class:`Shard` method name), shard i with ``arguments[i]``; :meth:`receive` returns the
    answers of the oldest round not yet received, in shard order. Each shard runs its
    rounds in the order sent. Where the shards run (this process, others) is the set's
    business."""

    @property
    def count(self) -> int: ...

    def send(self, method: str, arguments: Sequence[tuple[Any, ...]]) -> None: ...

    def receive(self) -> list[Any]: ...


class LocalShards:
    """:class:`ShardSet` of shards in this process: a round runs when it is sent."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = list(shards)
        self._answers: deque[list[Any]] = deque()

    @property
    def count(self) -> int:
        return len(self.shards)

    def send(self, method: str, arguments: Sequence[tuple[Any, ...]]) -> None:
        self._answers.append(
            [getattr(s, method)(*args) for s, args in zip(self.shards, arguments, strict=True)]
        )

    def receive(self) -> list[Any]:
        return self._answers.popleft()


class EpochView(IdentityState):
    """The state as :meth:`Resolver.decide` sees it during an epoch, for the decider: the
    persons the shards sent (copies: every change of the epoch is made here), the blocks
    as probed at the epoch's start plus the persons filed since, the source ids looked up
    plus those written since, and the decider's own merges, separations and numbering."""

    def __init__(
        self,
        decider: Decider,
        blocks: dict[str, tuple[str, ...]],
        sources: Mapping[SourceKey, str],
        persons: Mapping[str, PersonState],
        optouts: bool = False,
        requests: Mapping[str, str] | None = None,
        probe_whole: Callable[[str], tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(
            next_number=decider.state.next_number,
            sources=dict(sources),
            merged_into=decider.state.merged_into,
            apart=decider.state.apart,
            optout_requests=dict(requests or {}),
        )
        self.probed = blocks
        # a block's whole, mid-epoch, where PROBE sent its end (:func:`probed_end`) and the
        # epoch took out more of it than that end holds beyond the last _MAX_BLOCK_SCAN
        self.probe_whole = probe_whole
        self._fetched: set[str] = set()  # blocks probe_whole sent: all of them, not an end
        # (key, person) filed or taken out this epoch: for a key probed, those that were
        # not in its block at the epoch's start, and those that were; for another key
        # (a merged person's, a dropped identity's: never a candidate this epoch), the
        # last of the two done, which the key shard's idempotent apply makes so
        self.filed_now: dict[str, set[str]] = {}
        self.unfiled_now: dict[str, set[str]] = {}
        self._held: dict[str, frozenset[str]] = {}  # a probed block's persons, once asked
        self.changed: set[str] = set()  # persons whose kept state changed this epoch
        self.started_with = dict(sources)
        self.optouts_before = optouts  # a request was active at the epoch's start
        # the active requests the epoch's items named, and their holders, at its start
        self.requests_before = dict(requests or {})
        self.add(persons)

    def add(self, persons: Mapping[str, PersonState]) -> None:
        """Take the kept state of ``persons`` as the shards sent it (at the epoch's start),
        but not over a person the view holds already (its state now)."""
        for person_id, person in persons.items():
            if person_id in self.profiles:
                continue
            self.profiles[person_id] = person.profile
            self.trusted[person_id] = person.trusted
            if person.absorbed:
                self.absorbed[person_id] = person.absorbed
            if person.optouts:
                self.optouts[person_id] = person.optouts

    def candidates(self, key: str) -> list[str]:
        # the block's end: as probed (all of it, in id order), with the persons filed and
        # taken out since; a person probed lies below the last (64 + taken out) of them
        # only if at least 64 of those stay, so the rest of the block is not read
        taken = self.unfiled_now.get(key)
        reach = _MAX_BLOCK_SCAN + len(taken or ())
        probed = self.probed[key]
        if reach > len(probed) and self._cut(key):
            probed = self._whole(key)
        return self._now(key, probed[-reach:])[-_MAX_BLOCK_SCAN:]

    def _whole(self, key: str) -> tuple[str, ...]:
        """Block ``key`` as it stood at the epoch's start, all of it (PROBE sent its end)."""
        if self.probe_whole is None:
            raise RuntimeError(
                f"the decider needs all of block {key[:5]}... and has no round to ask for it "
                "(a bug in streams/identity/sharding.py)"
            )
        whole = self.probed[key] = self.probe_whole(key)
        self._fetched.add(key)
        self._held.pop(key, None)
        return whole

    def _cut(self, key: str) -> bool:
        """Whether the probed block ``key`` (probed: a KeyError if not) may be its end only."""
        return key not in self._fetched and _maybe_cut(key, self.probed[key])

    def block(self, key: str) -> list[str]:
        # the whole block now: as probed, with the persons filed and taken out since
        probed = self.probed.get(key)
        if probed is None:
            raise RuntimeError(
                f"the decider read block {key[:5]}... which was not probed this epoch (a "
                "bug in streams/identity/sharding.py)"
            )
        if self._cut(key):
            probed = self._whole(key)
        return self._now(key, probed)

    def _now(self, key: str, probed: Sequence[str]) -> list[str]:
        """``probed`` (block ``key``, or its end, as probed) with the persons filed under
        ``key`` and taken out of it since, in id order."""
        added, taken = self.filed_now.get(key), self.unfiled_now.get(key)
        if not added and not taken:
            return list(probed)
        now = set(probed).difference(taken or ()).union(added or ())
        return sorted(now, key=_number)

    def has_optouts(self) -> bool:
        # true from a request on: after the epoch's revocations withdraw the last one, the
        # opt-out reads (covering) still run and find no request, as one resolver would
        return self.optouts_before or bool(self.optout_requests)

    def requests_changed(self) -> dict[str, str | None]:
        """The requests this epoch made, moved (a merge) or withdrawn (None), with their
        holders now."""
        before, now = self.requests_before, self.optout_requests
        return {
            request: now.get(request)
            for request in dict.fromkeys([*before, *now])
            if now.get(request) != before.get(request)
        }

    def _probed(self, key: str) -> frozenset[str] | None:
        """The persons of block ``key`` at the epoch's start; None: not probed."""
        held = self._held.get(key)
        if held is None:
            block = self.probed.get(key)
            if block is None:
                return None
            held = self._held[key] = frozenset(block)
        return held

    def file(self, key: str, person_id: str) -> None:
        if person_id not in self.profiles:
            raise RuntimeError(
                f"the decider filed person {person_id} under a block without its state: "
                "a person the shards did not send (a bug in streams/identity/sharding.py)"
            )
        held = self._held.get(key) or self._probed(key)
        if held is None or person_id not in held:
            self.filed_now.setdefault(key, set()).add(person_id)
        if held is None or person_id in held:
            taken = self.unfiled_now.get(key)
            if taken is not None:
                taken.discard(person_id)

    def unfile_key(self, key: str, person_id: str) -> None:
        held = self._held.get(key) or self._probed(key)
        # (a block PROBE sent the end of may hold the person before that end: taking out
        # one not there changes nothing, in the view or on the key shard)
        if held is None or person_id in held or self._cut(key):
            self.unfiled_now.setdefault(key, set()).add(person_id)
        if held is None or person_id not in held:
            added = self.filed_now.get(key)
            if added is not None:
                added.discard(person_id)

    def person(self, person_id: str) -> PersonState:
        return PersonState(
            self.profiles[person_id],
            self.trusted[person_id],
            self.absorbed.get(person_id, []),
            self.optouts.get(person_id, {}),
        )


# The scores of identity ``at``'s candidates not scored yet (the third argument: each
# identity's candidates scored, to which those are added), with the kept state of the
# persons matched: a SCORE round of its own (resolve_epochs).
ScoreLater = Callable[
    [int, EpochView, dict[int, set[str]]],
    tuple[Mapping[tuple[int, str], Score], Mapping[str, PersonState]],
]


class _EpochResolver(Resolver):
    """The resolver's rule over an :class:`EpochView`, with step 3's scores: a candidate
    unchanged this epoch has the score its shard sent (none sent: below the floor), if
    step 3 scored it (``planned``: each identity's candidates it scored; an identity not
    there, none). Any other is scored by ``score_later`` when first compared, with every
    candidate of its identity's whole blocks."""

    state: EpochView

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scored: Mapping[tuple[int, str], Score] = {}
        self.planned: dict[int, set[str]] = {}
        self.score_later: ScoreLater | None = None
        self._every = True  # step 3 scored every candidate of the whole blocks
        self._scored_later: dict[tuple[int, str], Score] = {}
        self.at = 0

    def start(
        self,
        view: EpochView,
        scored: Mapping[tuple[int, str], Score],
        planned: dict[int, set[str]] | None,
        score_later: ScoreLater | None,
    ) -> None:
        """Decide the next epoch over ``view`` with step 3's ``scored`` (None ``planned``:
        step 3 scored every candidate of every identity's whole blocks)."""
        self.state, self.scored, self.score_later = view, scored, score_later
        self._every = planned is None
        self.planned = {} if planned is None else planned
        self._scored_later = {}

    def _score_candidate(self, identity: Identity, root: str) -> Score:
        if root in self.state.changed:
            return super()._score_candidate(identity, root)
        at = self.at
        found = self.scored.get((at, root))
        if found is not None:
            return found
        if not self._every and root not in self.planned.get(at, ()):
            if self.score_later is None:
                raise RuntimeError(
                    "the decider compares a candidate step 3 did not score, with no round to "
                    "score it in (a bug in streams/identity/sharding.py)"
                )
            scored, persons = self.score_later(at, self.state, self.planned)
            self._scored_later.update(scored)
            self.state.add(persons)
        return self._scored_later.get((at, root), _BELOW)


class _Merges(dict[str, str]):
    """The decider's merges (absorbed -> survivor), which remember each merge written or
    taken back since :meth:`start` with its value before: a record's merge, and an
    operator's decision (a LINK's merge; a SEPARATE's split takes one back and points the
    ids merged into the split person at the survivor), are the epoch's writes alike. It
    tracks ``[]=``, ``del`` and ``pop``, the writes those make; ``update`` is not tracked
    (:meth:`Decider.resume` loads the log's merges with it, outside any epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self._before: dict[str, str | None] = {}

    def start(self) -> None:
        self._before = {}

    def __setitem__(self, absorbed: str, survivor: str) -> None:
        if absorbed not in self._before:
            self._before[absorbed] = self.get(absorbed)
        super().__setitem__(absorbed, survivor)

    def __delitem__(self, absorbed: str) -> None:
        if absorbed not in self._before:
            self._before[absorbed] = self.get(absorbed)
        super().__delitem__(absorbed)

    def pop(self, absorbed: str, *default: Any) -> Any:
        if absorbed in self and absorbed not in self._before:
            self._before[absorbed] = self[absorbed]
        return super().pop(absorbed, *default)

    def changed(self) -> tuple[dict[str, str | None], list[str]]:
        """The merges written or taken back (None) since :meth:`start`, and the persons
        merged away since (surviving before)."""
        now = {p: self.get(p) for p, was in self._before.items() if self.get(p) != was}
        away = sorted(p for p, was in self._before.items() if was is None and p in self)
        return now, away


class Decider:
    """Step 4: the one sequential part. Keeps the merges, separations and the next person
    number; takes an epoch's records in order (:meth:`decide`)."""

    def __init__(
        self,
        hasher: IdentifierHasher,
        model: MatchModel = DEFAULT_MODEL,
        review_floor: float | None = None,
    ) -> None:
        # merged_into, apart and next_number: the decider's; the rest lives on the shards
        self._merges = _Merges()
        self.state = IdentityState(merged_into=self._merges)
        # the persons the last epoch wrote, as written: their shards send None for them
        self.written: dict[str, PersonState] = {}
        self._resolver = _EpochResolver(hasher, model, review_floor=review_floor)

    def resume(
        self, next_number: int, merges: Mapping[str, str], written: Mapping[str, PersonState]
    ) -> None:
        """Take up where a lost decider left off, from its log: the next person number,
        every merge (absorbed -> survivor) and the persons its last epoch wrote."""
        self.state.next_number = next_number
        self.state.merged_into.update(merges)
        self.written = dict(written)

    def plan(
        self,
        epoch: EpochRecords,
        blocks: Mapping[str, tuple[str, ...]],
        sources: Mapping[SourceKey, str],
        shards: int,
        named: Iterable[str] = (),
        *,
        identities: Iterable[int] | None = None,
        planned: dict[int, set[str]] | None = None,
        skip: Collection[str] = (),
        ends: bool = False,
    ) -> list[tuple[list[ScoreRequest], list[str]]]:
        """Step 3's requests for each shard: (distinct identity, candidate's surviving
        person) pairs of the blocks as probed, and the persons to fetch: those the source
        ids name, and ``named`` (the persons and requests' holders of :class:`Named`
        items). ``identities``: only those (their indexes; default all).

        ``ends``: the candidates of each block's end as the epoch starts (the last
        :data:`_MAX_BLOCK_SCAN`: those the resolver compares unless the epoch takes persons
        out of the block); else of the blocks as known (mid-epoch). ``planned``: each
        identity's persons asked for so far, which are not asked for again and to which
        those asked for now are added; ``skip``: others not to ask for (mid-epoch: the
        persons the epoch changed, which the decider scores itself)."""
        root = self.state.root
        requests: list[tuple[list[ScoreRequest], list[str]]] = [([], []) for _ in range(shards)]
        chosen = range(len(epoch.identities)) if identities is None else identities
        end = -_MAX_BLOCK_SCAN if ends else 0
        where: dict[str, int] = {}
        for at in chosen:
            identity, keys = epoch.identities[at], epoch.keys[at]
            seen: set[str] = set() if planned is None else planned.setdefault(at, set())
            for key in keys:
                for candidate in blocks[key][end:]:
                    person = root(candidate)
                    if person not in seen and person not in skip:
                        seen.add(person)
                        shard = where.get(person)
                        if shard is None:
                            shard = where[person] = shard_of(person, shards)
                        requests[shard][0].append(ScoreRequest(at, identity, person))
        fetched: set[str] = set()
        for person_id in (*sources.values(), *named):
            person = root(person_id)
            if person not in fetched:
                fetched.add(person)
                requests[shard_of(person, shards)][1].append(person)
        return requests

    def decide(
        self,
        epoch: EpochRecords,
        blocks: dict[str, tuple[str, ...]],
        sources: Mapping[SourceKey, str],
        scored: Mapping[tuple[int, str], Score],
        persons: Mapping[str, PersonState | None],
        *,
        optouts: bool = False,
        each: EachRecord | None = None,
        requests: Mapping[str, str] | None = None,
        planned: dict[int, set[str]] | None = None,
        score_later: ScoreLater | None = None,
        probe_whole: Callable[[str], tuple[str, ...]] | None = None,
    ) -> tuple[list[Resolution], EpochWrites]:
        """Resolve the epoch's records in order, from the shards' answers; the records'
        resolutions (none for a :class:`Named` item), and the writes that bring the shards
        to the state after them. ``optouts``: an opt-out request was active at the epoch's
        start. ``each``: called after each record's resolution, and for each Named item
        in its place (see :func:`resolve_epochs`). ``requests``: the active requests the
        Named items name, with their holders. ``planned``: the candidates ``scored`` holds
        the scores of (:meth:`plan`'s; None: every candidate of the whole blocks), and
        ``score_later`` scores the others if the decider compares them. ``probe_whole``:
        a block's whole at the epoch's start, where PROBE sent its end and the epoch took
        out more of that end than it holds (:meth:`EpochView.candidates`)."""
        written = self.written
        view = EpochView(
            self,
            blocks,
            sources,
            {p: written[p].copy() if s is None else s for p, s in persons.items()},
            optouts,
            requests,
            probe_whole,
        )
        resolver = self._resolver
        resolver.start(view, scored, planned, score_later)
        resolutions = []
        self._merges.start()
        named = epoch.named
        for index, (record, at) in enumerate(zip(epoch.records, epoch.ids, strict=True)):
            if index in named:
                if each is not None:
                    view.changed.update(each(index, None, view))
                continue
            resolver.at = at
            resolution = resolver.decide(record)
            resolutions.append(resolution)
            view.changed.update(resolution.touched)
            if each is not None:
                view.changed.update(each(index, resolution, view))
        self.state.next_number = view.next_number
        merges, removed = self._merges.changed()
        writes = EpochWrites(
            persons={p: view.person(p) for p in view.changed if p in view.profiles},
            removed=removed,
            blocks=view.filed_now,
            unfiled=view.unfiled_now,
            sources={k: p for k, p in view.sources.items() if view.started_with.get(k) != p},
            merges=merges,
            optout_requests=view.requests_changed(),
        )
        self.written = writes.persons
        return resolutions, writes


def resolve_epochs(
    shards: ShardSet,
    decider: Decider,
    epochs: Iterable[Sequence[EpochItem]],
    *,
    decided: Callable[[list[Resolution], EpochWrites, int], None] | None = None,
    pending: EpochWrites | None = None,
    each: EachRecord | None = None,
    requests: Callable[[Sequence[EpochItem]], bool] | None = None,
) -> Iterator[Resolution]:
    """Steps 1-5 for each epoch of ``epochs`` in turn; their records' resolutions, in
    order (a :class:`Named` item has none). The next epoch's PREPARE (stateless) is sent
    before this epoch's decision, so that the shards hash the next records while the
    decider decides.

    ``decided``: called with each epoch's resolutions, writes and count of items once
    decided, before the shards are sent them (a write-ahead log: a decider lost while the
    shards apply an epoch resumes from it). ``pending``: the writes of an epoch such a log
    holds, which its decider may not have seen applied everywhere: sent again first
    (applying an epoch's writes again changes nothing, and no shard has applied a later
    epoch).

    ``each``: run in the decider after each record's resolution, over the state as it
    stands then (opt-outs: :meth:`streams.optouts.OptOuts.after_resolution`). While an
    opt-out request is active, or an epoch may hold one (``requests`` says which do; unset:
    any may), the decider also gets what opt-out decisions read beyond the persons a record
    is compared with: the blocks of the trusted identifiers (SSN, SSID) of every person the
    epoch may touch, and the persons filed there (:func:`_fetch_covering`); so ``each``
    sees what it would see over one :class:`Resolver`. A :class:`Named` item (an opt-out
    revocation) is not resolved: ``each`` is called in its place with no resolution, over
    the state of the requests it names (PROBE asks their shards for their holders) and of
    the persons it names and those holders (SCORE sends them)."""
    n = shards.count
    if pending is not None:
        apply_again(shards, pending)
    following = iter(epochs)
    records = next(following, None)
    if records is not None:
        _send_prepare(shards, records)
    applying = False
    prepared: list[Any] | None = None  # the next epoch's PREPARE answers, taken early
    while records is not None:
        taken = len(records)
        named = {at: item for at, item in enumerate(records) if isinstance(item, Named)}
        epoch = _gathered(taken, shards.receive() if prepared is None else prepared, named)
        prepared = None
        if applying:
            shards.receive()  # the previous epoch's APPLY, sent after this PREPARE
        # 2. PROBE: each key, source id and request named at its shard
        keys: list[list[str]] = [[] for _ in range(n)]
        for key in dict.fromkeys(k for ks in epoch.keys for k in ks):
            keys[shard_of(key, n)].append(key)
        source_keys: list[list[SourceKey]] = [[] for _ in range(n)]
        for source in dict.fromkeys(r.source_key for r in epoch.records if r.source_key[1]):
            source_keys[source_shard(source, n)].append(source)
        asked: list[list[str]] = [[] for _ in range(n)]
        for request in dict.fromkeys(r for item in named.values() for r in item.requests):
            asked[shard_of(request, n)].append(request)
        shards.send("probe", list(zip(keys, source_keys, asked, strict=True)))
        blocks: dict[str, tuple[str, ...]] = {}
        sources: dict[SourceKey, str] = {}
        held: dict[str, str] = {}
        optouts = False
        for probed in shards.receive():
            blocks.update(probed.blocks)
            sources.update(probed.sources)
            held.update(probed.requests)
            optouts = optouts or probed.optouts
        # 3. SCORE: each pair where its person lives, but for a source's repeats
        covering = each is not None and (optouts or requests is None or requests(records))
        later = _repeats(epoch, sources)
        persons_named = [p for item in named.values() for p in item.persons]
        first = (i for i in range(len(epoch.identities)) if i not in later)
        planned: dict[int, set[str]] = {}
        fetch = [*held.values(), *persons_named]
        shards.send(
            "score",
            decider.plan(
                epoch, blocks, sources, n, fetch, identities=first, planned=planned, ends=True
            ),
        )
        scored: dict[tuple[int, str], Score] = {}
        persons: dict[str, PersonState | None] = {}
        for reply in shards.receive():
            scored.update(reply.scored)
            persons.update(reply.persons)
        new = _not_held(epoch, sources, later, decider, persons)
        if new:  # repeats whose identity their person does not hold: compared after all
            shards.send(
                "score",
                decider.plan(epoch, blocks, {}, n, identities=new, planned=planned, ends=True),
            )
            for reply in shards.receive():
                scored.update(reply.scored)
                persons.update(reply.persons)
        if covering:
            _fetch_covering(shards, decider, blocks, persons, epoch.identities)
        records = next(following, None)
        if records is not None:
            _send_prepare(shards, records)

        score_later = _ScoreLater(shards, decider, epoch, blocks, records is not None, covering)
        # 4. DECIDE, 5. APPLY
        resolutions, writes = decider.decide(
            epoch,
            blocks,
            sources,
            scored,
            persons,
            optouts=optouts,
            each=each,
            requests=held,
            planned=planned,
            score_later=score_later,
            probe_whole=score_later.whole_block,
        )
        prepared = score_later.prepared
        if decided is not None:
            decided(resolutions, writes, taken)
        shards.send("apply", [(part,) for part in writes.parts(n)])
        applying = True
        yield from resolutions
    if applying:
        shards.receive()


class _ScoreLater:
    """:data:`ScoreLater` over ``shards``: step 3 for one identity, mid-epoch, in a SCORE
    round of its own; with ``covering`` (opt-outs read the epoch), what opt-outs read of
    the persons it matched too (:func:`_fetch_covering`). The next epoch's PREPARE, sent
    before the decision (``prepare_sent``), is answered first: its answers are kept in
    :attr:`prepared`."""

    def __init__(
        self,
        shards: ShardSet,
        decider: Decider,
        epoch: EpochRecords,
        blocks: dict[str, tuple[str, ...]],
        prepare_sent: bool,
        covering: bool = False,
    ) -> None:
        self._shards, self._decider, self._epoch, self._blocks = shards, decider, epoch, blocks
        self._prepare_sent, self._covering = prepare_sent, covering
        self.prepared: list[Any] | None = None

    def __call__(
        self, at: int, view: EpochView, planned: dict[int, set[str]]
    ) -> tuple[dict[tuple[int, str], Score], dict[str, PersonState]]:
        shards, decider = self._shards, self._decider
        if self._prepare_sent and self.prepared is None:
            self.prepared = shards.receive()
        plan = decider.plan(
            self._epoch,
            self._blocks,
            {},
            shards.count,
            identities=[at],
            planned=planned,
            skip=view.changed,
        )
        shards.send("score", plan)
        scored: dict[tuple[int, str], Score] = {}
        sent: dict[str, PersonState | None] = {}
        for reply in shards.receive():
            scored.update(reply.scored)
            sent.update(reply.persons)
        if self._covering:
            _fetch_covering(shards, decider, self._blocks, sent, (), view.profiles)
        written = decider.written
        return scored, {p: written[p].copy() if kept is None else kept for p, kept in sent.items()}

    def whole_block(self, key: str) -> tuple[str, ...]:
        """All of block ``key`` as the epoch started (a PROBE round of its own): for
        :class:`EpochView`, where PROBE sent the block's end (:func:`probed_end`)."""
        shards = self._shards
        if self._prepare_sent and self.prepared is None:
            self.prepared = shards.receive()
        n = shards.count
        calls: list[tuple[list[str], list[SourceKey], tuple[str, ...], bool]] = [
            ([], [], (), True) for _ in range(n)
        ]
        calls[shard_of(key, n)] = ([key], [], (), True)
        shards.send("probe", calls)
        block: tuple[str, ...] = ()
        for reply in shards.receive():
            block = reply.blocks.get(key, block)
        return block


def _repeats(epoch: EpochRecords, sources: Mapping[SourceKey, str]) -> set[int]:
    """The epoch's identities (indexes) every record of which comes from a source id
    already known: a source's repeats, which step 3 need not score if the person holds
    the identity (the resolver then compares nothing)."""
    repeats = set(range(len(epoch.identities)))
    for at, (record, identity) in enumerate(zip(epoch.records, epoch.ids, strict=True)):
        if at not in epoch.named and not (record.source_key[1] and record.source_key in sources):
            repeats.discard(identity)
    return repeats


def _not_held(
    epoch: EpochRecords,
    sources: Mapping[SourceKey, str],
    repeats: Iterable[int],
    decider: Decider,
    persons: Mapping[str, PersonState | None],
) -> list[int]:
    """Of ``repeats``, the identities some record of which names (by its source id) a
    person who did not hold it at the epoch's start (as step 3 sent the person): the
    resolver compares those."""
    wanted = set(repeats)
    if not wanted:
        return []
    root, written = decider.state.root, decider.written
    out: set[int] = set()
    for at, (record, identity) in enumerate(zip(epoch.records, epoch.ids, strict=True)):
        if identity not in wanted or identity in out or at in epoch.named:
            continue
        person = root(sources[record.source_key])
        kept = persons[person]
        profile = (written[person] if kept is None else kept).profile
        if epoch.identities[identity] not in profile:
            out.add(identity)
    return sorted(out)


def apply_again(shards: ShardSet, writes: EpochWrites) -> None:
    """Send every shard its part of ``writes`` (an epoch a decider's log holds, which its
    lost decider may not have seen applied everywhere) and wait until each has applied it:
    applying an epoch again changes nothing."""
    n = shards.count
    shards.send("apply", [(part,) for part in writes.parts(n)])
    shards.receive()


def _fetch_covering(
    shards: ShardSet,
    decider: Decider,
    blocks: dict[str, tuple[str, ...]],
    persons: dict[str, PersonState | None],
    identities: Iterable[Identity],
    held: Container[str] = (),
) -> None:
    """Two more rounds, for opt-outs (:class:`streams.optouts.OptOuts` reads, through a
    person's SSNs and SSIDs, every person sharing one): PROBE the blocks of the trusted
    identifiers of ``persons`` and of ``identities`` (the epoch's) that were not probed,
    then fetch the persons filed under any of them (their kept state: a covered person's
    members name the rows to remove) but those ``held`` already. Into ``blocks`` and
    ``persons``."""
    n = shards.count
    written = decider.written
    trusted: set[str] = set()
    for person_id, kept in persons.items():
        state = written[person_id] if kept is None else kept
        trusted.update(held_trusted_keys(state.trusted))
    for identity in identities:
        trusted.update(identity_trusted_keys(identity))
    keys: list[list[str]] = [[] for _ in range(n)]
    for key in sorted(trusted.difference(blocks)):
        keys[shard_of(key, n)].append(key)
    if any(keys):
        shards.send("probe", [(mine, []) for mine in keys])
        for probed in shards.receive():
            blocks.update(probed.blocks)
    root = decider.state.root
    fetch: list[list[str]] = [[] for _ in range(n)]
    for person_id in dict.fromkeys(root(filed) for key in sorted(trusted) for filed in blocks[key]):
        if person_id not in persons and person_id not in held:
            fetch[shard_of(person_id, n)].append(person_id)
    if any(fetch):
        shards.send("score", [([], mine) for mine in fetch])
        for reply in shards.receive():
            persons.update(reply.persons)


class EpochRecords(NamedTuple):
    """An epoch's records as PREPARE left them: per record its :class:`Prepared` and the
    index of its identity among the epoch's distinct ``identities`` (with their probe
    ``keys``), which PROBE and SCORE take once each."""

    records: list[Prepared]
    ids: list[int]
    identities: list[Identity]
    keys: list[list[str]]
    named: Mapping[int, Named]  # the items not resolved, by index (their records: empty)


def prepare_shard(person: Mapping[str, Any], shards: int) -> int:
    """The shard that prepares a record (step 1; any shard would do): by its SSN, else its
    SSID, else its source id, so that a number's keyed hashes (an SSN's 53 masks) are made
    and cached on one shard whichever record carries it, and a source's repeats of one
    identity meet on one shard, which sends that identity once."""
    value = person.get("ssn") or person.get("ssid") or person.get("source_person_id") or ""
    return zlib.crc32(str(value).encode()) % shards


def _send_prepare(shards: ShardSet, records: Sequence[EpochItem]) -> None:
    """Step 1: every shard is sent the epoch and prepares its part (:meth:`Shard.prepare`)."""
    n = shards.count
    shards.send("prepare", [(records, i, n) for i in range(n)])


def _gathered(
    count: int, slices: Sequence[PreparedSlice], named: Mapping[int, Named]
) -> EpochRecords:
    """The epoch's ``count`` items back in order from the shards' PREPARE answers (the
    ``named`` items, which no shard prepares, as empty records)."""
    identities: list[Identity] = []
    keys: list[list[str]] = []
    records: list[Prepared] = [Prepared(Identity(), ("", ""), None)] * count
    ids = [0] * count
    for mine, my_keys, prepared in slices:
        offset = len(identities)
        identities += mine
        keys += my_keys
        for at, local, source_key in prepared:
            ids[at] = index = offset + local
            records[at] = Prepared(identities[index], source_key, keys[index])
    return EpochRecords(records, ids, identities, keys, named)


def epochs_of(records: Iterable[_Item], size: int) -> Iterator[list[_Item]]:
    """``records`` cut into epochs of ``size`` (the last may be shorter)."""
    batch: list[_Item] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class ShardedResolver:
    """Records resolved on ``shards`` shards, ``epoch`` records at a time: the same
    resolutions as one :class:`Resolver` over the same records. The shards are in this
    process, unless ``over`` says where they are (streams/shards.py's ``KafkaShards``:
    shard hosts), the decider in this process either way."""

    def __init__(
        self,
        hasher: IdentifierHasher,
        shards: int,
        model: MatchModel = DEFAULT_MODEL,
        review_floor: float | None = None,
        epoch: int = EPOCH_RECORDS,
        over: ShardSet | None = None,
    ) -> None:
        if shards < 1 or epoch < 1:
            raise ValueError(f"shards ({shards}) and epoch ({epoch}) must be at least 1")
        if over is not None and over.count != shards:
            raise ValueError(f"{shards} shards asked for, over a set of {over.count}")
        self.shards: ShardSet = (
            LocalShards([Shard(hasher, model, review_floor) for _ in range(shards)])
            if over is None
            else over
        )
        self.decider = Decider(hasher, model, review_floor)
        self.epoch = epoch

    def resolve(
        self,
        records: Iterable[EpochItem],
        *,
        each: EachRecord | None = None,
        requests: Callable[[Sequence[EpochItem]], bool] | None = None,
        decided: Callable[[list[Resolution], EpochWrites, int], None] | None = None,
    ) -> Iterator[Resolution]:
        """The resolutions of ``records``, in order (an epoch's once it is decided; a
        :class:`Named` item has none);
        ``each``, ``requests`` and ``decided`` as :func:`resolve_epochs` takes them."""
        return resolve_epochs(
            self.shards,
            self.decider,
            epochs_of(records, self.epoch),
            each=each,
            requests=requests,
            decided=decided,
        )

    def state(self) -> IdentityState:
        """The shards' state gathered as one :class:`IdentityState` (to compare with one
        resolver's; merges as every shard replicates them). Shards in this process only."""
        if not isinstance(self.shards, LocalShards):
            raise TypeError("the state of shards in other processes is theirs to read")
        state = IdentityState(
            next_number=self.decider.state.next_number,
            merged_into=dict(self.decider.state.merged_into),
            apart=self.decider.state.apart,
        )
        for shard in self.shards.shards:
            kept = shard.state
            for name in ("blocks", "sources", "optout_requests", "profiles", "trusted"):
                getattr(state, name).update(getattr(kept, name))
            state.absorbed.update((p, ids) for p, ids in kept.absorbed.items() if ids)
            state.optouts.update((p, data) for p, data in kept.optouts.items() if data)
        return state

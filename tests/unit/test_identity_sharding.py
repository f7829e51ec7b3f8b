"""Identity resolution on N shards (streams/identity/sharding.py) gives exactly what one
resolver gives: the same resolutions (ids, changes, merges, possible matches, review) and
the same state, for N = 1, 2, 4 and any epoch size, on synth's noise profiles, on the scale
bench's generator and on random small sequences."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.identity.resolver import IdentifierHasher, IdentityState, Resolution, Resolver
from streams.identity.sharding import (
    Decider,
    EpochItem,
    EpochWrites,
    LocalShards,
    Named,
    Shard,
    ShardedResolver,
    epochs_of,
    resolve_epochs,
    restore_entry,
    shard_entries,
    shard_of,
)
from streams.optouts import OptOuts

SECRET = b"sharding-test-secret"
FLOOR = 6.0  # a review floor, so that possible matches are compared too
Record = tuple[str, dict[str, Any]]


def _one_shard(records: Sequence[Record], floor: float | None) -> tuple[list[Resolution], Resolver]:
    resolver = Resolver(IdentifierHasher(SECRET), review_floor=floor)
    return [resolver.resolve(provider, person) for provider, person in records], resolver


def _comparable(state: IdentityState) -> dict[str, Any]:
    return {
        "next_number": state.next_number,
        "profiles": state.profiles,
        "trusted": state.trusted,
        "blocks": {key: block for key, block in state.blocks.items() if block},
        "sources": state.sources,
        "roots": {person: state.root(person) for person in state.merged_into},
        "absorbed": {person: sorted(ids) for person, ids in state.absorbed.items() if ids},
        "optouts": state.optouts,
        "optout_requests": state.optout_requests,
    }


def _assert_same(records: Sequence[Record], shards: int, epoch: int, floor: float | None) -> None:
    expected, resolver = _one_shard(records, floor)
    sharded = ShardedResolver(IdentifierHasher(SECRET), shards, review_floor=floor, epoch=epoch)
    got = list(sharded.resolve(records))
    assert len(got) == len(expected)
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"record {at} of {len(records)}: {records[at]}"
    assert _comparable(sharded.state()) == _comparable(resolver.state)


@pytest.fixture(scope="module")
def synth_records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Record]]:
    from producers.files import mapped_events
    from producers.synth import SynthConfig, synthesize
    from producers.synth.profiles import profile

    out: dict[str, list[Record]] = {}
    for name in ("default", "keying", "households", "heavy"):
        folder: Path = tmp_path_factory.mktemp(name)
        chosen = profile(name)
        synthesize(chosen.config(SynthConfig(people=60, seed=7)), chosen.noise, folder)
        out[name] = [(e["provider"], e["person"]) for _, e in mapped_events(folder)]
    return out


@pytest.mark.parametrize("name", ["default", "keying", "households", "heavy"])
@pytest.mark.parametrize("shards", [1, 2, 4])
@pytest.mark.parametrize("epoch", [1, 7, 1000])
def test_sharded_resolution_is_the_one_shard_resolution_on_synth(
    synth_records: dict[str, list[Record]], name: str, shards: int, epoch: int
) -> None:
    records = synth_records[name]
    assert len(records) > 500
    _assert_same(records, shards, epoch, FLOOR)


@pytest.mark.parametrize("shards", [1, 2, 4])
@pytest.mark.parametrize("epoch", [1, 7, 1000])
def test_sharded_resolution_is_the_one_shard_resolution_at_scale_bench_noise(
    shards: int, epoch: int
) -> None:
    """The scale bench's generator: wage records repeating under one source id, SSN typos
    and transpositions, married surnames, swapped days and months; several epochs."""
    from bench.scale import generate

    records = list(generate(2_500, seed=3))
    _assert_same(records, shards, epoch, None)


@pytest.mark.parametrize("shards", [1, 3])
def test_shards_over_stores_on_disk_resolve_as_one_resolver(shards: int, tmp_path: Path) -> None:
    """Each shard's state in a store on disk (streams/identity/store.py) with a cache of
    a few values (most reads and writes go through RocksDB), reopened between two runs of
    epochs: the resolutions and state of one resolver."""
    from streams.identity.sealing import Sealer
    from streams.identity.store import open_state

    records = list(generate_records(2_000))
    expected, resolver = _one_shard(records, FLOOR)
    hasher = IdentifierHasher(SECRET)
    sealer = Sealer({1: SECRET}, 1)

    def stores() -> list[Any]:
        return [
            # block keys in clear (keyed hashes could not be gathered back to compare)
            open_state(tmp_path / str(i), 0, sealer=sealer, entry_bytes=0)
            for i in range(shards)
        ]

    decider = Decider(hasher, review_floor=FLOOR)
    got: list[Resolution] = []
    half = len(records) // 2
    for part in (records[:half], records[half:]):
        disks = stores()
        local = LocalShards([Shard(hasher, review_floor=FLOOR, state=d.state) for d in disks])
        got += resolve_epochs(local, decider, epochs_of(part, 300))
        for disk in disks:
            disk.close()
    assert got == expected
    disks = stores()
    gathered = ShardedResolver(hasher, shards)
    gathered.decider = decider
    gathered.shards = LocalShards([Shard(hasher, state=d.state) for d in disks])
    assert _comparable(gathered.state()) == _comparable(resolver.state)


class _Logged(Shard):
    """A shard that keeps its changelog's entries (:func:`shard_entries`) in memory."""

    entries: list[Any]

    def apply(self, writes: EpochWrites) -> None:
        super().apply(writes)
        self.entries = [*getattr(self, "entries", []), *shard_entries(self.state, writes)]


def _assert_rebuilt_from_entries(shards: Sequence[_Logged]) -> None:
    for shard in shards:
        rebuilt = IdentityState()
        for entry in shard.entries:
            restore_entry(rebuilt, *entry)
        mine = _comparable(shard.state)
        assert _comparable(rebuilt) == {**mine, "next_number": 1}
        assert rebuilt.merged_into == shard.state.merged_into


def _logged_run(
    items: Sequence[EpochItem],
    step: Callable[[Resolution | None, IdentityState], list[str]],
    epoch: int,
) -> list[_Logged]:
    """``items`` resolved on two shards that keep their changelog entries, ``step`` run
    for each in the decider."""
    hasher = IdentifierHasher(SECRET)
    shards = [_Logged(hasher, review_floor=FLOOR) for _ in range(2)]
    list(
        resolve_epochs(
            LocalShards(shards),
            Decider(hasher, review_floor=FLOOR),
            epochs_of(items, epoch),
            each=lambda _at, done, state: step(done, state),
        )
    )
    return shards


def test_a_shards_changelog_entries_rebuild_its_state() -> None:
    """Each apply's :func:`shard_entries`, replayed in order into an empty state
    (:func:`restore_entry`), give that shard's state: persons changed and merged away,
    blocks filed and emptied, source ids and merges (opt-out requests: below)."""
    hasher = IdentifierHasher(SECRET)
    shards = [_Logged(hasher, review_floor=FLOOR) for _ in range(3)]
    records = generate_records(2_000)
    list(
        resolve_epochs(
            LocalShards(shards), Decider(hasher, review_floor=FLOOR), epochs_of(records, 250)
        )
    )
    kinds = {kind for shard in shards for kind, _key, _value in shard.entries}
    assert kinds == {"person", "block", "source", "merge"}
    assert any(v is None for shard in shards for kind, _k, v in shard.entries if kind == "person")
    _assert_rebuilt_from_entries(shards)


@pytest.mark.parametrize("applied_by", [0, 1, 3])
def test_a_decider_lost_mid_epoch_resumes_from_its_log(applied_by: int) -> None:
    """A decider logs each epoch before the shards are sent its writes; it is lost once
    ``applied_by`` of the 3 shards applied epoch 5. A new decider resumes from the log
    (:meth:`Decider.resume`, ``pending``) and goes on after the epoch's records: with the
    logged epoch's resolutions, every record resolves as one resolver resolves it."""

    class Lost(Exception):
        pass

    class Losing(LocalShards):
        """Sends epoch 5's writes to its first ``applied_by`` shards, then is lost."""

        applies = 0

        def send(self, method: str, arguments: Any) -> None:
            if method == "apply":
                self.applies += 1
                if self.applies == 5:
                    for shard, args in list(zip(self.shards, arguments, strict=True))[:applied_by]:
                        shard.apply(*args)
                    raise Lost
            super().send(method, arguments)

    hasher = IdentifierHasher(SECRET)
    records = generate_records(3_000)
    expected, _resolver = _one_shard(records, FLOOR)
    shards = [Shard(hasher, review_floor=FLOOR) for _ in range(3)]
    log: list[tuple[list[Resolution], EpochWrites, int, int]] = []
    first = Decider(hasher, review_floor=FLOOR)

    def decided(resolutions: list[Resolution], writes: EpochWrites, taken: int) -> None:
        done = (log[-1][3] if log else 0) + taken
        log.append((resolutions, writes, first.state.next_number, done))

    got: list[Resolution] = []
    running = resolve_epochs(Losing(shards), first, epochs_of(records, 200), decided=decided)
    with pytest.raises(Lost):
        got.extend(running)
    assert len(log) == 5
    assert len(got) == 4 * 200  # epoch 5 was decided, logged, never yielded
    resolutions, writes, next_number, done = log[-1]
    merges = {a: s for _r, w, _n, _d in log for a, s in w.merges.items() if s is not None}
    second = Decider(hasher, review_floor=FLOOR)
    second.resume(next_number, merges, writes.persons)
    got += resolutions
    got += resolve_epochs(
        LocalShards(shards), second, epochs_of(records[done:], 200), pending=writes
    )
    assert got == expected


def generate_records(count: int) -> list[Record]:
    from bench.scale import generate

    return list(generate(count, seed=5))


def test_sharded_resolution_merges_and_finds_possible_matches() -> None:
    """The sequences above do merge persons and hold possible matches (else the equality
    would prove little)."""
    from bench.scale import generate

    expected, _ = _one_shard(list(generate(2_500, seed=3)), FLOOR)
    kinds = {change.change_type for r in expected for change in r.changes}
    assert {"PERSON_CREATED", "RECORD_LINKED", "PERSONS_MERGED"} <= kinds
    assert any(r.near is not None for r in expected)
    assert any(r.rule == "SOURCE_ID" for r in expected)


def test_shard_of_is_stable_and_spread() -> None:
    assert shard_of("P0000000001", 4) == shard_of("P0000000001", 4)
    spread = {shard_of(f"P{n:010d}", 4) for n in range(100)}
    assert spread == {0, 1, 2, 3}


def test_a_shard_count_or_epoch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShardedResolver(IdentifierHasher(SECRET), 0)
    with pytest.raises(ValueError, match="at least 1"):
        ShardedResolver(IdentifierHasher(SECRET), 2, epoch=0)


# Random small sequences over a small pool of values, so that records meet, link, bridge
# and merge: few names and dates, SSNs with typos, source ids that repeat.
_SSNS = ["123456789", "123456780", "213456789", "987654321", None]
_PERSON = st.fixed_dictionaries(
    {
        "source_person_id": st.sampled_from(["a", "b", "c", "d", None]),
        "first_name": st.sampled_from(["Maria", "Mario", "Ana", "M", None]),
        "last_name": st.sampled_from(["Garcia", "Garcia Lopez", "Lee", None]),
        "birth_date": st.sampled_from(
            [datetime.date(2001, 3, 4), datetime.date(2001, 4, 3), datetime.date(1999, 1, 1), None]
        ),
        "ssn": st.sampled_from(_SSNS),
        "ssid": st.sampled_from(["1234567890", "1234567809", None]),
        "zip": st.sampled_from(["90011", "94110", None]),
    }
)
_RECORD = st.tuples(st.sampled_from(["k12", "ccc", "wages"]), _PERSON)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_RECORD, max_size=40),
    st.sampled_from([1, 2, 3, 4]),
    st.integers(min_value=1, max_value=12),
    st.sampled_from([None, FLOOR]),
)
def test_sharded_resolution_is_the_one_shard_resolution_on_random_sequences(
    records: list[Record], shards: int, epoch: int, floor: float | None
) -> None:
    _assert_same(records, shards, epoch, floor)


def test_unchanged_persons_are_not_scored_again_by_the_decider() -> None:
    """The decider scores again only persons changed in the epoch; the others' scores come
    from their shards (else it would do the shards' work)."""
    from bench.scale import generate

    records = list(generate(2_000, seed=5))
    sharded = ShardedResolver(IdentifierHasher(SECRET), 2, epoch=500)
    scored: list[str] = []
    resolver = sharded.decider._resolver
    original = resolver.score_candidate

    def counting(identity: Any, profile: Any) -> Any:
        scored.append("decider")
        return original(identity, profile)

    resolver.score_candidate = counting  # type: ignore[method-assign]
    list(sharded.resolve(records))
    assert 0 < len(scored) < _one_resolver_comparisons(records)


@pytest.fixture
def later_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The identities the decider has scored in a round of their own (candidates step 3
    did not score), appended as it happens."""
    import streams.identity.sharding as sharding

    rounds: list[int] = []
    original = sharding._ScoreLater.__call__

    def counted(self: Any, at: int, view: Any, planned: Any) -> Any:
        rounds.append(at)
        return original(self, at, view, planned)

    monkeypatch.setattr(sharding._ScoreLater, "__call__", counted)
    return rounds


def _one_resolver_comparisons(records: Sequence[Record]) -> int:
    """How many (record, candidate) comparisons one resolver makes over ``records``."""
    one = Resolver(IdentifierHasher(SECRET))
    calls = [0]
    score = one.score_candidate

    def counting(identity: Any, profile: Any) -> Any:
        calls[0] += 1
        return score(identity, profile)

    one.score_candidate = counting  # type: ignore[method-assign]
    for provider, person in records:
        one.resolve(provider, person)
    return calls[0]


def _garcia(
    source: str | None,
    ssn: str | None,
    zip_code: str,
    born: datetime.date,
    first: str = "Maria",
) -> dict[str, Any]:
    """A record's person fields: ``first`` Garcia, born ``born``, no SSID."""
    return {
        "source_person_id": source,
        "first_name": first,
        "last_name": "Garcia",
        "birth_date": born,
        "ssn": ssn,
        "ssid": None,
        "zip": zip_code,
    }


def _a_repeat_its_person_dropped_in_the_epoch() -> list[Record]:
    """A person with a full profile (12 identities, one source id, a zip each), another
    filed under the same blocks (another SSN); in the next epoch a record of the first
    person from another source brings a 13th identity (the oldest dropped), then the first
    source repeats that oldest identity: step 3 did not score it (its person held it at
    the epoch's start), and the decider compares it. Epochs of 13, a third one after."""
    born = datetime.date(2003, 5, 17)

    full = [("k12", _garcia("a", "123456789", f"900{n:02d}", born)) for n in range(1, 13)]
    # the same name and birth date, another SSN and zip: a possible match of the dropped
    # identity, found only if the decider has its score
    other = ("k12", _garcia("q", "987654321", "94110", born))
    later = [
        ("ccc", _garcia("b", "123456789", "90013", born)),
        full[0],  # the dropped identity, repeated by its source
        *[
            ("wages", _garcia(f"w{n}", f"55566{n:04d}", "95000", born, f"Ann{n}"))
            for n in range(11)
        ],
    ]
    tail = [
        ("wages", _garcia(f"t{n}", f"44433{n:04d}", "95001", born, f"Zed{n}")) for n in range(5)
    ]
    return [*full, other, *later, *tail]


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("floor", [None, FLOOR])
def test_a_repeat_left_out_of_step_3_is_scored_when_the_decider_compares_it(
    shards: int, floor: float | None, later_rounds: list[int]
) -> None:
    """A source's repeat of an identity its person holds is not scored in step 3; one the
    epoch's own changes bring to a comparison is scored then, in a round of its own (the
    next epoch's PREPARE answered first): the same resolutions as one resolver."""
    records = _a_repeat_its_person_dropped_in_the_epoch()
    _assert_same(records, shards, 13, floor)
    assert len(later_rounds) == 1
    expected, _ = _one_shard(records, floor)
    assert expected[14].rule != "SOURCE_ID"  # compared, not taken as the source's repeat
    if floor is not None:  # the other person, scored in that round only
        assert expected[14].near is not None
        assert expected[14].near.person_id == expected[12].person_id != expected[14].person_id


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_a_repeat_left_out_of_step_3_is_scored_with_opt_outs_read(
    shards: int, later_rounds: list[int]
) -> None:
    """The same with an opt-out request active (the other person's), so that every epoch
    fetches what opt-out decisions read, and the round of its own does for the persons it
    matched: every outcome and decision as over one resolver."""
    records = _a_repeat_its_person_dropped_in_the_epoch()
    events = [(provider, {"provider": provider, "person": person}) for provider, person in records]
    events[12] = ("optout", {"provider": "optout", "person": records[12][1], "request_id": "r-1"})
    step, expected = _optout_steps(events)
    resolver = _one_resolver_steps(_items(events), step)
    sharded = ShardedResolver(IdentifierHasher(SECRET), shards, review_floor=FLOOR, epoch=13)
    sharded_step, got = _optout_steps(events)
    list(sharded.resolve(_items(events), each=lambda _at, done, state: sharded_step(done, state)))
    assert got == expected
    assert len(later_rounds) == 1
    assert expected[12][1] == "optout"
    assert _comparable(sharded.state()) == _comparable(resolver.state)


@pytest.fixture
def narrow_blocks(monkeypatch: pytest.MonkeyPatch, later_rounds: list[int]) -> list[int]:
    """Blocks scanned to their last 2 persons (not 64), in the resolver and the shards, so
    that an epoch taking a person out of a block's end brings an earlier one in with few
    records; :func:`later_rounds`."""
    import streams.identity.resolver as resolver
    import streams.identity.sharding as sharding

    monkeypatch.setattr(resolver, "_MAX_BLOCK_SCAN", 2)
    monkeypatch.setattr(sharding, "_MAX_BLOCK_SCAN", 2)
    return later_rounds


def _a_block_end_shifts_in_the_epoch() -> list[Record]:
    """Three persons of one name and birth date (another SSN each: possible matches of
    each other, no more), filed under the same blocks, the third (A) last; A's profile
    filled with 11 identities born on another date. In the next epoch (of 14) a 13th
    identity of A drops A's first, the only one filed under that birth date's blocks:
    with blocks scanned to their last 2, the oldest person comes into those blocks' end,
    and the next record (the oldest person's name, birth date and zip, no SSN) is
    compared with it, which step 3 did not score."""
    born, later = datetime.date(2003, 5, 17), datetime.date(2004, 8, 21)

    return [
        ("k12", _garcia("e", "111111111", "90100", born)),
        ("k12", _garcia("x", "222222222", "90200", born)),
        ("k12", _garcia("a", "333333333", "90300", born)),
        *[("k12", _garcia("a", "333333333", f"903{n:02d}", later)) for n in range(1, 12)],
        ("ccc", _garcia("b", "333333333", "90399", later)),
        ("k12", _garcia(None, None, "90100", born)),
        *[("wages", _garcia(f"w{n}", f"44433{n:04d}", "95001", born)) for n in range(3)],
    ]


@pytest.fixture
def whole_blocks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The blocks the decider has asked for all of, mid-epoch, appended as it happens."""
    import streams.identity.sharding as sharding

    asked: list[str] = []
    original = sharding._ScoreLater.whole_block

    def counted(self: Any, key: str) -> tuple[str, ...]:
        asked.append(key)
        return original(self, key)

    monkeypatch.setattr(sharding._ScoreLater, "whole_block", counted)
    return asked


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("floor", [None, FLOOR])
@pytest.mark.parametrize("slack", [64, 0])
def test_a_candidate_the_epoch_brings_into_a_blocks_end_is_scored_then(
    shards: int,
    floor: float | None,
    slack: int,
    narrow_blocks: list[int],
    whole_blocks: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step 3 scores each block's end as the epoch starts; a person the epoch brings into
    it (a person taken out of the block after it) is scored when the decider compares it,
    in a round of its own: the same resolutions as one resolver. With PROBE's slack 0 (a
    block sent as its last 2 persons), the decider first asks for those blocks whole."""
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_PROBE_SLACK", slack)
    records = _a_block_end_shifts_in_the_epoch()
    _assert_same(records, shards, 14, floor)
    assert narrow_blocks == [narrow_blocks[0]]  # one round, for that record's identity
    # the birth date's three blocks A left (the full name's it kept)
    assert len(whole_blocks) == (0 if slack else 3)
    expected, _ = _one_shard(records, floor)
    oldest = expected[0].person_id
    assert expected[1].person_id != oldest
    assert expected[2].person_id != oldest
    assert expected[15].person_id == oldest  # the score that round brought decided it


@pytest.mark.parametrize("name", ["default", "households", "heavy"])
@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("epoch", [7, 1000])
def test_blocks_probed_to_their_end_resolve_as_one_resolver(
    synth_records: dict[str, list[Record]],
    name: str,
    shards: int,
    epoch: int,
    narrow_blocks: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PROBE sends each block's end (here its last 2 persons, no slack), a trusted
    identifier's block whole: persons the epoch takes out of a block before that end are
    taken out on its key shard too, and the decider asks for a block whole when the end
    sent is not enough: the same resolutions and state as one resolver."""
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_PROBE_SLACK", 0)
    _assert_same(synth_records[name], shards, epoch, FLOOR)


def _a_person_leaves_a_block_before_its_end() -> list[Record]:
    """Three persons of one name and birth date (another SSN each), the oldest (E) with a
    full profile whose other 11 identities have another birth date. In the next epoch E's
    13th identity drops its first, the only one under the first birth date's blocks: E
    leaves those blocks from before their last 2; a record of that name and date, no
    SSN, probes them in the same epoch. Epochs of 14."""
    born, other = datetime.date(2003, 5, 17), datetime.date(2001, 2, 3)

    return [
        ("k12", _garcia("e", "111111111", "90100", born)),
        *[("k12", _garcia("e", "111111111", f"901{n:02d}", other)) for n in range(1, 12)],
        ("k12", _garcia("x", "222222222", "90200", born)),
        ("k12", _garcia("a", "333333333", "90300", born)),
        ("ccc", _garcia("e2", "111111111", "90199", other)),
        ("k12", _garcia(None, None, "90400", born)),
        *[("wages", _garcia(f"w{n}", f"44433{n:04d}", "95001", born)) for n in range(3)],
    ]


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_a_person_taken_out_of_a_block_before_the_end_probe_sent(
    shards: int, narrow_blocks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person taken out of a block from before the end PROBE sent (its last 2 here, no
    slack) is taken out on the key shard too: the same state as one resolver."""
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_PROBE_SLACK", 0)
    records = _a_person_leaves_a_block_before_its_end()
    _assert_same(records, shards, 14, FLOOR)
    _, one = _one_shard(records, FLOOR)
    oldest = one.state.root("P0000000001")
    dated = [key for key in one.state.blocks if key.startswith("dob:2003-05-17")]
    assert dated
    assert all(oldest not in one.state.blocks[key] for key in dated)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_a_trusted_identifiers_block_is_probed_whole(
    shards: int, narrow_blocks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three persons share an SSN; the third opts out in the next epoch: the opt-out
    covers the other two through the SSN's block, which PROBE sends whole (not its last
    2): every decision as over one resolver."""
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_PROBE_SLACK", 0)

    def person(source: str, first: str, last: str, born: datetime.date) -> dict[str, Any]:
        return {
            "source_person_id": source,
            "first_name": first,
            "last_name": last,
            "birth_date": born,
            "ssn": "555667777",
            "ssid": None,
            "zip": "90001",
        }

    sharers = [
        person("p1", "Maria", "Garcia", datetime.date(2003, 5, 17)),
        person("p2", "Kevin", "Nguyen", datetime.date(1988, 11, 2)),
        person("p3", "Olu", "Adeyemi", datetime.date(1975, 1, 30)),
    ]
    events = [("k12", {"provider": "k12", "person": p}) for p in sharers]
    events.append(("optout", {"provider": "optout", "person": sharers[2], "request_id": "r-1"}))
    step, expected = _optout_steps(events)
    _one_resolver_steps(_items(events), step)
    sharded = ShardedResolver(IdentifierHasher(SECRET), shards, review_floor=FLOOR, epoch=3)
    sharded_step, got = _optout_steps(events)
    list(sharded.resolve(_items(events), each=lambda _at, done, state: sharded_step(done, state)))
    assert got == expected
    covered = {p for d in expected[3][2] if d.cause == "SHARED_ID" for p in d.person_ids}
    assert covered == {expected[0][0], expected[1][0]}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_RECORD, max_size=40),
    st.sampled_from([2, 3]),
    st.integers(min_value=2, max_value=12),
    st.sampled_from([None, FLOOR]),
)
def test_blocks_probed_to_their_end_resolve_random_sequences_as_one_resolver(
    records: list[Record], shards: int, epoch: int, floor: float | None
) -> None:
    """The same over random small sequences (merges, shared SSNs, blocks of several
    persons), blocks scanned to their last 2 and sent with no slack."""
    import streams.identity.resolver as resolver
    import streams.identity.sharding as sharding

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolver, "_MAX_BLOCK_SCAN", 2)
        patch.setattr(sharding, "_MAX_BLOCK_SCAN", 2)
        patch.setattr(sharding, "_PROBE_SLACK", 0)
        _assert_same(records, shards, epoch, floor)


@pytest.mark.parametrize("shards", [2, 3])
def test_blocks_probed_to_their_end_decide_opt_outs_as_one_resolver(
    optout_events: list[tuple[str, dict[str, Any]]],
    shards: int,
    narrow_blocks: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_PROBE_SLACK", 0)
    _assert_opt_outs_as_over_one_resolver(optout_events, shards, 40, False)


def test_step_3_leaves_out_a_sources_repeats_of_an_identity_its_person_holds() -> None:
    """Most of a steady state's records repeat an identity under a known source id: their
    candidates are not scored by the shards (nor by the decider) in the second epoch on."""
    from bench.scale import generate

    records = list(generate(6_000, seed=5))
    asked: list[int] = []
    shards = [Shard(IdentifierHasher(SECRET)) for _ in range(2)]
    for shard in shards:
        score = shard.score

        def counting(requests: Any, fetch: Any, score: Any = score) -> Any:
            requests = list(requests)
            asked.append(len(requests))
            return score(requests, fetch)

        shard.score = counting  # type: ignore[method-assign]
    decider = Decider(IdentifierHasher(SECRET))
    got = list(resolve_epochs(LocalShards(shards), decider, epochs_of(records, 2_000)))
    expected, _ = _one_shard(records, None)
    assert got == expected
    repeats = sum(r.rule == "SOURCE_ID" and not r.touched for r in expected[2_000:])
    assert repeats > 1_000
    # fewer pairs than the one resolver compares (the decider scores the persons the
    # epoch changed, and an identity is scored once an epoch); before: every record's
    # candidates, 2,138 pairs against the one resolver's 1,001
    assert sum(asked) < _one_resolver_comparisons(records)
    # the repeats whose person lacks the identity: in a second round, not one round each
    epochs = len(records) // 2_000
    assert len(asked) <= 2 * 2 * epochs  # two shards, at most two SCORE rounds an epoch


def test_person_state_copies_are_independent() -> None:
    from streams.identity.sharding import PersonState

    kept = PersonState([], {"ssn": {"x"}, "ssid": set()}, ["P1"], {"r": {"at": 1}})
    copy = kept.copy()
    copy.trusted["ssn"].add("y")
    copy.absorbed.append("P2")
    copy.optouts["r"]["at"] = 2
    assert kept == PersonState([], {"ssn": {"x"}, "ssid": set()}, ["P1"], {"r": {"at": 1}})
    assert dataclasses.asdict(copy) != dataclasses.asdict(kept)


def test_shards_in_processes_of_their_own_resolve_as_one_resolver() -> None:
    """bench/shards.py's transport (a process a shard, rounds over pipes, the next epoch's
    PREPARE sent before the decision) changes nothing either."""
    from bench.scale import _SECRET, generate
    from bench.shards import ProcessShards
    from streams.identity.sharding import Decider, epochs_of, resolve_epochs

    records = list(generate(1_500, seed=4))
    resolver = Resolver(IdentifierHasher(_SECRET))
    expected = [resolver.resolve(provider, person) for provider, person in records]
    shards = ProcessShards(2, _SECRET)
    try:
        decider = Decider(IdentifierHasher(_SECRET))
        got = list(resolve_epochs(shards, decider, epochs_of(records, 400)))
    finally:
        cpu = shards.stop()
    assert got == expected
    assert len(cpu) == 2
    assert all(seconds > 0 for seconds in cpu)


def test_the_bench_pipes_send_an_identitys_masks_once_and_name_them_after() -> None:
    """bench/shards.py's pipes send an identity's masks whole once a direction, then by
    name (the hash they are the masks of), either way round; what arrives is equal to what
    was sent, every time; masks unlike the ones kept under their hash go whole."""
    import io
    import multiprocessing
    import pickle

    from bench.shards import _Link, _Pickler

    resolver = Resolver(IdentifierHasher(SECRET))
    one = resolver.identity({"ssn": "123456789", "first_name": "Ana", "last_name": "Lee"})
    other = one._replace(first="maria")  # the same number: the same masks
    a_end, b_end = multiprocessing.Pipe()
    a, b = _Link(a_end), _Link(b_end)

    def size(link: _Link, message: Any) -> int:  # (names only what the link sent before)
        buffer = io.BytesIO()
        _Pickler(buffer, link).dump(message)
        return buffer.tell()

    whole = len(pickle.dumps(one))
    a.send([one])
    assert b.recv() == [one]
    assert size(a, other) < whole / 4  # named
    for identity in (other, one):
        a.send([identity])
        assert b.recv() == [identity]
    # back the other way: named as the masks the other end sent
    assert size(b, other) < whole / 4
    b.send([other, one])
    assert a.recv() == [other, one]
    # masks unlike those kept under the hash: whole, and they arrive as sent
    forged = one._replace(ssn_masks=frozenset({"x"}))
    a.send(forged)
    assert b.recv() == forged
    a.send(one)
    assert b.recv() == one


@pytest.fixture(scope="module")
def optout_events(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, dict[str, Any]]]:
    """Synth with many opt-out requests, and revocations of some."""
    from producers.files import mapped_events
    from producers.synth import NoiseConfig, SynthConfig, synthesize

    folder: Path = tmp_path_factory.mktemp("optouts")
    # (a seed with persons covered through a shared SSN: most have none)
    synthesize(SynthConfig(people=200, seed=1, optout_rate=0.3), NoiseConfig(), folder)
    return list(mapped_events(folder))


def _one_resolver_steps(
    items: Sequence[EpochItem], step: Callable[[Resolution | None, IdentityState], list[str]]
) -> Resolver:
    """``items`` through one resolver, ``step`` after each (a Named item's: not resolved);
    the resolver."""
    resolver = Resolver(IdentifierHasher(SECRET), review_floor=FLOOR)
    for item in items:
        if isinstance(item, Named):
            step(None, resolver.state)
        else:
            step(resolver.resolve(*item), resolver.state)
    return resolver


def _revocation(source: str, event: dict[str, Any]) -> bool:
    return source == "optout" and event.get("action") == "REVOKED"


def _items(events: Sequence[tuple[str, dict[str, Any]]]) -> list[EpochItem]:
    """The events as an epoch takes them: a revocation is not resolved (a :class:`Named`
    item naming its request), every other event is a record to resolve."""
    return [
        Named(requests=(str(e["request_id"]),))
        if _revocation(source, e)
        else (str(e["provider"]), e["person"])
        for source, e in events
    ]


def _optout_steps(
    events: Sequence[tuple[str, dict[str, Any]]],
) -> tuple[Callable[[Resolution | None, IdentityState], list[str]], list[Any]]:
    """The opt-out step of each event in turn (the identity stage's), over the state it is
    given (a revocation's, which is not resolved, with no resolution); and the list each
    event's outcome and decisions are appended to."""
    optouts = OptOuts(IdentityState())
    seen: list[Any] = []

    def step(resolution: Resolution | None, state: IdentityState) -> list[str]:
        source, event = events[len(seen)]
        if resolution is None:
            assert _revocation(source, event)
            optouts.state = state
            revoked = optouts.revoke(event)
            seen.append(("revoked", revoked))
            return [] if revoked is None else [revoked.person_id]
        if resolution.person_id is None:
            seen.append(None)
            return []
        optouts.state = state
        request = source == "optout"
        outcome, decisions = optouts.after_resolution(
            resolution.person_id, event, resolution.changes, request=request
        )
        seen.append((resolution.person_id, outcome, decisions))
        return [state.root(resolution.person_id)] if request else []

    return step, seen


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("epoch", [1, 40, 5000])
@pytest.mark.parametrize("told", [False, True])
def test_opt_outs_in_the_decider_decide_as_over_one_resolver(
    optout_events: list[tuple[str, dict[str, Any]]], shards: int, epoch: int, told: bool
) -> None:
    """Requests, merges spreading them, persons covered through a shared SSN or SSID, and
    revocations (not resolved: a :class:`Named` item naming its request): every event's
    outcome (linked, withheld, optout) and decisions (cause, person, the ids whose rows to
    remove or re-admit) on N shards are those over one resolver, and so is the state
    (each person's active requests, every request's holder). ``told``: the decider is
    told which epochs hold a request or a revocation (else it assumes any may)."""
    _assert_opt_outs_as_over_one_resolver(optout_events, shards, epoch, told)


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("epoch", [40, 5000])
def test_every_identity_scored_in_a_round_of_its_own_decides_as_over_one_resolver(
    optout_events: list[tuple[str, dict[str, Any]]],
    shards: int,
    epoch: int,
    monkeypatch: pytest.MonkeyPatch,
    later_rounds: list[int],
) -> None:
    """Step 3 made to leave out every identity, so that each one compared is scored when
    the decider reaches it, in a round of its own, with what opt-out decisions read of the
    persons it matched (the path a source's repeat takes when the epoch dropped its
    identity): every outcome, decision and the state as over one resolver."""
    import streams.identity.sharding as sharding

    monkeypatch.setattr(sharding, "_repeats", lambda epoch, _: set(range(len(epoch.identities))))
    monkeypatch.setattr(sharding, "_not_held", lambda *_: [])
    _assert_opt_outs_as_over_one_resolver(optout_events, shards, epoch, False)
    assert len(later_rounds) > 40


def _assert_opt_outs_as_over_one_resolver(
    events: list[tuple[str, dict[str, Any]]], shards: int, epoch: int, told: bool
) -> None:
    items = _items(events)
    requests = sum(1 for source, _ in events if source == "optout")
    assert requests >= 10

    step, expected = _optout_steps(events)
    resolver = _one_resolver_steps(items, step)

    sharded = ShardedResolver(IdentifierHasher(SECRET), shards, review_floor=FLOOR, epoch=epoch)
    sharded_step, got = _optout_steps(events)
    asking = {
        id(item) for item, (source, _) in zip(items, events, strict=True) if source == "optout"
    }
    resolutions = list(
        sharded.resolve(
            items,
            each=lambda _at, done, state: sharded_step(done, state),
            requests=(lambda epoch: any(id(item) in asking for item in epoch)) if told else None,
        )
    )
    revocations = sum(isinstance(item, Named) for item in items)
    assert len(resolutions) == len(items) - revocations
    assert len(got) == len(expected) == len(items)
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"event {at}: {events[at][0]}"
    outcomes = [s[1] for s in expected if s is not None and s[0] != "revoked"]
    # the case the blocks of trusted identifiers are fetched for: persons covered
    assert outcomes.count("withheld") > 0
    assert any(d.cause == "SHARED_ID" for s in expected if s and s[0] != "revoked" for d in s[2])
    # revocations that withdrew a request (the others named one not active)
    revoked = [s[1] for s in expected if s is not None and s[0] == "revoked"]
    assert sum(d is not None and not d.opted_out for d in revoked) >= 3
    assert _comparable(sharded.state()) == _comparable(resolver.state)


def test_a_shards_changelog_entries_rebuild_its_opt_out_requests(
    optout_events: list[tuple[str, dict[str, Any]]],
) -> None:
    """Requests made, moved by merges and withdrawn by revocations (an entry of None) are
    in each shard's changelog entries, and replaying them rebuilds every shard's requests
    (every shard holds them all)."""
    step, _seen = _optout_steps(optout_events)
    shards = _logged_run(_items(optout_events), step, 300)
    for shard in shards:
        requests = [(k, v) for kind, k, v in shard.entries if kind == "optout"]
        assert any(v is None for _k, v in requests)
        assert any(v is not None for _k, v in requests)
    assert shards[0].state.optout_requests == shards[1].state.optout_requests
    _assert_rebuilt_from_entries(shards)


# An operator's decision in the intake: (its Named item, the OperatorDecision).
Decided = tuple[Named, dict[str, Any]]


def _decision_steps(
    events: Sequence[Record | Decided],
) -> tuple[Callable[[Resolution | None, IdentityState], list[str]], list[Any]]:
    """The identity stage's steps for reviews and operators' decisions, over the state it
    is given: a record's possible match is remembered as review ``R<index>``, and a
    decision is applied (or refused with its code); the list each event's outcome is
    appended to."""
    from streams.identity.operator_decisions import DecisionError, OperatorDecisions

    decisions = OperatorDecisions(Resolver(IdentifierHasher(SECRET), review_floor=FLOOR))
    seen: list[Any] = []

    def step(resolution: Resolution | None, state: IdentityState) -> list[str]:
        at, event = len(seen), events[len(seen)]
        decisions.resolver.state = state
        if resolution is None:
            assert isinstance(event[0], Named)
            try:
                applied = decisions.apply(event[1])
            except DecisionError as refused:
                seen.append(("refused", refused.code))
                return []
            seen.append(applied)
            return list(applied.touched)
        seen.append(resolution)
        if resolution.near is not None and resolution.person_id is not None:
            provider, person = event
            assert isinstance(provider, str)
            hasher = decisions.resolver.hasher
            source = (provider, hasher.source_id(provider, str(person["source_person_id"])))
            identity = decisions.resolver.identity(person)
            decisions.possible_match(
                f"R{at}", resolution.person_id, resolution.near, identity, source
            )
        return []

    return step, seen


def _decided_items(events: Sequence[Record | Decided]) -> list[EpochItem]:
    """The events as an epoch takes them: a decision as its :class:`Named` item."""
    items: list[EpochItem] = []
    for event in events:
        first = event[0]
        items.append(first if isinstance(first, Named) else (first, event[1]))
    return items


def _with_decisions(records: Sequence[Record], lag: int) -> list[Record | Decided]:
    """``records`` with operators' decisions on their possible matches, each ``lag``
    events after its review: LINK and SEPARATE in turn, and every other LINK separated
    again ``lag`` events later (a split). One resolver says which reviews there are."""
    import uuid
    from collections import deque

    events: list[Record | Decided] = []
    step, _seen = _decision_steps(events)
    resolver = Resolver(IdentifierHasher(SECRET), review_floor=FLOOR)
    due: deque[tuple[int, str, str, str, str]] = deque()  # (at, action, review, a, b)
    reviews = 0

    def decide(action: str, review: str, a: str, b: str) -> None:
        decision = {
            "decision_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{review}:{action}")),
            "action": action,
            "review_id": review,
            "person_id": a,
            "candidate_person_id": b,
        }
        events.append((Named(persons=(a, b)), decision))
        step(None, resolver.state)

    for record in records:
        while due and due[0][0] <= len(events):
            _, action, review, a, b = due.popleft()
            decide(action, review, a, b)
            if action == "LINK" and reviews % 2:
                due.append((len(events) + lag, "SEPARATE", review, a, b))
        events.append(record)
        resolution = resolver.resolve(*record)
        step(resolution, resolver.state)
        if resolution.near is not None and resolution.person_id is not None:
            reviews += 1
            action = "LINK" if reviews % 2 else "SEPARATE"
            review = f"R{len(events) - 1}"
            due.append(
                (len(events) + lag, action, review, resolution.person_id, resolution.near.person_id)
            )
    return events


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("epoch", [1, 40, 5000])
def test_operators_decisions_in_the_decider_decide_as_over_one_resolver(
    synth_records: dict[str, list[Record]], shards: int, epoch: int
) -> None:
    """Operators' decisions (a :class:`Named` item naming the review's two persons) on
    the possible matches of synth's records: LINK merges two persons, SEPARATE keeps them
    apart or splits a person back, a stale one is refused. On N shards every record's
    resolution, every decision's outcome (changes, persons touched, source ids) and the
    state are those over one resolver."""
    events = _with_decisions(synth_records["heavy"], lag=30)
    items = _decided_items(events)

    step, expected = _decision_steps(events)
    resolver = _one_resolver_steps(items, step)

    sharded = ShardedResolver(IdentifierHasher(SECRET), shards, review_floor=FLOOR, epoch=epoch)
    sharded_step, got = _decision_steps(events)
    resolutions = list(
        sharded.resolve(items, each=lambda _at, done, state: sharded_step(done, state))
    )
    assert resolutions == [e for e in expected if isinstance(e, Resolution)]
    for at, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"event {at}"
    what = [getattr(e, "what", None) for e in expected]
    assert what.count("linked") >= 3
    assert what.count("split") >= 2
    assert what.count("separated") >= 3
    assert _comparable(sharded.state()) == _comparable(resolver.state)
    assert sharded.decider.state.apart == resolver.state.apart
    # every shard's replica of the merges, splits taken back
    for shard in sharded.shards.shards:
        assert shard.state.merged_into == resolver.state.merged_into


def test_a_shards_changelog_entries_rebuild_its_state_after_operators_decisions(
    synth_records: dict[str, list[Record]],
) -> None:
    """A split takes a merge back (an entry of None) and persons come back: replaying
    each shard's entries rebuilds its state, its replica of the merges included."""
    events = _with_decisions(synth_records["heavy"], lag=30)
    step, seen = _decision_steps(events)
    shards = _logged_run(_decided_items(events), step, 50)
    assert any(getattr(s, "what", None) == "split" for s in seen)
    for shard in shards:
        assert any(v is None for kind, _k, v in shard.entries if kind == "merge")
    _assert_rebuilt_from_entries(shards)

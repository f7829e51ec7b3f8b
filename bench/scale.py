"""The resolver at scale: peak RSS, store size, records/s and restart time, at several sizes.

    python -m bench.scale --sizes 100000,500000 [--shards 4] [--seed 1]
    python -m bench.scale --sizes 500000,1000000 --kinds disk,disk-prefetch

Each size runs in a process of its own (its peak RSS is its own), in three steps:

1. resolve: an identity-only generator (:func:`generate`; synth is too slow at millions of
   records) feeds the resolver directly (``Resolver.prepare`` and ``decide``, an epoch of
   :data:`EPOCH` records at a time), no Kafka: records/s and peak RSS; state kind
   ``disk-prefetch`` is ``disk`` with each epoch's store reads prefetched in multi-gets
   (``DiskState.prefetch``), so ``--kinds disk,disk-prefetch`` prints both side by side;
2. store: every person's sealed snapshot and every source id are written to RocksDB
   (rocksdict), as the worker's two tables hold them: the store's size on disk;
3. restart, in a fresh process: the state is rebuilt from that store as the worker does at
   start (open, decode, ``IdentityState.restore``): seconds and that process's peak RSS.

The baseline is the smallest size in the same run: each larger size prints its ratios to
it (the issue's target: RSS at 5M records within 1.2x of RSS at 500k). The projection
extrapolates the per-record slope between the two largest sizes to a state-wide backfill
(1 billion records, 40 million people) over N shards.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import random
import resource
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._harness import print_table

# A state-wide decade: more than a billion source records of about forty million people.
BACKFILL_RECORDS = 1_000_000_000
BACKFILL_PEOPLE = 40_000_000
RECORDS_PER_PERSON = BACKFILL_RECORDS / BACKFILL_PEOPLE  # 25
# the worker's batch (C2C_STREAMS_BATCH_SIZE's default): the disk state commits after each
BATCH = 2_000
# records prepared at a time (and, for disk-prefetch, whose store reads are read together)
EPOCH = 128
DISK_KINDS = ("disk", "disk-prefetch")
_SECRET = b"bench-scale-identity-secret-not-for-production-use"

_VOWELS = "aeiou"
_CONSONANTS = "bcdfghjklmnprstvwz"


def _names(rng: random.Random, count: int, syllables: tuple[int, int]) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        parts = [
            rng.choice(_CONSONANTS) + rng.choice(_VOWELS) + rng.choice(("", "", "n", "r", "l"))
            for _ in range(rng.randint(*syllables))
        ]
        names.add("".join(parts).capitalize())
    return sorted(names)


def _zipf_weights(count: int, exponent: float) -> list[float]:
    total, cumulative = 0.0, []
    for rank in range(1, count + 1):
        total += 1.0 / rank**exponent
        cumulative.append(total)
    return cumulative


def _typo(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text))
    return text[:at] + rng.choice(string.ascii_lowercase) + text[at + 1 :]


def _digit_typo(rng: random.Random, number: str) -> str:
    at = rng.randrange(len(number))
    return number[:at] + str((int(number[at]) + rng.randint(1, 9)) % 10) + number[at + 1 :]


def _transposed(rng: random.Random, number: str) -> str:
    at = rng.randrange(len(number) - 1)
    return number[:at] + number[at + 1] + number[at] + number[at + 2 :]


def generate(records: int, seed: int = 1, wave: int = 500) -> Iterator[tuple[str, dict[str, Any]]]:
    """``records`` provider-like identity records ``(provider, person fields)``, of about
    ``records / 25`` people (25 records a person, as 1 billion of 40 million): K-12
    enrolments (SSID, full name, birth date), college terms (SSN for most, birth date),
    quarterly wages (SSN as the source id, no birth date; the same identity each quarter).
    Noise as providers send it: name typos, initials, married surnames, SSN typos and
    transpositions, day and month swapped, missing birth dates and SSNs. People arrive in
    waves of ``wave`` (500) whose records interleave, so a person's records are spread
    over about ``25 * wave`` records: a backfill in time order spreads them far wider (a
    person's next record some millions of records later)."""
    rng = random.Random(seed)
    firsts = _names(rng, 4_000, (2, 3))
    lasts = _names(rng, 60_000, (2, 4))
    first_weights = _zipf_weights(len(firsts), 0.9)
    last_weights = _zipf_weights(len(lasts), 0.8)
    emitted = 0
    person = 0
    while emitted < records:
        pending: list[tuple[str, dict[str, Any]]] = []
        for _ in range(wave):
            person += 1
            pending.extend(_person_records(rng, person, firsts, lasts, first_weights, last_weights))
        rng.shuffle(pending)
        yield from pending[: records - emitted]
        emitted += min(len(pending), records - emitted)


def _person_records(
    rng: random.Random,
    number: int,
    firsts: list[str],
    lasts: list[str],
    first_weights: list[float],
    last_weights: list[float],
) -> list[tuple[str, dict[str, Any]]]:
    first = rng.choices(firsts, cum_weights=first_weights)[0]
    last = rng.choices(lasts, cum_weights=last_weights)[0]
    sex = rng.choice("FM")
    born = datetime.date(1990, 1, 1) + datetime.timedelta(days=rng.randrange(20 * 365))
    # unique numbers: an affine permutation of the person's number
    ssn = str(100_000_000 + (number * 104_729) % 800_000_000)
    ssid = str(1_000_000_000 + (number * 7_919) % 8_000_000_000)
    zip_code = f"9{rng.randrange(6000):04d}"
    has_ssn = rng.random() < 0.9
    married = sex == "F" and rng.random() < 0.1
    later_last = rng.choices(lasts, cum_weights=last_weights)[0] if married else last
    out: list[tuple[str, dict[str, Any]]] = []

    def noisy_name(name: str) -> str:
        roll = rng.random()
        if roll < 0.03:
            return _typo(rng, name.lower()).capitalize()
        return name

    k12_id = f"K{number}"
    for _ in range(rng.randint(4, 12)):  # enrolments and assessments
        date = born
        roll = rng.random()
        if roll < 0.01 and born.day <= 12:
            date = born.replace(month=born.day, day=born.month)
        out.append(
            (
                "k12",
                {
                    "source_person_id": k12_id,
                    "ssid": _digit_typo(rng, ssid) if rng.random() < 0.005 else ssid,
                    "first_name": noisy_name(first),
                    "last_name": noisy_name(last),
                    "birth_date": None if rng.random() < 0.01 else date,
                    "sex": sex,
                    "zip": zip_code,
                },
            )
        )
    if rng.random() < 0.6:  # college terms
        college_id = f"C{number}"
        for _ in range(rng.randint(1, 6)):
            given = ssn if has_ssn and rng.random() < 0.8 else None
            if given and rng.random() < 0.01:
                given = _transposed(rng, given) if rng.random() < 0.5 else _digit_typo(rng, given)
            out.append(
                (
                    "college",
                    {
                        "source_person_id": college_id,
                        "ssn": given,
                        "first_name": first[0] if rng.random() < 0.02 else noisy_name(first),
                        "last_name": noisy_name(later_last if rng.random() < 0.5 else last),
                        "birth_date": born,
                        "sex": sex,
                        "zip": zip_code,
                    },
                )
            )
    if has_ssn:  # quarterly wages, filed by SSN, no birth date
        wage_last = later_last
        wage_first = first if rng.random() < 0.85 else first[0]
        for _ in range(rng.randint(4, 24)):
            out.append(
                (
                    "edd",
                    {
                        "source_person_id": ssn,
                        "ssn": ssn,
                        "first_name": wage_first,
                        "last_name": wage_last,
                    },
                )
            )
    return out


def _rss_mb() -> float:
    # ru_maxrss is in kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    """This process's resident memory now (Linux: /proc; 0 elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")), 0)
    return int(kb) / 1024


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024**2


def resolve_and_store(
    records: int,
    seed: int,
    store: Path,
    kind: str,
    cache_mb: float,
    hash_cache: int,
    entry_bytes: int | None = None,
    epoch: int = EPOCH,
) -> dict[str, Any]:
    """Steps 1 and 2 (this process): resolve ``records`` generated records with the state
    in memory (``kind`` "memory"; then written to RocksDB as the worker's tables hold it;
    the hasher's cache as the worker's) or on disk (``kind`` "disk", or "disk-prefetch":
    each ``epoch`` of records prefetched; streams/identity/store.py, ``cache_mb`` of values
    a map, each entry counted as ``entry_bytes`` more than its pickle (None: the store's
    default), ``hash_cache`` hashed values; committed every :data:`BATCH` records, as the
    worker commits each batch)."""
    from streams.identity.resolver import IdentifierHasher, Resolver
    from streams.identity.store import ENTRY_BYTES, open_state

    disk = None
    if kind in DISK_KINDS:
        per_entry = ENTRY_BYTES if entry_bytes is None else entry_bytes
        disk = open_state(store / "state", int(cache_mb * 1024**2), entry_bytes=per_entry)
    prefetch = disk.prefetch if disk is not None and kind == "disk-prefetch" else None
    hasher = IdentifierHasher(_SECRET, cache_size=hash_cache) if disk else IdentifierHasher(_SECRET)
    resolver = Resolver(hasher, state=disk.state if disk else None)
    started, cpu = time.perf_counter(), time.process_time()
    reviewed = 0
    every = max(records // 10, BATCH)
    stream = generate(records, seed)
    at, last_cpu = 0, 0.0
    while pending := list(itertools.islice(stream, epoch)):
        # (resolve() is decide(prepare(probe=False)): the same work, an epoch at a time)
        prepared = [resolver.prepare(provider, person, probe=False) for provider, person in pending]
        if prefetch is not None:
            prepared = prefetch(prepared)
        for record in prepared:
            at += 1
            if resolver.decide(record).person_id is None:
                reviewed += 1
            if disk is not None and at % BATCH == 0:
                disk.commit()
            if at % every == 0:  # RSS as records grow (stderr: the parent reads stdout)
                cpu_s = time.process_time() - cpu
                wall = time.perf_counter() - started
                print(
                    json.dumps(
                        {
                            "records": at,
                            "rss_mb": _rss_now_mb(),
                            "peak_mb": _rss_mb(),
                            "cpu_s": round(cpu_s, 1),
                            "interval_cpu_rate": round(every / (cpu_s - last_cpu)),
                            **(_store_counts(disk, at, wall) if disk else {}),
                        }
                    ),
                    file=sys.stderr,
                    flush=True,
                )
                last_cpu = cpu_s
    if disk is not None:
        disk.flush()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    rss = _rss_mb()
    counts = {} if disk is None else _store_counts(disk, records, seconds)
    if disk is not None:
        persons, merged = len(disk.state.profiles), len(disk.state.merged_into)
        disk.close()
    else:
        persons, merged = len(resolver.state.profiles), len(resolver.state.merged_into)
        _write_tables(resolver.state, store)
    return {
        "records": records,
        "store": kind,
        "seconds": seconds,
        "rate": records / seconds,
        # on a shared machine the wall-clock rate follows the load; the CPU-second one less
        "cpu_rate": records / cpu,
        "rss_mb": rss,
        "persons": persons,
        "merged": merged,
        "reviewed": reviewed,
        "store_mb": _dir_mb(store),
        **counts,
    }


def _store_counts(disk: Any, records: int, seconds: float) -> dict[str, Any]:
    """The disk state's reads so far: single reads and prefetched keys a record, and the
    share of ``seconds`` (wall) spent reading (RocksDB gets and unpickling); each map's."""
    tables = disk.tables.values()
    return {
        "reads_per_record": round(sum(t.reads for t in tables) / records, 2),
        "prefetched_per_record": round(sum(t.prefetched for t in tables) / records, 2),
        "read_share": round(sum(t.read_s for t in tables) / seconds, 3),
        "by_map": {
            name: [
                round(t.reads / records, 2),
                round(t.prefetched / records, 2),
                round(t.read_s, 1),
            ]
            for name, t in disk.tables.items()
        },
    }


def _write_tables(state: Any, store: Path) -> None:
    """The worker's two tables (sealed person snapshots, source ids) in RocksDB."""
    from rocksdict import Rdict

    from streams.identity.sealing import Sealer
    from streams.identity.snapshots import encode_snapshot
    from streams.tables import source_key

    sealer = Sealer({1: _SECRET}, 1)
    persons = Rdict(str(store / "persons"))
    for person_id in [*state.profiles, *state.merged_into]:
        persons[person_id] = sealer.seal(person_id, encode_snapshot(state.snapshot(person_id)))
    persons.close()
    sources = Rdict(str(store / "sources"))
    for (provider, hashed), person_id in state.sources.items():
        sources[source_key(provider, hashed)] = person_id
    sources.close()


def restart(store: Path, kind: str, cache_mb: float) -> dict[str, Any]:
    """Step 3 (a fresh process): what a restarted worker does before it resolves again. In
    memory: rebuild the state from the tables (streams.app: open, decode each person,
    IdentityState.restore). On disk: open the store and resolve one record."""
    from rocksdict import Rdict

    from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
    from streams.identity.sealing import Sealer
    from streams.identity.snapshots import decode_snapshot
    from streams.identity.store import open_state
    from streams.tables import parse_source_key

    provider, person = next(generate(1, seed=999))
    started = time.perf_counter()
    if kind in DISK_KINDS:
        disk = open_state(store / "state", int(cache_mb * 1024**2))
        Resolver(IdentifierHasher(_SECRET), state=disk.state).resolve(provider, person)
        seconds = time.perf_counter() - started
        disk.db.close()
        return {"restart_s": seconds, "restart_rss_mb": _rss_mb()}
    sealer = Sealer({1: _SECRET}, 1)
    persons_db = Rdict(str(store / "persons"))
    persons = [
        (str(key), decode_snapshot(sealer.open(str(key), value)))
        for key, value in persons_db.items()
    ]
    persons_db.close()
    sources_db = Rdict(str(store / "sources"))
    sources = []
    for key, person_id in sources_db.items():
        parsed = parse_source_key(str(key))
        sources.append(((parsed.provider, parsed.source_id), str(person_id)))
    sources_db.close()
    IdentityState.restore(persons, sources)
    seconds = time.perf_counter() - started
    return {"restart_s": seconds, "restart_rss_mb": _rss_mb()}


def _child(args: list[str]) -> dict[str, Any]:
    # (its progress lines on stderr go to this process's)
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", *args], check=True, stdout=subprocess.PIPE, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    records: int,
    seed: int,
    kind: str,
    cache_mb: float,
    hash_cache: int,
    entry_bytes: int | None = None,
    epoch: int = EPOCH,
) -> dict[str, Any]:
    """One size and kind of state, its steps in child processes; the store is removed
    afterwards."""
    store = Path(tempfile.mkdtemp(prefix="c2c-scale-"))
    common = ["--store", str(store), "--kind", kind, "--cache-mb", str(cache_mb)]
    common += ["--hash-cache", str(hash_cache)]
    counted = [] if entry_bytes is None else ["--entry-bytes", str(entry_bytes)]
    counted += ["--epoch", str(epoch)]
    try:
        result = _child(
            [
                "--child",
                "resolve",
                "--records",
                str(records),
                "--seed",
                str(seed),
                *common,
                *counted,
            ]
        )
        result.update(_child(["--child", "restart", *common]))
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return result


def projection(small: dict[str, Any], large: dict[str, Any], shards: int) -> list[list[str]]:
    """A state-wide backfill (:data:`BACKFILL_RECORDS`) on ``shards`` shards, from the
    per-record slope between two sizes; throughput at the larger size's rate a shard,
    scaled perfectly (an upper bound: the design's sequential decider is not counted)."""
    span = large["records"] - small["records"]
    rows = []
    per_shard = BACKFILL_RECORDS / shards
    for what, key, unit in (
        ("peak RSS a shard", "rss_mb", "GB"),
        ("store on disk a shard", "store_mb", "GB"),
        ("restart a shard", "restart_s", "h"),
    ):
        slope = (large[key] - small[key]) / span
        value = large[key] + slope * (per_shard - large["records"])
        shown = value / 1024 if unit == "GB" else value / 3600
        rows.append([what, f"{slope * 1e6:,.1f} per 1M records", f"{shown:,.1f} {unit}"])
    days = BACKFILL_RECORDS / (large["rate"] * shards) / 86_400
    rows.append(["backfill time", f"{large['rate']:,.0f} records/s a shard", f"{days:,.1f} days"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000", help="records, comma-separated")
    parser.add_argument(
        "--kinds",
        default="memory,disk",
        help="states to run (the first is the baseline): memory, disk, disk-prefetch",
    )
    parser.add_argument(
        "--cache-mb", type=float, default=4.0, help="disk: MB of values (pickled) cached a map"
    )
    parser.add_argument(
        "--hash-cache", type=int, default=16_384, help="disk: the hasher's cached values"
    )
    parser.add_argument(
        "--entry-bytes",
        type=int,
        help="disk: bytes a cached entry counts beyond its pickle (default: the store's "
        "ENTRY_BYTES; 0 counts the pickle alone, as before 2026-12-07)",
    )
    parser.add_argument(
        "--epoch",
        type=int,
        default=EPOCH,
        help="records prepared at a time (disk-prefetch: whose reads are prefetched together)",
    )
    parser.add_argument("--shards", type=int, default=4, help="N for the projection")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=("resolve", "restart"), help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="memory", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "resolve":
        result = resolve_and_store(
            args.records,
            args.seed,
            args.store,
            args.kind,
            args.cache_mb,
            args.hash_cache,
            args.entry_bytes,
            args.epoch,
        )
        print(json.dumps(result))
        return
    if args.child == "restart":
        print(json.dumps(restart(args.store, args.kind, args.cache_mb)))
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    kinds = args.kinds.split(",")
    if len(sizes) < 2:
        parser.error("--sizes needs two sizes or more (the smallest is the baseline)")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for size in sizes:
        for kind in kinds:  # interleaved, so that the machine's load falls on both
            results[kind].append(
                measure(
                    size,
                    args.seed,
                    kind,
                    args.cache_mb,
                    args.hash_cache,
                    args.entry_bytes,
                    args.epoch,
                )
            )
            print(f"measured {size:,} records, state in {kind}", file=sys.stderr)
    rows = []
    for at, size in enumerate(sizes):
        for kind in kinds:
            r, base = results[kind][at], results[kinds[0]][at]
            rows.append(
                [
                    f"{size:,}",
                    kind,
                    f"{r['persons']:,}",
                    f"{r['rate']:,.0f}",
                    f"{r['rate'] / base['rate']:.2f}x",
                    f"{r['cpu_rate']:,.0f}",
                    f"{r['rss_mb']:,.0f}",
                    f"{r['rss_mb'] / results[kind][0]['rss_mb']:.2f}x",
                    f"{r['store_mb']:,.1f}",
                    f"{r['restart_s']:.2f}",
                    f"{r['restart_rss_mb']:,.0f}",
                    f"{r['read_share']:.0%}" if "read_share" in r else "-",
                    f"{r['reads_per_record']:.2f}" if "reads_per_record" in r else "-",
                    f"{r['prefetched_per_record']:.2f}" if "prefetched_per_record" in r else "-",
                ]
            )
    print(
        f"one shard; baseline: state in {kinds[0]} at the same size (rate) and the smallest "
        f"size (RSS); disk: cache {args.cache_mb:g} MB of values a map (an entry counted "
        f"{'the default' if args.entry_bytes is None else args.entry_bytes} bytes over its "
        f"pickle), commits every "
        f"{BATCH:,} records, hasher cache "
        f"{args.hash_cache:,} (memory: the worker's, 262,144); records prepared "
        f"{args.epoch:,} at a time (disk-prefetch: their reads prefetched together); time in "
        "store reads: wall seconds in RocksDB gets and unpickling over the resolving wall"
    )
    print_table(
        [
            "records",
            "state",
            "persons",
            "records/s",
            "rate vs base",
            "records/CPU-s",
            "peak RSS MB",
            "RSS vs smallest",
            "store MB",
            "restart s",
            "restart RSS MB",
            "time in store reads",
            "single reads/record",
            "prefetched/record",
        ],
        rows,
    )
    for kind in kinds:
        print(
            f"\nprojection, state in {kind}: {BACKFILL_RECORDS:,} records of "
            f"{BACKFILL_PEOPLE:,} people on {args.shards} shards (linear in records from the "
            "two largest sizes)"
        )
        print_table(
            ["what", "slope", "projected"],
            projection(results[kind][-2], results[kind][-1], args.shards),
        )


if __name__ == "__main__":
    main()

"""A disk store rebuilt from the worker's tables (a new machine, a key rotation): the whole
state restored in memory, then copied into the store (the worker's way before 1c3ba9c, the
baseline), against one person at a time in id order (now: streams/durable.py's
``in_id_order``, ``IdentityState.load``).

    python -m bench.rebuild [--sizes 100000,500000] [--cache-mb 4] [--seed 1]

For each size, bench.scale's generator is resolved in memory and the two tables written to
RocksDB as the worker holds them (sealed person snapshots, source ids); then each way
rebuilds a store from them in a fresh process of its own (its peak RSS is its own): wall
seconds, CPU seconds, peak RSS. Both stores are then compared map by map (the same state).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._harness import print_table
from bench.scale import _SECRET, _rss_mb, resolve_and_store

_WAYS = ("in memory, then copied", "one person at a time")


def _tables(store: Path) -> tuple[Iterator[tuple[str, bytes]], Iterator[Any]]:
    """The tables' persons (id, sealed value) and source ids ((provider, hash), id), read
    one at a time."""
    from rocksdict import Rdict

    from streams.tables import parse_source_key

    def persons() -> Iterator[tuple[str, bytes]]:
        db = Rdict(str(store / "persons"))
        try:
            for key, value in db.items():
                yield str(key), value
        finally:
            db.close()

    def sources() -> Iterator[tuple[tuple[str, str], str]]:
        db = Rdict(str(store / "sources"))
        try:
            for key, person_id in db.items():
                parsed = parse_source_key(str(key))
                yield (parsed.provider, parsed.source_id), str(person_id)
        finally:
            db.close()

    return persons(), sources()


def rebuild(store: Path, way: str, cache_mb: float) -> dict[str, Any]:
    """One way of rebuilding a disk store at ``store / way`` from the tables (this
    process)."""
    from streams.durable import in_id_order
    from streams.identity.resolver import IdentityState
    from streams.identity.sealing import Sealer
    from streams.identity.snapshots import decode_snapshot
    from streams.identity.store import STATE_MAPS, open_state

    sealer = Sealer({1: _SECRET}, 1)
    target = store / f"state-{_WAYS.index(way)}"
    started, cpu = time.perf_counter(), time.process_time()
    disk = open_state(target, int(cache_mb * 1024**2))
    persons, sources = _tables(store)
    if way == _WAYS[0]:
        rebuilt = IdentityState.restore(
            [(key, decode_snapshot(sealer.open(key, value))) for key, value in persons],
            list(sources),
        )
        for name in STATE_MAPS:
            into = getattr(disk.state, name)
            for key, value in getattr(rebuilt, name).items():
                into[key] = value
        disk.state.next_number = rebuilt.next_number
    else:
        in_order = in_id_order(persons, store / "sorting")
        disk.state.load(
            ((key, decode_snapshot(sealer.open(key, value))) for key, value in in_order), sources
        )
    disk.flush()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    persons_count = sum(1 for _ in disk.state.profiles)
    disk.close()
    return {"seconds": seconds, "cpu_s": cpu, "rss_mb": _rss_mb(), "persons": persons_count}


def _same(store: Path) -> bool:
    """Whether the two ways' stores hold the same state: every map's keys and values, and
    the next person number."""
    from streams.identity.store import open_state

    maps = []
    for way in range(len(_WAYS)):
        disk = open_state(store / f"state-{way}", 0)
        maps.append({name: dict(table.items()) for name, table in disk.tables.items()})
        maps[-1]["next_number"] = {0: disk.state.next_number}
        disk.close()
    return maps[0] == maps[1]


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.rebuild", *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000", help="comma-separated records")
    parser.add_argument("--cache-mb", type=float, default=4.0, help="the store's cache a map")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=("tables", *_WAYS), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "tables":
        made = resolve_and_store(args.records, args.seed, args.store, "memory", 0, 262_144)
        print(json.dumps({"persons": made["persons"] + made["merged"]}))
        return
    if args.child is not None:
        print(json.dumps(rebuild(args.store, args.child, args.cache_mb)))
        return
    rows = []
    for records in (int(s) for s in args.sizes.split(",")):
        store = Path(tempfile.mkdtemp(prefix="c2c-rebuild-"))
        try:
            common = ["--store", str(store), "--cache-mb", str(args.cache_mb)]
            made = _child(["--child", "tables", "--records", str(records), *common])
            results = {way: _child(["--child", way, *common]) for way in _WAYS}
            same = _same(store)
        finally:
            shutil.rmtree(store, ignore_errors=True)
        base = results[_WAYS[0]]
        for way, result in results.items():
            rows.append(
                [
                    f"{records:,}",
                    f"{made['persons']:,}",
                    way,
                    f"{result['seconds']:.1f}",
                    f"{result['cpu_s']:.1f}",
                    f"{result['cpu_s'] / base['cpu_s']:.2f}x",
                    f"{result['rss_mb']:.0f}",
                    f"{result['rss_mb'] / base['rss_mb']:.2f}x",
                    "yes" if same else "NO",
                ]
            )
    print(f"a disk store rebuilt from the tables, cache {args.cache_mb:g} MB a map")
    print_table(
        [
            "records",
            "persons",
            "rebuilt",
            "wall s",
            "CPU s",
            "CPU vs copy",
            "peak RSS MB",
            "RSS vs copy",
            "same state",
        ],
        rows,
    )


if __name__ == "__main__":
    main()

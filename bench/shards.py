"""Identity resolution on N shards (issue #22): where the one-shard resolver's CPU goes, and
the throughput of the sharded core against it.

    python -m bench.shards --breakdown [--records 50000] [--seed 1]

``--breakdown`` times the one-shard ``Resolver`` phase by phase over the fast identity
generator (bench/scale.py): PREPARE (``Resolver.identity``: normalising and hashing, and the
source-id hash), probe keys, candidate lookup (blocks, roots, de-duplication), scoring the
candidates, and the rest (the decision: ranking, merge conflicts and state writes). Each
phase is a wrapper around the resolver's own function on one instance; the run without
wrappers is beside it, so the wrappers' cost shows. Amdahl's bound for N shards follows
with the decision kept sequential.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

from bench._harness import print_table
from bench.scale import _SECRET, generate

Record = tuple[str, dict[str, Any]]


def _timed(func: Callable[..., Any], totals: dict[str, float], name: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - started

    return wrapper


def breakdown(records: list[Record]) -> dict[str, float]:
    """Seconds per phase of one ``Resolver`` over ``records`` (see the module's doc)."""
    import streams.identity.resolver as module
    from streams.identity.resolver import IdentifierHasher, Resolver

    totals = dict.fromkeys(
        ("total", "identity", "source_id", "matches", "probe_keys", "score_candidates"), 0.0
    )
    totals["score_decision"] = 0.0
    resolver = Resolver(IdentifierHasher(_SECRET))
    resolver.identity = _timed(resolver.identity, totals, "identity")  # type: ignore[method-assign]
    resolver.hasher.source_id = _timed(  # type: ignore[method-assign]
        resolver.hasher.source_id, totals, "source_id"
    )
    in_matches = [False]
    matches = resolver._matches
    score = resolver.score

    def timed_matches(*args: Any) -> Any:
        in_matches[0] = True
        started = time.perf_counter()
        try:
            return matches(*args)
        finally:
            totals["matches"] += time.perf_counter() - started
            in_matches[0] = False

    def timed_score(identity: Any, profile: Any) -> Any:
        started = time.perf_counter()
        try:
            return score(identity, profile)
        finally:
            phase = "score_candidates" if in_matches[0] else "score_decision"
            totals[phase] += time.perf_counter() - started

    resolver._matches = timed_matches  # type: ignore[method-assign]
    resolver.score = timed_score  # type: ignore[method-assign]
    original_probe = module.probe_keys
    module.probe_keys = _timed(original_probe, totals, "probe_keys")  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        for provider, person in records:
            resolver.resolve(provider, person)
        totals["total"] = time.perf_counter() - started
    finally:
        module.probe_keys = original_probe  # type: ignore[assignment]
    return totals


def plain_seconds(records: list[Record]) -> float:
    """Seconds of one unwrapped ``Resolver`` over ``records``."""
    from streams.identity.resolver import IdentifierHasher, Resolver

    resolver = Resolver(IdentifierHasher(_SECRET))
    started = time.perf_counter()
    for provider, person in records:
        resolver.resolve(provider, person)
    return time.perf_counter() - started


def amdahl(sequential: float, shards: int) -> float:
    """The most speedup N shards give when ``sequential`` (a share) stays on one core."""
    return 1.0 / (sequential + (1.0 - sequential) / shards)


def print_breakdown(records: list[Record]) -> None:
    plain = plain_seconds(records)
    t = breakdown(records)
    total = t["total"]
    lookup = t["matches"] - t["probe_keys"] - t["score_candidates"]
    rest = total - t["identity"] - t["source_id"] - t["matches"]
    phases = [
        ("PREPARE: Resolver.identity (normalise, HMAC ids and masks)", t["identity"], True),
        ("PREPARE: source-id hash", t["source_id"], True),
        ("PREPARE: probe keys", t["probe_keys"], True),
        ("PROBE: candidate lookup (blocks, roots, dedup)", lookup, True),
        ("SCORE: scoring candidates", t["score_candidates"], True),
        ("DECIDE: scoring merge conflicts", t["score_decision"], False),
        ("DECIDE: rule, ranking, state writes", rest - t["score_decision"], False),
    ]
    rows = [
        [name, f"{seconds * 1e6 / len(records):.1f}", f"{100 * seconds / total:.1f} %", part]
        for name, seconds, parallel in phases
        for part in ["parallel" if parallel else "sequential"]
    ]
    rows.append(["total (wrapped)", f"{total * 1e6 / len(records):.1f}", "100 %", ""])
    rows.append(["total (no wrappers)", f"{plain * 1e6 / len(records):.1f}", "", ""])
    print_table(["phase", "us / record", "share", "on N shards"], rows)
    sequential = sum(s for _, s, parallel in phases if not parallel) / total
    print(
        f"\nsequential share {100 * sequential:.1f} %: Amdahl bound "
        f"N=2 {amdahl(sequential, 2):.2f}x, N=4 {amdahl(sequential, 4):.2f}x"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args(argv)
    records = list(generate(args.records, args.seed))
    if args.breakdown:
        print_breakdown(records)


if __name__ == "__main__":
    main()

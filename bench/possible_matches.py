"""What holding possible matches for review costs the resolver, and how many it holds.

``python -m bench.possible_matches [--people N] [--seed S] [--repeats R]`` resolves a
synth population in one process (the resolver alone, in event order, as `c2c identity
resolve` does) with no review floor (the baseline: what runs by default) and with each
floor of ``--floors`` (C2C_IDENTITY_REVIEW_MIN_WEIGHT), interleaved, and prints per floor:
records/s (median of the repeats), the ratio to the baseline, the possible matches held,
and whether every record got the same person id as the baseline (a floor must change
nothing but the reviews).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import compare_rates, print_table
from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.resolver import IdentifierHasher, Resolver


def _resolve(records: list[tuple[str, Any]], floor: float | None) -> tuple[list[str | None], int]:
    resolver = Resolver(IdentifierHasher(b"bench-possible-matches"), review_floor=floor)
    ids: list[str | None] = []
    held = 0
    for provider, person in records:
        resolution = resolver.resolve(provider, person)
        ids.append(resolution.person_id)
        held += resolution.near is not None
    return ids, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--floors", default="10,14,17", help="floors in bits, comma-separated")
    args = parser.parse_args()
    floors = [float(f) for f in args.floors.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        synthesize(SynthConfig(people=args.people, seed=args.seed), NoiseConfig(), Path(folder))
        records = [
            (str(raw.get("provider")), raw["person"])
            for _source, raw in mapped_events(Path(folder))
            if raw.get("person")
        ]
    baseline, _ = _resolve(records, None)
    held = {floor: _resolve(records, floor) for floor in floors}
    runs = {"none": lambda: len(_resolve(records, None)[0])}
    for floor in floors:
        runs[f"{floor:g}"] = lambda floor=floor: len(_resolve(records, floor)[0])  # type: ignore[misc]
    rates = compare_rates(runs, repeats=args.repeats)
    rows = [["none (baseline)", f"{rates['none']:,.0f}", "1.00", "0", "-"]]
    for floor in floors:
        ids, count = held[floor]
        rows.append(
            [
                f"{floor:g} bits",
                f"{rates[f'{floor:g}']:,.0f}",
                f"{rates[f'{floor:g}'] / rates['none']:.2f}",
                f"{count:,} ({count / len(records):.2%})",
                "yes" if ids == baseline else "NO",
            ]
        )
    print(f"{len(records):,} records of {args.people:,} synth people (seed {args.seed})")
    print_table(["review floor", "records/s", "ratio", "possible matches held", "same ids"], rows)


if __name__ == "__main__":
    main()

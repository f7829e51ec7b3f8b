"""How much the grouping depends on the intake's order: synth's records resolved in
event-time order, and again in perturbed orders (what a forwarder started again, or a raw
partition behind, gives the resolver), per noise profile; each perturbed grouping is
compared with the event-time one (streams/identity/evaluation.grouping_difference).

    .venv/bin/python -m bench.intake_order [--people 400] [--seeds 1,2] [--profiles a,b]
        [--baseline DIR]

Orders: ``shuffleW``, the records shuffled within consecutive windows of W (a batch that
cuts the raw partitions at other times); ``late P``, provider P's records reaching the
resolver 2,000 records late (a partition behind). Printed per profile and order:
``regrouped/moved``, every event of a person that differs (one event moved between two
persons of 20 counts 41) and the events that moved. ``--baseline DIR`` runs the same
measurement on another checkout's resolver (a child process with DIR first on its path),
side by side. Resolution only (no Kafka), one process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Event = tuple[tuple[str, str], dict[str, Any]]
ORDERS: dict[str, Callable[[list[Event], random.Random], list[Event]]] = {}
LATE_BY = 2_000


def _shuffled(window: int) -> Callable[[list[Event], random.Random], list[Event]]:
    def order(events: list[Event], rng: random.Random) -> list[Event]:
        out: list[Event] = []
        for start in range(0, len(events), window):
            chunk = events[start : start + window]
            rng.shuffle(chunk)
            out += chunk
        return out

    return order


def late(provider: str) -> Callable[[list[Event], random.Random], list[Event]]:
    def order(events: list[Event], _rng: random.Random) -> list[Event]:
        keyed = sorted(
            range(len(events)),
            key=lambda i: (i + (LATE_BY if events[i][1]["provider"] == provider else 0), i),
        )
        return [events[i] for i in keyed]

    return order


ORDERS.update(
    {
        "shuffle500": _shuffled(500),
        "shuffle2000": _shuffled(2_000),
        "late k12": late("k12"),
        "late edd": late("edd"),
        "late ccc": late("ccc"),
    }
)


def events_of(folder: Path) -> list[Event]:
    """The records of synth ``folder``'s extracts, in event-time order, keyed by (source,
    source record id)."""
    from producers.files import mapped_events

    return [((s, e["source_record_id"]), e) for s, e in mapped_events(folder) if "person" in e]


def grouping(events: list[Event]) -> list[set[tuple[str, str]]]:
    """The records grouped by the person each ends under, resolved in the given order."""
    from c2c.settings import Settings
    from streams.identity.matching import DEFAULT_MODEL
    from streams.identity.resolver import IdentifierHasher, Resolver

    resolver = Resolver(IdentifierHasher(*Settings().identity_secrets().values()), DEFAULT_MODEL)
    assigned = {
        key: resolver.resolve(event["provider"], event["person"]).person_id for key, event in events
    }
    persons: dict[str, set[tuple[str, str]]] = {}
    for key, person_id in assigned.items():
        if person_id is not None:
            persons.setdefault(resolver.state.root(person_id), set()).add(key)
    return list(persons.values())


Grouping = list[list[str]]


def groupings(folders: dict[str, Path]) -> dict[str, dict[str, Grouping]]:
    """{folder label: {"event time" or order: the records grouped by person}} of this
    process's resolver (records as "source|record id")."""
    results: dict[str, dict[str, Grouping]] = {}
    for label, folder in folders.items():
        events = events_of(folder)
        rng = random.Random(label)
        orders = {"event time": events} | {
            name: order(list(events), rng) for name, order in ORDERS.items()
        }
        results[label] = {
            name: [sorted("|".join(key) for key in group) for group in grouping(ordered)]
            for name, ordered in orders.items()
        }
    return results


def _groupings_in(checkout: Path, folders: dict[str, Path]) -> dict[str, dict[str, Grouping]]:
    """:func:`groupings` by ``checkout``'s resolver, in a child process."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # this file run in the checkout (which may not have it), its packages first on the path
    run = (
        f"import runpy, sys; sys.argv[0] = {__file__!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    child = [
        sys.executable,
        "-c",
        run,
        "--child",
        json.dumps({k: str(v) for k, v in folders.items()}),
    ]
    done = subprocess.run(child, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the resolver of {checkout} failed:\n{done.stderr[-3000:]}")
    result: dict[str, dict[str, Grouping]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def differences(found: dict[str, dict[str, Grouping]]) -> dict[str, dict[str, tuple[int, int]]]:
    """{folder label: {order: (events regrouped, events moved)}} against the event-time order."""
    from streams.identity.evaluation import grouping_difference

    return {
        label: {
            name: (len(d.regrouped), d.moved)
            for name in ORDERS
            for d in [grouping_difference(by_order[name], by_order["event time"])]
        }
        for label, by_order in found.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--profiles", default=None, help="comma-separated (default: all)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        folders = {k: Path(v) for k, v in json.loads(args.child).items()}
        print(json.dumps(groupings(folders)))
        return

    from bench._harness import print_table
    from producers.synth import SynthConfig, synthesize
    from producers.synth.profiles import PROFILES, profile

    names = args.profiles.split(",") if args.profiles else list(PROFILES)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="intake-order-") as tmp:
        folders: dict[str, Path] = {}
        for name in names:
            for seed in seeds:
                folder = Path(tmp) / f"{name}-{seed}"
                config = SynthConfig(people=args.people, seed=seed, optout_rate=0.02)
                synthesize(config, profile(name).noise, folder)
                folders[f"{name} seed {seed}"] = folder
        runs = {"this checkout": differences(_groupings_in(Path.cwd(), folders))}
        if args.baseline is not None:
            runs[str(args.baseline)] = differences(_groupings_in(args.baseline, folders))
    print(
        f"synth {args.people} people a folder; regrouped/moved events against the "
        f"event-time order ({', '.join(ORDERS)})"
    )
    rows = []
    for label in folders:
        for run, results in runs.items():
            rows.append([label, run, *(f"{r}/{m}" for r, m in results[label].values())])
    totals = {
        run: [sum(results[f][o][i] for f in folders) for o in ORDERS for i in (0, 1)]
        for run, results in runs.items()
    }
    for run, sums in totals.items():
        rows.append(
            ["total", run, *(f"{sums[2 * i]}/{sums[2 * i + 1]}" for i in range(len(ORDERS)))]
        )
    print_table(["folder", "resolver", *ORDERS], rows)


if __name__ == "__main__":
    main()

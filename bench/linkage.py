"""Linkage quality and time: this project's incremental resolver against Splink (DuckDB
backend, a standard configuration trained without labels) on the same synthetic records,
per synth noise profile, and against the resolvers of other checkouts (``--baseline DIR``,
once per checkout).

    .venv/bin/python -m bench.linkage [--people N] [--seeds 1,2,3] [--profiles a,b]
        [--baseline DIR] [--rounds R] [--no-splink] [--thresholds 16,18,22]
        [--shards 2,4 [--epoch E]]
    .venv/bin/python -m bench.linkage --fit streams/identity/weights/v5.json --people 700 \
        --version fs-v5

Every linker sees the same records of each profile and seed (every extract of a `c2c
synth --noise-profile P` folder; identifiers in the clear for Splink, keyed hashes for
ours); all are
scored against synth's truth with the same pairwise precision, recall and F1. Beside them
the reachability bound (streams/identity/evaluation.py: the most recall, and F1, that a
resolver not linking on a name alone could reach; it is not the F1), then where the missed
and false pairs of ours are. Resolver time is CPU seconds per record in a child process
(ours and the baselines' alternate, ``--rounds`` times; medians). Splink is installed on
demand (it is not a dependency of the project): pip install splink.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench._harness import print_table
from producers.files import mapped_events
from producers.synth import SynthConfig, synthesize
from producers.synth.profiles import PROFILES, profile
from streams.identity.evaluation import LinkageBreakdown, breakdown, read_assignments
from streams.identity.matching import DEFAULT_MODEL, PRIORS, MatchModel
from streams.identity.normalize import name_key
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sharding import EPOCH_RECORDS, ShardedResolver
from streams.identity.training import fit

# The profiles the shipped weights were fitted on; the others are held out of training.
TRAINING_PROFILES = ("default", "keying", "names", "households", "realistic")
# Seeds of the training folders, one pair per profile: profiles draw the same people
# (identifiers, birth dates) for a seed, so folders of one seed would share identifiers
# between differently named people. No bench run uses these seeds.
TRAINING_SEEDS = (101, 102)

RecordKey = tuple[str, str]
Rows = list[tuple[RecordKey, str, dict[str, Any]]]
ROOT = Path(__file__).resolve().parent.parent

# Run in a child process whose first import path is a checkout: that checkout's resolver
# resolves the pickled rows; CPU seconds of the loop alone and the final ids come back.
_CHILD = """
import pickle, sys, time
sys.path.insert(0, sys.argv[1])
from streams.identity.resolver import IdentifierHasher, Resolver
with open(sys.argv[2], "rb") as handle:
    rows = pickle.load(handle)
resolver = Resolver(IdentifierHasher(b"bench-secret"))
assigned = {}
started = time.process_time()
for key, provider, person in rows:
    result = resolver.resolve(provider, person)
    if result.person_id is not None:
        assigned[key] = result.person_id
cpu = time.process_time() - started
final = {key: resolver.state.root(person) for key, person in assigned.items()}
with open(sys.argv[3], "wb") as handle:
    pickle.dump((cpu, final), handle)
"""


def records(folder: Path) -> Rows:
    """(record key, provider, person fields) of every record, in event-time order."""
    return [
        ((source, event["source_record_id"]), event["provider"], event["person"])
        for source, event in mapped_events(folder)
    ]


def ours(rows: Rows, model: MatchModel = DEFAULT_MODEL) -> dict[RecordKey, str]:
    """This checkout's resolver over ``rows``, in this process: record -> final id."""
    resolver = Resolver(IdentifierHasher(b"bench-secret"), model)
    assigned = {}
    for key, provider, person in rows:
        result = resolver.resolve(provider, person)
        if result.person_id is not None:
            assigned[key] = result.person_id
    return {key: resolver.state.root(person) for key, person in assigned.items()}


def on_shards(rows: Rows, shards: int, epoch: int) -> dict[RecordKey, str]:
    """This checkout's resolver on ``shards`` shards (in this process, ``epoch`` records an
    epoch) over ``rows``: record -> final id."""
    resolver = ShardedResolver(IdentifierHasher(b"bench-secret"), shards, epoch=epoch)
    resolutions = resolver.resolve((provider, person) for _key, provider, person in rows)
    assigned = {
        key: result.person_id
        for (key, _provider, _person), result in zip(rows, resolutions, strict=True)
        if result.person_id is not None
    }
    state = resolver.state()
    return {key: state.root(person) for key, person in assigned.items()}


def resolve_in_child(checkout: Path, rows_file: Path) -> tuple[float, dict[RecordKey, str]]:
    """(CPU seconds, record -> final id) of ``checkout``'s resolver over the pickled rows."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as out:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(checkout), str(rows_file), out.name],
            check=True,
            env=env,
        )
        with open(out.name, "rb") as handle:
            cpu, final = pickle.load(handle)
    return cpu, final


def splink(rows: Rows) -> dict[RecordKey, str]:
    import pandas as pd
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frame = pd.DataFrame(
        [
            {
                "unique_id": f"{key[0]}|{key[1]}",
                "ssn": person.get("ssn"),
                "ssid": person.get("ssid"),
                "first_name": name_key(person.get("first_name")) or None,
                "last_name": name_key(person.get("last_name")) or None,
                "birth_date": person["birth_date"].isoformat()
                if person.get("birth_date")
                else None,
                "sex": person.get("sex"),
                "zip": person.get("zip"),
            }
            for key, _provider, person in rows
        ]
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ExactMatch("ssn"),
            cl.ExactMatch("ssid"),
            cl.JaroWinklerAtThresholds("first_name"),
            cl.JaroWinklerAtThresholds("last_name"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.ExactMatch("zip"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("ssn"),
            block_on("ssid"),
            block_on("birth_date", "substr(last_name, 1, 1)"),
            block_on("last_name", "substr(first_name, 1, 1)"),
        ],
    )
    api = DuckDBAPI()
    linker = Linker(api.register(frame), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("ssn"), block_on("ssid")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("last_name"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.95
    )
    table = clusters.as_pandas_dataframe()
    return {
        tuple(uid.split("|", 1)): str(cluster)  # type: ignore[misc]
        for uid, cluster in zip(table["unique_id"], table["cluster_id"], strict=True)
    }


def fit_default_weights(out: Path, people: int, version: str) -> None:
    """Fit the default weights on every training profile's records (seeds
    :data:`TRAINING_SEEDS`, which no bench run uses) and save them to ``out``."""
    hasher = IdentifierHasher(b"bench-secret")
    resolver = Resolver(hasher)
    identities = []
    populations = []
    for number, name in enumerate(TRAINING_PROFILES):
        chosen = profile(name)
        for seed in (s + 10 * number for s in TRAINING_SEEDS):
            with tempfile.TemporaryDirectory() as folder:
                config = chosen.config(SynthConfig(people=people, seed=seed))
                synthesize(config, chosen.noise, Path(folder), workers=2)
                population = list(
                    dict.fromkeys(
                        resolver.identity(person) for _k, _p, person in records(Path(folder))
                    )
                )
                populations.append(population)
                identities.extend(population)
    # each folder is a population of its own: the prior that two records match (and so
    # the threshold) is theirs, not that of the mix
    report = fit(identities, PRIORS, version=version, populations=populations)
    out.parent.mkdir(parents=True, exist_ok=True)
    report.model.save(out)
    print(
        f"fitted {version} on {len(identities):,} identities of profiles "
        f"{', '.join(TRAINING_PROFILES)} (seeds {TRAINING_SEEDS} + 10 x profile number): "
        f"{report.pairs:,} blocked "
        f"pairs, {report.iterations} EM iterations, match share {report.match_share:.3f} -> {out}"
    )
    derivation = report.model.derivation
    print(
        f"threshold {report.model.threshold:.2f} bits: posterior match probability "
        f"{derivation['precision']} at the prior {float(derivation['prior']):.3e} "  # type: ignore[arg-type]
        f"(two records of one {people:,}-person population matching)"
    )
    rows = [
        [c, level, f"{m:.5f}", f"{u:.2e}", f"{report.model.weight(c, level):+.2f}"]
        for c, levels in report.model.probabilities.items()
        for level, (m, u) in levels.items()
    ]
    print_table(["comparison", "level", "m", "u", "weight (bits)"], rows)


def _seed_results(
    people: int,
    seed: int,
    profile_name: str,
    baselines: tuple[Path, ...],
    rounds: int,
    with_splink: bool,
    thresholds: tuple[float, ...] = (),
    shards: tuple[int, ...] = (),
    epoch: int = EPOCH_RECORDS,
) -> tuple[int, dict[str, tuple[LinkageBreakdown, float]]]:
    """(records, linker -> (breakdown, seconds: CPU per record for resolvers, wall for
    Splink)) of one profile and seed; ``thresholds``: this checkout's resolver again at
    each of these thresholds (bits), in this process; ``shards``: again on each of these
    numbers of shards, in this process (each also prints how many records' final ids
    differ from one shard's)."""
    results: dict[str, tuple[LinkageBreakdown, float]] = {}
    chosen = profile(profile_name)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        config = chosen.config(SynthConfig(people=people, seed=seed))
        synthesize(config, chosen.noise, out, workers=2)
        truth = read_assignments(out / "truth" / "records.csv")
        rows = records(out)
        fields = {key: person for key, _provider, person in rows}
        rows_file = out / "rows.pickle"
        rows_file.write_bytes(pickle.dumps(rows))
        checkouts = {"c2c resolver (this checkout)": ROOT}
        for baseline in baselines:
            checkouts[f"c2c resolver ({baseline})"] = baseline
        cpu: dict[str, list[float]] = {name: [] for name in checkouts}
        final: dict[str, dict[RecordKey, str]] = {}
        for _ in range(rounds):
            for name, checkout in checkouts.items():
                seconds, final[name] = resolve_in_child(checkout, rows_file)
                cpu[name].append(seconds / len(rows))
        for name in checkouts:
            results[name] = (breakdown(truth, final[name], fields), statistics.median(cpu[name]))
        for threshold in thresholds:
            model = dataclasses.replace(DEFAULT_MODEL, threshold=threshold)
            started = time.process_time()
            assigned = ours(rows, model)
            results[f"c2c resolver at {threshold:g} bits"] = (
                breakdown(truth, assigned, fields),
                (time.process_time() - started) / len(rows),
            )
        one = final["c2c resolver (this checkout)"]
        for n in shards:
            started = time.process_time()
            assigned = on_shards(rows, n, epoch)
            seconds = (time.process_time() - started) / len(rows)
            results[f"c2c resolver on {n} shards"] = (breakdown(truth, assigned, fields), seconds)
            differ = sum(
                1 for key in one.keys() | assigned.keys() if one.get(key) != assigned.get(key)
            )
            print(
                f"{profile_name}, seed {seed}: on {n} shards (epochs of {epoch:,}), {differ:,} of "
                f"{len(rows):,} records have another final id than on one shard"
            )
        if with_splink:
            started = time.perf_counter()
            assigned = splink(rows)
            results["splink + duckdb (batch)"] = (
                breakdown(truth, assigned, fields),
                time.perf_counter() - started,
            )
    return len(rows), results


def _causes(b: LinkageBreakdown) -> str:
    """Missed and false pairs by cause, summed over sources: "miss exact 3, ...; false ..."."""
    missed: dict[str, int] = {}
    for (_sources, cause), n in b.missed.items():
        missed[cause] = missed.get(cause, 0) + n
    false: dict[str, int] = {}
    for (_sources, cause), n in b.false.items():
        false[cause] = false.get(cause, 0) + n

    def text(counts: dict[str, int]) -> str:
        return " ".join(f"{c}={n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))

    return f"missed: {text(missed) or '-'} | false: {text(false) or '-'}"


def _median_row(name: str, runs: list[tuple[LinkageBreakdown, float]]) -> list[str]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return [
        name,
        f"{med([b.metrics.precision for b, _ in runs]):.4f}",
        f"{med([b.metrics.recall for b, _ in runs]):.4f}",
        f"{med([b.metrics.f1 for b, _ in runs]):.4f}",
        f"{med([b.recall_bound for b, _ in runs]):.4f}",
        f"{med([b.recall_bound_names for b, _ in runs]):.4f}",
        f"{sum(b.linked_beyond_bound for b, _ in runs):,}",
        f"{sum(sum(b.missed.values()) for b, _ in runs):,}",
        f"{sum(sum(b.false.values()) for b, _ in runs):,}",
        f"{med([s for _, s in runs]) * (1e6 if 'splink' not in name else 1):.1f}",
    ]


# "beyond": correct pairs linked beyond the bound, which only a name alone can link
# "name bound": the bound with a full name only its own person's dated records carry
_HEADER = [
    "linker",
    "P",
    "R",
    "F1",
    "recall bound",
    "name bound",
    "beyond",
    "missed",
    "false",
    "us/record",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--seeds", default="1", help="comma-separated synth seeds")
    parser.add_argument(
        "--profiles", default=",".join(PROFILES), help="comma-separated noise profiles"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        help="another checkout (a git worktree) whose resolver to compare with; repeatable",
    )
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per resolver")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument(
        "--thresholds",
        default="",
        help="comma-separated thresholds (bits) to run this checkout's resolver at as well",
    )
    parser.add_argument(
        "--fit",
        type=Path,
        default=None,
        metavar="FILE",
        help="fit default weights on the training profiles and write them to FILE",
    )
    parser.add_argument("--version", default="fs-v5", help="the fitted weights' version")
    parser.add_argument(
        "--shards",
        default="",
        help="comma-separated shard counts to run this checkout's resolver on as well",
    )
    parser.add_argument(
        "--epoch", type=int, default=EPOCH_RECORDS, help="records an epoch on shards"
    )
    args = parser.parse_args()
    if args.fit is not None:
        fit_default_weights(args.fit, args.people, args.version)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    ours_name = "c2c resolver (this checkout)"
    print(f"model {DEFAULT_MODEL.version} (threshold {DEFAULT_MODEL.threshold:.1f} bits)")
    print(f"trained on profiles {', '.join(TRAINING_PROFILES)}; the others are held out")
    summary: list[list[str]] = []
    for profile_name in args.profiles.split(","):
        per_linker: dict[str, list[tuple[LinkageBreakdown, float]]] = {}
        count = 0
        for seed in seeds:
            count, results = _seed_results(
                args.people,
                seed,
                profile_name,
                tuple(args.baseline or ()),
                args.rounds,
                not args.no_splink,
                tuple(float(t) for t in args.thresholds.split(",") if t),
                tuple(int(n) for n in args.shards.split(",") if n),
                args.epoch,
            )
            for name, run in results.items():
                per_linker.setdefault(name, []).append(run)
        held = "" if profile_name in TRAINING_PROFILES else " (held out of training)"
        print(
            f"\nprofile {profile_name}{held}: {args.people:,} people, {count:,} records "
            f"(last seed), seeds {args.seeds}"
        )
        print_table(_HEADER, [_median_row(name, runs) for name, runs in per_linker.items()])
        for name, runs in per_linker.items():
            for b, _ in runs:
                print(f"  {name}: {_causes(b)}")
            mark = "*" if held else ""
            summary.append([profile_name + mark, *_median_row(name, runs)])
        print(f"where {ours_name} misses and confuses pairs (share of all true pairs):")
        print_table(
            ["pairs", "sources", "cause", "count", "share"], per_linker[ours_name][0][0].table()
        )
    print(f"\nsummary (medians over seeds {args.seeds}; * held out of training)")
    print("(us/record: CPU per record of the resolver; for splink, wall seconds of the run)")
    print_table(["profile", *_HEADER], summary)
    _explain()


def _explain() -> None:
    from streams.identity.evaluation import CAUSES, FALSE_CAUSES

    causes: Mapping[str, str] = {**CAUSES, **FALSE_CAUSES}
    print("\nF1 is the issue's pairwise F1. The bound is the recall (and F1 at precision 1) of")
    print("an oracle joining a person's records on trusted identifiers or name + birth date;")
    print("what it leaves out could only be linked on a name alone. beyond: correct pairs a")
    print("linker found beyond the bound, linked on a name alone: the resolver (fs-v5) links")
    print("a record on its full name alone only when the name is rare enough that its")
    print("posterior match probability reaches the model's precision. name bound: the bound")
    print("when a full name that only its own person's dated records carry also joins")
    print("(the ceiling of a name-alone linker that never errs). Causes:")
    for cause, meaning in causes.items():
        print(f"  {cause}: {meaning}")


if __name__ == "__main__":
    main()

"""Linkage quality and time: this project's incremental resolver against Splink (DuckDB
backend, a standard configuration trained without labels) on the same synthetic records.

    .venv/bin/python -m bench.linkage [--people N] [--seed S]

Both see the same records (every extract of a `c2c synth` folder, identifiers in the clear
for Splink, keyed hashes for ours); both are scored against synth's truth with the same
pairwise precision, recall and F1. Splink is installed on demand (it is not a dependency
of the project): pip install splink.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._harness import print_table
from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.evaluation import LinkageMetrics, pairwise_metrics, read_assignments
from streams.identity.normalize import name_key
from streams.identity.resolver import IdentifierHasher, Resolver

RecordKey = tuple[str, str]


def records(folder: Path) -> list[tuple[RecordKey, str, dict[str, Any]]]:
    """(record key, provider, person fields) of every record, in event-time order."""
    return [
        ((source, event["source_record_id"]), event["provider"], event["person"])
        for source, event in mapped_events(folder)
    ]


def ours(rows: list[tuple[RecordKey, str, dict[str, Any]]]) -> dict[RecordKey, str]:
    resolver = Resolver(IdentifierHasher(b"bench-secret"))
    assigned = {}
    for key, provider, person in rows:
        result = resolver.resolve(provider, person)
        if result.person_id is not None:
            assigned[key] = result.person_id
    return {key: resolver.state.root(person) for key, person in assigned.items()}


def splink(rows: list[tuple[RecordKey, str, dict[str, Any]]]) -> dict[RecordKey, str]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        synthesize(SynthConfig(people=args.people, seed=args.seed), NoiseConfig(), out, workers=2)
        truth = read_assignments(out / "truth" / "records.csv")
        rows = records(out)
    results: list[tuple[str, LinkageMetrics, float]] = []
    for name, run in (("c2c resolver (incremental)", ours), ("splink + duckdb (batch)", splink)):
        started = time.perf_counter()
        assigned = run(rows)
        seconds = time.perf_counter() - started
        results.append((name, pairwise_metrics(truth, assigned), seconds))
    print(f"{args.people:,} synthetic people, {len(rows):,} records, default noise")
    print_table(
        ["linker", "precision", "recall", "F1", "persons found", "true", "seconds"],
        [
            [
                name,
                f"{m.precision:.4f}",
                f"{m.recall:.4f}",
                f"{m.f1:.4f}",
                f"{m.found_persons:,}",
                f"{m.true_persons:,}",
                f"{seconds:.1f}",
            ]
            for name, m, seconds in results
        ],
    )


if __name__ == "__main__":
    main()

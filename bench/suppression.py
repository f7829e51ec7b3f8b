"""What the public views hide, and what a differencing attack recovers, before and after.

    .venv/bin/python -m bench.suppression [--people N ...] [--seeds N ...] [--baseline REF]

For each synth population (its lives under their true person ids, producers.synth.linked,
horizons as synth's providers declare them): the public views' count cells that are
suppressed (NULL in the public view, a number in the outcome table), as a share of the
count cells that are numbers in the outcome tables, and how many suppressed cells the
auditor (sinks.disclosure) recovers. Once with the suppression rules of this checkout, once
with those of ``--baseline`` (a git ref, default main: its sinks/public.py, loaded from
git), both on the same outcome tables. Embedded chdb in a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from c2c.clickhouse import connect
from c2c.settings import Settings
from producers.synth import SynthConfig
from producers.synth.linked import linked_events
from producers.synth.outcomes import horizons
from producers.synth.population import simulate_person
from sinks.disclosure import audit
from sinks.horizons import declare_horizon
from sinks.migrate import migrate
from sinks.outcomes import read_outcome
from sinks.public import PUBLIC_VIEWS, public_view_statements
from sinks.rows import columns, fact_row

MIN_CELL = 11


def load_population(client: Any, config: SynthConfig) -> None:
    """Write ``config``'s lives as fact rows under their true person ids, and declare
    synth's horizons, into the migrated ``client``."""
    by_table: dict[str, list[list[Any]]] = {}
    for index in range(config.people):
        for topic, linked in linked_events(simulate_person(config, index)):
            table, row = fact_row(topic, linked)
            by_table.setdefault(table, []).append(row)
    for table, rows in by_table.items():
        client.insert(table, rows, column_names=list(columns(table)))
    for provider, through in horizons(config.end_year).items():
        declare_horizon(client, provider, through)


def _measure(client: Any, statements: list[str]) -> tuple[int, int, int]:
    """(count cells, suppressed, recovered) of the public views ``statements`` create."""
    for statement in statements:
        client.command(statement)
    public = {v.name: read_outcome(client, v.name).to_dict() for v in PUBLIC_VIEWS}
    truth = {v.name: read_outcome(client, v.outcome).to_dict() for v in PUBLIC_VIEWS}
    cells = hidden = 0
    for view in PUBLIC_VIEWS:
        shown, true = public[view.name], truth[view.name]
        counted = [view.denominator, *view.numerators]
        at = [shown["columns"].index(c) for c in counted]
        true_at = [true["columns"].index(c) for c in counted]
        for row, true_row in zip(shown["rows"], true["rows"], strict=True):
            for i, j in zip(at, true_at, strict=True):
                if isinstance(true_row[j], int):
                    cells += 1
                    hidden += row[i] is None
    return cells, hidden, len(audit(public, truth, MIN_CELL))


def _baseline(ref: str) -> Callable[[int], list[str]]:
    text = subprocess.run(
        ["git", "show", f"{ref}:sinks/public.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("baseline_public")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(text, f"{ref}:sinks/public.py", "exec"), module.__dict__)
    statements: Callable[[int], list[str]] = module.public_view_statements
    return statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args()
    baseline = _baseline(args.baseline)
    print(
        "| people | seed | count cells | suppressed now | recovered now "
        f"| suppressed ({args.baseline}) | recovered ({args.baseline}) |"
    )
    print("|---|---|---|---|---|---|---|")
    for people in args.people:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as folder:
                settings = Settings(
                    clickhouse_url=f"chdb://{Path(folder) / 'ch'}",
                    clickhouse_database="suppression",
                )
                client = connect(settings)
                try:
                    migrate(client, min_cell=MIN_CELL)
                    load_population(client, SynthConfig(people=people, seed=seed, optout_rate=0.0))
                    cells, now, found = _measure(client, public_view_statements(MIN_CELL))
                    _, before, found_before = _measure(client, baseline(MIN_CELL))
                finally:
                    client.close()
            print(
                f"| {people:,} | {seed} | {cells:,} | {now:,} ({now / cells:.0%}) | {found} "
                f"| {before:,} ({before / cells:.0%}) | {found_before} |"
            )


if __name__ == "__main__":
    main()

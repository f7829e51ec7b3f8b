"""Small helpers the benchmarks share: timing by median of interleaved repeats, and a table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["compare_rates", "print_table"]


def compare_rates(runs: Mapping[str, Callable[[], int]], repeats: int = 5) -> dict[str, float]:
    """Median items/s of each run (a callable returning how many items it did).

    Runs are interleaved round by round, so that the machine's noise (2 shared cores)
    falls on every contender alike rather than on whichever ran during a busy spell.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(str(cell).rjust(width) for cell, width in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))

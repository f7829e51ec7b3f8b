"""`c2c synth`: a synthetic California population written as providers' extracts, with the
truth (who is behind each record, and every outcome measure) beside them.

    synthesize(SynthConfig(people=10_000, seed=1), NoiseConfig(), Path("synth"))

Deterministic for a seed; streams person by person, so memory does not grow with people
(beyond the per-provider-year sort at the end and the earnings samples in the truth).
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from producers.synth.extracts import ExtractWriter, assemble, records_of
from producers.synth.noise import NoiseConfig
from producers.synth.outcomes import OutcomeTruth
from producers.synth.population import SynthConfig, simulate_person

__all__ = ["NoiseConfig", "SynthConfig", "SynthReport", "synthesize"]


@dataclass(frozen=True)
class SynthReport:
    people: int
    records: dict[str, int]
    files: dict[str, str]
    seconds: float


@dataclass
class _Part:
    truth: OutcomeTruth
    counts: dict[str, int]
    # the same measures over the people who never asked to opt out
    kept: OutcomeTruth


def _simulate_range(
    config: SynthConfig, noise: NoiseConfig, out: Path, part: int, start: int, stop: int
) -> _Part:
    """People ``start`` to ``stop`` into spill and truth files numbered ``part``."""
    truth_dir = out / "truth"
    writer = ExtractWriter(out / f".spill-{part}", truth_dir / f".records-{part}.csv")
    truth = OutcomeTruth(config.end_year)
    kept = OutcomeTruth(config.end_year)
    with (truth_dir / f".people-{part}.csv").open("w", newline="") as handle:
        people = csv.writer(handle)
        for index in range(start, stop):
            life = simulate_person(config, index)
            truth.add(life)
            if life.optout is None:
                kept.add(life)
            p = life.person
            people.writerow(
                [
                    p.person_id,
                    p.class_year,
                    p.sex,
                    p.race,
                    p.county_fips,
                    int(life.hs_completion is not None),
                    int(life.optout is not None and life.optout.revoked is None),
                ]
            )
            for source, event in records_of(life, noise, config.seed):
                writer.write(source, event, p.person_id)
    writer.close()
    return _Part(truth, writer.counts, kept)


def _concatenate(target: Path, header: list[str], parts: list[Path]) -> None:
    with target.open("w", newline="") as out:
        csv.writer(out).writerow(header)
        for part in parts:
            with part.open(newline="") as handle:
                shutil.copyfileobj(handle, out)
            part.unlink()


def synthesize(
    config: SynthConfig,
    noise: NoiseConfig,
    out: Path,
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SynthReport:
    """Simulate ``config.people`` people into ``out``: one extract per provider
    (``k12.csv`` ... ``optout.csv``) and ``truth/`` (records.csv, people.csv,
    outcomes.json, outcomes_without_optouts.json: the same over the people who never asked
    to opt out, config.json). ``workers`` processes share the people; the files are
    the same whatever their number. ``progress`` is called with the people of each share
    done."""
    started = time.perf_counter()
    (out / "truth").mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers, config.people))
    bounds = [config.people * i // workers for i in range(workers + 1)]
    ranges = list(itertools.pairwise(bounds))
    if workers == 1:
        parts = [_simulate_range(config, noise, out, 0, 0, config.people)]
        if progress is not None:
            progress(config.people)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_simulate_range, config, noise, out, i, a, b): b - a
                for i, (a, b) in enumerate(ranges)
            }
            for future in as_completed(futures):
                future.result()
                if progress is not None:
                    progress(futures[future])
            parts = [future.result() for future in futures]
    truth, kept = parts[0].truth, parts[0].kept
    counts: dict[str, int] = {}
    for part in parts:
        if part is not parts[0]:
            truth.merge(part.truth)
            kept.merge(part.kept)
        for source, count in part.counts.items():
            counts[source] = counts.get(source, 0) + count
    files = assemble(out, [out / f".spill-{i}" for i in range(len(ranges))])
    _concatenate(
        out / "truth" / "records.csv",
        ["source", "source_record_id", "person_id"],
        [out / "truth" / f".records-{i}.csv" for i in range(len(ranges))],
    )
    _concatenate(
        out / "truth" / "people.csv",
        [
            "person_id",
            "class_year",
            "sex",
            "race_ethnicity",
            "county_fips",
            "hs_completer",
            "opted_out",
        ],
        [out / "truth" / f".people-{i}.csv" for i in range(len(ranges))],
    )
    (out / "truth" / "outcomes.json").write_text(json.dumps(truth.result(), indent=1))
    (out / "truth" / "outcomes_without_optouts.json").write_text(
        json.dumps(kept.result(), indent=1)
    )
    (out / "truth" / "config.json").write_text(
        json.dumps({"synth": asdict(config), "noise": asdict(noise)}, indent=1)
    )
    return SynthReport(
        people=config.people,
        records=counts,
        files={k: str(v) for k, v in files.items()},
        seconds=time.perf_counter() - started,
    )

"""`c2c synth`: a synthetic California population written as providers' extracts, with the
truth (who is behind each record, and every outcome measure) beside them.

    synthesize(SynthConfig(people=10_000, seed=1), NoiseConfig(), Path("synth"))

Deterministic for a seed; streams person by person, so memory does not grow with people
(beyond the per-provider-year sort at the end and the earnings samples in the truth).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from producers.synth.extracts import ExtractWriter, records_of
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


def synthesize(config: SynthConfig, noise: NoiseConfig, out: Path) -> SynthReport:
    """Simulate ``config.people`` people into ``out``: one extract per provider
    (``k12.csv`` ... ``optout.csv``) and ``truth/`` (records.csv, people.csv,
    outcomes.json, config.json)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    writer = ExtractWriter(out)
    truth = OutcomeTruth(config.end_year)
    with (out / "truth" / "people.csv").open("w", newline="") as handle:
        people = csv.writer(handle)
        people.writerow(
            [
                "person_id",
                "class_year",
                "sex",
                "race_ethnicity",
                "county_fips",
                "hs_completer",
                "opted_out",
            ]
        )
        for index in range(config.people):
            life = simulate_person(config, index)
            truth.add(life)
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
    files = writer.finish()
    (out / "truth" / "outcomes.json").write_text(json.dumps(truth.result(), indent=1))
    (out / "truth" / "config.json").write_text(
        json.dumps({"synth": asdict(config), "noise": asdict(noise)}, indent=1)
    )
    return SynthReport(
        people=config.people,
        records=dict(writer.counts),
        files={k: str(v) for k, v in files.items()},
        seconds=time.perf_counter() - started,
    )

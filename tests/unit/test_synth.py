"""The synthetic population: deterministic, valid in every provider's format, truthful."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from producers.formats import FORMATS
from producers.mapping import RowMapper
from producers.reader import open_extract
from producers.synth import NoiseConfig, SynthConfig, synthesize
from producers.synth.extracts import records_of
from producers.synth.population import simulate_person
from streams.identity.evaluation import read_assignments


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(SynthConfig(people=1500, seed=3), NoiseConfig(), out)
    return out


def test_same_seed_same_files_other_seed_other_files(synth_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesize(SynthConfig(people=1500, seed=3), NoiseConfig(), again, workers=2)
    assert _digest(again) == _digest(synth_dir)  # however many processes shared the work
    other = tmp_path / "other"
    synthesize(SynthConfig(people=1500, seed=4), NoiseConfig(), other)
    assert _digest(other) != _digest(synth_dir)


def test_every_row_maps_in_order_and_truth_names_its_person(synth_dir: Path) -> None:
    truth = read_assignments(synth_dir / "truth" / "records.csv")
    people = {
        row["person_id"]
        for row in csv.DictReader((synth_dir / "truth" / "people.csv").open(newline=""))
    }
    assert len(people) == 1500
    seen = 0
    for source, fmt in FORMATS.items():
        path = synth_dir / f"{source}.csv"
        if not path.exists():
            continue
        mapper = RowMapper(source, fmt)
        extract = open_extract(path)
        mapper.check_columns(extract.columns, str(path))
        previous = None
        for row in extract.rows:
            assert row.fields is not None, row.problem
            event = mapper.map(row.fields).event
            assert previous is None or event["event_time"] >= previous, (source, row.line)
            previous = event["event_time"]
            assert truth[(source, event["source_record_id"])] in people
            seen += 1
    assert seen == len(truth)
    assert {source for source, _ in truth} >= {"k12", "ccc", "csu", "uc", "csac", "edd"}


def test_noise_free_records_carry_the_true_identity() -> None:
    config = SynthConfig(people=300, seed=5)
    for index in range(300):
        life = simulate_person(config, index)
        for source, event in records_of(life, NoiseConfig.none(), config.seed):
            person = event["person"]
            if source in ("k12", "ccc", "csu", "uc"):
                assert person["first_name"] == life.person.first_name
                assert person["birth_date"] == life.person.birth_date
                assert person["ssid"] == life.person.ssid
            if source in ("ccc", "csu", "uc", "csac", "ctc") and life.person.ssn:
                assert person["ssn"] == life.person.ssn


def test_noise_rates_shape_the_records() -> None:
    config = SynthConfig(people=400, seed=6)
    lives = [simulate_person(config, index) for index in range(400)]
    always_typo = NoiseConfig.none().__class__(**{**NoiseConfig.none().__dict__, "typo": 1.0})
    changed = total = 0
    for life in lives:
        for source, event in records_of(life, always_typo, config.seed):
            if source == "k12":
                total += 1
                changed += event["person"]["first_name"] != life.person.first_name
    assert total > 1000
    assert changed / total > 0.9  # names of 3 letters or fewer cannot take a typo
    missing = Counter()
    for life in lives:
        for source, event in records_of(life, NoiseConfig(), config.seed):
            if source == "ccc" and life.person.ssn:
                missing["all"] += 1
                missing["none"] += event["person"]["ssn"] is None
    assert 0.2 < missing["none"] / missing["all"] < 0.4  # missing_ssn defaults to 0.30


def test_population_has_twins_shared_ssns_and_non_ascii_names() -> None:
    config = SynthConfig(people=3000, seed=8, twin_rate=0.02, shared_ssn_rate=0.01)
    people = [simulate_person(config, index).person for index in range(3000)]
    twins = sum(
        1
        for a, b in itertools.pairwise(people)
        if a.birth_date == b.birth_date
        and a.last_name == b.last_name
        and a.first_name != b.first_name
    )
    assert 30 <= twins <= 90
    ssns = Counter(p.ssn for p in people if p.ssn)
    assert 10 <= sum(1 for count in ssns.values() if count > 1) <= 60
    assert any(not name.isascii() for p in people for name in (p.first_name, p.last_name))


def test_outcome_truth_is_consistent(synth_dir: Path) -> None:
    truth = json.loads((synth_dir / "truth" / "outcomes.json").read_text())
    assert set(truth["definitions"]) == {
        "college_going",
        "pathways",
        "completion",
        "earnings",
        "earnings_by",
        "working_while_enrolled",
        "financial_aid",
        "teacher_pipeline",
        "horizons",
    }
    statewide = {k: v for k, v in truth["college_going"].items() if k.endswith("|all")}
    assert len(statewide) == 4
    for cell in statewide.values():
        assert cell["within_12"] <= cell["within_16"] <= cell["completers"]
        assert 0.45 < cell["within_16"] / cell["completers"] < 0.8
        by_segment = sum(cell.get(f"within_16_{s}", 0) for s in ("ccc", "csu", "uc"))
        assert by_segment == cell["within_16"]
    completers = {k.split("|")[0]: v["completers"] for k, v in statewide.items()}
    for year, cells in truth["pathways"].items():
        assert sum(cells.values()) == completers[year]
    for cell in truth["completion"].values():
        # None: the window is not over by the horizon (the 8 years close last)
        known = [cell.get(c, 0) for c in ("within_150", "within_8_years")]
        known = [v for v in known if v is not None]
        assert known == sorted(known)
        assert all(v <= cell["entrants"] for v in known)
    assert any(cell.get("within_8_years", 0) is None for cell in truth["completion"].values())
    for key, cell in truth["completion"].items():
        if "=" in key:
            continue
        # aid receipt splits the entrants (synth's aid years are all within the horizon)
        parts = [truth["completion"].get(f"{key}|received_aid={g}", {}) for g in ("true", "false")]
        assert f"{key}|received_aid=UNKNOWN" not in truth["completion"]
        assert all(parts), key
        for column in ("entrants", "within_150", "within_8_years"):
            if cell.get(column, 0) is None:
                assert all(p.get(column, 0) is None for p in parts), (key, column)
                continue
            assert sum(p.get(column, 0) for p in parts) == cell.get(column, 0), (key, column)
    aid = truth["financial_aid"]
    for cell in aid.values():
        assert (cell.get("with_aid", 0) or 0) <= cell["students"]
    programs = {k.split("=")[1] for k in aid if "|program=" in k}
    assert {"PELL", "CAL_GRANT_A", "CAL_GRANT_B"} <= programs
    for key, cell in aid.items():
        if "|program=" in key:
            continue
        # every program has a row of the same students; the programs split the aided
        parts = [aid[f"{key}|program={p}"] for p in programs]
        assert {p["students"] for p in parts} == {cell["students"]}
        aided = [p.get("with_aid", 0) for p in parts]
        assert all(a <= cell.get("with_aid", 0) for a in aided), key
        assert sum(aided) >= cell.get("with_aid", 0), key
    assert truth["earnings"]
    for cell, row in truth["earnings"].items():
        # the programs of a level and year add up to it, and so do the institutions
        for breakdown in ("program", "institution"):
            parts = [
                v for k, v in truth["earnings_by"].items() if k.startswith(f"{cell}|{breakdown}=")
            ]
            for column in ("awards", "wages_q2", "wages_q4"):
                if row.get(column, 0) is None:  # open: open in every part
                    assert all(p.get(column, 0) is None for p in parts), (cell, breakdown)
                    continue
                assert sum(p.get(column, 0) for p in parts) == row.get(column, 0), (cell, breakdown)
        if "wages_1y" in row:  # 1 year after is the 4th quarter after
            stats = row["wages_1y"]
            assert stats["n"] == row["wages_q4"]
            assert stats["p25"] <= stats["median"] <= stats["p75"]
    for cell, row in truth["earnings_by"].items():
        assert (row.get("wages_q20", 0) or 0) <= row["awards"]
        if "wages_5y" in row:
            assert row["wages_5y"]["n"] == row["wages_q20"], cell


def test_noise_profiles_make_their_errors_and_population() -> None:
    from producers.synth.profiles import PROFILES, profile

    assert PROFILES["default"].noise == NoiseConfig()
    chosen = profile("heavy")
    config = chosen.config(SynthConfig(people=2000, seed=9))
    people = [simulate_person(config, index).person for index in range(2000)]
    households = sum(
        1
        for a, b in itertools.pairwise(people)
        if a.last_name == b.last_name and a.zip == b.zip and a.birth_date != b.birth_date
    )
    assert 300 <= households <= 800  # 30% (a chain of households counts once)
    assert 300 <= sum(p.moved_zip is not None for p in people) <= 700  # 25%
    surnames = Counter(p.last_name for p in people)
    assert len(surnames) > 600  # a long tail, not 126 surnames
    assert surnames.most_common(1)[0][1] < 0.08 * len(people)
    kinds: Counter[str] = Counter()
    for index in range(600):
        life = simulate_person(config, index)
        for source, event in records_of(life, chosen.noise, config.seed):
            got, true = event["person"], life.person
            if source in ("ccc", "csu", "uc") and got["ssn"] and true.ssn:
                diff = [i for i in range(9) if got["ssn"][i] != true.ssn[i]]
                if (
                    len(diff) == 2
                    and diff[1] == diff[0] + 1
                    and (got["ssn"][diff[0]] == true.ssn[diff[1]])
                ):
                    kinds["transposed"] += 1
                elif len(diff) == 2:
                    kinds["two_digits"] += 1
            if source == "csac":
                kinds["csac"] += 1
                kinds["no_birth_date"] += got["birth_date"] is None
    assert kinds["transposed"] > 0
    assert kinds["two_digits"] > 0
    assert 0.1 < kinds["no_birth_date"] / kinds["csac"] < 0.3
    with pytest.raises(ValueError, match="realistic"):
        profile("nope")

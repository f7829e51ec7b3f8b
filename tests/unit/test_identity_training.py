"""EM training: u from random pairs, m and the match share from blocked pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.matching import DEFAULT_MODEL, PRIORS, MatchModel, threshold_for
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.training import (
    TARGET_POSTERIOR,
    candidate_pairs,
    estimate_u,
    fit,
    random_pairs,
    train_em,
)


def test_em_learns_weights_that_separate_agreement_from_disagreement(tmp_path: Path) -> None:
    synthesize(SynthConfig(people=300, seed=21), NoiseConfig(), tmp_path)
    resolver = Resolver(IdentifierHasher(b"k"))
    identities = list(
        dict.fromkeys(resolver.identity(event["person"]) for _, event in mapped_events(tmp_path))
    )
    pairs = candidate_pairs(identities, seed=1)
    assert pairs
    u = estimate_u(random_pairs(identities, 20_000, seed=1), DEFAULT_MODEL)
    assert u["birth_date"]["exact"] < 0.05  # random people rarely share a birth date
    report = train_em(pairs, DEFAULT_MODEL, u)
    model = report.model
    assert 0.0 < report.match_share < 1.0
    assert model.version.startswith("em-")
    for comparison in ("first", "last", "birth_date"):
        agree = "exact"
        assert model.weight(comparison, agree) > 0 > model.weight(comparison, "different")
    saved = tmp_path / "model.json"
    model.save(saved)
    assert MatchModel.load(saved) == model


def test_a_fit_derives_its_threshold_and_name_floors(tmp_path: Path) -> None:
    synthesize(SynthConfig(people=200, seed=22), NoiseConfig(), tmp_path)
    resolver = Resolver(IdentifierHasher(b"k"))
    identities = list(
        dict.fromkeys(resolver.identity(event["person"]) for _, event in mapped_events(tmp_path))
    )
    model = fit(identities, PRIORS, random_pair_count=20_000, max_pairs=20_000).model
    prior = float(model.derivation["prior"])  # type: ignore[arg-type]
    # a population of 200 people: about one pair of records in a few hundred matches
    assert 1e-4 < prior < 2e-2
    assert model.threshold == pytest.approx(threshold_for(prior, TARGET_POSTERIOR), abs=0.01)
    assert model.tf_scope == "full_name"
    for comparison, floor in model.tf_floors.items():
        assert floor == min(model.term_frequencies[comparison].values())
    saved = tmp_path / "model.json"
    model.save(saved)
    assert MatchModel.load(saved) == model

"""EM training: u from random pairs, m and the match share from blocked pairs."""

from __future__ import annotations

from pathlib import Path

from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.matching import DEFAULT_MODEL, MatchModel
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.training import candidate_pairs, estimate_u, random_pairs, train_em


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

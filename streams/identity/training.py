"""Fitting the match model's weights without labels, as Splink does.

u = P(level | different people) is estimated from random pairs of records, which almost
never match. m = P(level | same person) and the share of matches are then estimated by
expectation-maximisation over pairs that share a blocking key (the candidates the resolver
scores), with u held fixed: left free, EM drifts to whatever splits the pairs best (which
source a record came from, which fields are missing) rather than same person or not.
Pure code over identities; `c2c identity train` feeds it a sample and saves a versioned
model file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streams.identity.matching import Identity, MatchModel, compare
from streams.identity.resolver import blocking_keys

__all__ = ["TrainingReport", "candidate_pairs", "estimate_u", "random_pairs", "train_em"]

_SMOOTHING = 1e-3


@dataclass(frozen=True)
class TrainingReport:
    model: MatchModel
    pairs: int
    iterations: int
    match_share: float


def candidate_pairs(
    identities: Sequence[Identity], *, max_pairs: int = 200_000, seed: int = 0
) -> list[tuple[Identity, Identity]]:
    """Pairs of distinct identities that share a blocking key, at most ``max_pairs``
    (sampled evenly when there are more)."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, identity in enumerate(identities):
        for key in blocking_keys(identity):
            blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        for a, b in itertools.combinations(members[:50], 2):
            if identities[a] != identities[b]:
                pairs.add((a, b))
    ordered = sorted(pairs)
    if len(ordered) > max_pairs:
        ordered = random.Random(seed).sample(ordered, max_pairs)
    return [(identities[a], identities[b]) for a, b in ordered]


def _product(probabilities: Iterable[float]) -> float:
    result = 1.0
    for p in probabilities:
        result *= p
    return result


def random_pairs(
    identities: Sequence[Identity], count: int, *, seed: int = 0
) -> list[tuple[Identity, Identity]]:
    """``count`` pairs of distinct identities drawn at random."""
    rng = random.Random(seed)
    pairs: list[tuple[Identity, Identity]] = []
    while len(pairs) < count and len(identities) > 1:
        a, b = rng.sample(range(len(identities)), 2)
        pairs.append((identities[a], identities[b]))
    return pairs


def _frequencies(
    vectors: Iterable[tuple[tuple[str, str], ...]],
    weights: Iterable[float],
    start: dict[str, dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Weighted, smoothed level frequencies per comparison; ``start``'s values where a
    comparison never occurs."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for vector, weight in zip(vectors, weights, strict=False):
        for comparison, level in vector:
            counts[comparison][level] += weight
    result = {c: dict(levels) for c, levels in start.items()}
    for comparison, levels in start.items():
        seen = counts.get(comparison)
        if not seen:
            continue
        norm = sum(seen.values()) + _SMOOTHING * len(levels)
        for level in levels:
            result[comparison][level] = (seen.get(level, 0.0) + _SMOOTHING) / norm
    return result


def estimate_u(
    pairs: Sequence[tuple[Identity, Identity]], start: MatchModel
) -> dict[str, dict[str, float]]:
    """u: level frequencies among random pairs (which almost never match)."""
    vectors = [compare(a, b, start).levels for a, b in pairs]
    initial = {
        c: {lvl: mu[1] for lvl, mu in levels.items()} for c, levels in start.probabilities.items()
    }
    return _frequencies(vectors, itertools.repeat(1.0), initial)


def train_em(
    pairs: Sequence[tuple[Identity, Identity]],
    start: MatchModel,
    u: dict[str, dict[str, float]],
    *,
    iterations: int = 25,
    tolerance: float = 1e-5,
) -> TrainingReport:
    """EM for m and the match share, from ``start``'s m, with ``u`` fixed; the threshold
    is kept."""
    vectors = [compare(a, b, start).levels for a, b in pairs]
    m = {c: {lvl: mu[0] for lvl, mu in levels.items()} for c, levels in start.probabilities.items()}
    share = 0.1
    done = 0
    while done < iterations:
        done += 1
        posteriors = []
        for vector in vectors:
            pm = share * _product(m[c][lvl] for c, lvl in vector)
            pu = (1 - share) * _product(u[c][lvl] for c, lvl in vector)
            posteriors.append(pm / (pm + pu) if pm + pu > 0 else 0.0)
        new_share = min(max(sum(posteriors) / max(len(vectors), 1), 1e-6), 1 - 1e-6)
        new_m = _frequencies(vectors, posteriors, m)
        change = max(
            [abs(new_share - share)] + [abs(new_m[c][lvl] - m[c][lvl]) for c in m for lvl in m[c]]
        )
        share, m = new_share, new_m
        if change < tolerance:
            break
    probabilities = {
        c: {lvl: (m[c][lvl], u[c][lvl]) for lvl in levels}
        for c, levels in start.probabilities.items()
    }
    digest = hashlib.sha256(json.dumps(probabilities, sort_keys=True).encode()).hexdigest()
    model = MatchModel(probabilities, start.threshold, f"em-{digest[:12]}")
    return TrainingReport(model, len(vectors), done, share)

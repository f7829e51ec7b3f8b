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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from streams.identity.matching import (
    TF_COMPARISONS,
    Identity,
    MatchModel,
    compare,
    threshold_for,
)
from streams.identity.resolver import blocking_keys

__all__ = [
    "TrainingReport",
    "candidate_pairs",
    "estimate_u",
    "expectation_maximisation",
    "fit",
    "match_prior",
    "random_pairs",
    "term_frequencies",
    "tf_floors",
    "train_em",
]

_SMOOTHING = 1e-3
# The least m a fitted level keeps: a kind of error the training records happen not to
# carry still happens (one record in a thousand), and an m of about 0 would make it a
# veto of some -20 bits.
M_FLOOR = 1e-3
# The least u an exact name match takes after the term-frequency adjustment (Splink's
# tf_minimum_u_value). fs-v2 set it to 1e-3, which capped every name at the weight of one
# a thousand records carry, so no full name outweighed a 20-bit threshold. fs-v3 adjusts
# full names only (MatchModel.tf_scope) and bounds an unlisted name by the rarest listed
# one (:func:`tf_floors`); this is a guard against a zero share only.
TF_MINIMUM_U = 1e-7
# The threshold of a fitted model is derived, not set: the weight at which a pair's
# posterior match probability reaches TARGET_POSTERIOR, given the prior probability that
# two records of the training population match (:func:`match_prior`,
# matching.threshold_for). The target is a precision of 0.999; the posterior asked for is
# 0.9995, one bit more, because the weights take the fields as independent and within a
# family they are not: twins with no identifier on either record (same surname, birth
# date, sex and ZIP, another first name) weigh 19.97 bits, over the 19.45 of a 0.999
# posterior. THRESHOLD_BITS is what train_em keeps when no prior is given.
TARGET_PRECISION = 0.999
TARGET_POSTERIOR = 0.9995
THRESHOLD_BITS = 20.0


@dataclass(frozen=True)
class TrainingReport:
    model: MatchModel
    pairs: int
    iterations: int
    match_share: float


def _blocked(
    identities: Sequence[Identity], keys: Callable[[Identity], Iterable[str]]
) -> list[tuple[int, int]]:
    """Index pairs of distinct identities that share a key (50 a key at most), sorted."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, identity in enumerate(identities):
        for key in keys(identity):
            blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        for a, b in itertools.combinations(members[:50], 2):
            if identities[a] != identities[b]:
                pairs.add((a, b))
    return sorted(pairs)


def candidate_pairs(
    identities: Sequence[Identity],
    *,
    max_pairs: int = 200_000,
    seed: int = 0,
    keys: Callable[[Identity], Iterable[str]] = blocking_keys,
) -> list[tuple[Identity, Identity]]:
    """Pairs of distinct identities that share a key (default: the resolver's blocking
    keys), at most ``max_pairs`` (sampled evenly when there are more)."""
    ordered = _blocked(identities, keys)
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
    """u: level frequencies among random pairs (which almost never match). A level seen
    too rarely to measure gets one in ``len(pairs)``: the sample's resolution, so a level
    never seen among a million random pairs weighs as if seen once, not infinitely."""
    vectors = [compare(a, b, start).levels for a, b in pairs]
    initial = {
        c: {lvl: mu[1] for lvl, mu in levels.items()} for c, levels in start.probabilities.items()
    }
    u = _frequencies(vectors, itertools.repeat(1.0), initial)
    resolution = 1.0 / max(len(pairs), 1)
    return {c: {lvl: max(p, resolution) for lvl, p in levels.items()} for c, levels in u.items()}


Vector = tuple[tuple[str, str], ...]


def expectation_maximisation(
    vectors: Sequence[Vector],
    m: dict[str, dict[str, float]],
    u: dict[str, dict[str, float]],
    *,
    share: float = 0.1,
    iterations: int = 25,
    tolerance: float = 1e-5,
    fixed: frozenset[str] = frozenset(),
) -> tuple[dict[str, dict[str, float]], float, int]:
    """(m, match share, iterations) by EM over comparison ``vectors`` (each a tuple of
    (comparison, level)), from ``m`` and ``share``, with ``u`` held fixed; the comparisons
    in ``fixed`` keep their m."""
    done = 0
    m_fixed = {c: dict(levels) for c, levels in m.items() if c in fixed}
    while done < iterations:
        done += 1
        posteriors = []
        for vector in vectors:
            pm = share * _product(m[c][lvl] for c, lvl in vector)
            pu = (1 - share) * _product(u[c][lvl] for c, lvl in vector)
            posteriors.append(pm / (pm + pu) if pm + pu > 0 else 0.0)
        new_share = min(max(sum(posteriors) / max(len(vectors), 1), 1e-6), 1 - 1e-6)
        new_m = {**_frequencies(vectors, posteriors, m), **m_fixed}
        change = max(
            [abs(new_share - share)] + [abs(new_m[c][lvl] - m[c][lvl]) for c in m for lvl in m[c]]
        )
        share, m = new_share, new_m
        if change < tolerance:
            break
    return m, share, done


def train_em(
    pairs: Sequence[tuple[Identity, Identity]],
    start: MatchModel,
    u: dict[str, dict[str, float]],
    *,
    iterations: int = 25,
    tolerance: float = 1e-5,
    term_frequencies: dict[str, dict[str, float]] | None = None,
    version: str | None = None,
    fixed: frozenset[str] = frozenset(),
) -> TrainingReport:
    """EM for m and the match share, from ``start``'s m, with ``u`` fixed; the threshold
    is kept. ``term_frequencies`` (from :func:`term_frequencies`) go into the model as they
    are; ``version`` names it (default: ``em-`` and a digest of the weights). The
    comparisons in ``fixed`` (those the pairs were blocked on, which agree by
    construction) are left out of the session and keep ``start``'s m, as Splink does."""
    vectors = [
        tuple(pair for pair in compare(a, b, start).levels if pair[0] not in fixed)
        for a, b in pairs
    ]
    m = {c: {lvl: mu[0] for lvl, mu in levels.items()} for c, levels in start.probabilities.items()}
    m, share, done = expectation_maximisation(
        vectors, m, u, iterations=iterations, tolerance=tolerance, fixed=fixed
    )
    probabilities = {
        c: {lvl: (m[c][lvl], u[c][lvl]) for lvl in levels}
        for c, levels in start.probabilities.items()
    }
    tf = term_frequencies or {}
    digest = hashlib.sha256(json.dumps([probabilities, tf], sort_keys=True).encode()).hexdigest()
    model = MatchModel(
        probabilities,
        THRESHOLD_BITS,
        version or f"em-{digest[:12]}",
        tf,
        TF_MINIMUM_U,
        tf_floors(tf),
        "full_name",
    )
    return TrainingReport(model, len(vectors), done, share)


def match_prior(
    identities: Sequence[Identity],
    model: MatchModel,
    *,
    max_pairs: int = 200_000,
    seed: int = 0,
    iterations: int = 50,
) -> float:
    """The probability that two records of one population (``identities``) match, without
    labels (Splink's probability_two_random_records_match): the share of matches among
    the pairs the training sessions block on (by EM over that share, ``model``'s m and u
    fixed) times those pairs, over all pairs. Matches no session blocks on are left out,
    so it errs low, and the threshold it gives errs high (towards precision)."""
    blocked = _blocked(identities, _session_keys)
    total = len(identities) * (len(identities) - 1) // 2
    if not blocked or not total:
        raise ValueError(f"{len(identities)} identities share no blocking key: no prior")
    sample = (
        blocked if len(blocked) <= max_pairs else random.Random(seed).sample(blocked, max_pairs)
    )
    ratios = []
    for a, b in sample:
        # the pair's match weight (log2 Bayes factor) under ``model``
        ratios.append(compare(identities[a], identities[b], model).weight)
    share = 0.1
    for _ in range(iterations):
        odds = share / (1 - share)
        new = sum(1 / (1 + 1 / (odds * 2.0 ** min(r, 500))) for r in ratios) / len(ratios)
        new = min(max(new, 1e-9), 1 - 1e-9)
        if abs(new - share) < 1e-7:
            share = new
            break
        share = new
    return share * len(blocked) / total


def tf_floors(frequencies: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per name comparison, the share an unlisted name is taken to have: that of the
    rarest listed name (the table lists the commonest, so an unlisted name is no commoner
    than any in it)."""
    return {c: min(table.values()) for c, table in frequencies.items() if table}


def term_frequencies(
    identities: Sequence[Identity], *, top: int = 3000
) -> dict[str, dict[str, float]]:
    """Per name comparison, the ``top`` commonest name keys and the share of ``identities``
    carrying each (initials left out): the u of an exact match on that name."""
    out: dict[str, dict[str, float]] = {}
    for comparison in TF_COMPARISONS:
        counts = Counter(
            value for identity in identities if len(value := getattr(identity, comparison)) > 1
        )
        total = sum(counts.values()) or 1
        out[comparison] = {name: round(n / total, 8) for name, n in sorted(counts.most_common(top))}
    return out


# Splink trains m in sessions, each over pairs blocked on some fields, estimating the
# other fields only: pairs chosen for agreeing on a field say nothing of how often that
# field agrees for one person. Each comparison is estimated in every session that does
# not block on it, and its m is the mean of those estimates.
SESSIONS: tuple[tuple[str, Callable[[Identity], Iterable[str]], frozenset[str]], ...] = (
    (
        "birth date",
        lambda i: [f"dob:{i.birth_date.isoformat()}"] if i.birth_date else [],
        frozenset({"birth_date"}),
    ),
    (
        "surname and first initial",
        lambda i: [f"name:{i.last}:{i.first[:1]}"] if i.last and i.first else [],
        frozenset({"first", "last"}),
    ),
    ("ssn", lambda i: [f"ssn:{i.ssn}"] if i.ssn else [], frozenset({"ssn"})),
)


def _session_keys(identity: Identity) -> list[str]:
    """Every session's blocking keys of ``identity``: where the matches of a population are."""
    return [key for _name, keys, _fixed in SESSIONS for key in keys(identity)]


def fit(
    identities: Sequence[Identity],
    start: MatchModel,
    *,
    random_pair_count: int = 1_000_000,
    max_pairs: int = 200_000,
    seed: int = 0,
    version: str | None = None,
    populations: Sequence[Sequence[Identity]] | None = None,
    precision: float = TARGET_POSTERIOR,
) -> TrainingReport:
    """The whole training, as Splink does it: u from ``random_pair_count`` random pairs,
    name frequencies, then m by EM in the :data:`SESSIONS` (u fixed), averaged; then the
    threshold: the weight at which a pair's posterior match probability reaches
    ``precision``, from the prior of :func:`match_prior` (the mean over ``populations``
    when the identities are a mix of several; else over ``identities``)."""
    u = estimate_u(random_pairs(identities, random_pair_count, seed=seed), start)
    tf = term_frequencies(identities)
    estimates: dict[str, list[dict[str, float]]] = defaultdict(list)
    pairs = iterations = 0
    shares = []
    for _name, keys, fixed in SESSIONS:
        session_pairs = candidate_pairs(identities, max_pairs=max_pairs, seed=seed, keys=keys)
        report = train_em(session_pairs, start, u, fixed=fixed)
        pairs += report.pairs
        iterations += report.iterations
        shares.append(report.match_share)
        for comparison, levels in report.model.probabilities.items():
            if comparison not in fixed:
                estimates[comparison].append({lvl: mu[0] for lvl, mu in levels.items()})
    probabilities: dict[str, dict[str, tuple[float, float]]] = {}
    for comparison, levels in start.probabilities.items():
        found = estimates.get(comparison)
        probabilities[comparison] = {}
        for level in levels:
            m = sum(e[level] for e in found) / len(found) if found else levels[level][0]
            # a level too rare among matches to measure is no evidence for a match
            u_level = u[comparison][level] if m >= M_FLOOR else max(u[comparison][level], M_FLOOR)
            probabilities[comparison][level] = (max(m, M_FLOOR), u_level)
    fitted = MatchModel(probabilities, THRESHOLD_BITS)
    priors = [match_prior(p, fitted, seed=seed) for p in (populations or [identities])]
    prior = sum(priors) / len(priors)
    threshold = round(threshold_for(prior, precision), 2)
    derivation = {
        "rule": "posterior match probability >= precision: threshold = "
        "log2((1 - prior) / prior) + log2(precision / (1 - precision))",
        "prior": prior,
        "priors": priors,
        "precision": precision,
        "target_precision": TARGET_PRECISION,
        "identities": [len(p) for p in (populations or [identities])],
        "tf_floors": "the share of the rarest listed name, per comparison",
    }
    digest = hashlib.sha256(json.dumps([probabilities, tf], sort_keys=True).encode()).hexdigest()
    model = MatchModel(
        probabilities,
        threshold,
        version or f"em-{digest[:12]}",
        tf,
        TF_MINIMUM_U,
        tf_floors(tf),
        "full_name",
        derivation,
    )
    return TrainingReport(model, pairs, iterations, sum(shares) / len(shares))

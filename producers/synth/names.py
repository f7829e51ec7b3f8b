"""Name pools with a realistic frequency distribution, for the profiles that ask for one.

A state's people do not share a few dozen first names and a hundred surnames: a few names
are common and most are rare. :func:`zipf_names` gives a long list (the hand-picked names
of producers.synth.population first, then names composed of syllables) with Zipf-like
weights, weight of rank k proportional to 1 / k**s. Deterministic: no randomness, so the
same list and weights in every process.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Sequence

__all__ = ["NamePool", "zipf_names"]

_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "ch",
    "gr",
    "kh",
    "sh",
    "st",
    "tr",
    "y",
    "w",
    "",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ia", "ou")
_CODAS = ("", "n", "r", "s", "l", "m", "th", "rd", "nd", "z", "k", "ng")


class NamePool:
    """Names and cumulative weights for :meth:`draw`."""

    def __init__(self, names: Sequence[str], exponent: float) -> None:
        self.names = tuple(names)
        self.cumulative = tuple(
            itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, len(names) + 1))
        )

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.names, cum_weights=self.cumulative)[0]

    def share(self, rank: int) -> float:
        """The share of draws that give the name of ``rank`` (1 = the commonest)."""
        before = self.cumulative[rank - 2] if rank > 1 else 0.0
        share: float = (self.cumulative[rank - 1] - before) / self.cumulative[-1]
        return share


def _composed(count: int, syllables: int, salt: str) -> list[str]:
    # a fixed shuffle of every syllable combination: no randomness that depends on a seed
    parts = [o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    order = random.Random(f"c2c-names:{salt}")
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        name = "".join(order.choice(parts) for _ in range(syllables)).capitalize()
        if 3 <= len(name) <= 12 and name not in seen:
            seen.add(name)
            out.append(name)
    return out


@functools.cache
def zipf_names(head: tuple[str, ...], count: int, exponent: float, salt: str) -> NamePool:
    """``head`` then composed names, ``count`` in all, weighted 1 / rank**``exponent``."""
    composed = _composed(count, 2, salt)
    names = list(dict.fromkeys([*head, *composed]))[:count]
    return NamePool(names, exponent)

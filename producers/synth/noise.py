"""Identity noise, as real source records have it: each source record gets its own copy of
the person's identifying fields, with mistakes drawn at configurable rates.

Pure functions of (fields, rng); rates are a frozen :class:`NoiseConfig`. Typos,
nicknames, dropped accents, swapped first and last names, day and month swapped,
mistyped and missing SSNs. Married surnames, twins and shared SSNs are part of who the
person is (producers.synth.population), not noise.
"""

from __future__ import annotations

import datetime
import random
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["NICKNAMES", "NoiseConfig", "noisy_identity"]

NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "James": ("Jim", "Jimmy"),
    "José": ("Pepe",),
    "Daniel": ("Dan", "Danny"),
    "Elizabeth": ("Liz", "Beth", "Betty"),
    "Jennifer": ("Jen", "Jenny"),
    "Katherine": ("Kate", "Katie", "Kathy"),
    "Michael": ("Mike",),
    "Christopher": ("Chris",),
    "Alejandro": ("Alex",),
    "Guadalupe": ("Lupe",),
    "Francisco": ("Paco", "Frank"),
    "Jesús": ("Chuy",),
    "Margaret": ("Peggy", "Maggie"),
    "Richard": ("Rick", "Dick"),
    "Anthony": ("Tony",),
    "Joseph": ("Joe",),
    "Samantha": ("Sam",),
    "Alexander": ("Alex",),
    "Abigail": ("Abby",),
    "Natalie": ("Nat",),
    "Andrew": ("Andy", "Drew"),
}


@dataclass(frozen=True)
class NoiseConfig:
    """Per-record rates of each kind of mistake (0 turns one off)."""

    typo: float = 0.02
    nickname: float = 0.03
    drop_accents: float = 0.15
    swap_names: float = 0.01
    swap_day_month: float = 0.01
    mistype_ssn: float = 0.01
    missing_ssn: float = 0.30

    @classmethod
    def none(cls) -> NoiseConfig:
        return cls(**{f.name: 0.0 for f in fields(cls)})

    def scaled(self, factor: float) -> NoiseConfig:
        return NoiseConfig(
            **{f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self)}
        )


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    at = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # transposition
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    if kind == 1:  # deletion
        return text[:at] + text[at + 1 :]
    return text[:at] + rng.choice("aeiounrstl") + text[at + 1 :]  # substitution


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def noisy_identity(
    rng: random.Random, identity: dict[str, Any], noise: NoiseConfig, *, ssn_optional: bool
) -> dict[str, Any]:
    """A copy of ``identity`` (person fields as in PersonIdentity) with mistakes drawn."""
    out = dict(identity)
    first, last = out.get("first_name"), out.get("last_name")
    if first and rng.random() < noise.nickname and first in NICKNAMES:
        first = rng.choice(NICKNAMES[first])
    if first and rng.random() < noise.typo:
        first = _typo(rng, first)
    if last and rng.random() < noise.typo:
        last = _typo(rng, last)
    if rng.random() < noise.drop_accents:
        first = _plain(first) if first else first
        last = _plain(last) if last else last
    if first and last and rng.random() < noise.swap_names:
        first, last = last, first
    out["first_name"], out["last_name"] = first, last
    born = out.get("birth_date")
    if (
        isinstance(born, datetime.date)
        and born.day <= 12
        and born.day != born.month
        and (rng.random() < noise.swap_day_month)
    ):
        out["birth_date"] = born.replace(month=born.day, day=born.month)
    ssn = out.get("ssn")
    if ssn is not None:
        if ssn_optional and rng.random() < noise.missing_ssn:
            out["ssn"] = None
        elif rng.random() < noise.mistype_ssn:
            at = rng.randrange(9)
            digit = str((int(ssn[at]) + rng.randrange(1, 10)) % 10)
            out["ssn"] = ssn[:at] + digit + ssn[at + 1 :]
    return out

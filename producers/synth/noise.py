"""Identity noise, as real source records have it: each source record gets its own copy of
the person's identifying fields, with mistakes drawn at configurable rates.

Pure functions of (fields, rng); rates are a frozen :class:`NoiseConfig`. Typos,
nicknames, dropped accents, swapped first and last names, day and month swapped, a birth
date one component off, unknown or missing; SSNs with one digit wrong, two adjacent
digits transposed, two digits wrong, or missing. Married surnames, moves, households,
twins and shared SSNs are part of who the person is (producers.synth.population), not
noise. A rate added after the first seven draws nothing when it is 0, so a configuration
that leaves them at 0 gives the same records as before they existed.
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
    # keying errors in an SSN beyond one digit (mistype_ssn)
    transpose_ssn: float = 0.0
    two_digits_ssn: float = 0.0
    # a birth date with day, month or year one off; unknown day and month written as
    # January 1 of the year; missing where the provider may leave it out
    birth_one_off: float = 0.0
    birth_placeholder: float = 0.0
    missing_birth_date: float = 0.0

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


def _drawn(rng: random.Random, rate: float) -> bool:
    """Whether a mistake of ``rate`` happens; a rate of 0 draws nothing (see the module)."""
    return rate > 0 and rng.random() < rate


def _transposed(rng: random.Random, ssn: str) -> str:
    spots = [at for at in range(len(ssn) - 1) if ssn[at] != ssn[at + 1]]
    if not spots:
        return ssn
    at = rng.choice(spots)
    return ssn[:at] + ssn[at + 1] + ssn[at] + ssn[at + 2 :]


def _digit_changed(rng: random.Random, ssn: str, at: int) -> str:
    return ssn[:at] + str((int(ssn[at]) + rng.randrange(1, 10)) % 10) + ssn[at + 1 :]


def _one_off(rng: random.Random, born: datetime.date) -> datetime.date:
    step = rng.choice((-1, 1))
    part = rng.randrange(3)
    try:
        if part == 0:
            return born.replace(year=born.year + step)
        if part == 1:
            return born.replace(month=(born.month - 1 + step) % 12 + 1)
        return born + datetime.timedelta(days=step)
    except ValueError:  # February 29 in another year, or the 31st in a shorter month
        return born + datetime.timedelta(days=step)


def noisy_identity(
    rng: random.Random,
    identity: dict[str, Any],
    noise: NoiseConfig,
    *,
    ssn_optional: bool,
    birth_date_optional: bool = False,
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
            out["ssn"] = _digit_changed(rng, ssn, rng.randrange(9))
        elif _drawn(rng, noise.transpose_ssn):
            out["ssn"] = _transposed(rng, ssn)
        elif _drawn(rng, noise.two_digits_ssn):
            first_at, second_at = sorted(rng.sample(range(9), 2))
            out["ssn"] = _digit_changed(rng, _digit_changed(rng, ssn, first_at), second_at)
    born = out.get("birth_date")
    if isinstance(born, datetime.date):
        if birth_date_optional and _drawn(rng, noise.missing_birth_date):
            out["birth_date"] = None
        elif _drawn(rng, noise.birth_one_off):
            out["birth_date"] = _one_off(rng, born)
        elif _drawn(rng, noise.birth_placeholder):
            out["birth_date"] = born.replace(month=1, day=1)
    return out

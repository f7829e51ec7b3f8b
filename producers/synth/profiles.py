"""Named noise profiles for `c2c synth --noise-profile NAME`: each a family of the errors
real person records carry, at rates of the order reported for administrative data, with
the population features that go with them (households, twins, moves, marriages, a long
tail of names).

A profile is a :class:`NoiseProfile`: the identity-noise rates (:class:`NoiseConfig`) and
the population settings it changes (fields of :class:`SynthConfig`). ``default`` is the
first synth, unchanged: the same seed gives the same files as before profiles existed.
The table in producers/README.md lists them; bench.linkage runs each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from producers.synth.noise import NoiseConfig
from producers.synth.population import SynthConfig

__all__ = ["PROFILES", "NoiseProfile", "profile"]


@dataclass(frozen=True)
class NoiseProfile:
    description: str
    noise: NoiseConfig
    population: Mapping[str, Any] = field(default_factory=dict)

    def config(self, base: SynthConfig) -> SynthConfig:
        """``base`` with this profile's population settings."""
        return dataclasses.replace(base, **self.population)


_BASE = NoiseConfig()

PROFILES: Mapping[str, NoiseProfile] = {
    "default": NoiseProfile("the first synth's noise (kept for comparison)", _BASE),
    "keying": NoiseProfile(
        "SSN keying errors: one digit, adjacent transpositions, two digits; 40% missing",
        dataclasses.replace(
            _BASE,
            mistype_ssn=0.02,
            transpose_ssn=0.03,
            two_digits_ssn=0.01,
            missing_ssn=0.40,
            typo=0.03,
        ),
        {"names": "zipf"},
    ),
    "names": NoiseProfile(
        "name noise: swapped order, nicknames, typos, marriages (35% of women)",
        dataclasses.replace(_BASE, typo=0.05, nickname=0.10, swap_names=0.04),
        {"names": "zipf", "married_rate": 0.35},
    ),
    "households": NoiseProfile(
        "30% of people share surname and address with another; 3% twins; 20% move",
        _BASE,
        {"names": "zipf", "household_rate": 0.30, "twin_rate": 0.03, "move_rate": 0.20},
    ),
    "dates": NoiseProfile(
        "birth dates: day/month swapped, one component off, unknown (Jan 1), missing",
        dataclasses.replace(
            _BASE,
            swap_day_month=0.03,
            birth_one_off=0.03,
            birth_placeholder=0.02,
            missing_birth_date=0.20,
        ),
        {"names": "zipf"},
    ),
    "realistic": NoiseProfile(
        "every family at moderate rates, long-tailed names, households and moves",
        dataclasses.replace(
            _BASE,
            typo=0.03,
            nickname=0.05,
            swap_names=0.02,
            swap_day_month=0.02,
            birth_one_off=0.02,
            birth_placeholder=0.01,
            missing_birth_date=0.10,
            mistype_ssn=0.015,
            transpose_ssn=0.02,
            two_digits_ssn=0.005,
            missing_ssn=0.35,
        ),
        {
            "names": "zipf",
            "household_rate": 0.15,
            "twin_rate": 0.02,
            "move_rate": 0.15,
            "married_rate": 0.25,
        },
    ),
    "heavy": NoiseProfile(
        "every family at about twice the realistic rates",
        dataclasses.replace(
            _BASE,
            typo=0.06,
            nickname=0.10,
            swap_names=0.04,
            swap_day_month=0.04,
            birth_one_off=0.04,
            birth_placeholder=0.02,
            missing_birth_date=0.20,
            mistype_ssn=0.03,
            transpose_ssn=0.04,
            two_digits_ssn=0.01,
            missing_ssn=0.45,
        ),
        {
            "names": "zipf",
            "household_rate": 0.30,
            "twin_rate": 0.03,
            "move_rate": 0.25,
            "married_rate": 0.35,
        },
    ),
}


def profile(name: str) -> NoiseProfile:
    """The profile called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown noise profile {name!r}: choose one of {', '.join(PROFILES)}"
        ) from None

"""Fellegi-Sunter matching of an incoming identity against a known one.

An :class:`Identity` is what the resolver keeps of one source record: keyed hashes of the
trusted identifiers (never the identifiers) and normalised name keys, birth date, sex, ZIP.
:func:`compare` scores a pair: each field falls into a comparison level and adds that
level's weight, log2(m/u), from the :class:`MatchModel` (defaults that work untrained;
`c2c identity train` fits them by EM). Pure code: no state, no I/O.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rapidfuzz.distance import OSA, JaroWinkler

__all__ = [
    "DEFAULT_MODEL",
    "Identity",
    "MatchModel",
    "Score",
    "compare",
    "identifier_typo",
    "load_model",
    "names_agree",
]


# A named tuple rather than a frozen dataclass: the resolver builds one a record and looks
# it up in its person's profile (a list of them) for nearly every record; tuple equality
# and construction run in C, where the dataclass's __eq__ built two tuples of twelve in
# Python and its __init__ set each field through object.__setattr__. Equality and hash
# are the same as the dataclass's (every field, in order).
class Identity(NamedTuple):
    """The matchable part of one record: no raw SSN or SSID, only their keyed hashes."""

    ssn: str | None = None
    ssid: str | None = None
    itin: str | None = None
    # keyed hashes of the identifier with one digit masked: a one-digit typo shares one
    ssn_masks: frozenset[str] = frozenset()
    ssid_masks: frozenset[str] = frozenset()
    first: str = ""
    first_root: str = ""
    last: str = ""
    last_parts: frozenset[str] = frozenset()
    birth_date: datetime.date | None = None
    sex: str | None = None
    zip: str | None = None

    def usable(self) -> str | None:
        """None if the record can be resolved, else why not (for the review topic)."""
        if self.ssn or self.ssid or self.itin:
            return None
        if not self.last or not self.first:
            return "no trusted identifier and no full name"
        if self.birth_date is None:
            return "no trusted identifier and no birth date: a name alone is not enough"
        return None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form (for the worker's changelogged tables); see :meth:`from_json`."""
        return {
            "ssn": self.ssn,
            "ssid": self.ssid,
            "itin": self.itin,
            "ssn_masks": sorted(self.ssn_masks),
            "ssid_masks": sorted(self.ssid_masks),
            "first": self.first,
            "first_root": self.first_root,
            "last": self.last,
            "last_parts": sorted(self.last_parts),
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "sex": self.sex,
            "zip": self.zip,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Identity:
        """The identity :meth:`to_json` wrote."""
        born = data.get("birth_date")
        return cls(
            ssn=_text(data.get("ssn")),
            ssid=_text(data.get("ssid")),
            itin=_text(data.get("itin")),
            ssn_masks=frozenset(_texts(data.get("ssn_masks"))),
            ssid_masks=frozenset(_texts(data.get("ssid_masks"))),
            first=str(data.get("first") or ""),
            first_root=str(data.get("first_root") or ""),
            last=str(data.get("last") or ""),
            last_parts=frozenset(_texts(data.get("last_parts"))),
            birth_date=datetime.date.fromisoformat(born) if isinstance(born, str) else None,
            sex=_text(data.get("sex")),
            zip=_text(data.get("zip")),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _texts(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


# Comparison levels and their default (m, u) probabilities: m = P(level | same person),
# u = P(level | different people), for records that share a blocking key.
_DEFAULT_PROBABILITIES: dict[str, dict[str, tuple[float, float]]] = {
    # Two different people's numbers one digit apart by chance: about 1e-7 (81 neighbours in
    # 1e9); u leaves a wide margin for family members with near numbers, whom the rule that
    # a one-digit difference with different first names is a disagreement keeps apart.
    "ssn": {"agree": (0.97, 0.0005), "one_digit": (0.02, 0.00005), "disagree": (0.01, 0.99945)},
    "ssid": {"agree": (0.98, 0.0005), "one_digit": (0.01, 0.00005), "disagree": (0.01, 0.99945)},
    "itin": {"agree": (0.97, 0.0005), "disagree": (0.03, 0.9995)},
    "first": {
        "exact": (0.86, 0.02),
        "nickname": (0.04, 0.002),
        "close": (0.06, 0.03),
        "initial": (0.02, 0.06),
        "different": (0.02, 0.888),
    },
    "last": {
        "exact": (0.88, 0.05),
        "close": (0.05, 0.02),
        "part": (0.05, 0.01),
        "different": (0.02, 0.92),
    },
    "birth_date": {
        "exact": (0.96, 0.01),
        "swapped": (0.01, 0.0005),
        "one_digit": (0.02, 0.01),
        "different": (0.01, 0.98),
    },
    "sex": {"agree": (0.98, 0.5), "disagree": (0.02, 0.5)},
    "zip": {"agree": (0.8, 0.05), "near": (0.1, 0.15), "disagree": (0.1, 0.8)},
}


@dataclass(frozen=True)
class MatchModel:
    """Weights per comparison level, and the threshold for a match (in bits)."""

    probabilities: Mapping[str, Mapping[str, tuple[float, float]]] = field(
        default_factory=lambda: _DEFAULT_PROBABILITIES
    )
    threshold: float = 11.0
    version: str = "default-2"
    # log2(m/u) per (comparison, level), derived once from the probabilities
    weights: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = {
            (c, level): math.log2(m / u)
            for c, levels in self.probabilities.items()
            for level, (m, u) in levels.items()
        }
        object.__setattr__(self, "weights", weights)

    def weight(self, comparison: str, level: str) -> float:
        """log2(m/u) of ``level`` of ``comparison``."""
        return self.weights[(comparison, level)]

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "version": self.version,
                    "threshold": self.threshold,
                    "probabilities": self.probabilities,
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, path: Path) -> MatchModel:
        data = json.loads(path.read_text())
        probabilities = {
            c: {lvl: (float(m), float(u)) for lvl, (m, u) in levels.items()}
            for c, levels in data["probabilities"].items()
        }
        return cls(probabilities, float(data["threshold"]), str(data["version"]))


DEFAULT_MODEL = MatchModel()


@dataclass(frozen=True)
class Score:
    weight: float
    levels: tuple[tuple[str, str], ...]

    def level(self, comparison: str) -> str | None:
        return dict(self.levels).get(comparison)


def _name_level(a: str, b: str, a_root: str, b_root: str) -> str:
    if a == b:
        return "exact"
    if a_root == b_root:
        return "nickname"
    if len(a) == 1 or len(b) == 1:
        return "initial" if a[:1] == b[:1] else "different"
    return "close" if JaroWinkler.similarity(a, b) >= 0.88 else "different"


def _date_level(a: datetime.date, b: datetime.date) -> str:
    if a == b:
        return "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "swapped"
    # zero-padded by hand: strftime writes year 999 as three digits
    sa = f"{a.year:04d}{a.month:02d}{a.day:02d}"
    sb = f"{b.year:04d}{b.month:02d}{b.day:02d}"
    if sum(x != y for x, y in zip(sa, sb, strict=True)) == 1:
        return "one_digit"
    return "different"


def names_agree(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` could name one person (True when either has no name): the
    surnames agree (exact, a shared part, close, or a typo apart), or the first names do
    (exact, nickname, an initial, or a typo apart; a surname may change with marriage); or,
    with first and last names swapped on one side, both agree crosswise. A first name
    merely similar with another surname, or two different names, is another person: two
    people may share an SSN."""
    if not (a.first and a.last and b.first and b.last):
        return True
    if _surnames_close(a.last, b.last, a.last_parts, b.last_parts):
        return True
    if _first_names_alike(a.first, b.first, a.first_root, b.first_root):
        return True
    return _first_names_alike(a.last, b.first, a.last, b.first_root) and (
        _surnames_close(a.first, b.last, frozenset(), frozenset())
    )


_FIRST_NAMES_ALIKE = frozenset(("exact", "nickname", "initial"))


def _one_edit(a: str, b: str) -> bool:
    """A typo apart: one letter inserted, deleted, replaced or two swapped, in names of
    four letters or more (in shorter ones one letter makes another name: Ana, Ina)."""
    return min(len(a), len(b)) >= 4 and OSA.distance(a, b, score_cutoff=1) <= 1


def _first_names_alike(a: str, b: str, a_root: str, b_root: str) -> bool:
    return _name_level(a, b, a_root, b_root) in _FIRST_NAMES_ALIKE or _one_edit(a, b)


def _surnames_close(a: str, b: str, parts_a: frozenset[str], parts_b: frozenset[str]) -> bool:
    return (
        a == b or bool(parts_a & parts_b) or JaroWinkler.similarity(a, b) >= 0.9 or _one_edit(a, b)
    )


def compare(a: Identity, b: Identity, model: MatchModel = DEFAULT_MODEL) -> Score:
    """The Fellegi-Sunter score of ``a`` against ``b``; a field missing on either side
    adds nothing."""
    levels: list[tuple[str, str]] = []
    for name in ("ssn", "ssid", "itin"):
        x, y = getattr(a, name), getattr(b, name)
        if x and y:
            if x == y:
                levels.append((name, "agree"))
            elif getattr(a, f"{name}_masks", frozenset()) & getattr(
                b, f"{name}_masks", frozenset()
            ):
                levels.append((name, "one_digit"))
            else:
                # Two different trusted identifiers: different people, whatever else agrees
                # (twins share everything but their first names and identifiers).
                return Score(float("-inf"), ((name, "disagree"),))
    first_a, last_a = a.first, a.last
    if a.first and a.last and a.first == b.last and a.last == b.first:
        first_a, last_a = b.first, b.last  # first and last names swapped
    if first_a and b.first:
        levels.append(("first", _name_level(first_a, b.first, a.first_root, b.first_root)))
    if last_a and b.last:
        level = (
            "exact"
            if last_a == b.last
            else (
                "part"
                if a.last_parts & b.last_parts
                else ("close" if JaroWinkler.similarity(last_a, b.last) >= 0.9 else "different")
            )
        )
        levels.append(("last", level))
    if a.birth_date and b.birth_date:
        levels.append(("birth_date", _date_level(a.birth_date, b.birth_date)))
    if a.sex and b.sex and "NOT_REPORTED" not in (a.sex, b.sex):
        levels.append(("sex", "agree" if a.sex == b.sex else "disagree"))
    if a.zip and b.zip:
        levels.append(
            (
                "zip",
                "agree" if a.zip == b.zip else ("near" if a.zip[:3] == b.zip[:3] else "disagree"),
            )
        )
    if any(level == "one_digit" for _, level in levels) and ("first", "different") in levels:
        # Numbers one digit apart and different first names: twins or siblings with near
        # numbers (they were often issued in sequence), not a typo.
        return Score(float("-inf"), tuple(levels))
    weight = sum(model.weights[pair] for pair in levels)
    return Score(weight, tuple(levels))


def identifier_typo(a: Identity, b: Identity, kind: str) -> bool:
    """Whether ``a`` and ``b`` carry ``kind`` (ssn or ssid) values one digit apart and
    otherwise name one person: full first names that agree (exact, nickname or close) and
    birth dates, where both have one, no more than a typo apart. Two persons whose numbers
    differ only so may be one person whose number was mistyped once."""
    masks_a: frozenset[str] = getattr(a, f"{kind}_masks")
    if not masks_a & getattr(b, f"{kind}_masks") or getattr(a, kind) == getattr(b, kind):
        return False
    if len(a.first) < 2 or len(b.first) < 2:
        return False
    first_a = a.last if (a.first == b.last and a.last == b.first) else a.first
    if _name_level(first_a, b.first, a.first_root, b.first_root) == "different":
        return False
    if a.birth_date and b.birth_date:
        return _date_level(a.birth_date, b.birth_date) != "different"
    return True


def load_model(path: Path | None) -> MatchModel:
    """The model in ``path`` (from `c2c identity train`), or the built-in one for None."""
    return DEFAULT_MODEL if path is None else MatchModel.load(path)

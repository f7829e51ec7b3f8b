"""Fellegi-Sunter matching of an incoming identity against a known one.

An :class:`Identity` is what the resolver keeps of one source record: keyed hashes of the
trusted identifiers (never the identifiers) and normalised name keys, birth date, sex, ZIP.
:func:`compare` scores a pair: each field falls into a comparison level and adds that
level's weight, log2(m/u), from the :class:`MatchModel` (defaults that work untrained;
`c2c identity train` fits them: u from random pairs, m by EM). Pure code: no state; the
shipped weights are read once from streams/identity/weights/.
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
    "PRIORS",
    "TF_COMPARISONS",
    "TWO_DIGIT_MARK",
    "Identity",
    "MatchModel",
    "Score",
    "compare",
    "field_levels",
    "identifier_level",
    "identifier_levels",
    "identifier_typo",
    "load_model",
    "match_probability",
    "names_agree",
    "read_near",
    "threshold_for",
    "weigh",
]

# Values whose frequency weight is kept (the first seen; about 200 bytes each): as the name
# caches of normalize.py, bounded whatever the population (a shard's names grow without end;
# one missed costs two lookups and a log). Small enough to be full early: about 2,000 new
# values each 100,000 records, so 8,192 are full by about 250,000, where 65,536 kept
# filling to about 3.5 million records (bench/RESULTS.md, 2026-12-07); the first seen are
# mostly the common names, which most comparisons ask for.
_TF_CACHE_ENTRIES = 8_192


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
    # keyed hashes of the identifier with one digit masked (a one-digit typo shares one),
    # adjacent digits in order (a transposition), and for an SSN two digits masked
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


# Comparison levels and the priors that EM starts from: m = P(level | same person),
# u = P(level | different people). Levels are tried in order; a field missing on either
# side adds no level (the "missing" case weighs nothing: m and u are about equal).
_PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    # keying errors: an adjacent transposition is the commonest, then one digit
    "ssn": {
        "agree": (0.95, 0.0005),
        "transposed": (0.02, 0.00001),
        "one_digit": (0.02, 0.00005),
        "two_digits": (0.005, 0.0002),
        "disagree": (0.005, 0.99924),
    },
    "ssid": {
        "agree": (0.97, 0.0005),
        "transposed": (0.01, 0.00001),
        "one_digit": (0.01, 0.00005),
        "disagree": (0.01, 0.99944),
    },
    "itin": {"agree": (0.97, 0.0005), "disagree": (0.03, 0.9995)},
    "first": {
        "exact": (0.85, 0.02),
        "nickname": (0.04, 0.002),
        "close": (0.05, 0.01),
        "similar": (0.02, 0.05),
        "initial": (0.02, 0.05),
        "different": (0.02, 0.868),
    },
    "last": {
        "exact": (0.85, 0.02),
        "part": (0.05, 0.005),
        "close": (0.05, 0.01),
        "similar": (0.03, 0.05),
        # a typo Jaro-Winkler reads as another surname (one edit, four letters or more)
        "one_edit": (0.01, 0.0005),
        "different": (0.01, 0.9145),
    },
    "birth_date": {
        "exact": (0.93, 0.002),
        "swapped": (0.01, 0.0001),
        "one_part": (0.03, 0.02),
        "same_year": (0.02, 0.25),
        "different": (0.01, 0.7279),
    },
    "sex": {"agree": (0.98, 0.5), "disagree": (0.02, 0.5)},
    "zip": {"agree": (0.8, 0.02), "near": (0.1, 0.15), "disagree": (0.1, 0.83)},
}

# Comparisons whose exact level is adjusted for how common the value is
TF_COMPARISONS = ("first", "last")
_IDENTIFIERS = ("ssn", "ssid", "itin")
# the marker that starts the keyed hash of a number with two adjacent digits put in order
# (IdentifierHasher.masks): two numbers that differ by a transposition share one
TRANSPOSED_MARK = "00000"
# the marker that starts the keyed hash of an SSN with two digits masked: two SSNs that
# differ in two digits share one (never a blocking key: 36 a number)
TWO_DIGIT_MARK = "22222"
# levels added after a model version was fitted, and the level whose weights an older
# model file stands in with (fs-v2 read two digits off as a different number; fs-v2 and
# fs-v3 read surnames one edit apart that Jaro-Winkler puts under 0.88 as different ones)
_ADDED_LEVELS = {
    ("ssn", "two_digits"): "disagree",
    ("last", "one_edit"): "different",
}


@dataclass(frozen=True)
class MatchModel:
    """Weights per comparison level, name frequencies for the term-frequency adjustment,
    and the threshold for a match (in bits). ``version`` names the fitted weights: a new
    fit is a new version, and each decision reports the version that made it."""

    probabilities: Mapping[str, Mapping[str, tuple[float, float]]] = field(
        default_factory=lambda: _PRIORS
    )
    threshold: float = 11.0
    version: str = "priors"
    # name key -> share of records carrying it, per comparison in TF_COMPARISONS; a name
    # not listed is taken to be as rare as its comparison's ``tf_floors`` (fs-v3: the
    # rarest listed name's share), and no name as rarer than ``tf_floor`` (fs-v2 set it to
    # 1e-3, which capped a rare name's weight at that of a name one record in a thousand
    # carries)
    term_frequencies: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tf_floor: float = 1e-4
    tf_floors: Mapping[str, float] = field(default_factory=dict)
    # which exact name matches are adjusted for frequency: "name" (fs-v2), each name on
    # its own; "full_name" (fs-v3), both names, and only when first and last both agree:
    # a rare full name is evidence of a person, a rare surname with another first name
    # of a family (twins share surname, birth date and address, the surname's rarity
    # included), and a surname's share among strangers says nothing of how often family
    # members share it
    tf_scope: str = "name"
    # how the threshold was derived (training.threshold_for): the prior probability that
    # two records match and the target precision; empty for a threshold that was set
    derivation: Mapping[str, object] = field(default_factory=dict)
    # log2(m/u) per (comparison, level), derived once from the probabilities
    weights: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)
    _tf_cache: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tf_scope not in ("name", "full_name"):
            raise ValueError(f"tf_scope {self.tf_scope!r}: expected 'name' or 'full_name'")
        weights = {
            (c, level): math.log2(m / u)
            for c, levels in self.probabilities.items()
            for level, (m, u) in levels.items()
        }
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "_tf_cache", {})

    def weight(self, comparison: str, level: str) -> float:
        """log2(m/u) of ``level`` of ``comparison``."""
        return self.weights[(comparison, level)]

    def exact_weight(self, comparison: str, value: str) -> float:
        """The weight of an exact match on ``value``, adjusted for its frequency as Splink
        does: u of the exact level replaced by the value's share of records, so a rare name
        is strong evidence and a common one weak: log2(m_exact / tf(value))."""
        key = (comparison, value)
        cached = self._tf_cache.get(key)
        if cached is None:
            table = self.term_frequencies.get(comparison)
            if not table:
                cached = self.weights[(comparison, "exact")]
            else:
                listed = table.get(value)
                if listed is None and self.tf_scope == "full_name":
                    # a surname given as a first name (names swapped) is as common as
                    # the surname; only a name neither table lists takes the floor
                    other = "last" if comparison == "first" else "first"
                    listed = self.term_frequencies.get(other, {}).get(value)
                if listed is None:
                    listed = self.tf_floors.get(comparison, self.tf_floor)
                tf = max(listed, self.tf_floor)
                cached = math.log2(self.probabilities[comparison]["exact"][0] / tf)
            if len(self._tf_cache) < _TF_CACHE_ENTRIES:
                self._tf_cache[key] = cached
        return cached

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "threshold": self.threshold,
            "probabilities": {c: dict(levels) for c, levels in self.probabilities.items()},
            "term_frequencies": {c: dict(t) for c, t in self.term_frequencies.items()},
            "tf_floor": self.tf_floor,
            "tf_floors": dict(self.tf_floors),
            "tf_scope": self.tf_scope,
            "derivation": dict(self.derivation),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> MatchModel:
        """The model ``path`` holds (from :meth:`save`); a ValueError naming the file and
        what is wrong otherwise."""
        try:
            data = json.loads(path.read_text())
            probabilities = {
                c: {lvl: (float(m), float(u)) for lvl, (m, u) in levels.items()}
                for c, levels in data["probabilities"].items()
            }
            for (comparison, level), stand_in in _ADDED_LEVELS.items():
                levels = probabilities.get(comparison)
                if levels is not None and level not in levels and stand_in in levels:
                    levels[level] = levels[stand_in]
            missing = [
                f"{c}.{lvl}"
                for c, levels in _PRIORS.items()
                for lvl in levels
                if lvl not in probabilities.get(c, {})
            ]
            if missing:
                raise ValueError(f"no weights for {', '.join(missing)}")
            return cls(
                probabilities,
                float(data["threshold"]),
                str(data["version"]),
                {
                    c: {str(k): float(v) for k, v in table.items()}
                    for c, table in data.get("term_frequencies", {}).items()
                },
                float(data.get("tf_floor", 1e-4)),
                {str(c): float(v) for c, v in data.get("tf_floors", {}).items()},
                str(data.get("tf_scope", "name")),
                dict(data.get("derivation", {})),
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: not a match model ({exc}); train one with `c2c identity train`"
            ) from exc


def threshold_for(prior: float, precision: float) -> float:
    """The match weight (bits) at which a pair's posterior match probability reaches
    ``precision``, when two records match with probability ``prior`` before any
    comparison (Fellegi-Sunter as Splink has it: posterior odds = prior odds x 2^weight):
    log2((1 - prior) / prior) + log2(precision / (1 - precision))."""
    if not (0 < prior < 1 and 0 < precision < 1):
        raise ValueError(f"prior {prior} and precision {precision} must lie between 0 and 1")
    return math.log2((1 - prior) / prior) + math.log2(precision / (1 - precision))


def match_probability(weight: float, prior: float) -> float:
    """The posterior match probability of a pair of match weight ``weight`` (bits)."""
    odds: float = prior / (1 - prior) * 2.0 ** max(min(weight, 1000.0), -1000.0)
    return odds / (1 + odds)


PRIORS = MatchModel()
# The shipped weights, fitted by streams.identity.training on a broad synthetic mix
# (`python -m bench.linkage --fit`); files in the package, the current one read once.
# weights/v2.json (fs-v2) and v3.json (fs-v3) stay loadable (C2C_IDENTITY_MODEL) to compare.
# (fs-v4 also weighed first names one edit apart as a typo; it was not shipped.)
WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "v5.json"
DEFAULT_MODEL = MatchModel.load(WEIGHTS_FILE)


@dataclass(frozen=True)
class Score:
    weight: float
    levels: tuple[tuple[str, str], ...]

    def level(self, comparison: str) -> str | None:
        return dict(self.levels).get(comparison)


def _name_level(a: str, b: str, a_root: str, b_root: str) -> str:
    # two equal initials are an initial that fits, not a name spelled the same: an
    # initial is shared by one person in twenty, and no name frequency says how rare it is
    if len(a) == 1 or len(b) == 1:
        return "initial" if a[:1] == b[:1] else "different"
    if a == b:
        return "exact"
    if a_root == b_root:
        return "nickname"
    similarity = JaroWinkler.similarity(a, b)
    if similarity >= 0.92:
        return "close"
    # a first name one edit apart that Jaro-Winkler puts under 0.88 stays another name:
    # twins' "Dean" and "Sean", "John" and "Joan" (fs-v4 weighed it as a typo, +8 bits,
    # and twins with no identifier then weighed 33 bits)
    return "similar" if similarity >= 0.88 else "different"


def _surname_level(a: str, b: str, parts_a: frozenset[str], parts_b: frozenset[str]) -> str:
    if a == b:
        return "exact"
    if parts_a & parts_b:
        return "part"
    similarity = JaroWinkler.similarity(a, b)
    if similarity >= 0.92:
        return "close"
    if similarity >= 0.88:
        return "similar"
    # one edit that Jaro-Winkler reads as another surname: a letter replaced early in a
    # short name ("TRLN" against "TRAN": 0.867), or two swapped near the start. Twins
    # share their surname: a typo in it weighs less than the exact surname they share
    return "one_edit" if _one_edit(a, b) else "different"


def _date_level(a: datetime.date, b: datetime.date) -> str:
    if a == b:
        return "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "swapped"
    same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    if same == 2:
        return "one_part"
    return "same_year" if a.year == b.year else "different"


def identifier_level(x: str, y: str, masks_x: frozenset[str], masks_y: frozenset[str]) -> str:
    """agree, transposed (two adjacent digits swapped), one_digit, two_digits (SSNs only)
    or disagree, from the keyed hashes alone: the number's, and its masked forms'
    (IdentifierHasher.masks)."""
    if x == y:
        return "agree"
    shared = masks_x & masks_y
    if not shared:
        return "disagree"
    if any(mask.startswith(TRANSPOSED_MARK) for mask in shared):
        return "transposed"
    if any(not mask.startswith(TWO_DIGIT_MARK) for mask in shared):
        return "one_digit"
    return "two_digits"


def names_agree(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` could name one person (True when either has no name): the
    surnames agree (exact, a shared part, close, or a typo apart), or the full first names
    do (exact, nickname, or a typo apart; a surname may change with marriage); or,
    with first and last names swapped on one side, both agree crosswise. A first name
    merely similar with another surname, or two different names, is another person: two
    people may share an SSN."""
    if not (a.first and a.last and b.first and b.last):
        return True
    if _surnames_close(a.last, b.last, a.last_parts, b.last_parts):
        return True
    if min(len(a.first), len(b.first)) > 1 and _first_names_alike(
        a.first, b.first, a.first_root, b.first_root
    ):
        # (an initial with another surname is anyone of that initial: a shared SSN)
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


def _alike(a: str, b: str) -> bool:
    """Equal, a typo apart (Jaro-Winkler 0.92), or an initial that fits."""
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[:1] == b[:1]
    return JaroWinkler.similarity(a, b) >= 0.92


def _swapped(a: Identity, b: Identity) -> bool:
    """Whether ``a``'s first and last names are ``b``'s the other way round (a typo or an
    initial allowed, on one side of the two), and its first name is not ``b``'s."""
    if not (a.first and a.last and b.first and b.last) or _alike(a.first, b.first):
        return False
    if not (_alike(a.first, b.last) and _alike(a.last, b.first)):
        return False
    # two full names crosswise, or one full name and an initial
    return (len(a.first) > 1 and len(b.last) > 1) or (len(a.last) > 1 and len(b.first) > 1)


def identifier_levels(a: Identity, b: Identity) -> list[tuple[str, str]]:
    """The trusted identifiers' levels of ``a`` against ``b``, where both carry one."""
    levels = []
    for kind in _IDENTIFIERS:
        x, y = getattr(a, kind), getattr(b, kind)
        if x and y:
            if kind == "itin":
                levels.append((kind, "agree" if x == y else "disagree"))
            else:
                masks = (
                    (a.ssn_masks, b.ssn_masks) if kind == "ssn" else (a.ssid_masks, b.ssid_masks)
                )
                levels.append((kind, identifier_level(x, y, *masks)))
    return levels


def field_levels(a: Identity, b: Identity, swapped: bool | None = None) -> list[tuple[str, str]]:
    """The levels of everything but the trusted identifiers: names (crosswise when one
    side has them swapped), birth date, sex, ZIP. ``swapped``: whether they are, when the
    caller knows (``_swapped``, the same either way round); found here otherwise."""
    levels: list[tuple[str, str]] = []
    first_a, last_a, root_a, parts_a = a.first, a.last, a.first_root, a.last_parts
    if _swapped(a, b) if swapped is None else swapped:
        first_a, last_a, root_a, parts_a = a.last, a.first, a.last, frozenset((a.first,))
    if first_a and b.first:
        levels.append(("first", _name_level(first_a, b.first, root_a, b.first_root)))
    if last_a and b.last:
        levels.append(("last", _surname_level(last_a, b.last, parts_a, b.last_parts)))
    if a.birth_date and b.birth_date:
        levels.append(("birth_date", _date_level(a.birth_date, b.birth_date)))
    if a.sex and b.sex and "NOT_REPORTED" not in (a.sex, b.sex):
        levels.append(("sex", "agree" if a.sex == b.sex else "disagree"))
    if a.zip and b.zip:
        zip_level = (
            "agree" if a.zip == b.zip else ("near" if a.zip[:3] == b.zip[:3] else "disagree")
        )
        levels.append(("zip", zip_level))
    return levels


_FULL_NAME = (("first", "exact"), ("last", "exact"))


def weigh(levels: list[tuple[str, str]], a: Identity, b: Identity, model: MatchModel) -> float:
    """The summed log2 weights of ``levels``; an exact name weighs by its frequency (with
    the model's ``tf_scope`` "full_name", up to the level's mean weight unless first and
    last names both agree)."""
    total = 0.0
    weights = model.weights
    adjust = model.tf_scope == "name" or (
        # a full name: both spelled out (an initial, in either place when the names are
        # swapped, is shared by one person in twenty whatever the tables say)
        len(b.first) > 1 and len(b.last) > 1 and all(pair in levels for pair in _FULL_NAME)
    )
    for pair in levels:
        comparison, level = pair
        if level == "exact" and comparison in TF_COMPARISONS:
            value = b.first if comparison == "first" else b.last
            adjusted = model.exact_weight(comparison, value)
            # one name alone (fs-v3): its frequency can make it weaker, never stronger
            # than the level's mean weight; a rare surname alone is a family's
            total += adjusted if adjust else min(adjusted, weights[pair])
        else:
            total += weights[pair]
    return total


_NEAR = frozenset(("transposed", "one_digit", "two_digits"))


def read_near(ids: list[tuple[str, str]], fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``ids`` with a number a keying error apart read as a different number when the
    first names are different: family members (twins above all) were often issued
    consecutive numbers, so a near number is a typo only on a record that names the same
    person. It then weighs as any different number: evidence against, not a veto."""
    if not any(level in _NEAR for _, level in ids) or ("first", "different") not in fields:
        return ids
    return [(kind, "disagree" if level in _NEAR else level) for kind, level in ids]


def weighed_fields(
    a: Identity, b: Identity, model: MatchModel
) -> tuple[list[tuple[str, str]], float]:
    """:func:`field_levels` of ``a`` against ``b`` and their :func:`weigh`, the same
    whichever of the two is the record. Names swapped on one side can be read either way
    round (which side holds them in their places is not known), and the two readings
    differ: which names pair as first names, and which table weighs an exact one ("Natalie
    Washington" against "WASHINGTON NATALIE": Washington is a rare first name and a common
    surname). Both are read and the weaker counts. Read one way only, a record met a
    person's swapped identity with more weight than the swapped record met the person, so
    the grouping depended on which arrived first (issue #19)."""
    swapped = _swapped(a, b)
    fields = field_levels(a, b, swapped)
    weight = weigh(fields, a, b, model)
    if swapped:
        other = field_levels(b, a, swapped)
        other_weight = weigh(other, b, a, model)
        if other_weight < weight:
            return other, other_weight
    return fields, weight


def compare(a: Identity, b: Identity, model: MatchModel = DEFAULT_MODEL) -> Score:
    """The Fellegi-Sunter score of ``a`` against ``b``: each field's level adds its log2
    weight; a field missing on either side adds nothing. Disagreeing identifiers are
    evidence against with their learned weight, never a veto. The same score as ``b``
    against ``a`` (:func:`weighed_fields`)."""
    fields, weight = weighed_fields(a, b, model)
    ids = read_near(identifier_levels(a, b), fields)
    return Score(weight + weigh(ids, a, b, model), tuple(ids + fields))


def identifier_typo(a: Identity, b: Identity, kind: str) -> bool:
    """Whether ``a`` and ``b`` carry ``kind`` (ssn or ssid) values one digit apart and
    otherwise name one person: full first names that agree (exact, nickname or close) and
    birth dates, where both have one, no more than a typo apart. Two persons whose numbers
    differ only so may be one person whose number was mistyped once."""
    x, y = getattr(a, kind), getattr(b, kind)
    if not (x and y) or x == y:
        return False
    masks = getattr(a, f"{kind}_masks"), getattr(b, f"{kind}_masks")
    if identifier_level(x, y, *masks) not in ("transposed", "one_digit"):
        return False
    if len(a.first) < 2 or len(b.first) < 2:
        return False
    first_a = a.last if (a.first == b.last and a.last == b.first) else a.first
    if _name_level(first_a, b.first, a.first_root, b.first_root) == "different":
        return False
    if a.birth_date and b.birth_date:
        return _date_level(a.birth_date, b.birth_date) in ("exact", "swapped", "one_part")
    return True


def load_model(path: Path | None) -> MatchModel:
    """The model in ``path`` (from `c2c identity train`), or the built-in one for None."""
    return DEFAULT_MODEL if path is None else MatchModel.load(path)

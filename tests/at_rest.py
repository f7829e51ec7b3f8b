"""The at-rest scanner: finds an input's SSNs, SSIDs, ITINs and names in clear in bytes.

tests/integration/test_at_rest.py feeds it every topic, changelog, state file, log and
ClickHouse table after a synth run; tests/unit/test_at_rest.py shows that it finds what it
looks for (so that the integration test can fail) and nothing in keyed hashes or sealed
values.

Identifiers are matched as whole runs of digits (an SSN inside a longer number, such as a
timestamp in milliseconds, is not one). Names are matched as whole words, folded as the
resolver folds them (accents and case removed), so that ``García``, ``GARCIA`` and
``garcia`` are one name. Names shorter than :data:`MIN_NAME` letters are not looked for:
megabytes of binary data (ciphertext, Avro numbers) hold a given four-letter word by
chance, a six-letter one about 700 times more rarely (about one chance in 10^11 a byte).
Nor are words of the project's own vocabulary (:func:`vocabulary`: schemas, code tables),
which de-identified data carries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIN_NAME = 6
_DIGIT_RUN = re.compile(rb"\d+")
_WORD = re.compile(r"[a-z]+")


def fold(text: str) -> str:
    """``text`` lower-case, without accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def vocabulary() -> frozenset[str]:
    """Words of the project's schemas and code tables: enum symbols (``WHITE``), field and
    table names, which de-identified data carries and a name may equal."""
    words: set[str] = set()
    for folder in ("schemas", "sinks", "c2c"):
        for path in (ROOT / folder).rglob("*"):
            # (examples.py holds example people: their names are names)
            if path.suffix in (".avsc", ".py", ".sql", ".json") and "example" not in path.name:
                words.update(_WORD.findall(fold(path.read_text(errors="ignore"))))
    words.update(_WORD.findall(fold((ROOT / "producers" / "formats.py").read_text())))
    return frozenset(words)


@dataclass(frozen=True)
class Wanted:
    """What an input holds that must not rest in clear outside its declared places."""

    identifiers: frozenset[str]
    names: frozenset[str]
    skipped_names: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, people: Iterable[Mapping[str, Any]], *, vocabulary: frozenset[str] = frozenset()
    ) -> Wanted:
        """From raw events' ``person`` mappings (and ``source_person_id`` of a provider
        whose id is an identifier: a run of 9 or 10 digits)."""
        identifiers: set[str] = set()
        names: set[str] = set()
        for person in people:
            for name in ("ssn", "ssid", "itin"):
                value = person.get(name)
                if value:
                    identifiers.add(str(value))
            source_id = str(person.get("source_person_id") or "")
            if source_id.isdigit() and len(source_id) in (9, 10):
                identifiers.add(source_id)
            for name in ("first_name", "middle_name", "last_name"):
                names.update(_WORD.findall(fold(str(person.get(name) or ""))))
        long_enough = {n for n in names if len(n) >= MIN_NAME}
        return cls(
            frozenset(identifiers),
            frozenset(long_enough - vocabulary),
            frozenset((names - long_enough) | (long_enough & vocabulary)),
        )


@dataclass
class Found:
    """What a scan found, by place."""

    identifiers: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, set[str]] = field(default_factory=dict)
    scanned: dict[str, int] = field(default_factory=dict)  # place -> bytes read

    def add(self, place: str, data: bytes, wanted: Wanted) -> None:
        """Scan ``data``, read at ``place``."""
        self.scanned[place] = self.scanned.get(place, 0) + len(data)
        ids = identifiers_in(data, wanted.identifiers)
        if ids:
            self.identifiers.setdefault(place, set()).update(ids)
        names = names_in(data, wanted.names)
        if names:
            self.names.setdefault(place, set()).update(names)

    def outside(self, allowed: Iterable[str]) -> dict[str, str]:
        """Places not matching any of the ``allowed`` regular expressions where something
        was found: place -> what (a few of them, for the failure message)."""
        patterns = [re.compile(p) for p in allowed]
        bad: dict[str, str] = {}
        for kind, found in (("identifiers", self.identifiers), ("names", self.names)):
            for place, values in found.items():
                if not any(p.fullmatch(place) for p in patterns):
                    bad[f"{place} ({kind})"] = ", ".join(sorted(values)[:5])
        return bad


def identifiers_in(data: bytes, identifiers: frozenset[str]) -> set[str]:
    """The ``identifiers`` that ``data`` holds as whole runs of digits."""
    return {run.decode() for run in _DIGIT_RUN.findall(data) if run.decode() in identifiers}


def names_in(data: bytes, names: frozenset[str]) -> set[str]:
    """The ``names`` that ``data`` holds as whole words (UTF-8 read where it is, accents and
    case folded)."""
    if not names:
        return set()
    return {word for word in _WORD.findall(fold(data.decode(errors="ignore"))) if word in names}

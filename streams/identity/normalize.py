"""Normalising identifying fields before they are compared or hashed.

Names are compared without accents, case, spaces, hyphens or apostrophes (María O'Brien-
López → mariaobrienlopez), and first names also through a nickname table (Bill → william).
Pure functions; nothing here stores or logs PII.
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["MAX_NAME_CHARS", "NAME_CACHE_ENTRIES", "first_name_root", "name_key", "name_parts"]

# Matching reads at most this many characters of a name: no real name is longer, and a
# longer one (a bad extract, a hostile producer) must not make the identity state large
# (persons' snapshots keep texts of at most 65,535 bytes and lists of at most 65,535 items).
MAX_NAME_CHARS = 100

# Names whose key and parts are kept (each cache; the least recently used leave first). A
# shard's distinct name texts grow without end (about 7,000 new ones each 100,000 records of
# bench.scale's, typos and variants, most seen once), so the caches are small enough to be
# full early: 8,192 fill by about 200,000 records, where 65,536 kept growing the resolver's
# RSS to about 900,000 (bench/RESULTS.md, 2026-12-07). A miss costs a few microseconds
# (16,384 missed 3 % of 4.5 million calls to 1.5 million records, 65,536 2.3 %).
NAME_CACHE_ENTRIES = 8_192

_NICKNAMES = {
    "bill": "william",
    "will": "william",
    "billy": "william",
    "bob": "robert",
    "rob": "robert",
    "bobby": "robert",
    "jim": "james",
    "jimmy": "james",
    "pepe": "jose",
    "dan": "daniel",
    "danny": "daniel",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "betty": "elizabeth",
    "jen": "jennifer",
    "jenny": "jennifer",
    "kate": "katherine",
    "katie": "katherine",
    "kathy": "katherine",
    "mike": "michael",
    "chris": "christopher",
    "alex": "alexander",
    "lupe": "guadalupe",
    "paco": "francisco",
    "frank": "francisco",
    "chuy": "jesus",
    "peggy": "margaret",
    "maggie": "margaret",
    "rick": "richard",
    "dick": "richard",
    "tony": "anthony",
    "joe": "joseph",
    "sam": "samantha",
    "abby": "abigail",
    "nat": "natalie",
    "andy": "andrew",
    "drew": "andrew",
}


@functools.lru_cache(maxsize=NAME_CACHE_ENTRIES)
def name_key(text: str | None) -> str:
    """Lower-case letters only, accents removed ('' for a missing name)."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text[:MAX_NAME_CHARS])
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c)).casefold()


def first_name_root(text: str | None) -> str:
    """The formal form of a first name's key (bill → william), else the key itself."""
    key = name_key(text)
    return _NICKNAMES.get(key, key)


@functools.lru_cache(maxsize=NAME_CACHE_ENTRIES)
def name_parts(text: str | None) -> frozenset[str]:
    """Keys of each part of a compound surname (García-López → {garcia, lopez})."""
    if not text:
        return frozenset()
    parts = text[:MAX_NAME_CHARS].replace("-", " ").split()
    return frozenset(key for key in map(name_key, parts) if key)

"""A person's snapshot as bytes: the value format of the worker's ``identity-persons`` table.

:meth:`IdentityState.snapshot <streams.identity.resolver.IdentityState.snapshot>` gives
what is kept of a person as a JSON-ready mapping; :func:`encode_snapshot` turns it into
a compact binary value, encoded once and stored as is in RocksDB and in the table's
changelog, and :func:`decode_snapshot` gives the mapping back. Most of a snapshot is keyed
hashes (32 hex digits each: the trusted identifiers and their masked forms), which the
binary form keeps as 16 bytes; a person's value is about 40 % of its JSON (about 2.2 kB).

Versions: a value starting with ``{`` is the JSON of the first worker (changelogs and
RocksDB stores written before this format); one starting with :data:`MAGIC` is version 1.
Both decode to the same mapping, so an existing changelog loads as it is, and persons
move to the binary form as they are written again. Pure code, no Kafka.

Version 1: :data:`MAGIC`, then ``M`` and the survivor (a tombstone of a merged person),
or ``P``, the identities (a count, then per identity the fields of
:data:`IDENTITY_FIELDS` in order), the trusted identifiers (a count of kinds, then per
kind its name and values) and the opt-out requests (JSON, length 0 for none: they are
rare and their data is free-form). A text is a tag: 0 none, 1 16 bytes of 32 lowercase hex
digits, 2 a length (``>H``) and UTF-8; a list of texts is a count (``>H``) and its texts.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from c2c.serde import SerdeError

if TYPE_CHECKING:
    from streams.identity.matching import Identity
    from streams.identity.resolver import IdentityState

__all__ = [
    "IDENTITY_FIELDS",
    "MAGIC",
    "SnapshotEncoder",
    "decode_snapshot",
    "encode_snapshot",
]

# "C2CP" (person) and the format's version
MAGIC = b"C2CP\x01"
# Identity.to_json's fields in their encoded order, each a text or a list of texts
IDENTITY_FIELDS: tuple[tuple[str, bool], ...] = (
    ("ssn", False),
    ("ssid", False),
    ("itin", False),
    ("ssn_masks", True),
    ("ssid_masks", True),
    ("first", False),
    ("first_root", False),
    ("last", False),
    ("last_parts", True),
    ("birth_date", False),
    ("sex", False),
    ("zip", False),
)
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_NONE, _HEX16, _UTF8 = b"\x00", b"\x01", b"\x02"


def _text(parts: list[bytes], value: object) -> None:
    if value is None:
        parts.append(_NONE)
        return
    text = str(value)
    if len(text) == 32:
        # 32 lower-case hex digits (the keyed hashes): fromhex refuses anything but hex
        # digits and spaces, 16 bytes means no spaces, and a text of hex digits that is
        # lower-case or all digits has no A-F (one C call each, not a set test a character)
        try:
            packed = bytes.fromhex(text)
        except ValueError:
            packed = b""
        if len(packed) == 16 and (text.islower() or text.isdigit()):
            parts.append(_HEX16)
            parts.append(packed)
            return
    raw = text.encode()
    parts.append(_UTF8)
    parts.append(_U16.pack(len(raw)))
    parts.append(raw)


def _texts(parts: list[bytes], values: object) -> None:
    items = list(values) if isinstance(values, list | tuple) else []
    parts.append(_U16.pack(len(items)))
    for item in items:
        _text(parts, item)


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """The version-1 bytes of ``snapshot`` (a mapping :meth:`IdentityState.snapshot` gave).

    Raises SerdeError (code ``identity.snapshot``) for a mapping that is neither a person
    nor a tombstone, or whose texts do not fit (a text over 65,535 bytes)."""
    try:
        merged = snapshot.get("merged_into")
        if merged is not None:
            return _tombstone_bytes(merged)
        profile = snapshot.get("profile")
        if not isinstance(profile, list):
            raise SerdeError(
                f"a person snapshot needs a profile list or merged_into, got keys "
                f"{sorted(snapshot)}",
                code="identity.snapshot",
            )
        identities = [_identity_bytes(identity) for identity in profile]
        return _person_bytes(identities, snapshot.get("trusted") or {}, snapshot.get("optouts"))
    except struct.error as exc:
        raise SerdeError(
            f"a person snapshot does not fit the binary form ({exc})", code="identity.snapshot"
        ) from exc


def _tombstone_bytes(merged_into: object) -> bytes:
    parts = [MAGIC, b"M"]
    _text(parts, merged_into)
    return b"".join(parts)


def _identity_bytes(identity: Mapping[str, Any]) -> bytes:
    parts: list[bytes] = []
    for name, is_list in IDENTITY_FIELDS:
        value = identity.get(name)
        if is_list:
            _texts(parts, value)
        else:
            _text(parts, value)
    return b"".join(parts)


def _person_bytes(
    identities: list[bytes], trusted: Mapping[str, Any], optouts: Mapping[str, Any] | None
) -> bytes:
    parts = [MAGIC, b"P", _U16.pack(len(identities)), *identities, _U16.pack(len(trusted))]
    for kind, values in trusted.items():
        _text(parts, kind)
        _texts(parts, values)
    data = json.dumps(optouts, separators=(",", ":")).encode() if optouts else b""
    parts.append(_U32.pack(len(data)))
    parts.append(data)
    return b"".join(parts)


class SnapshotEncoder:
    """``encode_snapshot(state.snapshot(person_id))`` at a fraction of the cost: a person is
    written again and again as their records arrive, and their identities, immutable, are
    encoded once each (up to ``cache_size`` kept; all are dropped when it is reached)."""

    def __init__(self, cache_size: int = 65_536) -> None:
        # by object: an Identity's own hash is over all twelve fields, a third of the cost;
        # the entry holds the identity, so its id is not reused while it is kept
        self._cache: dict[int, tuple[Identity, bytes]] = {}
        self._cache_size = cache_size

    def _identity(self, identity: Identity) -> bytes:
        hit = self._cache.get(id(identity))
        if hit is not None and hit[0] is identity:
            return hit[1]
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        encoded = _identity_bytes(identity.to_json())
        self._cache[id(identity)] = (identity, encoded)
        return encoded

    def encode(self, state: IdentityState, person_id: str) -> bytes:
        """The version-1 bytes of ``person_id``'s snapshot in ``state``. SerdeError as for
        :func:`encode_snapshot`."""
        merged = state.merged_into.get(person_id)
        try:
            if merged is not None:
                return _tombstone_bytes(merged)
            trusted = state.trusted.get(person_id, {})
            return _person_bytes(
                [self._identity(identity) for identity in state.profiles.get(person_id, [])],
                {kind: sorted(values) for kind, values in trusted.items()},
                dict(sorted(state.optouts.get(person_id, {}).items())) or None,
            )
        except struct.error as exc:
            raise SerdeError(
                f"person {person_id} does not fit the binary snapshot form ({exc})",
                code="identity.snapshot",
            ) from exc


class _Reader:
    __slots__ = ("at", "value")

    def __init__(self, value: bytes, at: int) -> None:
        self.value, self.at = value, at

    def u16(self) -> int:
        (number,) = _U16.unpack_from(self.value, self.at)
        self.at += 2
        return int(number)

    def u32(self) -> int:
        (number,) = _U32.unpack_from(self.value, self.at)
        self.at += 4
        return int(number)

    def take(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.value):
            raise ValueError(f"{size} bytes wanted at byte {self.at}, the value ends before")
        chunk, self.at = self.value[self.at : end], end
        return chunk

    def text(self) -> str | None:
        tag = self.take(1)
        if tag == _NONE:
            return None
        if tag == _HEX16:
            return self.take(16).hex()
        if tag == _UTF8:
            return self.take(self.u16()).decode()
        raise ValueError(f"unknown text tag {tag!r} at byte {self.at - 1}")

    def texts(self) -> list[str | None]:
        return [self.text() for _ in range(self.u16())]


def decode_snapshot(value: bytes, *, where: str = "person snapshot") -> dict[str, Any]:
    """The snapshot mapping of a stored value: version 1 (:data:`MAGIC`) or the JSON of
    the first worker. Raises SerdeError (code ``identity.snapshot``) naming ``where`` and
    the byte for anything else or a damaged value."""
    if value[:1] == b"{":
        try:
            legacy = json.loads(value)
        except ValueError as exc:
            raise SerdeError(f"{where} is damaged JSON ({exc})", code="identity.snapshot") from exc
        if not isinstance(legacy, dict):
            raise SerdeError(f"{where} is JSON but not an object", code="identity.snapshot")
        return legacy
    if value[: len(MAGIC)] != MAGIC:
        raise SerdeError(
            f"{where} is neither a version-1 person snapshot (starting {MAGIC!r}) nor JSON: "
            f"it starts {value[:8]!r}",
            code="identity.snapshot",
        )
    reader = _Reader(value, len(MAGIC))
    try:
        kind = reader.take(1)
        if kind == b"M":
            snapshot: dict[str, Any] = {"merged_into": reader.text()}
        elif kind == b"P":
            profile = []
            for _ in range(reader.u16()):
                profile.append(
                    {
                        name: reader.texts() if is_list else reader.text()
                        for name, is_list in IDENTITY_FIELDS
                    }
                )
            trusted = {}
            for _ in range(reader.u16()):
                trusted_kind = str(reader.text())  # read before its values
                trusted[trusted_kind] = reader.texts()
            snapshot = {"profile": profile, "trusted": trusted}
            size = reader.u32()
            if size:
                snapshot["optouts"] = json.loads(reader.take(size))
        else:
            raise ValueError(f"unknown kind {kind!r} at byte {len(MAGIC)}")
    except (ValueError, struct.error) as exc:  # UnicodeDecodeError is a ValueError
        raise SerdeError(
            f"{where} is a damaged person snapshot: {exc}", code="identity.snapshot"
        ) from exc
    if reader.at != len(value):
        raise SerdeError(
            f"{where} is a damaged person snapshot: it ends at byte {reader.at}, the value "
            f"has {len(value)}",
            code="identity.snapshot",
        )
    return snapshot

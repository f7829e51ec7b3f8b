"""Person values sealed at rest: the ``identity-persons`` table's values encrypted.

A person's snapshot (:mod:`streams.identity.snapshots`) holds what matching needs in clear:
normalised names, birth date, sex and ZIP beside the keyed hashes. The worker keeps it in
RocksDB and on a compacted changelog, kept as long as the person exists, which the broker
and anyone who can read its disks would otherwise see. :class:`Sealer` encrypts each value
with AES-256-GCM under a key derived from the identity secret (``C2C_IDENTITY_SECRET``),
with the person id as associated data (a value moved to another key does not open), so
only a process holding the secret (the identity worker) reads names. The same bytes go to
the store and the changelog (streams.tables).

Format: :data:`SEALED`, the key version (1 byte, ``C2C_IDENTITY_KEY_VERSION``), a 12-byte
random nonce, then the ciphertext and its 16-byte tag. A value that does not start with
:data:`SEALED` is one that a worker before sealing wrote (clear snapshot bytes or JSON): it
is read as it is, and sealed when the person is next written. Pure code, no Kafka.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from c2c.serde import SerdeError

__all__ = ["SEALED", "Sealer", "sealing_key"]

SEALED = b"C2CS\x01"  # "C2C sealed", format 1
_NONCE = 12
_HEADER = len(SEALED) + 1 + _NONCE


def sealing_key(secret: bytes) -> bytes:
    """The AES-256 key of person values, derived from the identity secret (an HMAC of a
    fixed label, so it is not the key of the identifier hashes)."""
    return hmac.digest(secret, b"c2c identity-persons values, AES-256-GCM", hashlib.sha256)


class Sealer:
    """Seals values under the current key version; opens values of any version it has a
    secret for. ``secrets`` maps a key version (1..255) to its identity secret."""

    def __init__(self, secrets: Mapping[int, bytes], current: int) -> None:
        if current not in secrets:
            raise ValueError(f"no identity secret for the current key version {current}")
        if not all(0 < version < 256 for version in secrets):
            raise ValueError("key versions are 1 to 255")
        self._ciphers = {v: AESGCM(sealing_key(s)) for v, s in secrets.items()}
        self._current = current

    @staticmethod
    def version(value: bytes) -> int | None:
        """The key version ``value`` was sealed under; None for an unsealed value."""
        if not value.startswith(SEALED) or len(value) <= len(SEALED):
            return None
        return value[len(SEALED)]

    def seal(self, key: str, value: bytes) -> bytes:
        """``value``, encrypted, bound to the table key ``key`` (a person id)."""
        nonce = os.urandom(_NONCE)
        sealed = self._ciphers[self._current].encrypt(nonce, value, key.encode())
        return b"%b%c%b%b" % (SEALED, self._current, nonce, sealed)

    def open(self, key: str, value: bytes) -> bytes:
        """The value :meth:`seal` sealed under ``key``; an unsealed (earlier) value as it is.
        SerdeError (code ``identity.sealed``) if it does not open: another secret, another
        key, or damaged bytes."""
        if not value.startswith(SEALED):
            return value
        version = value[len(SEALED)] if len(value) > len(SEALED) else 0
        cipher = self._ciphers.get(version)
        if cipher is None:
            raise SerdeError(
                f"the identity-persons value of {key} is sealed with key version {version}, "
                f"and this worker has the secrets of versions {sorted(self._ciphers)}: set "
                "C2C_IDENTITY_PREVIOUS_SECRETS to include it (streams/README.md, key rotation)",
                code="identity.sealed",
            )
        try:
            return cipher.decrypt(value[len(SEALED) + 1 : _HEADER], value[_HEADER:], key.encode())
        except (InvalidTag, ValueError) as exc:
            raise SerdeError(
                f"the identity-persons value of {key} does not open with the identity secret "
                f"of key version {version}: the secret changed, or the value is damaged. "
                "Start the worker with the secret that wrote its tables.",
                code="identity.sealed",
            ) from exc

"""Keyed pseudonyms: ids that leave the identity zone, computed with the identity secret.

An id derived from source data (a row's content, a request id that embeds a person's
number) must not be computable by anyone holding that data: otherwise a source row finds
its person's facts in the de-identified zone. Every such id is an HMAC-SHA256 keyed with
``C2C_IDENTITY_SECRET`` (as the identity resolver keys SSNs), under a purpose of its own so
that two kinds of id never coincide.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["keyed_digest", "purpose_key"]


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """The key of ``purpose`` (an event id's provider, opt-out requests) under ``secret``:
    computed once, then used for many digests."""
    if not secret:
        raise ValueError("the identity secret is empty: set C2C_IDENTITY_SECRET")
    return hmac.digest(secret, b"c2c-pseudonym|" + purpose.encode(), hashlib.sha256)


def keyed_digest(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under a :func:`purpose_key` (one call into OpenSSL)."""
    return hmac.digest(key, message, hashlib.sha256)

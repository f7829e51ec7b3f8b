"""The sharded resolver's messages as bytes (streams/identity/sharding.py's rounds between
processes): pickled, compressed, sealed, and cut into chunks a broker takes.

A round's arguments and answers hold names, birth dates and keyed hashes (identities,
profiles), so every payload is sealed as the persons table's values are
(:class:`~streams.identity.sealing.Sealer`: AES-256-GCM under a key derived from the identity
secret, bound to the call's id), after lz4 (ciphertext does not compress). Only a process
holding the identity secret reads or writes them, and a payload moved to another call does
not open. Unpickling is limited to the classes the rounds carry (:data:`ALLOWED`): a payload
that opens was sealed by a holder of the secret, and even so names no other class.

Pure code, no Kafka: streams/shards.py sends the chunks.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from typing import Any

import lz4.frame

from c2c.serde import SerdeError
from streams.identity.sealing import Sealer

__all__ = ["ALLOWED", "CHUNK_BYTES", "decode", "encode", "join_chunks", "split_chunks"]

# Below the broker's default message.max.bytes (1 MB) with room for headers and batching.
CHUNK_BYTES = 900_000

# (module, name) a payload may name; modules under streams.identity. are the rounds' types
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("decimal", "Decimal"),
    }
)
_OWN = "streams.identity."


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED or module.startswith(_OWN):
            return super().find_class(module, name)
        raise SerdeError(
            f"a shard message names {module}.{name}, which no round carries: refused "
            "(a message from another program, or a version that carries new types: run one "
            "version on every shard)",
            code="identity.wire",
        )


def encode(sealer: Sealer, call: str, message: Any) -> bytes:
    """``message`` as sealed bytes bound to ``call`` (its id)."""
    raw = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return sealer.seal(call, lz4.frame.compress(raw))


def decode(sealer: Sealer, call: str, payload: bytes) -> Any:
    """The message :func:`encode` sealed under ``call``. SerdeError if the payload is not
    sealed, does not open (another secret, another call, damaged bytes) or names a class
    the rounds do not carry."""
    if Sealer.version(payload) is None:
        raise SerdeError(
            f"shard message {call} is not sealed: refused (only a process holding the "
            "identity secret writes shard messages)",
            code="identity.wire",
        )
    raw = lz4.frame.decompress(sealer.open(call, payload))
    return _Unpickler(io.BytesIO(raw)).load()


def split_chunks(payload: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``payload`` cut into pieces of at most ``size`` bytes (one, possibly empty, at least)."""
    return [payload[at : at + size] for at in range(0, max(len(payload), 1), size)]


def join_chunks(chunks: Sequence[bytes | None], call: str) -> bytes:
    """The payload of ``call`` from its chunks in order; SerdeError if one is missing."""
    missing = [at for at, chunk in enumerate(chunks) if chunk is None]
    if missing:
        raise SerdeError(
            f"shard message {call} lacks chunk(s) {missing} of {len(chunks)}",
            code="identity.wire",
        )
    return b"".join(chunk for chunk in chunks if chunk is not None)

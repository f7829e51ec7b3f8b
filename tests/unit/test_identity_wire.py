"""The sharded resolver's messages as bytes (streams/identity/wire.py): a round's arguments
come back equal; a payload that is not sealed, is sealed for another call or under
another secret, or names a class no round carries is refused with the reason; chunks
join back into the payload."""

from __future__ import annotations

import pickle

import pytest

from c2c.serde import SerdeError
from streams.identity import wire
from streams.identity.resolver import IdentifierHasher
from streams.identity.sealing import Sealer
from streams.identity.sharding import EpochWrites, PersonState, Shard

SEALER = Sealer({1: b"wire-test-secret"}, 1)
RECORDS = [
    (
        "CDE",
        {
            "ssn": "123-45-6789",
            "first_name": "Ana",
            "last_name": "Ruiz",
            "birth_date": "2001-02-03",
        },
    ),
    ("EDD", {"ssn": "123456789", "first_name": "ANA", "last_name": "RUIZ"}),
]


def _prepared() -> object:
    return Shard(IdentifierHasher(b"k")).prepare(RECORDS, 0, 1)


def test_a_rounds_arguments_and_answers_come_back_equal() -> None:
    prepared = _prepared()
    identity = prepared.identities[0]  # type: ignore[attr-defined]
    writes = EpochWrites(
        persons={"P1": PersonState([identity], {"ssn": {"h"}})},
        blocks={"k": {"P1"}},
        merges={"P2": "P1"},
    )
    for message in (("prepare", (RECORDS, 0, 2)), prepared, ("apply", (writes,))):
        payload = wire.encode(SEALER, "run:1:0", message)
        assert b"Ruiz" not in payload  # sealed
        assert b"RUIZ" not in payload
        assert wire.decode(SEALER, "run:1:0", payload) == message


def test_a_payload_sealed_for_another_call_or_secret_does_not_open() -> None:
    payload = wire.encode(SEALER, "run:1:0", ("probe", ([], [])))
    with pytest.raises(SerdeError):
        wire.decode(SEALER, "run:1:1", payload)
    with pytest.raises(SerdeError):
        wire.decode(Sealer({1: b"another-secret"}, 1), "run:1:0", payload)


def test_an_unsealed_payload_is_refused_before_it_is_unpickled() -> None:
    with pytest.raises(SerdeError, match="not sealed"):
        wire.decode(SEALER, "run:1:0", pickle.dumps(("probe", ([], []))))


def test_a_payload_naming_a_class_no_round_carries_is_refused() -> None:
    import lz4.frame

    raw = pickle.dumps(("probe", (pickle.Unpickler,)))
    payload = SEALER.seal("run:1:0", lz4.frame.compress(raw))
    with pytest.raises(SerdeError, match="no round carries"):
        wire.decode(SEALER, "run:1:0", payload)


def test_chunks_join_back_into_the_payload_and_a_missing_one_is_named() -> None:
    payload = bytes(range(256)) * 10
    chunks = wire.split_chunks(payload, size=100)
    assert len(chunks) == 26
    assert max(map(len, chunks)) == 100
    assert wire.join_chunks(chunks, "c") == payload
    assert wire.split_chunks(b"", size=100) == [b""]
    with pytest.raises(SerdeError, match=r"lacks chunk\(s\) \[3\] of 26"):
        wire.join_chunks([*chunks[:3], None, *chunks[4:]], "c")

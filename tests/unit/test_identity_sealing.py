"""Person values sealed at rest (streams/identity/sealing.py): names and birth dates of the
identity-persons table are not readable without the identity secret."""

from __future__ import annotations

import pytest

from c2c.serde import SerdeError
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sealing import SEALED, Sealer
from streams.identity.snapshots import decode_snapshot, encode_snapshot

MARIA = {
    "source_person_id": "L1",
    "ssn": "123456789",
    "first_name": "Maria",
    "last_name": "Oyelaran",
    "birth_date": "2007-03-14",
    "zip": "94110",
}


def _value() -> tuple[str, bytes]:
    resolver = Resolver(IdentifierHasher(b"test-secret"))
    person_id = str(resolver.resolve("k12", MARIA).person_id)
    return person_id, encode_snapshot(resolver.state.snapshot(person_id))


def test_a_sealed_value_holds_no_name_and_opens_with_its_key() -> None:
    person_id, value = _value()
    assert b"oyelaran" in value.lower()  # the snapshot keeps the name, for matching
    sealer = Sealer({1: b"secret-one"}, 1)
    sealed = sealer.seal(person_id, value)
    assert sealed.startswith(SEALED)
    for clear in (b"oyelaran", b"maria", b"2007-03-14", b"94110"):
        assert clear not in sealed.lower()
    assert sealer.open(person_id, sealed) == value
    assert decode_snapshot(sealer.open(person_id, sealed))["profile"][0]["last"] == "oyelaran"
    # an unsealed value (written before sealing) is read as it is
    assert sealer.open(person_id, value) == value


def test_a_value_does_not_open_with_another_secret_or_under_another_person() -> None:
    person_id, value = _value()
    sealed = Sealer({1: b"secret-one"}, 1).seal(person_id, value)
    with pytest.raises(SerdeError, match="does not open") as caught:
        Sealer({1: b"secret-two"}, 1).open(person_id, sealed)
    assert caught.value.code == "identity.sealed"
    with pytest.raises(SerdeError, match="does not open"):
        Sealer({1: b"secret-one"}, 1).open("P0000000099", sealed)
    with pytest.raises(SerdeError, match="does not open"):
        Sealer({1: b"secret-one"}, 1).open(person_id, sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_a_new_key_version_seals_new_values_and_opens_old_ones() -> None:
    person_id, value = _value()
    old = Sealer({1: b"secret-one"}, 1).seal(person_id, value)
    rotated = Sealer({1: b"secret-one", 2: b"secret-two"}, 2)
    assert rotated.open(person_id, old) == value
    new = rotated.seal(person_id, value)
    assert new[len(SEALED)] == 2
    assert rotated.open(person_id, new) == value
    with pytest.raises(SerdeError, match="key version 2") as caught:
        Sealer({1: b"secret-one"}, 1).open(person_id, new)
    assert "C2C_IDENTITY_PREVIOUS_SECRETS" in str(caught.value)

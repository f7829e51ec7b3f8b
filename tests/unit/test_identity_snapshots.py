"""The persons table's value format: binary snapshots, and the JSON ones of earlier workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from c2c.serde import SerdeError
from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.matching import Identity
from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
from streams.identity.snapshots import (
    IDENTITY_FIELDS,
    MAGIC,
    SnapshotEncoder,
    decode_snapshot,
    encode_snapshot,
)

SECRET = b"test-secret"


def _resolved(tmp_path: Path, people: int, seed: int) -> tuple[Resolver, list[Any]]:
    synthesize(SynthConfig(people=people, seed=seed), NoiseConfig(), tmp_path)
    return Resolver(IdentifierHasher(SECRET)), list(mapped_events(tmp_path))


def test_every_field_of_an_identity_is_encoded() -> None:
    assert [name for name, _ in IDENTITY_FIELDS] == sorted(
        Identity().to_json(), key=[name for name, _ in IDENTITY_FIELDS].index
    )
    assert {name for name, _ in IDENTITY_FIELDS} == set(Identity().to_json())


def test_snapshots_round_trip_and_are_smaller_than_json(tmp_path: Path) -> None:
    resolver, events = _resolved(tmp_path, 120, 3)
    for _source, event in events:
        resolver.resolve(event["provider"], event["person"])
    state = resolver.state
    # an opt-out request rides in the snapshot of the person who asked
    asker = next(iter(state.profiles))
    state.optouts[asker] = {
        "req-2": {"at": 1_700_000_000_001, "by": "PROVIDER"},
        "req-1": {"at": 1_700_000_000_000, "by": "operator"},
    }
    assert state.merged_into, "the synth should give merges (tombstones) to encode"
    binary = json_size = 0
    encoder = SnapshotEncoder(cache_size=16)  # smaller than the state: entries go and return
    for person_id in [*state.profiles, *state.merged_into, *state.profiles]:
        snapshot = state.snapshot(person_id)
        value = encode_snapshot(snapshot)
        assert encoder.encode(state, person_id) == value, person_id
        assert value.startswith(MAGIC)
        assert decode_snapshot(value) == json.loads(json.dumps(snapshot)), person_id
        binary += len(value)
        json_size += len(json.dumps(snapshot).encode())
    assert decode_snapshot(encode_snapshot(state.snapshot(asker)))["optouts"] == {
        "req-1": {"at": 1_700_000_000_000, "by": "operator"},
        "req-2": {"at": 1_700_000_000_001, "by": "PROVIDER"},
    }
    assert binary < 0.6 * json_size, (binary, json_size)


def test_texts_that_are_not_hashes_keep_their_exact_form() -> None:
    odd = {
        "ssn": "ABCDEF0123456789ABCDEF0123456789",  # 32 hex digits, but upper case
        "ssid": "0123456789abcdef0123456789abcde",  # 31 digits
        "itin": None,
        "ssn_masks": ["not-a-hash", "0123456789abcdef0123456789abcdef"],
        "ssid_masks": [],
        "first": "zoë",
        "first_root": "",
        "last": "nguyễn",
        "last_parts": ["nguyễn"],
        "birth_date": None,
        "sex": None,
        "zip": "90011",
    }
    snapshot = {"profile": [odd], "trusted": {"ssn": [], "ssid": ["x"]}}
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_json_values_of_earlier_workers_still_load(tmp_path: Path) -> None:
    """An existing changelog holds JSON snapshots: a worker restored from a mix of JSON and
    binary values (persons not written again since the upgrade) decides as the running
    one does."""
    resolver, events = _resolved(tmp_path, 300, 5)
    half = len(events) // 2
    stored: dict[str, bytes] = {}
    sources: dict[tuple[str, str], str] = {}
    for index, (_source, event) in enumerate(events[:half]):
        result = resolver.resolve(event["provider"], event["person"])
        for person_id in result.touched:
            snapshot = resolver.state.snapshot(person_id)
            # the first third written by the JSON worker, the rest by this one
            stored[person_id] = (
                json.dumps(snapshot).encode() if index < half // 3 else encode_snapshot(snapshot)
            )
        if result.new_source is not None:
            sources[result.new_source] = str(result.person_id)
    assert any(v.startswith(b"{") for v in stored.values())
    assert any(v.startswith(MAGIC) for v in stored.values())
    restored = Resolver(
        IdentifierHasher(SECRET),
        state=IdentityState.restore(
            ((pid, decode_snapshot(v)) for pid, v in stored.items()), sources.items()
        ),
    )
    assert restored.state.next_number == resolver.state.next_number
    for _source, event in events[half:]:
        expected = resolver.resolve(event["provider"], event["person"])
        got = restored.resolve(event["provider"], event["person"])
        assert (got.person_id, got.changes) == (expected.person_id, expected.changes)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"PK\x03\x04", "neither a version-1 person snapshot"),
        (b"{not json", "damaged JSON"),
        (b"[1, 2]", "neither a version-1"),
        (MAGIC + b"X", "unknown kind"),
        (MAGIC + b"P\x00\x01\x01\x12", "damaged person snapshot"),
        (encode_snapshot({"merged_into": "P0000000001"}) + b"\x00", "ends at byte"),
    ],
)
def test_a_damaged_value_is_an_error_naming_where(value: bytes, says: str) -> None:
    with pytest.raises(SerdeError, match=says) as caught:
        decode_snapshot(value, where="identity-persons P0000000007")
    assert "identity-persons P0000000007" in str(caught.value)
    assert caught.value.code == "identity.snapshot"


def test_a_mapping_that_is_no_snapshot_is_refused() -> None:
    with pytest.raises(SerdeError, match="profile list or merged_into"):
        encode_snapshot({"trusted": {}})

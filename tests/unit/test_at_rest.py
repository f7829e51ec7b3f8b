"""The at-rest scanner (tests/at_rest.py) finds identifiers and names in clear, so that the
at-rest scan (tests/integration/test_at_rest.py) can fail; and the topic catalogue says why
each identity-zone topic is kept as long as it is."""

from __future__ import annotations

import json

from c2c.topics import CATALOGUE
from streams.identity.resolver import IdentifierHasher
from streams.identity.sealing import Sealer
from streams.tables import source_key
from tests.at_rest import Found, Wanted, identifiers_in, names_in, vocabulary

PEOPLE = [
    {"ssn": "123456789", "ssid": "1234567890", "first_name": "María", "last_name": "García"},
    {"itin": "912345678", "first_name": "Le", "last_name": "White", "source_person_id": "S1"},
    {"source_person_id": "555443333", "first_name": "Jesús", "last_name": "Hernández-Ruiz"},
]


def test_identifiers_are_found_as_whole_runs_of_digits() -> None:
    wanted = Wanted.of(PEOPLE)
    assert wanted.identifiers == {"123456789", "1234567890", "912345678", "555443333"}
    assert identifiers_in(b'{"key": "edd\\u001f123456789"}', wanted.identifiers) == {"123456789"}
    assert identifiers_in(b"\x12123456789\x00", wanted.identifiers) == {"123456789"}
    assert identifiers_in(b"ssid 1234567890.", wanted.identifiers) == {"1234567890"}
    # inside a longer number it is another number
    assert identifiers_in(b"at 17123456789000", wanted.identifiers) == set()


def test_names_are_found_folded_as_whole_words() -> None:
    wanted = Wanted.of(PEOPLE, vocabulary=vocabulary())
    assert wanted.names == {"garcia", "hernandez"}
    assert "white" not in wanted.names  # a race/ethnicity symbol of the schemas
    # too short to tell from chance bytes
    assert {"le", "ruiz", "maria", "jesus"} <= wanted.skipped_names
    assert names_in("GARCÍA, María".encode(), wanted.names) == {"garcia"}
    assert names_in(b"Hernandez-Ruiz", wanted.names) == {"hernandez"}
    assert names_in(b"garcias and hernandezes", wanted.names) == set()


def test_hashed_and_sealed_forms_are_not_found_and_clear_ones_are() -> None:
    wanted = Wanted.of(PEOPLE, vocabulary=vocabulary())
    hasher = IdentifierHasher(b"secret")
    found = Found()
    found.add(
        "hashed key",
        json.dumps(source_key("edd", hasher.source_id("edd", "555443333"))).encode(),
        wanted,
    )
    found.add("sealed", Sealer({1: b"secret"}, 1).seal("P1", b"garcia 123456789"), wanted)
    found.add("clear key", json.dumps("edd\x1f555443333").encode(), wanted)
    found.add("clear name", b"\x0cGarc\xc3\xada", wanted)
    assert found.outside([r"raw\..*"]) == {
        "clear key (identifiers)": "555443333",
        "clear name (names)": "garcia",
    }
    assert found.outside([r"clear .*"]) == {}
    assert found.scanned.keys() == {"hashed key", "sealed", "clear key", "clear name"}


def test_every_identity_zone_topic_says_why_it_is_kept_so_long() -> None:
    for topic in CATALOGUE:
        if topic.zone == "identity":
            assert topic.kept, topic.name
            assert "retention.ms" in topic.config, topic.name

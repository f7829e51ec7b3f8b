"""The resolver's rules for noisy identifiers, one test each: shared SSNs, numbers mistyped
by one digit, twins with near numbers, swapped names, wage records with initials."""

from __future__ import annotations

import datetime
from typing import Any

from streams.identity.matching import compare, identifier_typo, names_agree
from streams.identity.resolver import IdentifierHasher, Resolver

SECRET = b"test-secret"
BORN = datetime.date(2001, 11, 17)


def _person(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(
        (
            "source_person_id",
            "ssn",
            "ssid",
            "itin",
            "first_name",
            "last_name",
            "birth_date",
            "sex",
            "zip",
        )
    )
    base.update(fields)
    return base


def _wage(ssn: str, first: str, last: str) -> dict[str, Any]:
    """A wage record: SSN and name only, filed by the employment department under the SSN."""
    return _person(source_person_id=ssn, ssn=ssn, first_name=first, last_name=last)


def _college(source_id: str, first: str, last: str, **fields: Any) -> dict[str, Any]:
    college = {"birth_date": BORN, "sex": "FEMALE", "zip": "90011", **fields}
    return _person(source_person_id=source_id, first_name=first, last_name=last, **college)


def test_two_people_sharing_an_ssn_keep_their_own_wage_records() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    ana = resolver.resolve("ccc", _college("C1", "Ana", "Lee", ssn="123456789")).person_id
    omar = resolver.resolve(
        "csu",
        _college(
            "S1", "Omar", "Diaz", ssn="123456789", birth_date=datetime.date(1990, 1, 2), sex="MALE"
        ),
    ).person_id
    assert ana != omar  # one SSN, two different names: two people
    # wage records are filed under the SSN: the source id names Ana's person first
    assert resolver.resolve("edd", _wage("123456789", "ANA", "LEE")).person_id == ana
    omar_wages = resolver.resolve("edd", _wage("123456789", "OMAR", "DIAZ"))
    assert omar_wages.person_id == omar
    assert not any(c.change_type == "PERSONS_MERGED" for c in omar_wages.changes)
    # and Ana's later wages still go to Ana
    assert resolver.resolve("edd", _wage("123456789", "A", "LEE")).person_id == ana
    assert resolver.resolve("edd", _wage("123456789", "O", "DIAZ")).person_id == omar


def test_the_source_id_still_links_a_changed_surname_or_swapped_names() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    ana = resolver.resolve("edd", _wage("123456789", "ANA", "LEE")).person_id
    for first, last in (("ANA", "SMITH"), ("LEE", "ANA"), ("LEE", "ANNA"), ("ANNA", "LEE")):
        result = resolver.resolve("edd", _wage("123456789", first, last))
        assert result.person_id == ana, (first, last)


def test_names_agree_unless_first_and_last_names_both_differ() -> None:
    identity = Resolver(IdentifierHasher(SECRET)).identity

    def agree(a: tuple[str, str], b: tuple[str, str]) -> bool:
        return names_agree(
            identity(_person(first_name=a[0], last_name=a[1])),
            identity(_person(first_name=b[0], last_name=b[1])),
        )

    assert agree(("Ana", "Lee"), ("Ana", "Smith"))  # married
    assert agree(("Bill", "Lee"), ("William", "Lee"))  # nickname
    assert agree(("Lee", "Ana"), ("Ana", "Lee"))  # swapped
    assert agree(("Omar", "Schmidt-Díaz"), ("Ana", "Díaz"))  # a shared surname part
    assert agree(("A", "Lee"), ("Ana", "Lee"))  # an initial
    assert agree(("Lee", "A"), ("Ana", "Lee"))  # swapped, with an initial
    assert agree(("Graec", "Santos"), ("Grace", "Vargas"))  # a typo, and married
    assert agree(("Evuns", "I"), ("Isaac", "Evans"))  # swapped, with a typo
    assert not agree(("Ina", "Santos"), ("Ana", "Vargas"))  # short names: one letter counts
    assert not agree(("Omar", "Diaz"), ("Ana", "Lee"))
    assert not agree(("Alexander", "Tanaka"), ("Alejandro", "Cooper"))  # close, not alike
    assert not agree(("A", "Muller"), ("M", "Rogers"))
    assert not agree(("O", "Diaz"), ("Ana", "Lee"))


def test_a_wage_record_with_a_mistyped_ssn_and_an_initial_finds_its_person() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    ana = resolver.resolve("ccc", _college("C1", "Ana", "Herrera", ssn="424528005")).person_id
    result = resolver.resolve("edd", _wage("424228005", "A", "HERRERA"))
    assert result.person_id == ana
    assert result.rule == "PROBABILISTIC"


def test_a_mistyped_ssn_with_a_surname_typo_is_found_through_the_masked_ssn() -> None:
    """The surname typo moves the record out of its name block; one of its SSN's masked
    hashes is the person's."""
    resolver = Resolver(IdentifierHasher(SECRET))
    miguel = resolver.resolve(
        "ccc", _college("C1", "Miguel", "Sarkisian", ssn="345330815")
    ).person_id
    assert resolver.resolve("edd", _wage("335330815", "MIGUEL", "SRAKISIAN")).person_id == miguel


def test_persons_split_by_a_mistyped_ssn_merge_when_a_record_bridges_them() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    # the college typed her SSN with one digit wrong, under her maiden name
    first = resolver.resolve("ccc", _college("C1", "Ana", "Lee", ssn="992038187"))
    # her wages, under the right SSN and her married name: too unlike to match alone
    wages = resolver.resolve("edd", _wage("992038177", "ANA", "LI"))
    assert wages.person_id != first.person_id
    # the college's next record, under its own id for her, carries both: it bridges them
    bridge = resolver.resolve("ccc", _college("C1", "Ana", "Li", ssn="992038177"))
    assert bridge.person_id == first.person_id
    assert [(c.change_type, c.previous_person_id) for c in bridge.changes] == [
        ("PERSONS_MERGED", wages.person_id),
        ("RECORD_LINKED", None),
    ]


def test_ssns_one_digit_apart_with_an_initial_and_another_surname_stay_apart() -> None:
    """With a first initial only and another surname, a number one digit off may be
    someone else's: the evidence between the two persons stays below the threshold."""
    resolver = Resolver(IdentifierHasher(SECRET))
    first = resolver.resolve("ccc", _college("C1", "Ana", "Lee", ssn="992038187"))
    other = resolver.resolve("edd", _wage("992038177", "A", "SMITH"))
    assert other.person_id != first.person_id
    # a record of another college, with the same near number and another first name
    stranger = resolver.resolve("csu", _college("S1", "Omar", "Smith", ssn="992038177"))
    assert stranger.person_id != first.person_id


def test_twins_with_consecutive_ssns_stay_two_people() -> None:
    """Twins share birth date, surname and address, and were often issued consecutive
    SSNs: one digit apart is then not a typo, but two numbers, weighed as such."""
    resolver = Resolver(IdentifierHasher(SECRET))
    ana = _college("C1", "Ana", "Lee", ssn="123456780")
    eva = _college("C2", "Eva", "Lee", ssn="123456781")
    score = compare(resolver.identity(eva), resolver.identity(ana))
    assert score.level("ssn") == "disagree"  # near numbers on other first names: not a typo
    assert score.weight < resolver.model.threshold
    assert resolver.resolve("ccc", ana).person_id != resolver.resolve("ccc", eva).person_id
    assert not identifier_typo(resolver.identity(ana), resolver.identity(eva), "ssn")
    assert identifier_typo(
        resolver.identity(ana), resolver.identity({**ana, "ssn": "123456781"}), "ssn"
    )


def test_swapped_names_without_identifiers_find_the_person_by_birth_date() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    k12 = resolver.resolve("k12", _college("L1", "Alejandro", "Nguyen", ssid="2199495967"))
    aid = resolver.resolve("csac", _college("A1", "Nguyen", "Alejandro"))
    assert aid.person_id == k12.person_id


def test_birth_dates_before_the_year_1000_compare_without_failing() -> None:
    """A year of three digits was written as three by strftime, and the digit-by-digit
    comparison refused strings of different lengths (a crash loop on a validated record)."""
    resolver = Resolver(IdentifierHasher(SECRET))

    def born(day: datetime.date) -> Any:
        return resolver.identity(_college("X", "Ana", "Lee", birth_date=day))

    assert (
        compare(born(datetime.date(999, 1, 1)), born(datetime.date(1999, 1, 1))).level("birth_date")
        == "one_part"
    )
    assert (
        compare(born(datetime.date(1, 1, 1)), born(datetime.date(2001, 1, 1))).level("birth_date")
        == "one_part"
    )
    first = resolver.resolve(
        "ccc", _college("C1", "Ana", "Lee", ssn="123456789", birth_date=datetime.date(999, 1, 1))
    )
    second = resolver.resolve(
        "ccc", _college("C2", "Ana", "Lee", ssn="123456789", birth_date=datetime.date(1999, 1, 1))
    )
    assert second.person_id == first.person_id  # same SSN and name, a birth date one digit off


def test_a_name_of_100000_characters_is_resolved_and_its_person_snapshot_fits() -> None:
    """Matching reads the first MAX_NAME_CHARS of a name, so a person's snapshot stays small
    (texts and lists of over 65,535 failed to encode and crashed the worker)."""
    from streams.identity.normalize import MAX_NAME_CHARS
    from streams.identity.snapshots import decode_snapshot, encode_snapshot

    resolver = Resolver(IdentifierHasher(SECRET))
    long_first, long_last = "A" * 100_000, " ".join(["Lee"] * 70_000)
    found = resolver.resolve("ccc", _college("C9", long_first, long_last, ssn="123456780"))
    snapshot = resolver.state.snapshot(found.person_id)
    encoded = encode_snapshot(snapshot)
    assert len(encoded) < 10 * MAX_NAME_CHARS * 4
    assert decode_snapshot(encoded) == snapshot
    again = resolver.resolve("ccc", _college("C10", long_first, long_last, ssn="123456780"))
    assert again.person_id == found.person_id

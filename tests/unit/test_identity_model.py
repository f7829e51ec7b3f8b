"""The learned Fellegi-Sunter model: comparison levels, u by random sampling and m by EM
on a known mixture, identifier errors as evidence rather than a veto, twins kept apart by
the evidence, and the shipped, versioned weights."""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path
from typing import Any

import pytest

from streams.identity.matching import (
    DEFAULT_MODEL,
    PRIORS,
    TWO_DIGIT_MARK,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    MatchModel,
    compare,
    identifier_level,
    match_probability,
    threshold_for,
)
from streams.identity.resolver import IdentifierHasher, Resolver, blocking_keys
from streams.identity.training import (
    estimate_u,
    expectation_maximisation,
    match_prior,
    random_pairs,
)

SECRET = b"test-secret"
BORN = datetime.date(2003, 4, 17)


def _person(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(
        ("source_person_id", "ssn", "ssid", "itin", "first_name", "last_name", "birth_date")
    )
    base.update({"sex": "FEMALE", "zip": "90011"}, **fields)
    return base


def test_identifier_levels_from_keyed_hashes_alone() -> None:
    hasher = IdentifierHasher(SECRET)

    def level(a: str, b: str) -> str:
        return identifier_level(
            str(hasher("ssn", a)),
            str(hasher("ssn", b)),
            hasher.masks("ssn", a),
            hasher.masks("ssn", b),
        )

    assert level("123456789", "123456789") == "agree"
    assert level("123456789", "124356789") == "transposed"  # 3 and 4 swapped
    assert level("123456789", "123456780") == "one_digit"
    assert level("123456789", "123459788") == "two_digits"  # 6 and 9 off
    assert level("123456789", "923456780") == "two_digits"  # the first and last digits
    assert level("123456789", "123450780") == "two_digits"  # two digits off, not adjacent
    assert level("123456789", "923450780") == "disagree"  # three digits off
    assert level("123456789", "987654321") == "disagree"
    # the two-digit masks are marked hashes like the rest: no SSN is kept in clear, and
    # none is a blocking key (36 a number)
    masks = hasher.masks("ssn", "123456789")
    assert sum(mask.startswith(TWO_DIGIT_MARK) for mask in masks) == 36
    assert not any("123" in mask or "789" in mask for mask in masks)
    identity = Resolver(hasher).identity(_person(ssn="123456789", first_name="A", last_name="B"))
    assert not any(TWO_DIGIT_MARK in key for key in blocking_keys(identity))
    # an SSID has no two-digit level
    ssid_masks = hasher.masks("ssid", "1234567890")
    assert not any(mask.startswith(TWO_DIGIT_MARK) for mask in ssid_masks)


def test_name_date_and_zip_levels() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    base = _person(first_name="Katherine", last_name="Nakamura", birth_date=BORN)
    me = resolver.identity(base)

    def levels(**change: Any) -> dict[str, str]:
        return dict(compare(resolver.identity({**base, **change}), me).levels)

    assert levels()["first"] == "exact"
    assert levels(first_name="Kate")["first"] == "nickname"
    assert levels(first_name="Katherina")["first"] == "close"
    assert levels(first_name="Kathleen")["first"] == "similar"
    assert levels(first_name="K")["first"] == "initial"
    assert levels(first_name="Omar")["first"] == "different"
    assert levels(last_name="Nakamora")["last"] == "close"
    assert levels(last_name="Nakamura-Smith")["last"] == "part"

    # one edit that Jaro-Winkler puts under 0.88: a letter replaced early in a short
    # surname; a first name so near stays another name (twins' Dean and Sean)
    def pair(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str]:
        return dict(
            compare(resolver.identity(_person(**a)), resolver.identity(_person(**b))).levels
        )

    assert pair({"last_name": "TRlN"}, {"last_name": "Tran"})["last"] == "one_edit"  # JW 0.867
    assert pair({"first_name": "Sean"}, {"first_name": "Dean"})["first"] == "different"
    # not in names of three letters or fewer (Lee, Lea), nor two edits apart
    assert pair({"last_name": "Lea"}, {"last_name": "Lee"})["last"] == "different"
    assert levels(last_name="Nkamuro")["last"] == "different"
    swapped = levels(first_name="Nakamura", last_name="Katherine")
    assert (swapped["first"], swapped["last"]) == ("exact", "exact")
    with_typo = levels(first_name="Nakamora", last_name="Katherine")
    assert (with_typo["first"], with_typo["last"]) == ("exact", "close")
    assert levels(birth_date=datetime.date(2003, 4, 17))["birth_date"] == "exact"
    assert levels(birth_date=datetime.date(2003, 17 - 13, 4))["birth_date"] != "exact"
    day_month = resolver.identity({**base, "birth_date": datetime.date(2003, 4, 5)})
    other = resolver.identity({**base, "birth_date": datetime.date(2003, 5, 4)})
    assert compare(day_month, other).level("birth_date") == "swapped"
    assert levels(birth_date=datetime.date(2004, 4, 17))["birth_date"] == "one_part"
    assert levels(birth_date=datetime.date(2003, 1, 1))["birth_date"] == "same_year"
    assert levels(birth_date=datetime.date(1990, 1, 1))["birth_date"] == "different"
    assert levels(zip="90012")["zip"] == "near"
    assert levels(zip="94110")["zip"] == "disagree"


def test_a_rare_name_weighs_more_than_a_common_one() -> None:
    model = DEFAULT_MODEL
    common = max(model.term_frequencies["last"], key=model.term_frequencies["last"].__getitem__)
    assert model.exact_weight("last", "zyxwvutsrq") > model.exact_weight("last", common)
    assert model.exact_weight("last", common) > 0


def test_u_by_random_sampling_recovers_chance_agreement() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    rng = random.Random(3)
    start = datetime.date(2000, 1, 1)
    identities = [
        resolver.identity(
            _person(
                first_name=f"N{i}",
                last_name=f"S{i}",
                birth_date=start + datetime.timedelta(days=rng.randrange(100)),
                sex=rng.choice(("FEMALE", "MALE")),
            )
        )
        for i in range(3000)
    ]
    u = estimate_u(random_pairs(identities, 40_000, seed=1), PRIORS)
    assert u["birth_date"]["exact"] == pytest.approx(0.01, abs=0.003)  # 1 day in 100
    assert u["sex"]["agree"] == pytest.approx(0.5, abs=0.02)


def test_em_recovers_the_m_probabilities_of_a_known_mixture() -> None:
    rng = random.Random(7)
    true_m = {
        "a": {"yes": 0.9, "no": 0.1},
        "b": {"yes": 0.8, "no": 0.2},
        "c": {"yes": 0.7, "no": 0.3},
    }
    u = {"a": {"yes": 0.05, "no": 0.95}, "b": {"yes": 0.1, "no": 0.9}, "c": {"yes": 0.2, "no": 0.8}}
    share = 0.3

    def draw(probabilities: dict[str, dict[str, float]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (c, "yes" if rng.random() < levels["yes"] else "no")
            for c, levels in probabilities.items()
        )

    vectors = [draw(true_m if rng.random() < share else u) for _ in range(30_000)]
    start = {c: {"yes": 0.6, "no": 0.4} for c in true_m}
    m, found_share, _ = expectation_maximisation(vectors, start, u, iterations=200)
    assert found_share == pytest.approx(share, abs=0.02)
    for c, levels in true_m.items():
        assert m[c]["yes"] == pytest.approx(levels["yes"], abs=0.03), c


def test_a_transposed_or_mistyped_ssn_no_longer_splits_a_person() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    fields = {"first_name": "Yesenia", "last_name": "Okafor", "birth_date": BORN}
    first = resolver.resolve("ccc", _person(source_person_id="C1", ssn="123456789", **fields))
    for source, ssn in (("csu", "124356789"), ("uc", "123456780"), ("csac", "123459788")):
        result = resolver.resolve(source, _person(source_person_id=source, ssn=ssn, **fields))
        assert result.person_id == first.person_id, ssn


def test_a_surname_typo_jaro_winkler_misses_no_longer_splits_a_wage_record() -> None:
    """A wage record (SSN, first and last name only) "OMAR TRlN" with one SSN digit wrong
    against its person "OMAR TRAN": fs-v3 weighed the surname as different (17.2 bits,
    under its threshold); a surname one edit apart now weighs as a typo."""
    resolver = Resolver(IdentifierHasher(SECRET))
    person = resolver.identity(
        _person(ssn="123456780", first_name="Omar", last_name="Tran", birth_date=BORN)
    )
    wage = resolver.identity(
        _person(ssn="123456789", first_name="OMAR", last_name="TRlN", sex=None, zip=None)
    )
    fs_v3 = MatchModel.load(WEIGHTS_DIR / "v3.json")
    assert compare(wage, person, fs_v3).weight < fs_v3.threshold
    score = compare(wage, person)
    assert dict(score.levels) == {"ssn": "one_digit", "first": "exact", "last": "one_edit"}
    assert score.weight >= DEFAULT_MODEL.threshold
    # first names one edit apart stay another name to the family guard: twins "Dean" and
    # "Sean" issued consecutive numbers are two numbers, not one mistyped
    dean = resolver.identity(_person(ssn="123456780", first_name="Dean", last_name="Tran"))
    sean = resolver.identity(_person(ssn="123456789", first_name="Sean", last_name="Tran"))
    assert dict(compare(sean, dean).levels)["ssn"] == "disagree"


def test_twins_one_edit_apart_with_no_identifier_stay_apart() -> None:
    """Twins "Dean" and "Sean Garcia" (same surname, birth date, sex and ZIP, no
    identifier): a first name one edit apart is another name, so they weigh as fs-v3 had
    them, under the threshold (fs-v4, which read it as a typo, put them at 33 bits)."""
    resolver = Resolver(IdentifierHasher(SECRET))
    family = {"last_name": "García", "birth_date": BORN, "sex": "MALE", "zip": "90011"}
    dean = resolver.identity(_person(first_name="Dean", **family))
    sean = resolver.identity(_person(first_name="Sean", **family))
    score = compare(sean, dean)
    assert score.level("first") == "different"
    assert score.weight < DEFAULT_MODEL.threshold
    fs_v3 = MatchModel.load(WEIGHTS_DIR / "v3.json")
    assert score.weight == pytest.approx(compare(sean, dean, fs_v3).weight, abs=0.1)


def test_a_merge_names_the_model_version_that_decided_it() -> None:
    resolver = Resolver(IdentifierHasher(SECRET))
    fields = {"first_name": "Yesenia", "last_name": "Okafor", "birth_date": BORN}
    a = resolver.resolve("ccc", _person(source_person_id="C1", ssn="123456789", **fields))
    # a wage record under another SSN, with another surname: a person of its own
    b = resolver.resolve(
        "edd",
        _person(
            source_person_id="555001111",
            ssn="555001111",
            first_name="YESENIA",
            last_name="SMITH",
            sex=None,
            zip=None,
        ),
    )
    assert b.person_id != a.person_id
    # the college's next record, under its own id for her, carries that SSN and surname
    bridge = resolver.resolve(
        "ccc", _person(source_person_id="C1", ssn="555001111", **{**fields, "last_name": "Smith"})
    )
    assert bridge.person_id == a.person_id
    merges = [c for c in bridge.changes if c.change_type == "PERSONS_MERGED"]
    assert [c.previous_person_id for c in merges] == [b.person_id]
    assert all(c.model_version == DEFAULT_MODEL.version for c in bridge.changes)


def test_twins_stay_apart_through_the_evidence() -> None:
    # same surname, address and birth date; other first names, SSIDs and SSNs
    resolver = Resolver(IdentifierHasher(SECRET))
    family = {"last_name": "Okafor", "birth_date": BORN, "zip": "90011"}
    ana = resolver.resolve(
        "k12", _person(source_person_id="L1", ssid="1000000001", first_name="Ana", **family)
    )
    eva = resolver.resolve(
        "k12", _person(source_person_id="L2", ssid="7305518262", first_name="Eva", **family)
    )
    assert ana.person_id != eva.person_id
    ana_ccc = resolver.resolve(
        "ccc",
        _person(
            source_person_id="C1", ssn="555443333", ssid="1000000001", first_name="Ana", **family
        ),
    )
    eva_ccc = resolver.resolve(
        "ccc",
        _person(
            source_person_id="C2", ssn="618290447", ssid="7305518262", first_name="Eva", **family
        ),
    )
    assert (ana_ccc.person_id, eva_ccc.person_id) == (ana.person_id, eva.person_id)
    # and a twin's aid record, with her own SSN but no SSID, finds her and not her sister
    eva_aid = resolver.resolve(
        "csac", _person(source_person_id="A2", ssn="618290447", first_name="Eva", **family)
    )
    assert eva_aid.person_id == eva.person_id
    assert not any(c.change_type == "PERSONS_MERGED" for c in eva_aid.changes)


def test_the_shipped_weights_are_versioned_and_load(tmp_path: Path) -> None:
    assert WEIGHTS_FILE.name == "v5.json"
    shipped = json.loads(WEIGHTS_FILE.read_text())
    assert DEFAULT_MODEL.version == shipped["version"] == "fs-v5"
    assert Resolver(IdentifierHasher(SECRET)).model.version == "fs-v5"
    assert "one_edit" not in DEFAULT_MODEL.probabilities["first"]
    # the threshold is derived from the learned prior, and the file says how
    derivation = DEFAULT_MODEL.derivation
    assert DEFAULT_MODEL.threshold == pytest.approx(
        threshold_for(float(derivation["prior"]), float(derivation["precision"])), abs=0.01
    )
    assert derivation["target_precision"] == 0.999
    assert float(derivation["precision"]) >= 0.999  # type: ignore[arg-type]
    # fs-v2 still loads: two digits off reads as it did then, a different number
    v2 = MatchModel.load(WEIGHTS_DIR / "v2.json")
    assert v2.version == "fs-v2"
    assert v2.tf_scope == "name"
    assert v2.weight("ssn", "two_digits") == v2.weight("ssn", "disagree")
    # fs-v2 and fs-v3 still load: a surname one edit apart reads as a different one
    for name, version in (("v2.json", "fs-v2"), ("v3.json", "fs-v3")):
        old = MatchModel.load(WEIGHTS_DIR / name)
        assert old.version == version
        assert old.weight("last", "one_edit") == old.weight("last", "different")
    saved = tmp_path / "model.json"
    DEFAULT_MODEL.save(saved)
    assert MatchModel.load(saved) == DEFAULT_MODEL
    saved.write_text('{"version": "x", "threshold": 1, "probabilities": {}}')
    with pytest.raises(ValueError, match=r"model\.json: not a match model"):
        MatchModel.load(saved)


def test_a_threshold_is_where_the_posterior_reaches_the_precision() -> None:
    threshold = threshold_for(0.001, 0.999)
    assert match_probability(threshold, 0.001) == pytest.approx(0.999)
    assert match_probability(threshold - 1, 0.001) < 0.999 < match_probability(threshold + 1, 0.001)
    # a rarer match needs more evidence
    assert threshold_for(1e-6, 0.999) > threshold
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_for(0.0, 0.999)


def test_the_prior_is_learned_without_labels() -> None:
    """Ten persons of four records each (one a typo, one without a birth date) among
    unrelated others: the prior comes out near the true share of matching pairs."""
    resolver = Resolver(IdentifierHasher(SECRET))
    rng = random.Random(3)
    letters = "abcdefghijklmnopqrstuvwxyz"
    identities = []
    true_pairs = 0
    for n in range(60):
        first = "".join(rng.choice(letters) for _ in range(7))
        last = "".join(rng.choice(letters) for _ in range(9))
        born = datetime.date(1990 + n % 20, 1 + n % 12, 1 + n % 28)
        ssn = f"{rng.randrange(10**8, 10**9)}"
        base = _person(ssn=ssn, first_name=first, last_name=last, birth_date=born)
        records = [base] + (
            [
                {**base, "zip": "90012"},
                {**base, "first_name": first[:-1] + "x"},
                {**base, "birth_date": None, "sex": None, "zip": None},
            ]
            if n < 10
            else []
        )
        identities.extend(resolver.identity(r) for r in records)
        true_pairs += len(records) * (len(records) - 1) // 2
    total = len(identities) * (len(identities) - 1) // 2
    prior = match_prior(identities, DEFAULT_MODEL)
    assert prior == pytest.approx(true_pairs / total, rel=0.2)


def test_a_rare_full_name_links_a_wage_record_and_a_common_one_does_not() -> None:
    """A wage record carries a name and an SSN, no birth date; the person's K-12 record
    carries the name, a birth date and an SSID. Only a full name rare enough for the
    posterior to reach the model's precision joins them; a common full name, a rare
    surname with another first name (a sibling), or an initial never does."""
    model = DEFAULT_MODEL
    first_names = model.term_frequencies["first"]
    last_names = model.term_frequencies["last"]
    common_first = max(first_names, key=first_names.__getitem__)
    common_last = max(last_names, key=last_names.__getitem__)

    def linked(first: str, last: str, wage_first: str | None = None) -> bool:
        resolver = Resolver(IdentifierHasher(SECRET))
        k12 = resolver.resolve(
            "k12",
            _person(
                source_person_id="L1",
                ssid="1234567890",
                first_name=first,
                last_name=last,
                birth_date=BORN,
            ),
        )
        wage = resolver.resolve(
            "edd",
            _person(
                source_person_id="600111222",
                ssn="600111222",
                first_name=(wage_first or first).upper(),
                last_name=last.upper(),
                sex=None,
                zip=None,
            ),
        )
        return wage.person_id == k12.person_id

    assert linked("Quorvandel", "Zyxthmorrow")
    assert not linked(common_first, common_last)
    assert not linked("Quorvandel", "Zyxthmorrow", wage_first="Q")
    assert not linked("Quorvandel", "Zyxthmorrow", wage_first="Belmira")
    rare = compare(
        Resolver(IdentifierHasher(SECRET)).identity(
            _person(first_name="Quorvandel", last_name="Zyxthmorrow")
        ),
        Resolver(IdentifierHasher(SECRET)).identity(
            _person(first_name="Quorvandel", last_name="Zyxthmorrow")
        ),
    )
    assert (
        match_probability(
            rare.weight - model.weight("zip", "agree") - model.weight("sex", "agree"),
            float(model.derivation["prior"]),
        )
        >= 0.999
    )

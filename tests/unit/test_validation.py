import pytest

from c2c.events import EnrollmentEvent, WageEvent
from c2c.examples import RAW_KINDS, example_raw
from c2c.validation import ValidationFailed, validate


def test_examples_of_every_kind_validate() -> None:
    import c2c.events as events

    models = {
        "enrollment": events.EnrollmentEvent,
        "completion": events.CompletionEvent,
        "financial_aid": events.FinancialAidEvent,
        "wage": events.WageEvent,
        "credential": events.CredentialEvent,
    }
    for kind in RAW_KINDS:
        validate(models[kind], example_raw(kind, 1), where=kind)


def test_an_impossible_date_is_named_with_its_row_and_field() -> None:
    event = example_raw("enrollment", 1)
    event["person"]["birth_date"] = "2031-02-30"
    with pytest.raises(ValidationFailed) as caught:
        validate(EnrollmentEvent, event, where="row 17")
    assert str(caught.value).startswith("row 17: person.birth_date is not a date (YYYY-MM-DD)")
    assert [p.field for p in caught.value.problems] == ["person.birth_date"]


def test_every_bad_field_is_reported_at_once() -> None:
    event = example_raw("wage", 1)
    event["person"]["ssn"] = "12345678X"
    event["facts"]["quarter"] = 5
    event["facts"]["wages"] = "lots"
    event["provider"] = "irs"
    del event["source_record_id"]
    event["extra_column"] = "x"
    with pytest.raises(ValidationFailed) as caught:
        validate(WageEvent, event, where="line 3")
    messages = {p.field: p.message for p in caught.value.problems}
    assert messages == {
        "provider": "is not one of 'k12', 'ccc', 'csu', 'uc', 'csac', 'edd', 'ctc' or 'other'",
        "source_record_id": "is missing",
        "person.ssn": "does not match ^[0-9]{9}$",
        "facts.quarter": "should be less than or equal to 4",
        "facts.wages": "is not a number",
        "extra_column": "is not a field of this record",
    }


def test_event_id_must_be_a_uuid() -> None:
    event = example_raw("wage", 1)
    event["event_id"] = "not-a-uuid"
    with pytest.raises(ValidationFailed, match="event_id does not match"):
        validate(WageEvent, event, where="row 1")

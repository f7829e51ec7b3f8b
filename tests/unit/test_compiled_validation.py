"""The compiled validators against the generated pydantic models: the same problems, in the
same order, with the same messages, on a broad set of good and bad events and provider rows.
"""

from __future__ import annotations

import copy
import csv
import datetime
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from c2c import events
from c2c.examples import example_linked, example_raw
from c2c.schemas import SchemaLibrary
from c2c.topics import CATALOGUE, get_topic
from c2c.validation import (
    FieldProblem,
    NotCompilable,
    compile_validator,
    date_limits,
    date_problems,
    model_problems,
)
from producers.formats import FORMATS, KIND_TOPICS
from producers.mapping import MODELS, MappedRow, RowMapper, RowRejected

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"
LIBRARY = SchemaLibrary()
# The day the date limits are taken on (c2c.validation.DATE_RULES), fixed for the tests.
DATES = date_limits(datetime.date(2026, 12, 6))


def _check(kind: str) -> Any:
    return compile_validator(LIBRARY.resolve(get_topic(KIND_TOPICS[kind]).schema))


def _model(schema: str) -> Any:
    return getattr(events, schema.rsplit(".", 1)[-1])


# Values of the types the Avro encoder writes, right and wrong, for each kind of field.
_STRINGS = ["", "x" * 101, "x" * 200, "12345678", "123456789", "123456789\n", "١٢٣٤٥٦٧٨٩",
            "9123456780", "06001", "07001", "TK", "13", "11.0701", "1107010", 5, None]  # fmt: skip
_OTHERS = [None, 0, 3, 5, -1, 1989, 1990, 2100, 2101, True, "x", 2.5, Decimal("-0.01"),
           Decimal("1.234"), Decimal("12.30"), Decimal("1E+20"), Decimal("NaN"),
           Decimal("1234567890123.00"), Decimal("123456789012.00"), datetime.date(2031, 2, 28),
           datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC), "FALL", "NOPE", {}, {"x": 1},
           b"ab"]  # fmt: skip


def _paths(record: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in record.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


def _set(record: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()


def _annotation(model: Any, path: tuple[str, ...]) -> Any:
    """The type of the field at ``path`` of ``model``, without its None branch."""
    annotation: Any = model
    for key in path:
        fields = getattr(annotation, "model_fields", {})
        if key not in fields:
            return None
        annotation = fields[key].annotation
        branches = [a for a in typing.get_args(annotation) if a is not type(None)]
        if type(None) in typing.get_args(annotation) and len(branches) == 1:
            annotation = branches[0]
    return annotation


def _lax(value: Any, annotation: Any) -> bool:
    """Values pydantic coerces but the encoder cannot write: the compiled check is strict
    on purpose there (see c2c.validation), so they are compared in their own test."""
    if annotation in (datetime.datetime, datetime.date):
        return isinstance(value, (str, int, float, Decimal, datetime.date))
    if annotation is int:
        return isinstance(value, (str, float, Decimal))
    if annotation is Decimal:
        return isinstance(value, (str, float))
    if annotation is bool:
        return isinstance(value, (int, str))
    if annotation is str:
        return isinstance(value, bytes)
    return False


def _events() -> Iterator[tuple[str, dict[str, Any]]]:
    for schema in sorted({t.schema for t in CATALOGUE if t.schema}):
        kind = schema.rsplit(".", 1)[-1]
        raw = {
            "EnrollmentEvent": "enrollment",
            "CompletionEvent": "completion",
            "FinancialAidEvent": "financial_aid",
            "WageEvent": "wage",
            "CredentialEvent": "credential",
        }.get(kind)
        linked = {"LinkedEnrollment": "enrollment", "LinkedWage": "wage"}.get(kind)
        if raw is not None:
            yield schema, example_raw(raw, 7)
        elif linked is not None:
            yield schema, example_linked(linked, 7)


@pytest.mark.parametrize(("schema", "event"), list(_events()), ids=lambda v: str(v)[:30])
def test_every_field_changed_every_way_gets_the_same_problems(
    schema: str, event: dict[str, Any]
) -> None:
    check, model = compile_validator(LIBRARY.resolve(schema)), _model(schema)
    assert check(event) == model_problems(model, event) == []
    compared = rejected = 0
    for path in _paths(event):
        annotation = _annotation(model, path)
        for value in [*_STRINGS, *_OTHERS, _DELETE]:
            if _lax(value, annotation):
                continue
            changed = _set(event, path, value)
            expected = model_problems(model, changed)
            assert check(changed) == expected, (path, value)
            compared += 1
            rejected += bool(expected)
    extra = {**event, "unexpected": 1}
    assert (
        check(extra)
        == model_problems(model, extra)
        == [FieldProblem("unexpected", 1, "is not a field of this record")]
    )
    assert compared > 500
    assert 0 < rejected < compared


def test_several_problems_come_in_the_models_order() -> None:
    event = example_raw("wage", 1)
    event["person"]["ssn"] = "12345678X"
    event["person"]["nickname"] = "Bill"
    event["facts"]["quarter"] = 5
    event["facts"]["wages"] = "lots"
    event["provider"] = "irs"
    del event["source_record_id"]
    event["extra_column"] = "x"
    expected = model_problems(events.WageEvent, event)
    assert len(expected) == 7
    assert _check("wage")(event) == expected


def test_a_record_that_is_not_a_mapping() -> None:
    for value in ("text", None, 5, ["a"]):
        assert _check("credential")(value) == model_problems(events.CredentialEvent, value)


def test_strict_where_pydantic_coerces_what_the_encoder_cannot_write() -> None:
    event = example_raw("wage", 1)
    event["facts"]["year"] = "2025"
    assert model_problems(events.WageEvent, event) == []
    assert [str(p) for p in _check("wage")(event)] == ["facts.year is not a whole number"]


def test_schemas_outside_the_subset_are_refused() -> None:
    with pytest.raises(NotCompilable, match="array"):
        compile_validator(
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "a", "type": {"type": "array", "items": "int"}}],
            }
        )
    with pytest.raises(NotCompilable, match="union"):
        compile_validator(
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["int", "string"]}]}
        )


# Dates at and past every limit as of DATES.today, and placeholders sources use.
_DATES = [datetime.date(1899, 12, 31), datetime.date(1900, 1, 1), datetime.date(1989, 12, 31),
          datetime.date(1990, 1, 1), datetime.date(2026, 12, 6), datetime.date(2026, 12, 7),
          datetime.date(2027, 1, 6), datetime.date(2027, 1, 7), datetime.date(9999, 12, 31),
          datetime.date(1, 1, 1), datetime.date(999, 1, 1),
          datetime.datetime(1989, 12, 31, 23, 59, tzinfo=datetime.UTC),
          datetime.datetime(1990, 1, 1, tzinfo=datetime.UTC),
          datetime.datetime(2027, 1, 6, 23, 59, 59, tzinfo=datetime.UTC),
          datetime.datetime(2027, 1, 7, tzinfo=datetime.UTC),
          datetime.datetime(2027, 1, 7)]  # fmt: skip


def _with_dates(model: Any) -> Any:
    """The reference of the compiled validator with DATES: the model, then the limits."""
    return lambda record: model_problems(model, record) + date_problems(record, DATES)


@pytest.mark.parametrize(("schema", "event"), list(_events()), ids=lambda v: str(v)[:30])
def test_date_limits_compiled_as_the_reference_checks_them(
    schema: str, event: dict[str, Any]
) -> None:
    check, reference = (
        compile_validator(LIBRARY.resolve(schema), DATES),
        _with_dates(_model(schema)),
    )
    assert check(event) == reference(event) == []
    out = 0
    for path in _paths(event):
        annotation = _annotation(_model(schema), path)
        for value in [*_DATES, *_OTHERS, _DELETE]:
            exact = type(value) is annotation  # a date for a date, a timestamp for a timestamp
            if _lax(value, annotation) and not exact:
                continue
            changed = _set(event, path, value)
            expected = reference(changed)
            assert check(changed) == expected, (path, value)
            out += any(not p.shown for p in expected)
    # both a fact's date and the event time out: one problem, the fact's
    if "facts" in event and "completion_date" in event["facts"]:
        changed = _set(event, ("facts", "completion_date"), datetime.date(9999, 12, 31))
        changed["event_time"] = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)
        assert [p.field for p in check(changed)] == ["facts.completion_date"]
        assert check(changed) == reference(changed)
    assert out >= 3  # the event time (below, every date of an event)


def test_a_date_problem_names_the_field_and_the_rule_not_the_value() -> None:
    event = example_raw("completion", 1)
    event["person"]["birth_date"] = datetime.date(1, 1, 1)
    event["facts"]["completion_date"] = datetime.date(2099, 6, 1)
    check = compile_validator(LIBRARY.resolve(get_topic(KIND_TOPICS["completion"]).schema), DATES)
    assert [str(p) for p in check(event)] == [
        "person.birth_date is before 1900-01-01, the earliest birth date taken; check the date "
        "at the source",
        "facts.completion_date is later than 31 days after today (2027-01-06), the latest date "
        "of an event taken; check the date at the source",
    ]


# -- provider rows: the mapper with either validator -------------------------------------------

_CELLS = ["", " ", "x" * 101, "x" * 150, "12A45678Z", "123456789", "12345678", "1234567890",
          "912345678", "٣", "2031-02-30", "2024-02-29", "02/29/2023", "19890101", "1989", "2101",
          "2024-2025", "2024-2026", "2025Q5", "2025Q1", "-5.00", "$1,234.56", "1.234",
          "99999999999999.00", "1e3", "NaN", "Y", "maybe", "F", "Q", "06037", "07001", "9999",
          "110701", "11.07", "ENRL", "CMPL", "NOPE", "O'Brien\"); DROP TABLE x;--",
          # at and past the date limits as of DATES.today
          "1899-12-31", "1900-01-01", "1989-12-31", "1990-01-01", "2026-12-06", "2026-12-07",
          "2027-01-06", "2027-01-07", "9999-12-31", "0001-01-01", "0999-01-01", "2026Q4",
          "2027Q1", "2026-2027", "2027-2028"]  # fmt: skip


def _pydantic_checks() -> dict[str, Any]:
    return {kind: _with_dates(model) for kind, model in MODELS.items()}


def _outcome(mapper: RowMapper, row: dict[str, str]) -> MappedRow | str:
    try:
        return mapper.map(row)
    except RowRejected as exc:
        return str(exc)


@pytest.mark.parametrize("source", list(FORMATS))
def test_rows_map_to_the_same_events_or_the_same_reasons(source: str) -> None:
    with (EXAMPLES / f"{source}.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header, rows = table[0], table[1:]
    compiled = RowMapper(source, FORMATS[source], dates=DATES)
    reference = RowMapper(source, FORMATS[source], checks=_pydantic_checks(), dates=DATES)
    accepted = rejected = by_validation = 0
    for base in rows[:3]:
        for column in header:
            for cell in _CELLS:
                row = dict(zip(header, base, strict=True))
                row[column] = cell
                ours, theirs = _outcome(compiled, row), _outcome(reference, row)
                assert ours == theirs, (column, cell)
                if isinstance(ours, MappedRow):
                    accepted += 1
                else:
                    rejected += 1
                    by_validation += "(" in ours  # named "Column (field.path)"
            without = {k: v for k, v in zip(header, base, strict=True) if k != column}
            assert _outcome(compiled, without) == _outcome(reference, without), column
    assert accepted
    assert rejected
    assert by_validation

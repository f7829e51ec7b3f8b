"""Validating records at the producer boundary with field-level messages.

Two validators share one vocabulary of problems (:class:`FieldProblem`), so a user reads the
same message whichever found it:

- :func:`validate` and :func:`model_problems` check a mapping against one of the generated
  pydantic models (c2c.events). The direct emitter uses them.
- :func:`compile_validator` turns an Avro record schema (schemas/avro, with the constraint
  attributes ``pattern``, ``minLength``, ``maxLength``, ``minimum``, ``maximum`` and the
  decimal's precision and scale, the declarations the models are generated from) into one
  straight-line function, several times faster than the model. `c2c produce` uses it on
  every row. On records whose values have the types the Avro encoder writes (str, int,
  bool, float, bytes, Decimal, date, datetime, None and dicts), it reports exactly the
  problems the model reports, in the same order, with the same messages
  (tests/unit/test_compiled_validation.py holds them to it). It is strict where the model
  is lax: a value of another type that pydantic would coerce (the string '2025' for an int,
  a date as ISO text) is a problem here, since the encoder could not write it either.

Dates are also held to plausible limits, declared once in :data:`DATE_RULES` (birth dates
from 1900 to today, dates of events from 1990 to today plus a tolerance): the compiled
validator checks them when given ``dates`` (:func:`date_limits`, for a day the caller
chooses), and so does the row encoder through :meth:`CheckCompiler.date_limit`;
:func:`date_problems` is the same check in plain code. The generated models know nothing
of them. Their problems name the field and the rule, never the value.

A failure reads, for example: ``row 17: person.birth_date is not a date (YYYY-MM-DD)``
(the place, each bad field by its dotted path, and what was wrong: never the value, which
may identify a person).
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from c2c._avro_compiled import register_name
from c2c.errors import C2CError

__all__ = [
    "DATE_RULES",
    "EARLIEST_EVENT_DATE",
    "FUTURE_TOLERANCE_DAYS",
    "CheckCompiler",
    "DateLimit",
    "DateLimits",
    "DateRule",
    "FieldProblem",
    "NotCompilable",
    "RecordCheck",
    "ValidationFailed",
    "compile_validator",
    "date_limits",
    "date_problems",
    "model_problems",
    "problems_of",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldProblem:
    """One field that failed: where in the record, the value given, and what was wrong.

    Its text names the field and the rule, never the value: a value may be an SSN, a name
    or a birth date, and reasons go where identifiers may not (logs, counts, summaries).
    The row itself stays in the rejects file and the dead letter (identity-zone data)."""

    field: str
    value: Any
    message: str
    shown: bool = True
    """False for a problem of the plausible-date rules (:data:`DATE_RULES`), whose value is
    of a type the schema takes; either way the text does not repeat the value."""

    def __str__(self) -> str:
        return f"{self.field} {self.message}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


class ValidationFailed(C2CError):
    """A record did not validate; ``problems`` lists every bad field."""

    code = "validation"

    def __init__(self, where: str, problems: list[FieldProblem]) -> None:
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(str(problem) for problem in problems))


class NotCompilable(C2CError):
    """A schema uses a feature :func:`compile_validator` does not handle."""

    code = "validation.not_compilable"


# -- plausible dates: declared once, checked by the compiled validator and row encoder -------


@dataclass(frozen=True)
class DateRule:
    """Where the dates of one field of the raw events may fall: from ``earliest`` to
    ``days_ahead`` days after today. A date outside is a mistake at the source (a year
    mistyped, a placeholder such as 9999-12-31 or 0001-01-01, a date planned rather than
    past), which would change the outcome tables or break what reads it downstream.

    ``unless``: paths of dates this one derives from; it is checked only where they are
    within their own limits, so a bad date is reported once."""

    noun: str
    earliest: datetime.date
    days_ahead: int
    unless: tuple[str, ...] = ()


EARLIEST_EVENT_DATE = datetime.date(1990, 1, 1)
"""The earliest event the system holds: the schemas' year fields start at 1990."""

FUTURE_TOLERANCE_DAYS = 31
"""How far after today an event may be dated: a term starting in the next weeks, clocks and
time zones at the source; not a degree or a wage quarter still to come."""

_EVENT = ("date of an event", EARLIEST_EVENT_DATE, FUTURE_TOLERANCE_DAYS)
_FACT_DATES = ("facts.term_start_date", "facts.completion_date", "facts.issue_date")

DATE_RULES: Mapping[str, DateRule] = {
    "person.birth_date": DateRule("birth date", datetime.date(1900, 1, 1), 0),
    **{path: DateRule(*_EVENT) for path in _FACT_DATES},
    # an event's time comes from its dates, or from a year, quarter or request date
    "event_time": DateRule(
        "time of an event", EARLIEST_EVENT_DATE, FUTURE_TOLERANCE_DAYS, _FACT_DATES
    ),
}
"""The date limits of the raw events, by dotted path: the one declaration that the
compiled validator (:func:`compile_validator` with ``dates``), the compiled row encoder
(producers.row_encoder) and :func:`date_problems` (the emitter's check, and the tests'
reference) read."""


@dataclass(frozen=True)
class DateLimit:
    """A :class:`DateRule` on a given day: a date field's value is within when
    ``first <= value <= last``; a timestamp's when ``start <= value < end`` (aware, UTC)."""

    path: str
    first: datetime.date
    last: datetime.date
    start: datetime.datetime
    end: datetime.datetime
    too_early: str
    too_late: str
    unless: tuple[str, ...]


@dataclass(frozen=True)
class DateLimits:
    """Every :data:`DATE_RULES` limit as of ``today``."""

    today: datetime.date
    limits: tuple[DateLimit, ...]

    def get(self, path: str) -> DateLimit | None:
        return next((limit for limit in self.limits if limit.path == path), None)


def date_limits(
    today: datetime.date | None = None, rules: Mapping[str, DateRule] = DATE_RULES
) -> DateLimits:
    """The limits of ``rules`` as of ``today`` (default: today's date, UTC): the clock is a
    parameter, so tests and replays of simulated data choose it."""
    day = today if today is not None else datetime.datetime.now(datetime.UTC).date()
    limits = []
    for path, rule in rules.items():
        last = day + datetime.timedelta(days=rule.days_ahead)
        after = (
            f"today ({day.isoformat()})"
            if not rule.days_ahead
            else f"{rule.days_ahead} days after today ({last.isoformat()})"
        )
        limits.append(
            DateLimit(
                path,
                rule.earliest,
                last,
                datetime.datetime.combine(rule.earliest, datetime.time(), datetime.UTC),
                datetime.datetime.combine(last, datetime.time(), datetime.UTC)
                + datetime.timedelta(days=1),
                f"is before {rule.earliest.isoformat()}, the earliest {rule.noun} taken; "
                "check the date at the source",
                f"is later than {after}, the latest {rule.noun} taken; "
                "check the date at the source",
                rule.unless,
            )
        )
    return DateLimits(day, tuple(limits))


def _at(record: Any, path: str) -> Any:
    for part in path.split("."):
        if record.__class__ is not dict and not isinstance(record, Mapping):
            return None
        record = record.get(part)
    return record


def _outside(limit: DateLimit, value: Any) -> str | None:
    """The problem's text if ``value`` (of the type the schema gives the field: a date, a
    timestamp, else not checked here) is outside ``limit``."""
    if value.__class__ is datetime.date:
        if value < limit.first:
            return limit.too_early
        return limit.too_late if value > limit.last else None
    if isinstance(value, datetime.datetime):
        at = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
        if at < limit.start:
            return limit.too_early
        return limit.too_late if at >= limit.end else None
    return None


def date_problems(record: Any, dates: DateLimits) -> list[FieldProblem]:
    """The dates of ``record`` (a raw event) outside ``dates``, in the declaration's order;
    a value of the wrong type is not checked here (the schema's check reports it). The
    reference for the compiled checks (tests compare them), and the emitter's check."""
    problems: list[FieldProblem] = []
    out: set[str] = set()
    for limit in dates.limits:
        if out.intersection(limit.unless):
            continue
        value = _at(record, limit.path)
        text = _outside(limit, value)
        if text is not None:
            problems.append(FieldProblem(limit.path, value, text, shown=False))
            out.add(limit.path)
    return problems


# -- messages, one table for both validators ---------------------------------------------------


def _expected(symbols: list[str] | tuple[str, ...]) -> str:
    """Enum symbols as pydantic lists a Literal's choices: 'a', 'b' or 'c'."""
    shown = [repr(symbol) for symbol in symbols]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


_TEXT: Mapping[str, str] = {
    "missing": "is missing",
    "extra_forbid": "is not a field of this record",
    "date": "is not a date (YYYY-MM-DD)",
    "datetime": "is not a timestamp (ISO 8601)",
    "int": "is not a whole number",
    "decimal": "is not a number",
    "float": "is not a number",
    "bool": "is not true or false",
    "string": "is not text",
    "bytes": "is not bytes",
    "finite": "is not a finite number",
}


def _pattern_text(pattern: str) -> str:
    return f"does not match {pattern}"


def _too_long_text(limit: int) -> str:
    return f"is longer than {limit} characters"


def _too_short_text(limit: int) -> str:
    return f"is shorter than {limit} character(s)"


def _one_of_text(expected: str) -> str:
    return f"is not one of {expected}"


def _record_text(name: str) -> str:
    return f"is not a record ({name})"


def _max_digits_text(limit: int) -> str:
    return f"has more than {limit} digits"


def _whole_digits_text(limit: int) -> str:
    return f"has more than {limit} digits before the decimal point"


def _places_text(limit: int) -> str:
    return f"has more than {limit} decimal places"


def _bound_text(kind: str, limit: Any) -> str:
    return f"should be {kind} {limit}"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return _TEXT["missing"]
    if kind == "extra_forbidden":
        return _TEXT["extra_forbid"]
    if kind.startswith("date_") or kind == "date_type":
        return _TEXT["date"]
    if kind.startswith("datetime_"):
        return _TEXT["datetime"]
    if kind == "string_pattern_mismatch":
        return _pattern_text(ctx.get("pattern", ""))
    if kind == "string_too_long":
        return _too_long_text(ctx.get("max_length", 0))
    if kind == "string_too_short":
        return _too_short_text(ctx.get("min_length", 0))
    if kind in ("string_type", "string_unicode"):
        return _TEXT["string"]
    if kind == "literal_error":
        return _one_of_text(ctx.get("expected", ""))
    if kind == "model_type":
        return _record_text(ctx.get("class_name", "record"))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return _TEXT["int"]
    if kind in ("decimal_parsing", "decimal_type"):
        return _TEXT["decimal"]
    if kind in ("float_parsing", "float_type"):
        return _TEXT["float"]
    if kind == "finite_number":
        return _TEXT["finite"]
    if kind == "decimal_max_digits":
        return _max_digits_text(ctx.get("max_digits", 0))
    if kind == "decimal_whole_digits":
        return _whole_digits_text(ctx.get("whole_digits", 0))
    if kind == "decimal_max_places":
        return _places_text(ctx.get("decimal_places", 0))
    if kind in ("bool_parsing", "bool_type"):
        return _TEXT["bool"]
    if kind == "bytes_type":
        return _TEXT["bytes"]
    return str(error["msg"]).lower().replace("input should be", "should be")


def problems_of(exc: ValidationError) -> list[FieldProblem]:
    """pydantic's errors as FieldProblems; union branches collapse to one per field."""
    problems: dict[str, FieldProblem] = {}
    for error in exc.errors():
        # Union and Literal branches add a type name to the location: drop non-field parts.
        loc = [str(part) for part in error["loc"] if not _is_branch(part)]
        field = ".".join(loc) or "(record)"
        if field in problems:
            continue
        value = _MISSING if error["type"] == "missing" else error.get("input")
        problems[field] = FieldProblem(field, value, _message(error))
    return list(problems.values())


def _is_branch(part: Any) -> bool:
    if isinstance(part, int):
        return False
    text = str(part)
    return (
        text[:1].isupper()
        or "[" in text
        or text in {"str", "int", "bool", "date", "datetime", "decimal", "bytes", "float", "none"}
    )


def model_problems(model: type[BaseModel], data: Any) -> list[FieldProblem]:
    """Every problem ``model`` finds in ``data`` (empty if it validates)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return problems_of(exc)
    return []


def validate(model: type[M], data: Mapping[str, Any], *, where: str) -> M:
    """``data`` as a ``model``, or ValidationFailed naming ``where`` and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(where, problems_of(exc)) from exc


# -- the compiled validator --------------------------------------------------------------------

RecordCheck = Callable[[Any], list[FieldProblem]]
"""A compiled validator: a record in, every problem out (an empty list when it is valid)."""

_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_DIGIT_RUN = re.compile(r"\^\[0-9\]\{(?P<low>[0-9]+)(?:,(?P<high>[0-9]+))?\}\$")


def _search(pattern: str) -> Callable[[str], Any]:
    """``pattern`` as pydantic applies it (Rust regex, search): ``$`` is the very end of
    the text, not also before a final newline as in Python's re."""
    translated = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    )
    return re.compile(translated).search


def _digits(value: decimal.Decimal) -> tuple[int, int]:
    """(digits, decimal places) of ``value`` normalised, as pydantic counts them."""
    _, digit_tuple, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return len(digit_tuple) + exponent, 0
    return max(len(digit_tuple), -exponent), -exponent


def _within(value: decimal.Decimal, places: int, whole: int) -> bool:
    """Whether finite ``value`` has at most ``places`` decimal places and ``whole`` digits
    before the point, as :func:`_digits` counts them, without normalising: exact when True
    (False may also mean the magnitude alone is out of this quick test's range: count the
    digits then)."""
    exponent = value.adjusted()  # of the first digit
    if not -places <= exponent < whole:
        return False
    numerator, denominator = value.as_integer_ratio()
    remainder: int = numerator * 10**places % denominator
    return remainder == 0


def _extras(
    record: Mapping[str, Any], known: frozenset[str], prefix: str, problems: list[FieldProblem]
) -> None:
    for key in record:
        if key not in known:
            problems.append(FieldProblem(f"{prefix}{key}", record[key], _TEXT["extra_forbid"]))


class CheckCompiler:
    """Emits the checks of one schema as Python source; ``env`` holds what it refers to.

    :func:`compile_validator` drives it over a whole record; producers.row_encoder calls
    :meth:`value` on single fields, inside a function of its own, so that a row is checked
    by exactly the code that checks its event. Emitted checks append to ``problems``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "_MISSING": _MISSING,
            "_P": FieldProblem,
            "_extras": _extras,
            "_digits": _digits,
            "_within": _within,
            # Not _date: the compiled row encoder (producers.row_encoder) runs these checks
            # in one function with the Avro encoder's code, whose _date writes a date.
            "_date_type": datetime.date,
            "_datetime_type": datetime.datetime,
            "_Decimal": decimal.Decimal,
            "_dict": dict,
            "_Mapping": Mapping,
            "_UTC": datetime.UTC,
        }
        self.named: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, prefix: str, value: Any) -> str:
        name = self.var(f"_{prefix}")
        self.env[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def problem(self, indent: int, path: str, value: str, text: str, shown: bool = True) -> None:
        extra = "" if shown else ", False"
        self.emit(indent, f"problems.append(_P({path!r}, {value}, {text!r}{extra}))")

    def register(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        return register_name(self.named, schema, namespace)

    def lookup(self, name: str, namespace: str | None) -> dict[str, Any]:
        for candidate in (name, f"{namespace}.{name}" if namespace else name):
            if candidate in self.named:
                return self.named[candidate]
        raise NotCompilable(f"type {name!r} is used before it is defined")

    # A value of a field is checked by `value(...)`: `v` holds it, known not to be missing.
    def value(
        self,
        schema: Any,
        field: Mapping[str, Any],
        v: str,
        path: str,
        indent: int,
        namespace: str | None,
    ) -> None:
        if isinstance(schema, list):
            others = [branch for branch in schema if branch != "null"]
            if len(others) != 1 or len(schema) != 2:
                raise NotCompilable(f"{path}: union {schema!r} (only null and one type)")
            self.emit(indent, f"if {v} is not None:")
            self.value(others[0], field, v, path, indent + 1, namespace)
            return
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                self.primitive(schema, field, v, path, indent)
            else:
                self.value(self.lookup(schema, namespace), field, v, path, indent, namespace)
            return
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical == "date" and kind == "int":
            self.emit(indent, f"if {v}.__class__ is not _date_type and not (")
            self.emit(
                indent + 1,
                f"isinstance({v}, _date_type) and not isinstance({v}, _datetime_type)",
            )
            self.emit(indent, "):")
            self.problem(indent + 1, path, v, _TEXT["date"])
        elif logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            self.emit(indent, f"if not isinstance({v}, _datetime_type):")
            self.problem(indent + 1, path, v, _TEXT["datetime"])
        elif logical == "decimal" and kind == "bytes":
            self.decimal(schema, field, v, path, indent)
        elif logical == "uuid" and kind == "string":
            self.string({"pattern": _UUID_PATTERN, **field}, v, path, indent)
        elif kind in ("record", "error"):
            name = str(schema["name"])
            self.emit(indent, f"if {v}.__class__ is not _dict and not isinstance({v}, _Mapping):")
            self.problem(indent + 1, path, v, _record_text(name))
            self.emit(indent, "else:")
            self.record(schema, v, f"{path}.", indent + 1, namespace)
        elif kind == "enum":
            self.register(schema, namespace)
            symbols = self.const("symbols", frozenset(schema["symbols"]))
            self.emit(indent, f"if not isinstance({v}, str) or {v} not in {symbols}:")
            self.problem(indent + 1, path, v, _one_of_text(_expected(schema["symbols"])))
        elif isinstance(kind, str) and kind in _PRIMITIVES and not logical:
            self.primitive(kind, field, v, path, indent)
        elif isinstance(kind, (str, list, dict)) and kind not in ("array", "map", "fixed"):
            self.value(kind, field, v, path, indent, namespace)
        else:
            raise NotCompilable(f"{path}: type {kind!r}")

    def primitive(
        self, name: str, field: Mapping[str, Any], v: str, path: str, indent: int
    ) -> None:
        if name == "string":
            self.string(field, v, path, indent)
            return
        if name == "null":
            self.emit(indent, f"if {v} is not None:")
            self.problem(indent + 1, path, v, "should be none")
            return
        accepted = {
            "boolean": ("bool", "bool"),
            "int": ("int", "int"),
            "long": ("int", "int"),
            "float": ("(int, float)", "float"),
            "double": ("(int, float)", "float"),
            "bytes": ("(bytes, bytearray)", "bytes"),
        }[name]
        self.emit(indent, f"if not isinstance({v}, {accepted[0]}):")
        self.problem(indent + 1, path, v, _TEXT[accepted[1]])
        if name in ("int", "long", "float", "double"):
            self.bounds(field, v, v, path, indent)

    def string(self, field: Mapping[str, Any], v: str, path: str, indent: int) -> None:
        # pydantic's order: type, then min length, max length, pattern; one problem a field.
        self.emit(indent, f"if not isinstance({v}, str):")
        self.problem(indent + 1, path, v, _TEXT["string"])
        if "minLength" in field:
            self.emit(indent, f"elif len({v}) < {int(field['minLength'])}:")
            self.problem(indent + 1, path, v, _too_short_text(int(field["minLength"])))
        if "maxLength" in field:
            self.emit(indent, f"elif len({v}) > {int(field['maxLength'])}:")
            self.problem(indent + 1, path, v, _too_long_text(int(field["maxLength"])))
        if "pattern" in field:
            pattern = str(field["pattern"])
            self.emit(indent, f"elif {self.mismatch(pattern, v)}:")
            self.problem(indent + 1, path, v, _pattern_text(pattern))

    def mismatch(self, pattern: str, v: str) -> str:
        """An expression true when ``v`` does not match ``pattern``. Runs of ASCII digits
        (``^[0-9]{9}$``, ``^[0-9]{2,6}$``) are tested with str methods, a few times faster
        than a regular expression and equivalent to it."""
        digits = _DIGIT_RUN.fullmatch(pattern)
        if digits is not None:
            low = int(digits["low"])
            high = int(digits["high"]) if digits["high"] is not None else low
            length = f"len({v}) != {low}" if low == high else f"not {low} <= len({v}) <= {high}"
            return f"{length} or not {v}.isascii() or not {v}.isdigit()"
        return f"{self.const('search', _search(pattern))}({v}) is None"

    def bounds(self, field: Mapping[str, Any], v: str, number: str, path: str, indent: int) -> None:
        """ge, then le, on ``number``, as an elif chain after the type check."""
        if "minimum" in field:
            low = self.const("low", field["minimum"])
            self.emit(indent, f"elif {number} < {low}:")
            self.problem(
                indent + 1, path, v, _bound_text("greater than or equal to", field["minimum"])
            )
        if "maximum" in field:
            high = self.const("high", field["maximum"])
            self.emit(indent, f"elif {number} > {high}:")
            self.problem(
                indent + 1, path, v, _bound_text("less than or equal to", field["maximum"])
            )

    def decimal(
        self, schema: Mapping[str, Any], field: Mapping[str, Any], v: str, path: str, indent: int
    ) -> None:
        precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
        number, digits, places = self.var("d"), self.var("digits"), self.var("places")
        self.emit(indent, f"if isinstance({v}, bool) or not isinstance({v}, (_Decimal, int)):")
        self.problem(indent + 1, path, v, _TEXT["decimal"])
        self.emit(indent, "else:")
        inner = indent + 1
        self.emit(inner, f"{number} = {v} if isinstance({v}, _Decimal) else _Decimal({v})")
        self.emit(inner, f"if not {number}.is_finite():")
        self.problem(inner + 1, path, v, _TEXT["finite"])
        self.emit(inner, "else:")
        deeper = inner + 1
        # counting digits (normalising) is slow; most values are plainly within the limits
        self.emit(
            deeper,
            f"{digits}, {places} = (0, 0) if _within({number}, {scale}, {precision - scale}) "
            f"else _digits({number})",
        )
        self.emit(deeper, f"if {digits} > {precision}:")
        self.problem(deeper + 1, path, v, _max_digits_text(precision))
        self.emit(deeper, f"elif {digits} - {places} > {precision - scale}:")
        self.problem(deeper + 1, path, v, _whole_digits_text(precision - scale))
        self.emit(deeper, f"elif {places} > {scale}:")
        self.problem(deeper + 1, path, v, _places_text(scale))
        self.bounds(field, v, number, path, deeper)

    def record(
        self, schema: dict[str, Any], rec: str, prefix: str, indent: int, namespace: str | None
    ) -> None:
        """Checks of each field of the record held in ``rec`` (a mapping), then its extras."""
        inner_ns = self.register(schema, namespace)
        names = []
        for field in schema["fields"]:
            name = str(field["name"])
            names.append(name)
            path = f"{prefix}{name}"
            v = self.var("v")
            field_type = field["type"]
            # As the generated models: only a null-first union may be left out (it defaults
            # to None); an Avro default on any other field serves readers of old data.
            optional = isinstance(field_type, list) and bool(field_type) and field_type[0] == "null"
            if optional:
                # Absent and None are alike here: the null branch needs no check.
                self.emit(indent, f"{v} = {rec}.get({name!r})")
                self.value(field_type, field, v, path, indent, inner_ns)
                continue
            self.emit(indent, f"{v} = {rec}.get({name!r}, _MISSING)")
            self.emit(indent, f"if {v} is _MISSING:")
            self.problem(indent + 1, path, "_MISSING", _TEXT["missing"])
            self.emit(indent, "else:")
            self.value(field_type, field, v, path, indent + 1, inner_ns)
        known = self.const("known", frozenset(names))
        self.emit(indent, f"if not {known}.issuperset({rec}):")
        self.emit(indent + 1, f"_extras({rec}, {known}, {prefix!r}, problems)")

    # -- date limits (DATE_RULES) ------------------------------------------------------------

    def date_kind(self, schema: Mapping[str, Any], path: str) -> str | None:
        """ "date" or "timestamp" if ``path`` (dotted) is a field of that logical type in the
        record ``schema`` (whose named types this compiler has met), else None."""
        node: Any = schema
        namespace = schema.get("namespace")
        for part in path.split("."):
            if not isinstance(node, Mapping) or node.get("type") not in ("record", "error"):
                return None
            namespace = node.get("namespace", namespace)
            field = next((f for f in node["fields"] if f["name"] == part), None)
            if field is None:
                return None
            kind = field["type"]
            if isinstance(kind, list):
                others = [branch for branch in kind if branch != "null"]
                if len(others) != 1:
                    return None
                kind = others[0]
            if isinstance(kind, str) and kind not in _PRIMITIVES:
                try:
                    kind = self.lookup(kind, namespace)
                except NotCompilable:
                    return None
            node = kind
        if not isinstance(node, Mapping):
            return None
        logical, base = node.get("logicalType"), node.get("type")
        if logical == "date" and base == "int":
            return "date"
        if logical in ("timestamp-millis", "timestamp-micros") and base == "long":
            return "timestamp"
        return None

    def date_limit(
        self, limit: DateLimit, kind: str, v: str, indent: int, flag: str | None = None
    ) -> None:
        """The check of ``limit`` on ``v``, which holds the field's value (or anything: only
        a date, for ``kind`` "date", or a timestamp, for "timestamp", is checked, as
        :func:`date_problems` does); ``flag`` is set True where it fails."""
        low, high = self.var("_low"), self.var("_high")
        if kind == "date":
            self.env[low], self.env[high] = limit.first, limit.last
            self.emit(indent, f"if {v}.__class__ is _date_type:")
            at, late = v, f"{v} > {high}"
        else:
            self.env[low], self.env[high] = limit.start, limit.end
            self.emit(indent, f"if isinstance({v}, _datetime_type):")
            at = self.var("at")
            self.emit(
                indent + 1, f"{at} = {v} if {v}.tzinfo is not None else {v}.replace(tzinfo=_UTC)"
            )
            late = f"{at} >= {high}"
        for test, text in ((f"{at} < {low}", limit.too_early), (late, limit.too_late)):
            self.emit(indent + 1, f"{'if' if text is limit.too_early else 'elif'} {test}:")
            if flag is not None:
                self.emit(indent + 2, f"{flag} = True")
            self.problem(indent + 2, limit.path, v, text, shown=False)

    def dates(self, schema: Mapping[str, Any], dates: DateLimits, rec: str, indent: int) -> None:
        """The checks of every limit of ``dates`` whose path is a date or timestamp field of
        ``schema``, on the record held in ``rec``, in their order (after the schema's)."""
        flags: dict[str, str] = {}
        for limit in dates.limits:
            kind = self.date_kind(schema, limit.path)
            if kind is None:
                continue
            flag = self.var("out")
            self.emit(indent, f"{flag} = False")
            guard = [flags[path] for path in limit.unless if path in flags]
            inner = indent
            if guard:
                self.emit(indent, f"if not ({' or '.join(guard)}):")
                inner += 1
            v = self.var("date")
            self.emit(inner, f"{v} = {rec}")
            for part in limit.path.split("."):
                self.emit(
                    inner,
                    f"{v} = {v}.get({part!r}) "
                    f"if {v}.__class__ is _dict or isinstance({v}, _Mapping) else None",
                )
            self.date_limit(limit, kind, v, inner, flag)
            flags[limit.path] = flag


def compile_validator(schema: Mapping[str, Any], dates: DateLimits | None = None) -> RecordCheck:
    """A function giving every problem of a record of this Avro ``schema`` (a record schema,
    self-contained as :meth:`c2c.schemas.SchemaLibrary.resolve` gives it); see the module
    docstring for what it checks. Raises NotCompilable for arrays, maps, fixed and unions
    other than null and one type (no schema in the catalogue uses them today).

    With ``dates`` (:func:`date_limits`), it also reports the dates outside their limits
    (:data:`DATE_RULES`), after the schema's problems, as :func:`date_problems` does; the
    generated models know nothing of them."""
    if schema.get("type") != "record":
        raise NotCompilable(f"{schema.get('name')!r} is not a record schema")
    compiler = CheckCompiler()
    compiler.emit(0, "def check(record):")
    compiler.emit(1, "problems = []")
    name = str(schema["name"])
    compiler.emit(1, "if record.__class__ is not _dict and not isinstance(record, _Mapping):")
    compiler.emit(2, f"return [_P('(record)', record, {_record_text(name)!r})]")
    compiler.record(dict(schema), "record", "", 1, None)
    if dates is not None:
        compiler.dates(schema, dates, "record", 1)
    compiler.emit(1, "return problems")
    namespace = dict(compiler.env)
    exec(compile("\n".join(compiler.lines), f"<validator {name}>", "exec"), namespace)
    check: RecordCheck = namespace["check"]
    return check

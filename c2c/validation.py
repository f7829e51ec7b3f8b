"""Validating records at the producer boundary with field-level messages.

:func:`validate` checks a mapping against one of the generated models (c2c.events) and
either returns the model or raises :class:`ValidationFailed`, whose message names the place
(for example ``row 17``), each bad field by its dotted path, the value, and what was wrong:
``row 17: person.birth_date '2031-02-30' is not a date (YYYY-MM-DD)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from c2c.errors import C2CError

__all__ = ["FieldProblem", "ValidationFailed", "problems_of", "validate"]

M = TypeVar("M", bound=BaseModel)

_MAX_SHOWN = 60


@dataclass(frozen=True)
class FieldProblem:
    """One field that failed: where in the record, the value given, and what was wrong."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.field} {self.message}"
        shown = repr(self.value)
        if len(shown) > _MAX_SHOWN:
            shown = shown[: _MAX_SHOWN - 3] + "..."
        return f"{self.field} {shown} {self.message}"


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


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return "is not a field of this record"
    if kind.startswith("date_") or kind == "date_type":
        return "is not a date (YYYY-MM-DD)"
    if kind.startswith("datetime_"):
        return "is not a timestamp (ISO 8601)"
    if kind == "string_pattern_mismatch":
        return f"does not match {ctx.get('pattern')}"
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"is shorter than {ctx.get('min_length')} character(s)"
    if kind == "literal_error":
        return f"is not one of {ctx.get('expected')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "is not a whole number"
    if kind in ("decimal_parsing", "decimal_type"):
        return "is not a number"
    if kind in ("decimal_max_places",):
        return f"has more than {ctx.get('decimal_places')} decimal places"
    if kind in ("bool_parsing", "bool_type"):
        return "is not true or false"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return str(error["msg"]).lower().replace("input should be", "should be")
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


def validate(model: type[M], data: Mapping[str, Any], *, where: str) -> M:
    """``data`` as a ``model``, or ValidationFailed naming ``where`` and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(where, problems_of(exc)) from exc

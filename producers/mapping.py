"""From a provider's row to a validated raw event: pure, no I/O.

:class:`RowMapper` checks a file's columns against the provider's format (naming the format
the file looks like instead, if any), then maps each row: parse each cell, place it in the
event, derive the event time and a deterministic event id, and validate the event with the
generated model. A row that fails raises :class:`RowRejected` with every problem, each
named by the provider's column.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from c2c import events
from c2c.errors import C2CError
from c2c.validation import problems_of
from producers.formats import FORMATS, KIND_TOPICS, Column, ProviderFormat

__all__ = [
    "FormatMismatch",
    "MappedRow",
    "RowMapper",
    "RowRejected",
    "canonical_content",
    "event_id_for",
]

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c2c00-5a1e-4c2c-9d2c-c2c0c2c0c2c0")

MODELS: Mapping[str, type[BaseModel]] = {
    "enrollment": events.EnrollmentEvent,
    "completion": events.CompletionEvent,
    "financial_aid": events.FinancialAidEvent,
    "wage": events.WageEvent,
    "credential": events.CredentialEvent,
    "optout": events.OptOutEvent,
}


class RowRejected(C2CError):
    """A row that cannot become an event; the message lists every problem."""

    code = "row.rejected"


class FormatMismatch(C2CError):
    """The file's columns are not this provider's format."""

    code = "extract.format"


@dataclass(frozen=True)
class MappedRow:
    """A row made into an event for ``topic``, keyed by the source's person id."""

    kind: str
    topic: str
    key: bytes
    event: dict[str, Any]


def event_id_for(provider: str, source_record_id: str, content: str | bytes) -> str:
    """A UUID derived from provider, source record id and content: the same record sent
    twice gets the same id (so duplicates are recognisable downstream); a corrected
    record gets a new one. ``content`` is the row as sent (files) or the canonical event
    (:func:`canonical_content`, for emitted events)."""
    # A name-based UUID (RFC 4122 layout, version 5 bits) over SHA-256 rather than uuid5's
    # SHA-1, computed in one hash: this runs once per row.
    digest = bytearray(
        hashlib.sha256(
            b"%b|%b|%b"
            % (
                _EVENT_ID_NAMESPACE.bytes + provider.encode(),
                source_record_id.encode(errors="surrogateescape"),
                content if isinstance(content, bytes) else content.encode(errors="surrogateescape"),
            )
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    hexed = digest.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def canonical_content(event: Mapping[str, Any]) -> str:
    """An event's content as canonical JSON (sorted keys), without its id and time."""
    content = {k: v for k, v in event.items() if k not in ("event_id", "event_time")}
    return json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)


def _row_content(row: Mapping[str, str]) -> str:
    return "\x1f".join(f"{name}={value}" for name, value in sorted(row.items()))


def _place(event: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        event[head] = value
        return
    child = event.setdefault(head, {})
    child[rest] = value


class RowMapper:
    """Maps rows of one provider's extract to raw events."""

    def __init__(self, source: str, fmt: ProviderFormat) -> None:
        self.source = source
        self.format = fmt
        self._targets: dict[str, str] = {}
        for column in fmt.columns():
            targets = column.target if isinstance(column.target, tuple) else (column.target,)
            for target in targets:
                self._targets.setdefault(target, column.name)
        self._targets["source_record_id"] = fmt.record_id_column
        self._targets["person.source_person_id"] = fmt.person_id_column
        self._apply = {
            code: _compile([_plan(column) for column in (*fmt.shared, *record_type.columns)])
            for code, record_type in fmt.record_types.items()
        }

    # -- file level ----------------------------------------------------------------------------
    def check_columns(self, columns: list[str], where: str) -> None:
        """FormatMismatch if required columns are missing, naming the likely format."""
        present = set(columns)
        missing = [name for name in self.format.required_columns() if name not in present]
        if not missing:
            return
        likely = [
            source
            for source, fmt in FORMATS.items()
            if source != self.source and all(name in present for name in fmt.required_columns())
        ]
        hint = (
            f" It looks like a {' or '.join(likely)} extract: run `c2c produce {likely[0]} ...`."
            if likely
            else ""
        )
        raise FormatMismatch(
            f"{where}: not in the {self.source} format: missing column(s) {', '.join(missing)}."
            f"{hint} producers/README.md lists each format's columns."
        )

    # -- row level -----------------------------------------------------------------------------
    def _record_type(self, row: Mapping[str, str]) -> str:
        fmt = self.format
        if fmt.type_column is None:
            return ""
        value = row.get(fmt.type_column, "").upper()
        if value not in fmt.record_types:
            raise RowRejected(
                f"{fmt.type_column} {value!r} is not one of {', '.join(fmt.record_types)}"
            )
        return value

    def map(self, row: Mapping[str, str], content: bytes | None = None) -> MappedRow:
        """The event for ``row``; RowRejected listing every problem if it cannot be one.

        ``content`` is the row as read (its bytes), from which the event id derives; without
        it, the cells are used.
        """
        fmt = self.format
        type_code = self._record_type(row)
        record_type = fmt.record_types[type_code]
        problems: list[str] = []
        event: dict[str, Any] = {"provider": fmt.provider}
        for name in (fmt.record_id_column, fmt.person_id_column):
            if not row.get(name):
                problems.append(f"{name} is missing" if name not in row else f"{name} is empty")
        event["source_record_id"] = row.get(fmt.record_id_column, "")
        person: dict[str, Any] = {"source_person_id": row.get(fmt.person_id_column, "")}
        event["person"] = person
        self._apply[type_code](row, event, problems)
        for path, value in record_type.constants.items():
            _place(event, path, value)
        demographics = event.get("demographics")
        if demographics is not None and all(v is None for v in demographics.values()):
            event["demographics"] = None
        if record_type.kind != "optout":
            event.setdefault("demographics", None)
        when = None if problems else record_type.event_time(event)
        event.pop("_requested_at", None)
        if when is None and not problems:
            problems.append("no date to place the event in time")
        if problems:
            raise RowRejected("; ".join(problems))
        assert when is not None
        if not isinstance(when, datetime.datetime):
            when = datetime.datetime(when.year, when.month, when.day, tzinfo=datetime.UTC)
        event["event_time"] = when
        event["event_id"] = event_id_for(
            fmt.provider,
            event["source_record_id"],
            content if content is not None else _row_content(row).encode(errors="surrogateescape"),
        )
        self._validate(record_type.kind, event)
        return MappedRow(
            kind=record_type.kind,
            topic=KIND_TOPICS[record_type.kind],
            key=str(person["source_person_id"]).encode(),
            event=event,
        )

    def _validate(self, kind: str, event: dict[str, Any]) -> None:
        try:
            MODELS[kind].model_validate(event)
        except ValidationError as exc:
            problems = []
            for problem in problems_of(exc):
                column = self._targets.get(problem.field)
                name = f"{column} ({problem.field})" if column else problem.field
                problems.append(str(problem).replace(problem.field, name, 1))
            raise RowRejected("; ".join(problems)) from exc


_Step = tuple[str, Any, bool, tuple[tuple[str, str | None], ...], bool]


def _plan(column: Column) -> _Step:
    """A column as (name, parse, required, ((head, rest), ...), several targets)."""
    targets = column.target if isinstance(column.target, tuple) else (column.target,)
    split = tuple((head, rest or None) for head, _, rest in (t.partition(".") for t in targets))
    return (column.name, column.parse, column.required, split, isinstance(column.target, tuple))


def _compile(steps: list[_Step]) -> Callable[[Mapping[str, str], dict[str, Any], list[str]], None]:
    """One function applying every column of a record type: straight-line code, several
    times faster than interpreting the steps row after row. Semantics per column: absent
    (not in the file) leaves the field unset, or is a problem if required; empty is None,
    or a problem if required; a parser's ValueError is a problem naming column and value.
    """
    lines = ["def apply(row, event, problems):"]
    env: dict[str, Any] = {}
    parents = sorted({head for step in steps for head, rest in step[3] if rest is not None})
    for head in parents:
        lines.append(f"    {head} = event.get({head!r})")
        lines.append(f"    if {head} is None:")
        lines.append(f"        {head} = event[{head!r}] = {{}}")
    for index, (name, parse, required, targets, several) in enumerate(steps):
        env[f"parse{index}"] = parse
        lines.append(f"    cell = row.get({name!r})")
        lines.append("    if cell is None:")
        absent = f"problems.append({name + ' is missing'!r})" if required else "pass"
        lines.append(f"        {absent}")
        if required:
            lines.append("    elif not cell:")
            lines.append(f"        problems.append({name + ' is empty'!r})")
        lines.append("    else:")
        lines.append("        try:")
        lines.append(f"            value = parse{index}(cell)")
        lines.append("        except ValueError as exc:")
        lines.append(f'            problems.append(f"{name} {{cell!r}} {{exc}}")')
        lines.append("        else:")
        if several:
            lines.append(
                f"            parts = value if value is not None else {(None,) * len(targets)!r}"
            )
        for position, (head, rest) in enumerate(targets):
            part = f"parts[{position}]" if several else "value"
            target = f"{head}[{rest!r}]" if rest is not None else f"event[{head!r}]"
            lines.append(f"            {target} = {part}")
    lines.append("    return None")
    exec(compile("\n".join(lines), "<row mapper>", "exec"), env)
    apply: Callable[[Mapping[str, str], dict[str, Any], list[str]], None] = env["apply"]
    return apply

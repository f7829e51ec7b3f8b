"""From a provider's row to a validated raw event: pure, no I/O.

:class:`RowMapper` checks a file's columns against the provider's format (naming the format
the file looks like instead, if any), then maps each row: parse each cell, place it in the
event, derive the event time and a deterministic event id, and validate the event. A row
that fails raises :class:`RowRejected` with every problem, each named by the provider's
column.

Validation uses validators compiled from the event schemas (:func:`c2c.validation.
compile_validator`): they find what the generated pydantic models find, with the same
messages, several times faster. The models stay the reference (tests compare the two) and
validate what the direct emitter sends.
"""

from __future__ import annotations

import datetime
import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel

from c2c import events
from c2c.errors import C2CError
from c2c.pseudonyms import keyed_digest, purpose_key
from c2c.schemas import SchemaLibrary
from c2c.settings import DEVELOPMENT_SECRET
from c2c.topics import get_topic
from c2c.validation import DateLimits, FieldProblem, compile_validator, date_limits
from producers.formats import FORMATS, KIND_TOPICS, Column, ProviderFormat, RecordType

__all__ = [
    "DEVELOPMENT_KEY",
    "MODELS",
    "EventCheck",
    "FormatMismatch",
    "MappedRow",
    "RowMapper",
    "RowRejected",
    "canonical_content",
    "compiled_checks",
    "event_id_for",
    "event_id_prefix",
    "event_id_with",
]

MODELS: Mapping[str, type[BaseModel]] = {
    "enrollment": events.EnrollmentEvent,
    "completion": events.CompletionEvent,
    "financial_aid": events.FinancialAidEvent,
    "wage": events.WageEvent,
    "credential": events.CredentialEvent,
    "optout": events.OptOutEvent,
}

EventCheck = Callable[[Any], list[FieldProblem]]
"""Every problem of a raw event (an empty list when it is valid)."""


class RowRejected(C2CError):
    """A row that cannot become an event; the message lists every problem."""

    code = "row.rejected"


class FormatMismatch(C2CError):
    """The file's columns are not this provider's format."""

    code = "extract.format"


class MappedRow(NamedTuple):
    """A row made into an event for ``topic``, keyed by the source's person id."""

    kind: str
    topic: str
    key: bytes
    event: dict[str, Any]


# The development secret (c2c.settings), for ids of synthetic and test data only: every
# producer of real data passes settings.identity_secret, which is refused when it is this
# one outside development.
DEVELOPMENT_KEY = DEVELOPMENT_SECRET.encode()


def event_id_for(
    provider: str, source_record_id: str, content: str | bytes, *, secret: bytes = DEVELOPMENT_KEY
) -> str:
    """A UUID derived from provider, source record id and content, keyed with the identity
    secret: the same record sent twice gets the same id (so duplicates are recognisable
    downstream); a corrected record gets a new one; and nobody holding the record but not
    the secret can compute it (the id reaches ClickHouse: unkeyed, a source row would find
    its person's facts there). ``content`` is the row as sent (files) or the canonical event
    (:func:`canonical_content`, for emitted events)."""
    return event_id_with(
        event_id_prefix(provider, secret),
        source_record_id,
        content if isinstance(content, bytes) else content.encode(errors="surrogateescape"),
    )


def event_id_prefix(provider: str, secret: bytes = DEVELOPMENT_KEY) -> bytes:
    """What :func:`event_id_with` needs of ``provider``: its key under the identity
    ``secret`` (computed once per provider)."""
    return purpose_key(secret, f"event-id|{provider}")


def event_id_with(prefix: bytes, source_record_id: str, content: bytes) -> str:
    """:func:`event_id_for` with the provider's :func:`event_id_prefix`: runs once a row.

    HMAC-SHA256 (c2c.pseudonyms) of the record id and content, in RFC 4122 layout with
    the version 5 bits: the first 16 bytes of the digest with the version nibble set to 5
    and the variant bits to 10, written from the hex digest without a UUID object.
    """
    h = keyed_digest(
        prefix, b"%b|%b" % (source_record_id.encode(errors="surrogateescape"), content)
    ).hex()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# The first hex digit of a UUID's 9th byte with the variant bits set to 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def canonical_content(event: Mapping[str, Any]) -> str:
    """An event's content as canonical JSON (sorted keys), without its id and time."""
    content = {k: v for k, v in event.items() if k not in ("event_id", "event_time")}
    return json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)


def _row_content(columns: Sequence[str], cells: Sequence[str]) -> bytes:
    pairs = sorted(zip(columns, cells, strict=True))
    return "\x1f".join(f"{name}={value}" for name, value in pairs).encode(errors="surrogateescape")


def compiled_checks(
    library: SchemaLibrary | None = None,
    kinds: Iterable[str] | None = None,
    dates: DateLimits | None = None,
) -> dict[str, EventCheck]:
    """A compiled validator for each kind of raw event (or each of ``kinds``), from its
    topic's schema, with the date limits ``dates`` (c2c.validation.DATE_RULES) if given."""
    lib = library if library is not None else SchemaLibrary()
    wanted = set(KIND_TOPICS) if kinds is None else set(kinds)
    return {
        kind: compile_validator(lib.resolve(get_topic(topic).schema), dates)
        for kind, topic in KIND_TOPICS.items()
        if kind in wanted
    }


_Apply = Callable[[Sequence[str], dict[str, Any], list[str]], None]
_MapCells = Callable[[Sequence[str], bytes | None], MappedRow]


class RowMapper:
    """Maps rows of one provider's extract to raw events.

    ``checks`` validates each kind of event (default: the compiled validators with the
    date limits ``dates``, by default as of today: c2c.validation.date_limits); tests pass
    the pydantic models' checks to compare the two. ``secret`` (the identity secret,
    settings.identity_secret) keys the event ids (:func:`event_id_for`); the development
    one by default, for synthetic and test data.
    """

    def __init__(
        self,
        source: str,
        fmt: ProviderFormat,
        *,
        secret: bytes = DEVELOPMENT_KEY,
        checks: Mapping[str, EventCheck] | None = None,
        dates: DateLimits | None = None,
    ) -> None:
        self.source = source
        self.format = fmt
        self.secret = secret
        self.dates = dates if dates is not None else date_limits()
        self._checks = (
            dict(checks)
            if checks is not None
            else compiled_checks(
                kinds={t.kind for t in fmt.record_types.values()}, dates=self.dates
            )
        )
        self._targets: dict[str, str] = {}
        for column in fmt.columns():
            targets = column.target if isinstance(column.target, tuple) else (column.target,)
            for target in targets:
                self._targets.setdefault(target, column.name)
        self._targets["source_record_id"] = fmt.record_id_column
        self._targets["person.source_person_id"] = fmt.person_id_column
        self._compiled: dict[tuple[str, ...], _MapCells] = {}
        self._last: tuple[tuple[str, ...], _MapCells] | None = None

    # -- file level ----------------------------------------------------------------------------
    def check_columns(
        self, columns: Sequence[str], where: str, *, allow_unknown: bool = False
    ) -> list[str]:
        """FormatMismatch if required columns are missing (naming the likely format), or if
        a column is not one of the format's (a misspelled optional column would be read as
        missing on every row) unless ``allow_unknown``. Returns warnings: the format's
        optional columns the file does not have, and the unknown ones allowed."""
        present = set(columns)
        missing = [name for name in self.format.required_columns() if name not in present]
        known = {column.name for column in self.format.columns()}
        if self.format.type_column:
            known.add(self.format.type_column)
        known |= {self.format.record_id_column, self.format.person_id_column}
        unknown = [name for name in columns if name not in known]
        if not missing:
            if unknown and not allow_unknown:
                close = {
                    name: difflib.get_close_matches(name, sorted(known), n=1) for name in unknown
                }
                named = ", ".join(
                    f"{name} (did you mean {close[name][0]}?)" if close[name] else name
                    for name in unknown
                )
                raise FormatMismatch(
                    f"{where}: column(s) {named} are not in the {self.source} format; "
                    "fix the header, or pass --allow-unknown-columns to read the file "
                    "without them. producers/README.md lists each format's columns."
                )
            absent = [name for name in known if name not in present]
            return [
                *(
                    f"optional column {name} is not in the file: every row has it empty"
                    for name in sorted(absent)
                ),
                *(
                    f"column {name} is not in the {self.source} format: not read"
                    for name in unknown
                ),
            ]
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
    def map(self, row: Mapping[str, str], content: bytes | None = None) -> MappedRow:
        """The event for ``row`` (cells by column name); RowRejected listing every problem
        if it cannot be one.

        ``content`` is the row as read (its bytes), from which the event id derives; without
        it, the cells are used.
        """
        return self.for_columns(tuple(row))(list(row.values()), content)

    def for_columns(self, columns: tuple[str, ...]) -> _MapCells:
        """:meth:`map` for rows given as cells in the order of ``columns`` (a file's header),
        which saves building a dict a row."""
        last = self._last
        if last is not None and columns is last[0]:
            return last[1]  # the rows of a file share its header: skip hashing it
        mapper = self._compiled.get(columns)
        if mapper is None:
            mapper = self._compiled[columns] = self._compile(columns)
        self._last = (columns, mapper)
        return mapper

    def _compile(self, columns: tuple[str, ...]) -> _MapCells:
        fmt = self.format
        position = {name: index for index, name in enumerate(columns)}
        type_at = position.get(fmt.type_column) if fmt.type_column else None
        appliers = {
            code: (
                record_type,
                _compile(position, [_plan(c) for c in (*fmt.shared, *record_type.columns)]),
            )
            for code, record_type in fmt.record_types.items()
        }
        ids = [(position.get(name), name) for name in (fmt.record_id_column, fmt.person_id_column)]
        record_at, person_at = ids[0][0], ids[1][0]
        provider = fmt.provider
        prefix = event_id_prefix(provider, self.secret)
        checks = self._checks

        def map_cells(cells: Sequence[str], content: bytes | None) -> MappedRow:
            if fmt.type_column is None:
                code = ""
            else:
                code = cells[type_at].upper() if type_at is not None else ""
                if code not in appliers:
                    raise RowRejected(
                        f"{fmt.type_column} is not one of {', '.join(fmt.record_types)}"
                    )
            record_type, apply = appliers[code]
            problems: list[str] = []
            for at, name in ids:
                if at is None:
                    problems.append(f"{name} is missing")
                elif not cells[at]:
                    problems.append(f"{name} is empty")
            record_id = cells[record_at] if record_at is not None else ""
            person_id = cells[person_at] if person_at is not None else ""
            event: dict[str, Any] = {
                "provider": provider,
                "source_record_id": record_id,
                "person": {"source_person_id": person_id},
            }
            apply(cells, event, problems)
            when = self._finish(record_type, event, problems)
            event["event_time"] = when
            event["event_id"] = event_id_with(
                prefix, record_id, content if content is not None else _row_content(columns, cells)
            )
            found = checks[record_type.kind](event)
            if found:
                raise RowRejected(self._describe(found, record_type, event))
            return MappedRow(
                record_type.kind, KIND_TOPICS[record_type.kind], person_id.encode(), event
            )

        return map_cells

    def _finish(
        self, record_type: RecordType, event: dict[str, Any], problems: list[str]
    ) -> datetime.datetime:
        """Constants, empty demographics and the event time; RowRejected on any problem."""
        for path, value in record_type.constants.items():
            _place(event, path, value)
        demographics = event.get("demographics")
        if demographics is not None and [*demographics.values()].count(None) == len(demographics):
            event["demographics"] = None  # the source reported none of them
        if record_type.kind != "optout":
            event.setdefault("demographics", None)
        when = None
        if not problems:
            try:
                when = record_type.event_time(event)
            except (ValueError, OverflowError) as exc:  # a year 0, say: no such date
                problems.append(f"no date to place the event in time ({exc})")
            else:
                if when is None:
                    problems.append("no date to place the event in time")
        for path in record_type.event_time.paths:
            if path.startswith("_"):
                event.pop(path, None)  # kept only to place the event in time
        if problems:
            raise RowRejected("; ".join(problems))
        assert when is not None
        if not isinstance(when, datetime.datetime):
            when = datetime.datetime(when.year, when.month, when.day, tzinfo=datetime.UTC)
        return when

    def _describe(
        self, found: list[FieldProblem], record_type: RecordType, event: Mapping[str, Any]
    ) -> str:
        """The problems, each field named by the provider's column it came from (the event
        time by the column of the first value it was computed from)."""
        problems = []
        for problem in found:
            column = self._targets.get(problem.field)
            if problem.field == "event_time":
                column = next(
                    (
                        self._targets.get(path)
                        for path in record_type.event_time.paths
                        if _value_at(event, path) is not None
                    ),
                    # a value kept only to place the event in time is gone from it by now
                    self._targets.get(record_type.event_time.paths[0]),
                )
            name = f"{column} ({problem.field})" if column else problem.field
            problems.append(str(problem).replace(problem.field, name, 1))
        return "; ".join(problems)


def _value_at(event: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = event.get(head)
    return value.get(rest) if rest and isinstance(value, Mapping) else (None if rest else value)


def _place(event: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        event[head] = value
        return
    child = event.setdefault(head, {})
    child[rest] = value


_Step = tuple[str, Any, bool, tuple[tuple[str, str | None], ...], bool]


def _plan(column: Column) -> _Step:
    """A column as (name, parse, required, ((head, rest), ...), several targets)."""
    targets = column.target if isinstance(column.target, tuple) else (column.target,)
    split = tuple((head, rest or None) for head, _, rest in (t.partition(".") for t in targets))
    return (column.name, column.parse, column.required, split, isinstance(column.target, tuple))


def _compile(position: Mapping[str, int], steps: list[_Step]) -> _Apply:
    """One function applying every column of a record type to a row's cells (in the order
    ``position`` gives): straight-line code, several times faster than interpreting the
    steps row after row. Semantics per column: absent (not in the file) leaves the field
    unset, or is a problem if required; empty is None, or a problem if required; a parser's
    ValueError is a problem naming column and value.
    """
    lines = ["def apply(cells, event, problems):"]
    env: dict[str, Any] = {}
    parents = sorted({head for step in steps for head, rest in step[3] if rest is not None})
    for head in parents:
        lines.append(f"    {head} = event.get({head!r})")
        lines.append(f"    if {head} is None:")
        lines.append(f"        {head} = event[{head!r}] = {{}}")
    for index, (name, parse, required, targets, several) in enumerate(steps):
        at = position.get(name)
        if at is None:
            if required:
                lines.append(f"    problems.append({name + ' is missing'!r})")
            continue
        env[f"parse{index}"] = parse
        lines.append(f"    cell = cells[{at}]")
        indent = "    "
        if required:
            lines.append("    if not cell:")
            lines.append(f"        problems.append({name + ' is empty'!r})")
            lines.append("    else:")
            indent = "        "
        lines.append(f"{indent}try:")
        lines.append(f"{indent}    value = parse{index}(cell)")
        lines.append(f"{indent}except ValueError as exc:")
        lines.append(f'{indent}    problems.append(f"{name} {{exc}}")')
        lines.append(f"{indent}else:")
        if several:
            lines.append(
                f"{indent}    parts = value if value is not None else {(None,) * len(targets)!r}"
            )
        for part_index, (head, rest) in enumerate(targets):
            part = f"parts[{part_index}]" if several else "value"
            target = f"{head}[{rest!r}]" if rest is not None else f"event[{head!r}]"
            lines.append(f"{indent}    {target} = {part}")
    lines.append("    return None")
    exec(compile("\n".join(lines), "<row mapper>", "exec"), env)
    apply: _Apply = env["apply"]
    return apply

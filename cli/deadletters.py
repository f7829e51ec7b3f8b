"""`c2c deadletters list|show|replay|discard`: dead letters worked, every decision audited
(observability/deadletters.py)."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from cli.common import JSON_OPTION, context_settings, echo_json, reports_errors

if TYPE_CHECKING:
    from observability.deadletters import DeadLetter, DeadLetterFilter


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    from observability.deadletters import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_FILTERS = [
    click.option("--topic", default=None, help="Only those read from this source topic."),
    click.option(
        "--code",
        default=None,
        help="Only this error code, or codes under it (`row` takes `row.invalid`).",
    ),
    click.option(
        "--stage", default=None, help="Only this stage (identity, sink, producer:k12, ...)."
    ),
    click.option(
        "--since",
        default=None,
        callback=_since,
        help="Only those failed since: an ISO date or time (UTC), or a duration (30m, 2h, 7d).",
    ),
]


def _filters(func: Any) -> Any:
    for option in reversed(_FILTERS):
        func = option(func)
    return func


_OPERATOR = click.option(
    "--operator",
    default=None,
    help="Who takes the decision, for the audit (default: this process's login name).",
)
_AGAIN = click.option(
    "--again", is_flag=True, help="Act on dead letters already replayed or discarded too."
)


def _read(ctx: click.Context) -> tuple[Any, list[DeadLetter]]:
    from c2c.registry import SchemaRegistry
    from observability.deadletters import read_dead_letters

    settings = context_settings(ctx)
    registry = SchemaRegistry(settings)
    return registry, read_dead_letters(settings, registry)


def _chosen(
    letters: list[DeadLetter], ids: Sequence[str], wanted: DeadLetterFilter
) -> list[DeadLetter]:
    """The dead letters named by ``ids``, or else the open ones the filters take."""
    from observability.deadletters import find, select

    if ids:
        return [find(letters, item) for item in ids]
    if wanted.empty:
        raise click.UsageError("name dead letters by id, or choose them with a filter")
    return select(letters, wanted)


def _filter(
    topic: str | None,
    code: str | None,
    stage: str | None,
    since: datetime | None,
    state: str | None = None,
) -> DeadLetterFilter:
    from observability.deadletters import DeadLetterFilter

    return DeadLetterFilter(topic=topic, code=code, stage=stage, since=since, state=state)


@click.group()
def deadletters() -> None:
    """Dead letters: list, show, replay after a fix, or discard; every decision is audited
    on c2c.ops.audit (who, when, what)."""


@deadletters.command("list")
@_filters
@click.option(
    "--state",
    type=click.Choice(["open", "replayed", "discarded"]),
    default=None,
    help="Only those in this state (default: all).",
)
@JSON_OPTION
@click.pass_context
@reports_errors
def deadletters_list(
    ctx: click.Context,
    topic: str | None,
    code: str | None,
    stage: str | None,
    since: datetime | None,
    state: str | None,
    as_json: bool,
) -> None:
    """List dead letters, oldest first: id, when, stage, code, where, state (never values)."""
    from observability.deadletters import select

    _registry, letters = _read(ctx)
    chosen = select(letters, _filter(topic, code, stage, since, state))
    if as_json:
        echo_json([letter.summary() for letter in chosen])
        return
    for letter in chosen:
        row = letter.summary()
        click.echo(
            f"{row['dead_letter_id']}  {row['failed_at'][:19]}  {row['state']:<9}  "
            f"{row['stage']:<14} {row['error_code']:<26} {row['where']}"
        )
    click.echo(f"{len(chosen)} of {len(letters)} dead letter(s)", err=True)


@deadletters.command("show")
@click.argument("dead_letter_id")
@click.option(
    "--value",
    "with_value",
    is_flag=True,
    help="Also print the original key and value (they may hold PII: identity zone).",
)
@JSON_OPTION
@click.pass_context
@reports_errors
def deadletters_show(
    ctx: click.Context, dead_letter_id: str, with_value: bool, as_json: bool
) -> None:
    """Show one dead letter: its error, where it came from, sizes, whether it can be
    replayed, and the decision taken on it."""
    from observability.deadletters import find

    _registry, letters = _read(ctx)
    letter = find(letters, dead_letter_id)
    details = letter.details()
    if with_value:
        details["original_key"] = _printable(letter.record.get("original_key"))
        details["original_value"] = _printable(letter.record.get("original_value"))
    if as_json:
        echo_json(details)
        return
    for name, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        click.echo(f"{name:<22} {value}")


def _printable(data: bytes | None) -> str | None:
    """Text when the bytes are UTF-8 text, else hex."""
    if data is None:
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return data.hex()
    return text if text.isprintable() or "\n" in text else data.hex()


@deadletters.command("replay")
@click.argument("ids", nargs=-1)
@_filters
@click.option(
    "--to",
    "to_topic",
    default=None,
    help="Send to this topic instead of the one read from (a message sent to the wrong one).",
)
@click.option("--note", default=None, help="Why, for the audit (what was fixed).")
@_OPERATOR
@_AGAIN
@JSON_OPTION
@click.pass_context
@reports_errors
def deadletters_replay(
    ctx: click.Context,
    ids: Sequence[str],
    topic: str | None,
    code: str | None,
    stage: str | None,
    since: datetime | None,
    to_topic: str | None,
    note: str | None,
    operator: str | None,
    again: bool,
    as_json: bool,
) -> None:
    """Send dead letters' original bytes back to their topic, after the cause is fixed.

    Name them by IDS, or choose the open ones with filters. Each is checked first (a
    rejected file row, or a message kept only in part, cannot be replayed); each replayed
    one is audited with the place it landed.
    """
    from observability.deadletters import replay

    act = partial(replay, note=note, to_topic=to_topic)
    _decide(ctx, ids, _filter(topic, code, stage, since), act, operator, again, as_json)


@deadletters.command("discard")
@click.argument("ids", nargs=-1)
@_filters
@click.option("--note", required=True, help="Why it is left as it is, for the audit.")
@_OPERATOR
@_AGAIN
@JSON_OPTION
@click.pass_context
@reports_errors
def deadletters_discard(
    ctx: click.Context,
    ids: Sequence[str],
    topic: str | None,
    code: str | None,
    stage: str | None,
    since: datetime | None,
    note: str,
    operator: str | None,
    again: bool,
    as_json: bool,
) -> None:
    """Record that dead letters are left as they are (IDS, or the open ones the filters
    take), with the reason. The dead letters stay on their topic."""
    from observability.deadletters import discard

    act = partial(discard, note=note)
    _decide(ctx, ids, _filter(topic, code, stage, since), act, operator, again, as_json)


def _decide(
    ctx: click.Context,
    ids: Sequence[str],
    wanted: DeadLetterFilter,
    act: Callable[..., list[dict[str, Any]]],
    operator: str | None,
    again: bool,
    as_json: bool,
) -> None:
    """Take the dead letters named by ``ids`` (or the open ones ``wanted`` takes), ``act``
    on them as ``operator``, and print the audit records."""
    from dataclasses import replace

    registry, letters = _read(ctx)
    chosen = _chosen(letters, ids, wanted if ids else replace(wanted, state="open"))
    actions = act(
        context_settings(ctx),
        registry,
        chosen,
        operator=operator or getpass.getuser(),
        again=again,
    )
    if as_json:
        echo_json(actions)
        return
    for action in actions:
        target = f" -> {action['target']}" if action["target"] else ""
        click.echo(f"{action['action'].removeprefix('deadletter.')} {action['subject']}{target}")
    click.echo(f"{len(actions)} dead letter(s) acted on, audited", err=True)


@deadletters.command("skip")
@click.option("--group", required=True, help="The consumer group that is stuck.")
@click.option("--topic", required=True, help="The topic of the message it cannot get past.")
@click.option("--partition", type=click.IntRange(min=0), required=True, help="Its partition.")
@click.option("--offset", type=click.IntRange(min=0), required=True, help="Its offset.")
@click.option("--note", required=True, help="Why, for the audit and the dead letter.")
@_OPERATOR
@JSON_OPTION
@click.pass_context
@reports_errors
def deadletters_skip(
    ctx: click.Context,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    note: str,
    operator: str | None,
    as_json: bool,
) -> None:
    """Move a stopped consumer group past a poison message: dead-letter it whole (replay it
    once the consumer is fixed), set the group's offset to the next one, audit it. The
    group's consumers must be stopped, and it must stand at that offset."""
    from c2c.registry import SchemaRegistry
    from observability.deadletters import skip

    settings = context_settings(ctx)
    action = skip(
        settings,
        SchemaRegistry(settings),
        group=group,
        topic=topic,
        partition=partition,
        offset=offset,
        operator=operator or getpass.getuser(),
        note=note,
    )
    if as_json:
        echo_json(action)
        return
    click.echo(f"dead letter {action['subject']}; {action['target']}; audited")

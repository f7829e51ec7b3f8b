"""`c2c sink`, `c2c outcomes` and `c2c optout`: the ClickHouse side and opt-out requests."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from c2c.errors import C2CError
from c2c.settings import Settings
from cli.common import JSON_OPTION, context_settings, echo_json, reports_errors


@click.group()
def sink() -> None:
    """The ClickHouse sink."""


@sink.command("migrate")
@JSON_OPTION
@click.pass_context
@reports_errors
def sink_migrate(ctx: click.Context, as_json: bool) -> None:
    """Apply pending ClickHouse migrations (sinks/migrations/) and re-create the public
    views with the configured suppression threshold."""
    from c2c.clickhouse import connect
    from sinks.migrate import migrate

    settings = context_settings(ctx)
    applied = migrate(
        connect(settings),
        min_cell=settings.suppression_min_cell,
        server=not settings.clickhouse_roles_from_file,
        cluster=settings.clickhouse_cluster,
    )
    if as_json:
        echo_json({"applied": applied})
        return
    click.echo(f"applied {len(applied)} migration(s){': ' if applied else ''}{', '.join(applied)}")


@sink.command("run")
@click.option("--group", default=None, help="Consumer group (default c2c-sink).")
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Stop once nothing arrived for this many seconds (default: run until interrupted).",
)
@click.pass_context
@reports_errors
def sink_run(ctx: click.Context, group: str | None, until_idle: float | None) -> None:
    """Write linked events and identity changes to ClickHouse (migrating first). Health,
    counts and outcomes on C2C_SINK_WEB_PORT."""
    import gc

    from c2c.registry import SchemaRegistry
    from sinks.sink import SINK_GROUP, Sink
    from sinks.web import serve

    settings = context_settings(ctx)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client = _open_clickhouse(settings, stop)
    if client is None:
        return
    running = Sink(settings, SchemaRegistry(settings), client, group_id=group or SINK_GROUP)
    server = serve(running, settings.sink_web_host, settings.sink_web_port)
    # what start-up left (modules, schemas, the person map) lives as long as the process:
    # out of the collector's view, so that full collections do not scan it again
    gc.collect()
    gc.freeze()
    try:
        running.run(stop, idle_stop_s=until_idle)
    finally:
        server.shutdown()
    click.echo(f"sink wrote {running.counts['rows']} rows in {running.counts['batches']} batches")


def _open_clickhouse(settings: Settings, stop: threading.Event) -> Any | None:
    """A migrated ClickHouse client, waiting (0.5 s, doubling to 30 s) while ClickHouse is
    not there (sinks.refusal.outage) as the sink does mid-run; None if ``stop`` was set
    first. Any other error is raised: it would repeat."""
    from c2c.clickhouse import connect
    from sinks.migrate import migrate
    from sinks.refusal import outage

    delay = 0.5
    while True:
        try:
            client = connect(settings)
            migrate(
                client,
                min_cell=settings.suppression_min_cell,
                server=not settings.clickhouse_roles_from_file,
                cluster=settings.clickhouse_cluster,
            )
            return client
        except Exception as exc:
            if not outage(exc):
                raise
            first = str(exc).splitlines()[0][:300]
            click.echo(
                f"c2c sink: ClickHouse is not answering ({first}); again in {delay:.1f} s", err=True
            )
        if stop.wait(delay):
            return None
        delay = min(delay * 2, 30.0)


@sink.command("horizon")
@click.argument("provider")
@click.argument("period")
@click.option("--by", "declared_by", default="", help="Who declares it (kept with it).")
@click.pass_context
@reports_errors
def sink_horizon(ctx: click.Context, provider: str, period: str, declared_by: str) -> None:
    """Declare that PROVIDER has sent every period up to PERIOD: a date (2025-12-31), a
    quarter (2025Q4) or a school year (2025-26). Outcome windows close against it; the
    latest declaration counts. Through a running sink it needs C2C_SINK_WEB_TOKEN."""
    from sinks.horizons import parse_period
    from sinks.reading import open_reader

    through = parse_period(period)
    reader = open_reader(context_settings(ctx))
    reader.declare_horizon(provider, through, declared_by=declared_by)
    click.echo(f"{provider}: complete through {through.isoformat()}")


@sink.command("horizons")
@click.pass_context
@reports_errors
def sink_horizons(ctx: click.Context) -> None:
    """Print each source's declared horizon."""
    from sinks.reading import open_reader

    for provider, through in open_reader(context_settings(ctx)).horizons().items():
        click.echo(f"{provider}: complete through {through.isoformat()}")


@click.command()
@click.argument("name", required=False)
@JSON_OPTION
@click.option(
    "--unsuppressed",
    is_flag=True,
    help="Also the unsuppressed outcome_* tables (a researcher's or operator's: through a "
    "running sink, C2C_SINK_WEB_TOKEN).",
)
@click.pass_context
@reports_errors
def outcomes(ctx: click.Context, name: str | None, as_json: bool, unsuppressed: bool) -> None:
    """Print the public outcome views (all, or NAME); the unsuppressed outcome_* tables only
    with --unsuppressed. With embedded ClickHouse held by a running sink, asks the sink over
    its web port."""
    from sinks.outcomes import OUTCOMES, PUBLIC_OUTCOMES, OutcomeTable
    from sinks.outcomes import unsuppressed as is_unsuppressed
    from sinks.reading import open_reader

    if name is not None and is_unsuppressed(name) and not unsuppressed:
        raise C2CError(
            f"{name} is unsuppressed (small cells shown): pass --unsuppressed to read it as a "
            f"researcher or operator, or read public_{name}",
            code="outcomes.refused",
        )
    reader = open_reader(context_settings(ctx))
    names = [name] if name else list(OUTCOMES if unsuppressed else PUBLIC_OUTCOMES)
    tables = [OutcomeTable(**reader.outcome(n)) for n in names]
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in tables], indent=2, default=str))
        return
    for table in tables:
        columns, rows = _printable(table.columns, table.rows)
        click.echo(f"\n{table.name} ({len(rows)} rows)")
        widths = [
            max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
            for i, c in enumerate(columns)
        ]
        click.echo("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            click.echo("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
        if len(columns) < len(table.columns):
            click.echo("(*: suppressed; -: not yet observable)")


def _printable(columns: list[str], rows: list[list[Any]]) -> tuple[list[str], list[list[str]]]:
    """The table as text: NULL as '-', and in a public view a cell its ``suppressed``
    column lists as '*' (the column itself is not printed)."""
    from sinks.public import SUPPRESSED_COLUMN

    if SUPPRESSED_COLUMN not in columns:
        return columns, [["-" if v is None else str(v) for v in row] for row in rows]
    at = columns.index(SUPPRESSED_COLUMN)
    shown = [c for i, c in enumerate(columns) if i != at]
    text = [
        [
            ("*" if c in row[at] else "-") if v is None else str(v)
            for i, (c, v) in enumerate(zip(columns, row, strict=True))
            if i != at
        ]
        for row in rows
    ]
    return shown, text


# -- opt-outs -----------------------------------------------------------------------------------


@click.group()
def optout() -> None:
    """Ask for a person to be left out of the linked data set, revoke it, see what was done."""


def _emit_optout(settings: Settings, event: dict[str, Any]) -> None:
    from producers.emitter import EventEmitter

    emitter = EventEmitter(settings)
    emitter.emit("optout", event)
    report = emitter.flush()
    if not report.ok:
        raise C2CError(
            f"the opt-out event was not acknowledged: {report.failed[0][1]}",
            code="optout.undelivered",
        )


@optout.command("request")
@click.option("--ssn", help="SSN, 9 digits.")
@click.option("--itin", help="ITIN, 9 digits starting with 9.")
@click.option("--ssid", help="Statewide student id, 10 digits.")
@click.option("--first-name", help="Legal first name.")
@click.option("--middle-name", help="Middle name.")
@click.option("--last-name", help="Legal last name.")
@click.option("--birth-date", type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD.")
@click.option("--zip", "zip_code", help="Residential ZIP code.")
@click.option("--request-id", help="The request's id (default: a new one, printed).")
@click.option(
    "--requested-by",
    type=click.Choice(["INDIVIDUAL", "PROVIDER", "OPERATOR"]),
    default="OPERATOR",
    show_default=True,
    help="Who asks: the person, a provider on their behalf, or an operator.",
)
@JSON_OPTION
@click.pass_context
@reports_errors
def optout_request(
    ctx: click.Context,
    zip_code: str | None,
    birth_date: Any,
    request_id: str | None,
    requested_by: str,
    as_json: bool,
    **person: str | None,
) -> None:
    """Publish an opt-out request for the person these fields identify; prints its id."""
    from producers.optouts import request_event

    settings = context_settings(ctx)
    fields: dict[str, Any] = {**person, "zip": zip_code}
    if birth_date is not None:
        fields["birth_date"] = birth_date.date()
    event = request_event(fields, request_id=request_id, requested_by=requested_by)
    _emit_optout(settings, event)
    if as_json:
        echo_json({"request_id": event["request_id"], "requested_by": requested_by})
        return
    click.echo(event["request_id"])


@optout.command("revoke")
@click.argument("request_id")
@click.pass_context
@reports_errors
def optout_revoke(ctx: click.Context, request_id: str) -> None:
    """Publish the revocation of REQUEST_ID: the person's events are linked again from then on."""
    from producers.optouts import revocation_event

    _emit_optout(context_settings(ctx), revocation_event(request_id))
    click.echo(f"revocation of {request_id} published")


@optout.command("status")
@click.argument("request_id")
@JSON_OPTION
@click.pass_context
@reports_errors
def optout_status(ctx: click.Context, request_id: str, as_json: bool) -> None:
    """What was done for REQUEST_ID: when asked, when applied, rows removed per table.
    Exit 3 while nothing is recorded (not resolved yet, held for review, or unknown)."""
    from sinks.reading import open_reader

    answer = open_reader(context_settings(ctx)).audit(request_id)
    decisions = answer["decisions"]
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif not decisions:
        click.echo(
            f"{request_id}: nothing applied yet (the identity worker has not resolved it, it is "
            "held for review (c2c status counts reviews), or no such request was made)"
        )
    for item in [] if as_json else decisions:
        removed = ", ".join(f"{t} {n}" for t, n in sorted(item["rows_removed"].items()) if n)
        click.echo(
            f"{request_id}: {item['cause']} by {item['requested_by']} at {item['requested_at']}; "
            f"applied by the resolver {item['decided_at']}, in ClickHouse {item['applied_at']}; "
            f"{'opted out' if item['opted_out'] else 'not opted out'}; "
            f"{item['persons']} person id(s); rows removed: {removed or 'none'}"
        )
    if not decisions:
        sys.exit(3)

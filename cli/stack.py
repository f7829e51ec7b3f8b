"""`c2c services`: the local Kafka, schema registry and ClickHouse."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence

import click

from c2c.acls import roles
from c2c.settings import Settings
from cli.common import context_settings, reports_errors
from producers.formats import provider_kinds
from services import (
    SERVICE_NAMES,
    ServiceStatus,
    fetch_artifacts,
    services_down,
    services_status,
    services_up,
)
from services.clickhouse_server import server_home
from services.principals import as_role
from sinks.access import users_xml

# -- services -----------------------------------------------------------------------------------

_BROKERS = click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Nodes of the local Kafka cluster (default C2C_KAFKA_BROKERS, 1); `down` and "
    "`status` also act on every node that `up` started here.",
)


def _stack_settings(ctx: click.Context, brokers: int | None) -> Settings:
    """The settings, with ``brokers`` (--brokers) over C2C_KAFKA_BROKERS (a single loopback
    bootstrap then names every node)."""
    settings = context_settings(ctx)
    return settings if brokers is None else settings.with_kafka_brokers(brokers)


@click.group()
def services() -> None:
    """Start, stop and check Kafka, the schema registry and ClickHouse."""


_ONLY = click.option(
    "--only",
    multiple=True,
    type=click.Choice(SERVICE_NAMES),
    help="Act on this service only (repeatable).",
)


@services.command("fetch")
@click.option("--force", is_flag=True, help="Fetch again even if the jars are in place.")
@click.pass_context
@reports_errors
def services_fetch(ctx: click.Context, force: bool) -> None:
    """Fetch the Kafka and Apicurio jars from Maven Central (once)."""
    settings = context_settings(ctx)
    ran = fetch_artifacts(settings, force=force)
    click.echo(f"jars {'fetched into' if ran else 'already in'} {settings.lib_path.resolve()}")


@services.command("up")
@_ONLY
@_BROKERS
@click.option(
    "--print-started",
    is_flag=True,
    help="Print only the names of the services started, one per line.",
)
@click.pass_context
@reports_errors
def services_up_cmd(
    ctx: click.Context, only: Sequence[str], brokers: int | None, print_started: bool
) -> None:
    """Start the local services that are not running and wait until each is ready
    (--brokers 3: Kafka as a local cluster of three nodes)."""
    settings = _stack_settings(ctx, brokers)
    if settings.clickhouse_serve:  # the local server's roles: the project's (sinks/access.py)
        home = server_home(settings)
        home.mkdir(parents=True, exist_ok=True)
        (home / "users.xml").write_text(users_xml(settings.clickhouse_database))
    started_at = time.monotonic()
    started = services_up(settings, only or None, providers=provider_kinds())
    if print_started:
        click.echo("\n".join(started))
        return
    elapsed = time.monotonic() - started_at
    names = ", ".join(started) if started else "nothing (all were up)"
    click.echo(f"started {names}; ready in {elapsed:.1f} s")
    _print_status(services_status(settings, only or None))


@services.command("down")
@_ONLY
@_BROKERS
@click.pass_context
@reports_errors
def services_down_cmd(ctx: click.Context, only: Sequence[str], brokers: int | None) -> None:
    """Stop the local services this project started."""
    stopped = services_down(_stack_settings(ctx, brokers), only or None)
    click.echo(f"stopped {', '.join(stopped) if stopped else 'nothing (none was running)'}")


@services.command("status")
@_ONLY
@_BROKERS
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service, in a list.")
@click.pass_context
@reports_errors
def services_status_cmd(
    ctx: click.Context, only: Sequence[str], brokers: int | None, as_json: bool
) -> None:
    """Report each service (each Kafka node): up or down, address, version, pid and log."""
    rows = services_status(_stack_settings(ctx, brokers), only or None)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        _print_status(rows)
    if not all(row.up for row in rows):
        sys.exit(3)


@services.command("credentials")
@click.argument("role", type=click.Choice(roles(provider_kinds())))
@click.pass_context
@reports_errors
def services_credentials_cmd(ctx: click.Context, role: str) -> None:
    """Print the C2C_KAFKA_* variables that connect to the secured local broker as ROLE's
    principal (`eval "$(c2c services credentials sink)"` before `c2c sink run`)."""
    settings = as_role(context_settings(ctx), role)
    for name, value in settings.kafka_environment().items():
        if "KAFKA" in name:
            click.echo(f"export {name}={shlex.quote(value)}")


def _print_status(rows: Sequence[ServiceStatus]) -> None:
    header = ("service", "state", "version", "address", "pid", "detail")
    table = [header] + [
        (
            row.name,
            "up" if row.up else "DOWN",
            row.version or "-",
            row.address,
            str(row.pid) if row.pid else ("-" if row.local else "remote"),
            row.detail if row.up else f"{row.detail} (log: {row.log or '-'})",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, line[-1]]))

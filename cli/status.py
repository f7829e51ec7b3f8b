"""`c2c status`: one screen of stream health for operators."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from c2c.settings import Settings
from cli.common import context_settings, reports_errors

if TYPE_CHECKING:
    from observability.status import StatusReport


def status_report(settings: Settings, *, sample_s: float = 1.0) -> StatusReport:
    """:func:`observability.status.collect_status` with the local services' state and the
    sink's freshness (read from the sink's pages or ClickHouse)."""
    from observability.status import Stage, collect_status
    from services import services_status
    from sinks.reading import read_freshness
    from sinks.sink import SINK_GROUP
    from streams.app import APP_ID
    from streams.forwarder import forward_group

    worker = f"http://{settings.worker_web_host}:{settings.worker_web_port}/health/ready"
    sink = f"http://{settings.sink_web_host}:{settings.sink_web_port}/health/ready"
    return collect_status(
        settings,
        services=lambda: [row.to_dict() for row in services_status(settings)],
        freshness=lambda: read_freshness(settings),
        stages=[
            Stage("identity worker", APP_ID, worker, start="earliest"),
            Stage("forwarder", forward_group(APP_ID), worker, start=settings.streams_start),
            Stage("sink", SINK_GROUP, sink, start=settings.sink_start),
        ],
        sample_s=sample_s,
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch (and the rate sample).",
)
@click.option(
    "--all",
    "all_groups",
    is_flag=True,
    help="Every consumer group ever made, not only those with members now.",
)
@click.pass_context
@reports_errors
def status(
    ctx: click.Context, as_json: bool, watch: bool, interval: float, all_groups: bool
) -> None:
    """Stream health: services, throughput per topic, lag per consumer group with members
    (--all: every group), dead letters and reviews with the last of each, the sink's
    freshness (age of the newest row), and problems: a stage not ready, a consumer with lag
    that does not move.

    Exit status (without --watch): 0 healthy, 3 a service is down, 4 a problem found."""
    settings = context_settings(ctx)
    while True:
        report = status_report(settings, sample_s=min(interval, 1.0))
        if not all_groups:
            report.groups = [group for group in report.groups if group.members]
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            if watch:
                click.clear()
            _print_report(report)
        if not watch:
            sys.exit(exit_status(report))
        time.sleep(max(0.0, interval - 1.0))


SERVICE_DOWN = 3
PROBLEM_FOUND = 4


def exit_status(report: StatusReport) -> int:
    """0 healthy, :data:`SERVICE_DOWN` (3) a service is down, :data:`PROBLEM_FOUND` (4)
    a problem found while every service is up."""
    if any(not row.get("up") for row in report.services):
        return SERVICE_DOWN
    return PROBLEM_FOUND if report.problems else 0


def _print_report(report: StatusReport) -> None:
    click.echo(f"c2c status at {time.strftime('%F %T')}")
    for row in report.services:
        state = "up" if row["up"] else "DOWN"
        click.echo(f"  {row['name']:<16} {state:<5} {row['address']}  {row['detail']}")
    if report.topics:
        click.echo("topics (messages kept, produced per second):")
        for topic in report.topics:
            click.echo(f"  {topic.topic:<26} {topic.messages:>10}  {topic.per_second:>9.1f}/s")
    click.echo("consumer groups (lag):" if report.groups else "consumer groups: none yet")
    for group in report.groups:
        notes = [] if group.members else ["no members"]
        if group.moved is False and group.lag:
            notes.append("not moving")
        uncounted = sum(n for p, n in group.uncommitted.items() if p not in group.partitions)
        if uncounted:
            notes.append(f"{uncounted} more in partitions never committed")
        click.echo(f"  {group.group:<40} {group.lag:>10}  {', '.join(notes)}".rstrip())
    click.echo(f"held for identity review: {report.reviews}")
    if report.last_review:
        last = report.last_review
        click.echo(
            f"  last: {last['received_at']} {last['provider']} at {last['where']}: {last['reason']}"
        )
    click.echo(f"dead letters: {report.dead_letters}")
    if report.last_dead_letter:
        last = report.last_dead_letter
        click.echo(
            f"  last: {last['failed_at']} {last['stage']} {last['error_code']} at {last['where']}"
        )
    if report.sink is not None:
        age = report.sink.freshness_s
        click.echo(
            "sink freshness: "
            + ("no rows yet" if age is None else f"newest row {age:.1f} s old")
            + f" (from {report.sink.source})"
        )
    for problem in report.problems:
        click.echo(f"problem: {problem}")

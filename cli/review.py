"""`c2c review list|show`: the identity resolver's needs-review queue
(observability/reviews.py)."""

from __future__ import annotations

import click

from cli.common import JSON_OPTION, context_settings, echo_json, reports_errors


@click.group()
def review() -> None:
    """Records the identity resolver held for review (identity zone)."""


@review.command("list")
@click.option(
    "--state",
    type=click.Choice(["open", "decided"]),
    default=None,
    help="Only open reviews, or only those decided (default: all).",
)
@click.option("--provider", default=None, help="Only this provider's records (k12, ccc, ...).")
@JSON_OPTION
@click.pass_context
@reports_errors
def review_list(ctx: click.Context, state: str | None, provider: str | None, as_json: bool) -> None:
    """List held records, oldest first: id, when, provider, reason, where (never values)."""
    from c2c.registry import SchemaRegistry
    from observability.reviews import read_reviews

    settings = context_settings(ctx)
    reviews = read_reviews(settings, SchemaRegistry(settings))
    rows = [
        r.summary()
        for r in reviews
        if (provider is None or str(r.record["provider"]) == provider)
        and (state is None or (r.state == "open") == (state == "open"))
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['review_id']}  {row['received_at'][:19]}  {row['state']:<8} "
            f"{row['provider']:<5} {row['where']:<28} {row['reason']}"
        )
    click.echo(f"{len(rows)} of {len(reviews)} review(s)", err=True)


@review.command("show")
@click.argument("review_id")
@click.option(
    "--values",
    "with_values",
    is_flag=True,
    help="Also print the held raw event: names, birth date, identifiers (identity zone).",
)
@JSON_OPTION
@click.pass_context
@reports_errors
def review_show(ctx: click.Context, review_id: str, with_values: bool, as_json: bool) -> None:
    """Show one held record: why, where, the decision; its raw event with --values."""
    from c2c.registry import SchemaRegistry
    from observability.reviews import find_review, raw_event, read_reviews

    settings = context_settings(ctx)
    registry = SchemaRegistry(settings)
    found = find_review(read_reviews(settings, registry), review_id)
    details = {**found.summary(), "decision": found.decision}
    if with_values:
        details["raw_event"] = raw_event(registry, found)
    if as_json:
        echo_json(details)
        return
    for name, value in details.items():
        click.echo(f"{name:<12} {value}")

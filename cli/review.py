"""`c2c review list|show|link|separate`: the identity resolver's needs-review queue
(observability/reviews.py), and operators' decisions on possible matches."""

from __future__ import annotations

import getpass

import click

from cli.common import JSON_OPTION, context_settings, echo_json, reports_errors


@click.group()
def review() -> None:
    """Records the identity resolver held for review (identity zone), and possible matches
    to link or separate; every decision is audited on c2c.ops.audit."""


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
    """List held records, oldest first: id, when, provider, reason, where, and a possible
    match's two person ids (never values)."""
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
        # a possible match names its two persons (pseudonymous ids), to link or separate
        persons = (
            f"  [{row['person_id']} ~ {row['candidate_person_id']}]" if "person_id" in row else ""
        )
        click.echo(
            f"{row['review_id']}  {row['received_at'][:19]}  {row['state']:<8} "
            f"{row['provider']:<5} {row['where']:<28} {row['reason']}{persons}"
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


def _decide(
    ctx: click.Context,
    action: str,
    review_id: str,
    reason: str,
    operator: str | None,
    as_json: bool,
) -> None:
    from c2c.registry import SchemaRegistry
    from observability.reviews import decide, find_review, read_reviews

    settings = context_settings(ctx)
    registry = SchemaRegistry(settings)
    found = find_review(read_reviews(settings, registry), review_id)
    audited = decide(
        settings,
        registry,
        found,
        action,
        operator=operator or getpass.getuser(),
        reason=reason,
    )
    # ids and each field's comparison level only: never the record's values
    summary = found.summary()
    done = {
        "review_id": found.id,
        "decision": action,
        "decision_id": audited["action_id"],
        "person_id": summary["person_id"],
        "candidate_person_id": summary["candidate_person_id"],
        "match_weight": summary["match_weight"],
        "comparison": summary["comparison"],
        "sent_to": audited["target"],
        "operator": audited["operator"],
    }
    if as_json:
        echo_json(done)
        return
    levels = ", ".join(f"{k} {v}" for k, v in sorted(done["comparison"].items()))
    click.echo(
        f"{action} {done['person_id']} and {done['candidate_person_id']} "
        f"({done['match_weight']} bits: {levels})"
    )
    click.echo(
        f"decision {done['decision_id']} sent to the identity worker ({done['sent_to']}), audited",
        err=True,
    )


_REASON = click.option(
    "--reason", required=True, help="Why, in words, for the audit and the identity worker."
)
_OPERATOR = click.option(
    "--operator",
    default=None,
    help="Who takes the decision, for the audit (default: this process's login name).",
)


@review.command("link")
@click.argument("review_id")
@_REASON
@_OPERATOR
@JSON_OPTION
@click.pass_context
@reports_errors
def review_link(
    ctx: click.Context, review_id: str, reason: str, operator: str | None, as_json: bool
) -> None:
    """Decide that the two persons of a possible match are one: the identity worker merges
    them (the lowest id survives) and publishes the merge, which downstream re-keys."""
    _decide(ctx, "link", review_id, reason, operator, as_json)


@review.command("separate")
@click.argument("review_id")
@_REASON
@_OPERATOR
@JSON_OPTION
@click.pass_context
@reports_errors
def review_separate(
    ctx: click.Context, review_id: str, reason: str, operator: str | None, as_json: bool
) -> None:
    """Decide that the two persons of a possible match are not one: the identity worker
    never merges them, and splits the review's record back to its own person if they were
    merged."""
    _decide(ctx, "separate", review_id, reason, operator, as_json)

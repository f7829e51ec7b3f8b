"""`c2c topics` and `c2c schemas`: the topic catalogue and the registered Avro schemas."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import JSON_OPTION, context_settings, echo_json, reports_errors

if TYPE_CHECKING:
    from c2c.registry import SchemaRegistry

# -- topics ----------------------------------------------------------------------------------


@click.group()
def topics() -> None:
    """The topic catalogue."""


@topics.command("create")
@JSON_OPTION
@click.pass_context
@reports_errors
def topics_create(ctx: click.Context, as_json: bool) -> None:
    """Create every catalogue topic that does not exist yet, and set on the others the
    configuration the catalogue declares (retention, message size) where it differs."""
    from c2c.kafka import align_topic_configs, ensure_topics
    from c2c.topics import CATALOGUE

    settings = context_settings(ctx)
    created = ensure_topics(settings, CATALOGUE)
    aligned = align_topic_configs(settings, CATALOGUE)
    if as_json:
        echo_json({"created": created, "configured": aligned})
        return
    click.echo(f"created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")
    for name, changed in aligned.items():
        click.echo(f"set {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))


@topics.command("list")
@JSON_OPTION
def topics_list(as_json: bool) -> None:
    """Print the catalogue: name, partitions, zone, schema."""
    from dataclasses import asdict

    from c2c.topics import CATALOGUE

    if as_json:
        echo_json([asdict(topic) for topic in CATALOGUE])
        return
    for topic in CATALOGUE:
        click.echo(f"{topic.name:<26} {topic.partitions:>2}  {topic.zone:<13} {topic.schema}")


# -- schemas ---------------------------------------------------------------------------------


@click.group()
def schemas() -> None:
    """Register, check and generate models from the Avro schemas in schemas/avro/."""


_SCHEMA_DIR = click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of .avsc files (default: the project's schemas/avro).",
)


def _registry(ctx: click.Context, schema_dir: Path | None) -> SchemaRegistry:
    from c2c.registry import SchemaRegistry
    from c2c.schemas import SchemaLibrary

    library = SchemaLibrary(schema_dir) if schema_dir is not None else SchemaLibrary()
    return SchemaRegistry(context_settings(ctx), library)


@schemas.command("register")
@_SCHEMA_DIR
@JSON_OPTION
@click.pass_context
@reports_errors
def schemas_register(ctx: click.Context, schema_dir: Path | None, as_json: bool) -> None:
    """Register every catalogue topic's value schema (idempotent), BACKWARD_TRANSITIVE."""
    rows = _registry(ctx, schema_dir).register_all()
    if as_json:
        echo_json([row.__dict__ for row in rows])
        return
    for row in rows:
        click.echo(
            f"{row.subject:<36} id {row.schema_id:<5} version {row.version}  {row.schema_name}"
        )


@schemas.command("check")
@_SCHEMA_DIR
@JSON_OPTION
@click.pass_context
@reports_errors
def schemas_check(ctx: click.Context, schema_dir: Path | None, as_json: bool) -> None:
    """Say for each local schema whether the registry would accept it; exit 1 if any not."""
    rows = _registry(ctx, schema_dir).check_all()
    if as_json:
        echo_json([{**row.__dict__, "accepted": row.accepted} for row in rows])
    else:
        for row in rows:
            line = f"{row.subject:<36} {row.status:<12} {row.schema_name}"
            click.echo(line + (f"\n    {row.reason}" if row.reason else ""))
    refused = [row.subject for row in rows if not row.accepted]
    if refused:
        click.echo(f"c2c: error: the registry would refuse {', '.join(refused)}", err=True)
        sys.exit(1)


@schemas.command("codegen")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Exit 1 if c2c/events.py is out of date instead of writing it.",
)
@reports_errors
def schemas_codegen(check_only: bool) -> None:
    """Generate the pydantic models in c2c/events.py from the schemas."""
    from c2c.codegen import EVENTS_MODULE, render_models

    text = render_models()
    current = EVENTS_MODULE.read_text() if EVENTS_MODULE.exists() else ""
    if check_only:
        if text != current:
            click.echo(
                f"c2c: error: {EVENTS_MODULE} is out of date; run `c2c schemas codegen`", err=True
            )
            sys.exit(1)
        click.echo(f"{EVENTS_MODULE} is up to date")
        return
    EVENTS_MODULE.write_text(text)
    click.echo(f"wrote {EVENTS_MODULE}")

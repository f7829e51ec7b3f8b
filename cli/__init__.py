"""The `c2c` command. Each subcommand loads settings once, calls plain functions, and turns a
C2CError into a one-paragraph message and exit code 1 (2 for usage errors)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from c2c.errors import C2CError
from cli.common import LOG_LEVEL_KEY
from cli.contracts import schemas, topics
from cli.deadletters import deadletters
from cli.demo import demo
from cli.explore import explore
from cli.identity import eval_group, identity
from cli.producing import produce, replay_cmd, synth
from cli.review import review
from cli.sink import optout, outcomes, sink
from cli.stack import services
from cli.status import status

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="c2c-stream")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log level of this process (default: C2C_LOG_LEVEL, else WARNING); "
    "C2C_LOG_FORMAT=json logs one JSON object a line.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """C2C Stream: link education and workforce events as they happen.

    Settings come from C2C_* environment variables (see README).
    """
    if log_level is not None:
        ctx.meta[LOG_LEVEL_KEY] = log_level.upper()


for command in (
    services,
    topics,
    schemas,
    produce,
    synth,
    replay_cmd,
    identity,
    eval_group,
    sink,
    outcomes,
    optout,
    status,
    deadletters,
    review,
    demo,
    explore,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `c2c` console script."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="c2c")
    except C2CError as exc:  # raised while loading settings, before a command runs
        click.echo(f"c2c: error: {exc}", err=True)
        sys.exit(1)

"""`c2c produce`, `c2c synth` and `c2c replay`: extracts into the raw topics."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from cli.common import EXIT_PROBLEMS, JSON_OPTION, context_settings, echo_json, reports_errors
from cli.progress import QUIET_OPTION, Progress
from producers.formats import FORMATS
from producers.synth.profiles import PROFILES

# -- producers -------------------------------------------------------------------------------


@click.command()
@click.argument("source", type=click.Choice(list(FORMATS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="At most this many events per second.")
@click.option("--dry-run", is_flag=True, help="Validate every row; publish nothing.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even if some rows were rejected.")
@JSON_OPTION
@click.option(
    "--allow-unknown-columns",
    is_flag=True,
    help="Read a file with columns the format does not know (they are not read), instead "
    "of refusing it: a misspelled optional column would otherwise be empty on every row.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that read, validate and encode the rows (default: one per core); "
    "the output is the same whatever the number.",
)
@click.pass_context
@reports_errors
def produce(
    ctx: click.Context,
    source: str,
    file: Path,
    rate: float | None,
    dry_run: bool,
    allow_rejects: bool,
    as_json: bool,
    allow_unknown_columns: bool,
    workers: int | None,
) -> None:
    """Validate a provider's extract FILE (CSV or JSON Lines) and publish its rows.

    Rejected rows go, with their line and reason, to FILE.rejects.csv and to the
    dead-letter topic. Exits 4 if some rows were rejected (unless --allow-rejects), 1 if
    the file was refused (nothing read: unknown columns, not the format).
    """
    from c2c.telemetry import setup_telemetry
    from producers.files import produce_file

    settings = context_settings(ctx)
    telemetry = setup_telemetry(settings, "producer")
    size = file.stat().st_size
    show = sys.stderr.isatty() and size > 5_000_000 and not as_json
    with click.progressbar(
        length=size, label=f"{source} {file.name}", file=sys.stderr, hidden=not show
    ) as bar:
        summary = produce_file(
            settings,
            source,
            file,
            rate=rate,
            dry_run=dry_run,
            progress=bar.update,
            telemetry=telemetry,
            workers=workers,
            allow_unknown_columns=allow_unknown_columns,
        )
    telemetry.shutdown()
    if as_json:
        echo_json(summary.to_dict())
    else:
        verb = "would publish" if dry_run else "published"
        click.echo(
            f"{source} {file}: read {summary.read}, {verb} {summary.published}, rejected "
            f"{summary.rejected} in {summary.seconds:.2f} s ({summary.rows_per_second:,.0f} rows/s)"
        )
        for topic, count in sorted(summary.by_topic.items()):
            click.echo(f"  {topic}: {count}")
        if summary.rejects_file:
            click.echo(f"  rejects: {summary.rejects_file}")
        for warning in summary.warnings:
            click.echo(f"  warning: {warning}")
    if summary.rejected and not allow_rejects:
        sys.exit(EXIT_PROBLEMS)


@click.command()
@click.option("--people", type=click.IntRange(min=1), required=True, help="How many people.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the extracts and truth/.",
)
@click.option(
    "--first-class",
    type=int,
    default=2016,
    show_default=True,
    help="First high-school graduating class.",
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="How many graduating classes.",
)
@click.option(
    "--end-year", type=int, default=2025, show_default=True, help="Last calendar year of data."
)
@click.option(
    "--noise-profile",
    "noise_profile",
    type=click.Choice(list(PROFILES)),
    default="default",
    show_default=True,
    help="A named family of identity errors and population features (producers/README.md).",
)
@click.option(
    "--noise",
    "noise_scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Multiply every identity-noise rate (0: none).",
)
@click.option(
    "--noise-rate",
    "noise_rates",
    multiple=True,
    metavar="KIND=RATE",
    help="Set one noise rate, e.g. typo=0.05 (kinds: typo, nickname, drop_accents, "
    "swap_names, swap_day_month, mistype_ssn, missing_ssn).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to share the people among (default: one per core).",
)
@click.option(
    "--twins",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of people who are a twin of the person before (default: the profile's, 0.01).",
)
@click.option(
    "--shared-ssn",
    type=click.FloatRange(0, 1),
    default=0.002,
    show_default=True,
    help="Share of people whose SSN another person uses too.",
)
@JSON_OPTION
@QUIET_OPTION
@reports_errors
def synth(
    people: int,
    seed: int,
    out: Path,
    first_class: int,
    classes: int,
    end_year: int,
    noise_profile: str,
    noise_scale: float,
    noise_rates: Sequence[str],
    workers: int | None,
    twins: float | None,
    shared_ssn: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Simulate a California cohort flow into providers' extracts, with the truth."""
    from dataclasses import replace

    from producers.synth import SynthConfig, synthesize
    from producers.synth.profiles import profile

    chosen = profile(noise_profile)
    noise = chosen.noise.scaled(noise_scale)
    for item in noise_rates:
        kind, _, rate = item.partition("=")
        try:
            noise = replace(noise, **{kind.strip(): float(rate)})
        except (TypeError, ValueError):
            raise click.BadParameter(
                f"{item!r}: expected KIND=RATE with a kind from "
                "typo, nickname, drop_accents, swap_names, "
                "swap_day_month, mistype_ssn, missing_ssn, transpose_ssn, two_digits_ssn, "
                "birth_one_off, birth_placeholder, missing_birth_date",
                param_hint="--noise-rate",
            ) from None
    config = chosen.config(
        SynthConfig(
            people=people,
            seed=seed,
            first_class=first_class,
            classes=classes,
            end_year=end_year,
            shared_ssn_rate=shared_ssn,
        )
    )
    if twins is not None:
        config = replace(config, twin_rate=twins)
    with Progress(f"synth {out}", unit="people", total=people, quiet=quiet) as progress:
        report = synthesize(
            config, noise, out, workers=workers or os.cpu_count() or 1, progress=progress.update
        )
    total = sum(report.records.values())
    if as_json:
        echo_json(
            {
                "people": people,
                "records": dict(report.records),
                "files": {k: str(v) for k, v in report.files.items()},
                "truth": str(out / "truth"),
                "seconds": report.seconds,
            }
        )
        return
    click.echo(f"{people} people, {total} records in {report.seconds:.1f} s -> {out}")
    for source, count in sorted(report.records.items()):
        click.echo(f"  {source:<7} {count:>9}  {report.files[source]}")
    click.echo(f"  truth: {out / 'truth'} (records.csv, people.csv, outcomes.json)")


@click.command("replay")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="At most this many events per second.")
@click.option("--dry-run", is_flag=True, help="Validate every row; publish nothing.")
@JSON_OPTION
@QUIET_OPTION
@click.pass_context
@reports_errors
def replay_cmd(
    ctx: click.Context, folder: Path, rate: float | None, dry_run: bool, as_json: bool, quiet: bool
) -> None:
    """Publish all providers' extracts in FOLDER interleaved in event-time order.

    Exits 4 if some rows were rejected, 1 if a file was refused."""
    from c2c.telemetry import setup_telemetry
    from producers.files import replay

    settings = context_settings(ctx)
    telemetry = setup_telemetry(settings, "producer")
    try:
        with Progress(f"replay {folder}", quiet=quiet) as progress:
            summaries = replay(
                settings,
                folder,
                rate=rate,
                dry_run=dry_run,
                telemetry=telemetry,
                progress=progress.update,
            )
    finally:
        telemetry.shutdown()
    rejected = any(summary.rejected for summary in summaries)
    if as_json:
        echo_json([summary.to_dict() for summary in summaries])
        if rejected:
            sys.exit(EXIT_PROBLEMS)
        return
    for summary in summaries:
        click.echo(
            f"{summary.source:<7} read {summary.read}, published {summary.published}, "
            f"rejected {summary.rejected}"
        )
    seconds = max(summary.seconds for summary in summaries)
    read = sum(summary.read for summary in summaries)
    click.echo(f"replayed {read} rows in {seconds:.1f} s ({read / max(seconds, 1e-9):,.0f} rows/s)")
    if rejected:
        sys.exit(EXIT_PROBLEMS)

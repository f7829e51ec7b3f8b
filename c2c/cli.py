"""The `c2c` command. Each subcommand loads settings once, calls plain functions, and turns a
C2CError into a one-paragraph message and exit code 1 (2 for usage errors)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from c2c.errors import C2CError
from c2c.services import (
    SERVICE_NAMES,
    ServiceStatus,
    fetch_artifacts,
    services_down,
    services_status,
    services_up,
)
from c2c.settings import Settings, load_settings

if TYPE_CHECKING:
    from c2c.registry import SchemaRegistry
    from observability.status import StatusReport
    from streams.identity.matching import MatchModel
    from streams.identity.resolver import Resolver

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def _reports_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except C2CError as exc:
            click.echo(f"c2c: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    if settings is None:
        settings = ctx.obj = load_settings()
    assert isinstance(settings, Settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="c2c-stream")
def cli() -> None:
    """C2C Stream: link education and workforce events as they happen.

    Settings come from C2C_* environment variables (see README).
    """


# -- services -----------------------------------------------------------------------------------


@cli.group()
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
@_reports_errors
def services_fetch(ctx: click.Context, force: bool) -> None:
    """Fetch the Kafka and Apicurio jars from Maven Central (once)."""
    settings = _settings(ctx)
    ran = fetch_artifacts(settings, force=force)
    click.echo(f"jars {'fetched into' if ran else 'already in'} {settings.lib_path.resolve()}")


@services.command("up")
@_ONLY
@click.option(
    "--print-started",
    is_flag=True,
    help="Print only the names of the services started, one per line.",
)
@click.pass_context
@_reports_errors
def services_up_cmd(ctx: click.Context, only: Sequence[str], print_started: bool) -> None:
    """Start the local services that are not running and wait until each is ready."""
    settings = _settings(ctx)
    started_at = time.monotonic()
    started = services_up(settings, only or None)
    if print_started:
        click.echo("\n".join(started))
        return
    elapsed = time.monotonic() - started_at
    names = ", ".join(started) if started else "nothing (all were up)"
    click.echo(f"started {names}; ready in {elapsed:.1f} s")
    _print_status(services_status(settings, only or None))


@services.command("down")
@_ONLY
@click.pass_context
@_reports_errors
def services_down_cmd(ctx: click.Context, only: Sequence[str]) -> None:
    """Stop the local services this project started."""
    stopped = services_down(_settings(ctx), only or None)
    click.echo(f"stopped {', '.join(stopped) if stopped else 'nothing (none was running)'}")


@services.command("status")
@_ONLY
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service, in a list.")
@click.pass_context
@_reports_errors
def services_status_cmd(ctx: click.Context, only: Sequence[str], as_json: bool) -> None:
    """Report each service: up or down, address, version, pid and log."""
    rows = services_status(_settings(ctx), only or None)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        _print_status(rows)
    if not all(row.up for row in rows):
        sys.exit(3)


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


# -- topics ----------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """The topic catalogue."""


@topics.command("create")
@click.pass_context
@_reports_errors
def topics_create(ctx: click.Context) -> None:
    """Create every catalogue topic that does not exist yet."""
    from c2c.kafka import ensure_topics
    from c2c.topics import CATALOGUE

    created = ensure_topics(_settings(ctx), CATALOGUE)
    click.echo(f"created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")


@topics.command("list")
def topics_list() -> None:
    """Print the catalogue: name, partitions, zone, schema."""
    from c2c.topics import CATALOGUE

    for topic in CATALOGUE:
        click.echo(f"{topic.name:<26} {topic.partitions:>2}  {topic.zone:<13} {topic.schema}")


# -- schemas ---------------------------------------------------------------------------------


@cli.group()
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
    return SchemaRegistry(_settings(ctx), library)


@schemas.command("register")
@_SCHEMA_DIR
@click.pass_context
@_reports_errors
def schemas_register(ctx: click.Context, schema_dir: Path | None) -> None:
    """Register every catalogue topic's value schema (idempotent), BACKWARD_TRANSITIVE."""
    for row in _registry(ctx, schema_dir).register_all():
        click.echo(
            f"{row.subject:<36} id {row.schema_id:<5} version {row.version}  {row.schema_name}"
        )


@schemas.command("check")
@_SCHEMA_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object per subject.")
@click.pass_context
@_reports_errors
def schemas_check(ctx: click.Context, schema_dir: Path | None, as_json: bool) -> None:
    """Say for each local schema whether the registry would accept it; exit 1 if any not."""
    rows = _registry(ctx, schema_dir).check_all()
    if as_json:
        click.echo(
            json.dumps([{**row.__dict__, "accepted": row.accepted} for row in rows], indent=2)
        )
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
@_reports_errors
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


# -- producers -------------------------------------------------------------------------------


@cli.command()
@click.argument(
    "source", type=click.Choice(["k12", "ccc", "csu", "uc", "csac", "edd", "ctc", "optout"])
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="At most this many events per second.")
@click.option("--dry-run", is_flag=True, help="Validate every row; publish nothing.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even if some rows were rejected.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that read, validate and encode the rows (default: one per core); "
    "the output is the same whatever the number.",
)
@click.pass_context
@_reports_errors
def produce(
    ctx: click.Context,
    source: str,
    file: Path,
    rate: float | None,
    dry_run: bool,
    allow_rejects: bool,
    as_json: bool,
    workers: int | None,
) -> None:
    """Validate a provider's extract FILE (CSV or JSON Lines) and publish its rows.

    Rejected rows go, with their line and reason, to FILE.rejects.csv and to the
    dead-letter topic. Exits 1 if any row was rejected (unless --allow-rejects).
    """
    from observability.telemetry import setup_telemetry
    from producers.files import produce_file

    settings = _settings(ctx)
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
        )
    telemetry.shutdown()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
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
    if summary.rejected and not allow_rejects:
        sys.exit(1)


@cli.command()
@click.option("--people", type=click.IntRange(min=1), required=True, help="How many people.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
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
@click.option("--twins", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--shared-ssn", type=click.FloatRange(0, 1), default=0.002, show_default=True)
@_reports_errors
def synth(
    people: int,
    seed: int,
    out: Path,
    first_class: int,
    classes: int,
    end_year: int,
    noise_scale: float,
    noise_rates: Sequence[str],
    workers: int | None,
    twins: float,
    shared_ssn: float,
) -> None:
    """Simulate a California cohort flow into providers' extracts, with the truth."""
    from dataclasses import replace

    from producers.synth import NoiseConfig, SynthConfig, synthesize

    noise = NoiseConfig().scaled(noise_scale)
    for item in noise_rates:
        kind, _, rate = item.partition("=")
        try:
            noise = replace(noise, **{kind.strip(): float(rate)})
        except (TypeError, ValueError):
            raise click.BadParameter(
                f"{item!r}: expected KIND=RATE with a kind from "
                "typo, nickname, drop_accents, swap_names, "
                "swap_day_month, mistype_ssn, missing_ssn",
                param_hint="--noise-rate",
            ) from None
    config = SynthConfig(
        people=people,
        seed=seed,
        first_class=first_class,
        classes=classes,
        end_year=end_year,
        twin_rate=twins,
        shared_ssn_rate=shared_ssn,
    )
    report = synthesize(config, noise, out, workers=workers or os.cpu_count() or 1)
    total = sum(report.records.values())
    click.echo(f"{people} people, {total} records in {report.seconds:.1f} s -> {out}")
    for source, count in sorted(report.records.items()):
        click.echo(f"  {source:<7} {count:>9}  {report.files[source]}")
    click.echo(f"  truth: {out / 'truth'} (records.csv, people.csv, outcomes.json)")


@cli.command("replay")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="At most this many events per second.")
@click.option("--dry-run", is_flag=True, help="Validate every row; publish nothing.")
@click.pass_context
@_reports_errors
def replay_cmd(ctx: click.Context, folder: Path, rate: float | None, dry_run: bool) -> None:
    """Publish all providers' extracts in FOLDER interleaved in event-time order."""
    from observability.telemetry import setup_telemetry
    from producers.files import replay

    settings = _settings(ctx)
    telemetry = setup_telemetry(settings, "producer")
    try:
        summaries = replay(settings, folder, rate=rate, dry_run=dry_run, telemetry=telemetry)
    finally:
        telemetry.shutdown()
    for summary in summaries:
        click.echo(
            f"{summary.source:<7} read {summary.read}, published {summary.published}, "
            f"rejected {summary.rejected}"
        )
    seconds = max(summary.seconds for summary in summaries)
    read = sum(summary.read for summary in summaries)
    click.echo(f"replayed {read} rows in {seconds:.1f} s ({read / max(seconds, 1e-9):,.0f} rows/s)")
    if any(summary.rejected for summary in summaries):
        sys.exit(1)


@cli.group()
def identity() -> None:
    """Identity resolution."""


def _resolver(settings: Settings, model: MatchModel | None = None) -> Resolver:
    """A resolver keyed with the configured identifier secret."""
    from streams.identity.matching import DEFAULT_MODEL
    from streams.identity.resolver import IdentifierHasher, Resolver

    hasher = IdentifierHasher(settings.identity_secret.get_secret_value().encode())
    return Resolver(hasher, model if model is not None else DEFAULT_MODEL)


@identity.command("worker")
@click.option("--app-id", default=None, help="Faust app id: consumer group and table names.")
@click.option(
    "--intake-topic",
    default=None,
    help="Topic between the forwarder and the resolve agent (default c2c.identity.intake).",
)
@click.option(
    "--role",
    type=click.Choice(["all", "forward", "resolve"]),
    default="all",
    show_default=True,
    help="Run the forwarder and the resolver, or only one of them (two processes, two cores).",
)
@click.pass_context
@_reports_errors
def identity_worker(
    ctx: click.Context, app_id: str | None, intake_topic: str | None, role: str
) -> None:
    """Run the identity worker (Faust) until interrupted: raw topics in; linked events,
    identity changes, reviews and dead letters out. Health on C2C_WORKER_WEB_PORT."""
    from faust.worker import Worker

    from c2c.registry import SchemaRegistry
    from observability.telemetry import setup_telemetry
    from streams.app import APP_ID, create_app
    from streams.resolution import INTAKE_TOPIC

    settings = _settings(ctx)
    telemetry = setup_telemetry(settings, "identity")
    if role == "forward":
        from streams.forwarder import run_alone

        try:
            run_alone(
                settings,
                app_id=app_id or APP_ID,
                intake_topic=intake_topic or INTAKE_TOPIC,
                telemetry=telemetry,
            )
        finally:
            telemetry.shutdown()
        return
    app, _state = create_app(
        settings,
        SchemaRegistry(settings),
        telemetry=telemetry,
        app_id=app_id or APP_ID,
        intake_topic=intake_topic or INTAKE_TOPIC,
        role=role,
    )
    try:
        Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    finally:
        telemetry.shutdown()


@identity.command("resolve")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV of source, source_record_id, person_id (empty: sent to review).",
)
@click.pass_context
@_reports_errors
def identity_resolve(ctx: click.Context, folder: Path, out: Path) -> None:
    """Resolve every record of the extracts in FOLDER in event-time order, in this process
    (the stream worker does the same incrementally), and write the final person ids."""
    import csv as csv_module

    from producers.files import mapped_events
    from streams.identity.matching import load_model

    settings = _settings(ctx)
    model = load_model(settings.identity_model)
    resolver = _resolver(settings, model)
    started = time.monotonic()
    assigned: list[tuple[str, str, str | None]] = []
    reviews = Counter[str]()
    for source, event in mapped_events(folder):
        resolution = resolver.resolve(event["provider"], event["person"])
        if resolution.person_id is None:
            reviews[str(resolution.review_reason)] += 1
        assigned.append((source, event["source_record_id"], resolution.person_id))
    with out.open("w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(["source", "source_record_id", "person_id"])
        for source, record_id, person_id in assigned:
            final = resolver.state.root(person_id) if person_id else ""
            writer.writerow([source, record_id, final])
    seconds = time.monotonic() - started
    click.echo(
        f"resolved {len(assigned)} records in {seconds:.1f} s "
        f"({len(assigned) / max(seconds, 1e-9):,.0f}/s); "
        f"{len(resolver.state.profiles)} persons; {sum(reviews.values())} to review"
    )
    for reason, count in reviews.most_common():
        click.echo(f"  review: {count} x {reason}")


@identity.command("train")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the model (JSON); use it with C2C_IDENTITY_MODEL.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=100),
    default=50_000,
    show_default=True,
    help="Distinct identities to sample from the extracts.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
@_reports_errors
def identity_train(ctx: click.Context, folder: Path, out: Path, sample: int, seed: int) -> None:
    """Fit the match weights by EM on a sample of FOLDER's records (no labels needed)."""
    import random as random_module

    from producers.files import mapped_events
    from streams.identity.matching import DEFAULT_MODEL, Identity
    from streams.identity.training import (
        candidate_pairs,
        estimate_u,
        random_pairs,
        train_em,
    )

    resolver = _resolver(_settings(ctx))
    identities: dict[Identity, None] = {}
    for _source, event in mapped_events(folder):
        identities[resolver.identity(event["person"])] = None
    chosen = list(identities)
    if len(chosen) > sample:
        chosen = random_module.Random(seed).sample(chosen, sample)
    pairs = candidate_pairs(chosen, seed=seed)
    u = estimate_u(random_pairs(chosen, 200_000, seed=seed), DEFAULT_MODEL)
    report = train_em(pairs, DEFAULT_MODEL, u)
    report.model.save(out)
    click.echo(
        f"trained {report.model.version} on {report.pairs} pairs from {len(chosen)} "
        f"identities in {report.iterations} iterations; match share "
        f"{report.match_share:.3f} -> {out}"
    )


@cli.group("eval")
def eval_group() -> None:
    """Evaluate the pipeline against synth's truth."""


def _published_assignments(
    settings: Settings, events: list[tuple[str, dict[str, Any]]]
) -> dict[tuple[str, str], str]:
    """Record -> final person id, from the linked topics and the identity changes, for the
    extracts' ``events`` (source, raw event)."""
    from c2c.kafka import read_to_end
    from c2c.registry import SchemaRegistry
    from c2c.topics import get_topic
    from streams.identity.evaluation import final_assignments
    from streams.linking import LINKED_TOPICS
    from streams.resolution import CHANGES_TOPIC

    records = {
        str(event["event_id"]): (source, str(event["source_record_id"])) for source, event in events
    }
    registry = SchemaRegistry(settings)
    topics = [*LINKED_TOPICS.values(), CHANGES_TOPIC]
    decoders = {name: registry.decoder(get_topic(name)) for name in topics}
    linked: list[tuple[str, str]] = []
    merges: list[tuple[str, str]] = []
    for message in read_to_end(settings, topics):
        topic = str(message.topic())
        value = decoders[topic].decode(message.value() or b"")
        if topic == CHANGES_TOPIC:
            if (
                value["change_type"] == "PERSONS_MERGED"
                and value["previous_person_id"]
                and str(value["source_event_id"]) in records
            ):
                merges.append((value["previous_person_id"], value["person_id"]))
        else:
            linked.append((str(value["event_id"]), value["person_id"]))
    return final_assignments(linked, merges, records)


@eval_group.command("linkage")
@click.argument("truth", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--assigned",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of source, source_record_id, person_id (from `c2c identity resolve`). "
    "Default: what the pipeline published (linked topics and identity changes).",
)
@click.option(
    "--extracts",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The extracts TRUTH describes, to name each published event (default: TRUTH/..).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_reports_errors
def eval_linkage(
    ctx: click.Context, truth: Path, assigned: Path | None, extracts: Path | None, as_json: bool
) -> None:
    """Pairwise precision, recall and F1 of the person ids the pipeline assigned (or those
    in --assigned) against TRUTH (synth's truth folder), and persons found against the true
    number; beside them the reachability bound (the most recall, and F1, a resolver not
    linking on a name alone could reach) and the missed and false pairs by the records'
    sources and cause (streams/identity/evaluation.py)."""
    from producers.files import mapped_events
    from streams.identity.evaluation import CAUSES, FALSE_CAUSES, breakdown, read_assignments

    events = list(mapped_events(extracts or truth.parent))
    if assigned is not None:
        found = read_assignments(assigned)
    else:
        found = _published_assignments(_settings(ctx), events)
    fields = {(source, str(event["source_record_id"])): event["person"] for source, event in events}
    result = breakdown(read_assignments(truth / "records.csv"), found, fields)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    metrics = result.metrics
    click.echo(
        f"records {metrics.records}, persons: true {metrics.true_persons}, found "
        f"{metrics.found_persons}, unassigned records {metrics.unassigned}"
    )
    click.echo(
        f"pairwise precision {metrics.precision:.5f}  recall {metrics.recall:.5f}  "
        f"F1 {metrics.f1:.5f}"
    )
    click.echo(
        f"reachability bound (not the F1 above): recall {result.recall_bound:.5f}  "
        f"F1 {result.f1_bound:.5f}; exact identifiers and name + birth date only: recall "
        f"{result.recall_bound_exact:.5f}"
    )
    rows = result.table()
    if rows:
        rows.insert(0, ["pairs", "sources", "cause", "count", "share of true pairs"])
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        for cause, meaning in {**CAUSES, **FALSE_CAUSES}.items():
            click.echo(f"  {cause}: {meaning}")


@cli.group()
def sink() -> None:
    """The ClickHouse sink."""


@sink.command("migrate")
@click.pass_context
@_reports_errors
def sink_migrate(ctx: click.Context) -> None:
    """Apply pending ClickHouse migrations (sinks/migrations/) and re-create the public
    views with the configured suppression threshold."""
    from c2c.clickhouse import connect
    from sinks.migrate import migrate

    settings = _settings(ctx)
    applied = migrate(
        connect(settings),
        min_cell=settings.suppression_min_cell,
        server=not settings.clickhouse_embedded,
    )
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
@_reports_errors
def sink_run(ctx: click.Context, group: str | None, until_idle: float | None) -> None:
    """Write linked events and identity changes to ClickHouse (migrating first). Health,
    counts and outcomes on C2C_SINK_WEB_PORT."""
    import gc
    import signal
    import threading

    from c2c.clickhouse import connect
    from c2c.registry import SchemaRegistry
    from sinks.migrate import migrate
    from sinks.sink import SINK_GROUP, Sink
    from sinks.web import serve

    settings = _settings(ctx)
    client = connect(settings)
    migrate(client, min_cell=settings.suppression_min_cell, server=not settings.clickhouse_embedded)
    running = Sink(settings, SchemaRegistry(settings), client, group_id=group or SINK_GROUP)
    server = serve(running, settings.sink_web_host, settings.sink_web_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # what start-up left (modules, schemas, the person map) lives as long as the process:
    # out of the collector's view, so that full collections do not scan it again
    gc.collect()
    gc.freeze()
    try:
        running.run(stop, idle_stop_s=until_idle)
    finally:
        server.shutdown()
    click.echo(f"sink wrote {running.counts['rows']} rows in {running.counts['batches']} batches")


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_reports_errors
def outcomes(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Print outcome tables (all, or NAME). With embedded ClickHouse held by a running sink,
    asks the sink over its web port."""
    from sinks.outcomes import OUTCOMES, OutcomeTable

    settings = _settings(ctx)
    names = [name] if name else list(OUTCOMES)
    tables = [OutcomeTable(**t) for t in _outcome_tables(settings, names)]
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in tables], indent=2, default=str))
        return
    for table in tables:
        click.echo(f"\n{table.name} ({len(table.rows)} rows)")
        widths = [
            max(len(str(c)), *(len(_cell(r[i])) for r in table.rows)) if table.rows else len(c)
            for i, c in enumerate(table.columns)
        ]
        click.echo("  ".join(c.rjust(w) for c, w in zip(table.columns, widths, strict=True)))
        for row in table.rows:
            click.echo("  ".join(_cell(v).rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _outcome_tables(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    """The tables as dicts, from ClickHouse or, if a sink holds embedded chdb, from it."""
    from c2c.errors import C2CError
    from sinks.outcomes import read_outcome

    def reader(name: str) -> Callable[[Any], dict[str, Any]]:
        def read(client: Any) -> dict[str, Any]:
            try:
                return read_outcome(client, name).to_dict()
            except ValueError as exc:
                raise C2CError(str(exc), code="outcomes.unknown") from exc

        return read

    return [_ask_sink_or_read(settings, f"/outcomes/{name}", reader(name)) for name in names]


def _ask_sink_or_read(settings: Settings, page: str, read: Callable[[Any], Any]) -> Any:
    """``read(client)`` on ClickHouse or, when a running sink holds embedded chdb (one
    process per path), the same answer from the sink's web ``page``."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from c2c.clickhouse import connect, embedded_owner, embedded_path
    from c2c.errors import ServiceError

    path = embedded_path(settings)
    if path is None or embedded_owner(path) is None:
        from clickhouse_connect.driver.exceptions import DatabaseError

        try:
            return read(connect(settings))
        except DatabaseError as exc:
            first = str(exc).splitlines()[0][:300]
            hint = " (run `c2c sink migrate`)" if "UNKNOWN_TABLE" in str(exc) else ""
            raise C2CError(
                f"ClickHouse at {settings.clickhouse_dsn} could not answer{hint}: {first}",
                code="clickhouse.query",
            ) from exc
    url = f"http://{settings.sink_web_host}:{settings.sink_web_port}{urllib.parse.quote(page)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise C2CError(json.loads(exc.read())["error"], code="outcomes.unknown") from exc
    except OSError as exc:
        raise ServiceError(
            f"embedded ClickHouse at {path} is held by process {embedded_owner(path)}, "
            f"and no sink answers at {url} ({exc}); is C2C_SINK_WEB_PORT right?",
            code="outcomes.sink_unreachable",
        ) from exc


# -- opt-outs -----------------------------------------------------------------------------------


@cli.group()
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
@click.option("--first-name")
@click.option("--middle-name")
@click.option("--last-name")
@click.option("--birth-date", type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD.")
@click.option("--zip", "zip_code", help="Residential ZIP code.")
@click.option("--request-id", help="The request's id (default: a new one, printed).")
@click.option(
    "--requested-by",
    type=click.Choice(["INDIVIDUAL", "PROVIDER", "OPERATOR"]),
    default="OPERATOR",
    show_default=True,
)
@click.pass_context
@_reports_errors
def optout_request(
    ctx: click.Context,
    zip_code: str | None,
    birth_date: Any,
    request_id: str | None,
    requested_by: str,
    **person: str | None,
) -> None:
    """Publish an opt-out request for the person these fields identify; prints its id."""
    from producers.optouts import request_event

    settings = _settings(ctx)
    fields: dict[str, Any] = {**person, "zip": zip_code}
    if birth_date is not None:
        fields["birth_date"] = birth_date.date()
    event = request_event(fields, request_id=request_id, requested_by=requested_by)
    _emit_optout(settings, event)
    click.echo(event["request_id"])


@optout.command("revoke")
@click.argument("request_id")
@click.pass_context
@_reports_errors
def optout_revoke(ctx: click.Context, request_id: str) -> None:
    """Publish the revocation of REQUEST_ID: the person's events are linked again from then on."""
    from producers.optouts import revocation_event

    _emit_optout(_settings(ctx), revocation_event(request_id))
    click.echo(f"revocation of {request_id} published")


@optout.command("status")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_reports_errors
def optout_status(ctx: click.Context, request_id: str, as_json: bool) -> None:
    """What was done for REQUEST_ID: when asked, when applied, rows removed per table.
    Exit 3 while nothing is recorded (not resolved yet, held for review, or unknown)."""
    from sinks.audit import read_audit

    settings = _settings(ctx)
    answer = _ask_sink_or_read(
        settings,
        f"/optouts/{request_id}",
        lambda client: {"request_id": request_id, "decisions": read_audit(client, request_id)},
    )
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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch (and the rate sample).",
)
@click.pass_context
@_reports_errors
def status(ctx: click.Context, as_json: bool, watch: bool, interval: float) -> None:
    """Stream health: services, throughput per topic, lag per consumer group, dead letters
    and reviews with the last of each, and the sink's freshness (age of the newest row)."""
    from observability.status import collect_status

    settings = _settings(ctx)
    while True:
        report = collect_status(settings, sample_s=min(interval, 1.0))
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            if watch:
                click.clear()
            _print_report(report)
        if not watch:
            return
        time.sleep(max(0.0, interval - 1.0))


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
        click.echo(f"  {group.group:<40} {group.lag:>10}")
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


# -- demo --------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--people",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Synthetic people run through the whole pipeline (0: contracts and examples only).",
)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.pass_context
@_reports_errors
def demo(ctx: click.Context, people: int, seed: int) -> None:
    """Set up the services and run the main job, printing what it did."""
    from c2c.demo import run_demo

    run_demo(_settings(ctx), click.echo, people=people, seed=seed)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `c2c` console script."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="c2c")
    except C2CError as exc:  # raised while loading settings, before a command runs
        click.echo(f"c2c: error: {exc}", err=True)
        sys.exit(1)

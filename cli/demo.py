"""The main job of `make demo`: what the pipeline can do so far, run for real and printed."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path

import click

from c2c.kafka import ensure_topics
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import CATALOGUE
from cli.common import context_settings, reports_errors
from cli.progress import QUIET_OPTION, Progress
from producers.formats import FORMATS
from services import services_status, services_up
from services.heartbeat import HEARTBEAT_TOPIC, send_heartbeat

EXAMPLES = Path(__file__).resolve().parents[1] / "producers" / "examples"

__all__ = ["demo", "run_demo"]


def run_demo(
    settings: Settings,
    echo: Callable[[str], None],
    *,
    people: int = 10_000,
    seed: int = 2026,
    quiet: bool = False,
) -> None:
    """Bring the services up, send one event through registry, Kafka and ClickHouse, publish
    every provider's example extract, run ``people`` synthetic people through the identity
    worker and the sink, and print the outcome tables and a health report. Raises C2CError
    if any step fails."""
    started_at = time.monotonic()
    started = services_up(settings)
    echo(
        f"services: started {', '.join(started) or 'none (all were up)'} "
        f"in {time.monotonic() - started_at:.1f} s"
    )

    running = running_stages(settings)
    if running and settings.clickhouse_embedded:
        echo("round trip: skipped (the running sink holds embedded ClickHouse)")
    else:
        _round_trip(settings, echo)

    created = ensure_topics(settings, CATALOGUE)
    registrations = SchemaRegistry(settings).register_all()
    echo(
        f"contracts: {len(created)} topic(s) created, {len(registrations)} schema(s) "
        "registered (BACKWARD_TRANSITIVE)"
    )
    from producers.files import produce_file

    for source in FORMATS:
        path = EXAMPLES / f"{source}.csv"
        summary = produce_file(settings, source, path)
        topics = ", ".join(f"{t} {n}" for t, n in sorted(summary.by_topic.items()))
        echo(
            f"produce {source:<6}: read {summary.read}, published {summary.published}, "
            f"rejected {summary.rejected} -> {topics}"
        )

    if people:
        _pipeline(settings, echo, people, seed, running, quiet)

    echo("health:")
    for row in services_status(settings):
        state = "up" if row.up else "DOWN"
        echo(f"  {row.name:<16} {state:<5} {row.version or '-':<10} {row.address}  {row.detail}")


def _round_trip(settings: Settings, echo: Callable[[str], None]) -> None:
    result = send_heartbeat(settings, origin="c2c demo")
    echo(
        f"round trip: heartbeat {result.heartbeat_id} registered as schema id "
        f"{result.schema_id}, produced to {HEARTBEAT_TOPIC}[{result.partition}]@{result.offset} "
        f"({result.wire_bytes} bytes, Confluent wire format), consumed and decoded in "
        f"{result.kafka_round_trip_ms:.0f} ms; ClickHouse ops_heartbeat has it "
        f"({result.clickhouse_rows} row)"
    )


def _pipeline(
    settings: Settings,
    echo: Callable[[str], None],
    people: int,
    seed: int,
    running: list[str],
    quiet: bool = False,
) -> None:
    """synth -> replay -> identity worker -> sink -> outcome tables, as a deployment runs
    them: the default worker group, state and sink group, so a second demo resolves the same
    records to the same persons and ClickHouse keeps one row per event."""
    from c2c.child import free_port
    from cli.sink_process import SinkProcess
    from cli.worker_process import WorkerProcess
    from producers.files import mapped_events, replay
    from producers.synth import NoiseConfig, SynthConfig, synthesize
    from sinks.outcomes import OUTCOMES, OutcomeTable
    from streams.app import APP_ID

    folder = settings.data_dir / "demo" / f"synth-{people}-{seed}"
    if not (folder / "truth" / "outcomes.json").exists():
        began = time.monotonic()
        synthesize(SynthConfig(people=people, seed=seed), NoiseConfig(), folder)
        echo(f"synth: {people:,} people in {time.monotonic() - began:.1f} s -> {folder}")
    events = sum(1 for _ in mapped_events(folder))
    _declare_horizons(settings, echo, folder, through_sink=bool(running))
    if running:
        # a worker or a sink already reads the default groups (compose's services, or a
        # deployment's): feed them; a child of ours in the same group would get no
        # partition of the one-partition intake and wait forever
        _feed_running(settings, echo, folder, events, running, quiet=quiet)
        return
    logs = settings.log_dir
    sink = SinkProcess(
        settings,
        logs / "demo-sink.log",
        port=settings.sink_web_port,
        group="c2c-sink",
        start_at="earliest",
    )
    # forwarder and resolver in two processes, so that both cores work
    worker = WorkerProcess(
        settings,
        logs / "demo-worker.log",
        port=settings.worker_web_port,
        app_id=APP_ID,
        start_at="earliest",
        split=True,
        forward_port=free_port(),
    )
    try:
        sink.start()
        worker.start()
        began = time.monotonic()
        with Progress("replay", quiet=quiet) as progress:
            summaries = replay(settings, folder, progress=progress.update)
        published = sum(s.published for s in summaries)
        echo(f"replay: {published:,} of {events:,} records in {time.monotonic() - began:.1f} s")
        counts = worker.drained(events, timeout_s=3600)
        took = time.monotonic() - began
        handled = worker.handled()
        echo(
            f"identity worker: {handled:,} records in {took:.1f} s "
            f"({handled / took:,.0f}/s): {counts.get('change.PERSON_CREATED', 0):,} "
            f"persons created, {counts.get('change.PERSONS_MERGED', 0):,} merges, "
            f"{counts.get('review', 0):,} to review, {counts.get('dead_letter', 0):,} dead "
            f"letters; {counts.get('optout', 0):,} opt-out requests and revocations applied, "
            f"{counts.get('withheld', 0):,} events of opted-out people withheld"
        )
        written = sink.caught_up(counts.get("linked", 0), timeout_s=3600)
        echo(
            f"sink: {written.get('facts', 0):,} fact rows in {written.get('batches', 0):,} "
            f"batches, {time.monotonic() - began:.1f} s after the replay began; "
            f"{written.get('optout.rows_removed', 0):,} rows of opted-out people removed, "
            f"{written.get('optout.audited', 0):,} opt-out decisions audited"
        )
        for name in OUTCOMES:
            if not name.startswith("public_"):
                continue
            table = OutcomeTable(**sink.page(f"/outcomes/{name}"))
            echo(f"{name} ({len(table.rows)} rows; '-' is a suppressed cell), first rows:")
            echo("  " + "  ".join(table.columns))
            for row in table.rows[:6]:
                echo("  " + "  ".join("-" if v is None else str(v) for v in row))
    finally:
        worker.stop()
        sink.stop()


def synth_horizons(folder: Path) -> dict[str, datetime.date]:
    """The latest complete period of each source of synth's ``folder`` (its truth says them)."""
    import json

    truth = json.loads((folder / "truth" / "outcomes.json").read_text())
    return {p: datetime.date.fromisoformat(t) for p, t in truth["horizons"].items()}


def declare_synth_horizons(
    settings: Settings, folder: Path, declared_by: str = "c2c demo"
) -> dict[str, datetime.date]:
    """Migrate ``settings``' ClickHouse and declare the horizons of synth's ``folder`` in it
    (before a sink holds it); returns them."""
    from c2c.clickhouse import connect
    from sinks.horizons import declare_horizon
    from sinks.migrate import migrate

    horizons = synth_horizons(folder)
    client = connect(settings)
    try:
        migrate(client, min_cell=settings.suppression_min_cell)
        for provider, through in sorted(horizons.items()):
            declare_horizon(client, provider, through, declared_by=declared_by)
    finally:
        client.close()
    return horizons


def _declare_horizons(
    settings: Settings, echo: Callable[[str], None], folder: Path, *, through_sink: bool
) -> None:
    """Declare the latest complete period of each of synth's sources, as a deployment's
    operators do (`c2c sink horizon`): outcome windows close against them, and a table
    whose sources declared nothing is empty. ``through_sink``: a running sink holds
    ClickHouse, and takes them on its page with C2C_SINK_WEB_TOKEN (without it the demo
    says so and goes on); else ClickHouse is migrated and they are written."""
    from c2c.errors import C2CError
    from sinks.reading import open_reader

    if not through_sink:
        horizons = declare_synth_horizons(settings, folder)
    else:
        horizons = synth_horizons(folder)
        try:
            reader = open_reader(settings)
            for provider, through in sorted(horizons.items()):
                reader.declare_horizon(provider, through, declared_by="c2c demo")
        except C2CError as exc:
            echo(
                f"horizons: not declared ({exc}); outcome tables stay empty until each "
                "source's is (`c2c sink horizon PROVIDER PERIOD`)"
            )
            return
    echo("horizons: " + ", ".join(f"{p} through {t}" for p, t in sorted(horizons.items())))


def running_stages(settings: Settings) -> list[str]:
    """The default consumer groups of the identity worker and the sink that have members
    now: the stages running already, whoever started them."""
    from confluent_kafka.admin import AdminClient

    from sinks.sink import SINK_GROUP
    from streams.app import APP_ID

    admin = AdminClient(settings.kafka_config())
    groups = [APP_ID, SINK_GROUP]
    found = []
    for group, future in admin.describe_consumer_groups(groups, request_timeout=10).items():
        try:
            if future.result().members:
                found.append(group)
        except Exception:  # unknown group: nobody runs it
            continue
    return found


def pipeline_lag(settings: Settings) -> dict[str, int]:
    """Messages the default worker groups and sink group have not committed, by stage."""
    from c2c.child import committed_lag
    from cli.sink_process import SINK_TOPICS
    from sinks.sink import SINK_GROUP
    from streams.app import APP_ID
    from streams.forwarder import forward_group
    from streams.resolution import INPUT_TOPICS, INTAKE_TOPIC

    return {
        "forwarder": committed_lag(settings, forward_group(APP_ID), INPUT_TOPICS),
        "identity worker": committed_lag(settings, APP_ID, [INTAKE_TOPIC]),
        "sink": committed_lag(settings, SINK_GROUP, SINK_TOPICS),
    }


def _feed_running(
    settings: Settings,
    echo: Callable[[str], None],
    folder: Path,
    events: int,
    running: list[str],
    *,
    quiet: bool = False,
    timeout_s: float = 3600,
) -> None:
    """Replay ``folder`` to the running worker and sink, wait until their groups have
    committed everything, and print the public tables (from ClickHouse, or the sink)."""
    from c2c.errors import ServiceError
    from producers.files import replay
    from sinks.outcomes import OUTCOMES, OutcomeTable
    from sinks.reading import open_reader

    if len(running) < 2:
        raise ServiceError(
            f"only group {running[0]} has members: a worker or a sink runs without the "
            "other, so the demo could not finish; start the other (`c2c identity worker`, "
            "`c2c sink run`) or stop it",
            code="demo.partial",
        )
    echo(f"feeding the running stages (groups {', '.join(running)}), not starting our own")
    began = time.monotonic()
    with Progress("replay", quiet=quiet) as progress:
        summaries = replay(settings, folder, progress=progress.update)
    published = sum(s.published for s in summaries)
    echo(f"replay: {published:,} of {events:,} records in {time.monotonic() - began:.1f} s")
    lag = pipeline_lag(settings)
    while any(lag.values()):
        if time.monotonic() - began > timeout_s:
            raise ServiceError(
                f"the running stages did not catch up in {timeout_s:.0f} s (lag {lag}); "
                "`c2c status` shows which one waits",
                code="child.timeout",
            )
        time.sleep(1.0)
        lag = pipeline_lag(settings)
    echo(f"worker and sink: caught up {time.monotonic() - began:.1f} s after the replay began")
    reader = open_reader(settings)
    for name in OUTCOMES:
        if name.startswith("public_"):
            table = OutcomeTable(**reader.outcome(name))
            echo(f"{name} ({len(table.rows)} rows; '-' is a suppressed cell), first rows:")
            echo("  " + "  ".join(table.columns))
            for row in table.rows[:6]:
                echo("  " + "  ".join("-" if v is None else str(v) for v in row))


@click.command()
@click.option(
    "--people",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Synthetic people run through the whole pipeline (0: contracts and examples only).",
)
@click.option(
    "--seed", type=int, default=2026, show_default=True, help="Random seed of the synthetic people."
)
@click.option(
    "--explore",
    is_flag=True,
    help="Then serve the public outcomes explorer (`c2c explore`) until Ctrl-C.",
)
@QUIET_OPTION
@click.pass_context
@reports_errors
def demo(ctx: click.Context, people: int, seed: int, explore: bool, quiet: bool) -> None:
    """Set up the services and run the main job, printing what it did; ends with the
    address of the public outcomes explorer (--explore: serves it)."""
    from cli.explore import serve_explorer

    settings = context_settings(ctx)
    run_demo(settings, click.echo, people=people, seed=seed, quiet=quiet)
    address = f"http://{settings.explore_host}:{settings.explore_port}/"
    if not explore:
        click.echo(f"explorer: `c2c explore` (or `c2c demo --explore`) serves {address}")
        return
    click.echo(f"explorer: {address} (Ctrl-C stops it)")
    serve_explorer(settings, host=settings.explore_host, port=settings.explore_port)

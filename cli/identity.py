"""`c2c identity` and `c2c eval`: the resolver, its training and its evaluation."""

from __future__ import annotations

import json
import logging.config
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from c2c.settings import Settings
from cli.common import JSON_OPTION, context_settings, reports_errors

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from streams.identity.matching import MatchModel
    from streams.identity.resolver import Resolution, Resolver


@click.group()
def identity() -> None:
    """Identity resolution."""


def _resolver(settings: Settings, model: MatchModel | None = None) -> Resolver:
    """A resolver keyed with the configured identity secrets (every key version's, in
    order, as the worker keys them)."""
    from streams.identity.matching import DEFAULT_MODEL
    from streams.identity.resolver import IdentifierHasher, Resolver

    hasher = IdentifierHasher(*settings.identity_secrets().values())
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
@reports_errors
def identity_worker(
    ctx: click.Context, app_id: str | None, intake_topic: str | None, role: str
) -> None:
    """Run the identity worker (Faust) until interrupted: raw topics in; linked events,
    identity changes, reviews and dead letters out. Health on C2C_WORKER_WEB_PORT."""
    from faust.worker import Worker

    from c2c.kafka import cluster_brokers, ensure_topics
    from c2c.logs import logging_config
    from c2c.registry import SchemaRegistry
    from c2c.telemetry import setup_telemetry
    from streams.app import APP_ID, changelog_topics, create_app
    from streams.resolution import INTAKE_TOPIC

    settings = context_settings(ctx)
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
    # the tables' changelogs are created here, replicated as the catalogue's topics
    # holding state; Faust's own topics get the cluster's replication factor
    brokers = cluster_brokers(settings)
    ensure_topics(settings, changelog_topics(app_id or APP_ID))
    app, _state = create_app(
        settings,
        SchemaRegistry(settings),
        telemetry=telemetry,
        app_id=app_id or APP_ID,
        intake_topic=intake_topic or INTAKE_TOPIC,
        role=role,
        brokers=brokers,
    )
    try:
        Worker(
            app,
            loglevel=settings.log_level,
            logging_config=logging_config(settings.log_level, settings.log_format),
            quiet=True,
        ).execute_from_commandline()
    finally:
        telemetry.shutdown()


@identity.command("shard-host")
@click.option("--app-id", default=None, help="The sharded resolver's app id (topic names).")
@click.option(
    "--name",
    default=None,
    help="This host's name: where its shards' stores are kept with C2C_STREAMS_STATE=disk "
    "(default: the machine's name; give each host on one machine its own).",
)
@click.pass_context
@reports_errors
def identity_shard_host(ctx: click.Context, app_id: str | None, name: str | None) -> None:
    """Serve shards of the sharded resolver until interrupted: Kafka's group gives this
    process some of the C2C_STREAMS_SHARDS partitions of <app id>-shard-calls; run as many
    as there are machines (streams/README.md, Scaling out)."""
    import signal
    import socket
    import threading

    from c2c.kafka import ensure_topics
    from c2c.logs import logging_config
    from streams.app import APP_ID
    from streams.identity.matching import load_model
    from streams.identity.resolver import IdentifierHasher, IdentityState
    from streams.identity.sealing import Sealer
    from streams.identity.sharding import Shard
    from streams.shard_stores import ShardStores
    from streams.shards import ShardHost, shard_topics

    settings = context_settings(ctx)
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    app = app_id or APP_ID
    ensure_topics(settings, shard_topics(app, settings.streams_shards))
    model = load_model(settings.identity_model)
    secrets = settings.identity_secrets()
    hasher = IdentifierHasher(*secrets.values(), cache_size=settings.identity_hash_cache)
    floor = settings.identity_review_min_weight
    sealer = Sealer(secrets, settings.identity_key_version)
    stores = None
    if settings.streams_state == "disk":
        stores = ShardStores(
            settings.data_dir / "streams" / app / "shard-state" / (name or socket.gethostname()),
            sealer,
            secrets[settings.identity_key_version],
            keys=f"{hasher.keys}:{settings.identity_key_version}",
            cache_bytes=settings.streams_state_cache_mb * 1024**2,
        )

    def make_shard(state: IdentityState | None) -> Shard:
        return Shard(hasher, model, review_floor=floor, state=state)

    host = ShardHost(
        settings,
        app,
        make_shard,
        sealer,
        secrets[settings.identity_key_version],
        stores,
        name or socket.gethostname(),
        standbys=settings.streams_standby_replicas,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host.serve(stop)
    click.echo(f"shard host stopped: {host.served} calls served, {host.replayed} replayed")


@identity.command("resolve")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV of source, source_record_id, person_id (empty: sent to review).",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="Resolve on this many shards served by `c2c identity shard-host` processes over "
    "Kafka (the decider in this process; run again after a crash, it resumes).",
)
@click.option("--app-id", default=None, help="With --shards: the sharded resolver's app id.")
@click.option(
    "--epoch",
    type=click.IntRange(min=1),
    default=16_000,
    show_default=True,
    help="With --shards: records an epoch takes (the ids do not depend on it).",
)
@click.pass_context
@reports_errors
def identity_resolve(
    ctx: click.Context,
    folder: Path,
    out: Path,
    shards: int | None,
    app_id: str | None,
    epoch: int,
) -> None:
    """Resolve every record of the extracts in FOLDER in event-time order, in this process
    (the stream worker does the same incrementally), and write the final person ids.
    With --shards, on the sharded resolver (streams/README.md, Scaling out): a run killed
    midway and started again goes on from its last epoch (OUT.partial keeps the ids so
    far), to the same ids."""
    import csv as csv_module

    from producers.files import mapped_events
    from streams.identity.matching import load_model

    settings = context_settings(ctx)
    model = load_model(settings.identity_model)
    started = time.monotonic()
    events = list(mapped_events(folder))
    root: Callable[[str], str]
    if shards is None:
        resolver = _resolver(settings, model)
        ids = [resolver.resolve(e["provider"], e["person"]) for _source, e in events]
        root = resolver.state.root
    else:
        from streams.app import APP_ID

        records = [(e["provider"], e["person"]) for _source, e in events]
        ids, root = _resolve_on_shards(
            settings, model, app_id or APP_ID, shards, records, out, epoch
        )
    reviews = Counter(str(r.review_reason) for r in ids if r.person_id is None)
    with out.open("w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(["source", "source_record_id", "person_id"])
        for (source, event), resolution in zip(events, ids, strict=True):
            final = root(resolution.person_id) if resolution.person_id else ""
            writer.writerow([source, event["source_record_id"], final])
    seconds = time.monotonic() - started
    persons = len({root(r.person_id) for r in ids if r.person_id})
    click.echo(
        f"resolved {len(ids)} records in {seconds:.1f} s "
        f"({len(ids) / max(seconds, 1e-9):,.0f}/s); "
        f"{persons} persons; {sum(reviews.values())} to review; "
        f"model {model.version}"
    )
    for reason, count in reviews.most_common():
        click.echo(f"  review: {count} x {reason}")


def _resolve_on_shards(
    settings: Settings,
    model: MatchModel,
    app_id: str,
    shards: int,
    records: list[tuple[str, dict[str, Any]]],
    out: Path,
    epoch: int,
) -> tuple[list[Resolution], Callable[[str], str]]:
    """``records`` resolved through ``app_id``'s shard hosts, resuming from its decider's
    log: each record's resolution, and the final person of an id. ``out``.partial keeps
    the resolutions of the epochs logged (pickled: ids, changes and rules, no identifier),
    so that a run started again needs only the records after them."""
    import pickle

    from c2c.kafka import ensure_topics
    from streams.decider_log import DeciderLog
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sealing import Sealer
    from streams.identity.sharding import Decider, EpochWrites, epochs_of, resolve_epochs
    from streams.shards import KafkaShards, shard_topics

    ensure_topics(settings, shard_topics(app_id, shards))
    secrets = settings.identity_secrets()
    hasher = IdentifierHasher(*secrets.values(), cache_size=settings.identity_hash_cache)
    sealer = Sealer(secrets, settings.identity_key_version)
    decider = Decider(hasher, model)
    log = DeciderLog(settings, app_id, sealer)
    resumed = log.resume(decider)
    partial = out.with_name(out.name + ".partial")
    kept: list[Resolution] = []
    if resumed.done:
        if not partial.exists():
            raise click.ClickException(
                f"{app_id}'s decider logged {resumed.done:,} records, and {partial} (their "
                "ids) is missing: run again with the same --out, or with a new --app-id to "
                "start over"
            )
        with partial.open("rb") as reading:
            while len(kept) < resumed.done - len(resumed.resolutions):
                kept += pickle.load(reading)  # this command's own file
        kept = kept[: resumed.done - len(resumed.resolutions)]
        click.echo(f"resuming after {resumed.done:,} records ({log.epoch} epochs) logged")
    kept += resumed.resolutions
    with partial.open("wb") as handle:
        pickle.dump(kept, handle)

        def decided(resolutions: list[Resolution], writes: EpochWrites, taken: int) -> None:
            log.record(resolutions, writes, taken, decider.state.next_number)
            pickle.dump(resolutions, handle)
            handle.flush()

        kafka = KafkaShards(settings, app_id, shards, sealer)
        try:
            following = epochs_of(records[resumed.done :], epoch)
            kept += resolve_epochs(
                kafka, decider, following, decided=decided, pending=resumed.pending
            )
        finally:
            kafka.close()
            log.close()
    partial.unlink()
    return kept, decider.state.root


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
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the fit.")
@click.pass_context
@reports_errors
def identity_train(ctx: click.Context, folder: Path, out: Path, sample: int, seed: int) -> None:
    """Fit the match weights on a sample of FOLDER's records (no labels needed): u from
    random pairs, name frequencies, m by EM over blocked pairs (streams/identity/training.py)."""
    import random as random_module

    from producers.files import mapped_events
    from streams.identity.matching import PRIORS, Identity
    from streams.identity.training import fit

    resolver = _resolver(context_settings(ctx))
    identities: dict[Identity, None] = {}
    for _source, event in mapped_events(folder):
        identities[resolver.identity(event["person"])] = None
    chosen = list(identities)
    if len(chosen) > sample:
        chosen = random_module.Random(seed).sample(chosen, sample)
    report = fit(chosen, PRIORS, random_pair_count=200_000, seed=seed)
    report.model.save(out)
    click.echo(
        f"trained {report.model.version} on {report.pairs} pairs from {len(chosen)} "
        f"identities in {report.iterations} iterations; match share "
        f"{report.match_share:.3f}; threshold {report.model.threshold:.2f} bits (posterior "
        f"{report.model.derivation.get('precision')} at the learned prior "
        f"{float(str(report.model.derivation.get('prior'))):.3e}) -> {out}"
    )


@click.group("eval")
def eval_group() -> None:
    """Evaluate the pipeline against synth's truth."""


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
@JSON_OPTION
@click.pass_context
@reports_errors
def eval_linkage(
    ctx: click.Context, truth: Path, assigned: Path | None, extracts: Path | None, as_json: bool
) -> None:
    """Pairwise precision, recall and F1 of the person ids the pipeline assigned (or those
    in --assigned) against TRUTH (synth's truth folder), and persons found against the true
    number; beside them the reachability bound (the most recall, and F1, a resolver not
    linking on a name alone could reach) and the missed and false pairs by the records'
    sources and cause (streams/identity/evaluation.py)."""
    from producers.files import mapped_events
    from streams.identity.evaluation import (
        CAUSES,
        FALSE_CAUSES,
        breakdown,
        published_assignments,
        read_assignments,
    )
    from streams.identity.matching import load_model

    settings = context_settings(ctx)
    version = load_model(settings.identity_model).version

    events = list(mapped_events(extracts or truth.parent))
    if assigned is not None:
        found = read_assignments(assigned)
    else:
        found = published_assignments(settings, events)
    fields = {(source, str(event["source_record_id"])): event["person"] for source, event in events}
    result = breakdown(read_assignments(truth / "records.csv"), found, fields)
    if as_json:
        click.echo(json.dumps({"model_version": version, **result.to_dict()}, indent=2))
        return
    metrics = result.metrics
    click.echo(f"match model {version} (C2C_IDENTITY_MODEL, or the shipped weights)")
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
        f"{result.recall_bound_exact:.5f}; also a full name only its own person's dated "
        f"records carry: recall {result.recall_bound_names:.5f}"
    )
    rows = result.table()
    if rows:
        rows.insert(0, ["pairs", "sources", "cause", "count", "share of true pairs"])
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        for cause, meaning in {**CAUSES, **FALSE_CAUSES}.items():
            click.echo(f"  {cause}: {meaning}")

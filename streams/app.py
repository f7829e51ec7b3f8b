"""The identity worker: a forwarder and a Faust app that turn raw events into linked events.

Two parts (see streams/README.md for why):

- the forwarder (:mod:`streams.forwarder`, librdkafka, no Faust: it has no state) reads
  every raw topic (six partitions each, spread over all workers) and forwards what it
  reads, bytes untouched and in publication order, to the intake topic in *packs* of many raw
  messages (:mod:`streams.intake`). The intake topic has one partition per resolver shard
  (one here), so that every record that could match another is resolved by the same
  resolver, in one order.
- ``resolve``, a Faust agent, reads the intake topic a few packs at a time and runs
  :class:`IdentityStage` on each raw message of them: linked events, identity changes,
  review records and dead letters are sent with a librdkafka producer, and a batch is
  acknowledged to Faust only once Kafka confirmed all of it (at least once); the persons
  and source ids the batch changed are written to two changelogged tables (RocksDB on disk
  by default). After a restart or a rebalance the resolver's in-memory indexes are rebuilt
  from those tables, so ids stay the same.

``role`` ``all`` (the default) runs both in this process, ``resolve`` the resolver alone
(with ``c2c identity worker --role forward`` beside it, so that the two use two cores).
Faust's web server answers ``/health/live``, ``/health/ready`` (connected, recovered and
lag below a bound) and ``/metrics/counts`` on ``C2C_WORKER_WEB_PORT``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import faust.streams as faust_streams
import mode
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT

from c2c.health import Readiness, readiness
from c2c.kafka import (
    DURABLE_PRODUCER,
    SESSION_TIMEOUT_S,
    end_offsets,
    ensure_topics,
    read_to_end,
)
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import Settings
from c2c.telemetry import Telemetry
from c2c.topics import (
    DEAD_LETTER_TOPIC,
    OPERATOR_DECISIONS_TOPIC,
    Topic,
    changelog_topic,
    get_topic,
    replication_factor,
)
from streams.cursor import IntakeCursor
from streams.decider_log import DeciderLog
from streams.delivery import BatchProducer
from streams.durable import DurableState, StaleStore, apply_tail, in_id_order
from streams.failstop import fail_stop as _fail_stop
from streams.forwarder import Forwarder, forward_group
from streams.identity.matching import MatchModel, load_model
from streams.identity.operator_decisions import rekeyed_value
from streams.identity.resolver import (
    IdentifierHasher,
    IdentityState,
    Resolver,
    rekeyed_snapshot,
)
from streams.identity.sealing import Sealer
from streams.identity.sharding import ShardedResolver
from streams.identity.snapshots import SnapshotEncoder, decode_snapshot, encode_snapshot
from streams.intake import RECORDS_PER_PACK, records_of
from streams.observer import WorkerObserver, observe_worker
from streams.resolution import (
    INTAKE_TOPIC,
    OUTPUT_TOPICS,
    RAW_TOPICS,
    UNCONFIRMED_KEY,
    IdentityStage,
    Incoming,
    Outgoing,
    identity_dead_letter,
    unconfirmed_chunks,
    unconfirmed_messages,
)
from streams.shards import KafkaShards, shard_topics
from streams.tables import TableWriter, parse_source_key, source_key
from streams.worker_decider import WorkerDecider

__all__ = ["APP_ID", "ROLES", "WorkerState", "changelog_topics", "create_app", "faust_broker"]

APP_ID = "c2c-identity"
PERSONS_TABLE = "identity-persons"
SOURCES_TABLE = "identity-sources"
# operators' decisions on reviews: reviews known, separations, decisions applied
# (streams/identity/operator_decisions.py); values sealed like persons'
DECISIONS_TABLE = "identity-decisions"
log = logging.getLogger(__name__)


def changelog_topics(app_id: str = APP_ID) -> tuple[Topic, ...]:
    """The changelogs of the resolver's tables under ``app_id``, as the worker creates them
    before Faust starts (replicated as the catalogue's topics: c2c.topics.topic_config)."""
    return tuple(
        changelog_topic(app_id, table) for table in (PERSONS_TABLE, SOURCES_TABLE, DECISIONS_TABLE)
    )


def faust_broker(settings: Settings) -> tuple[str, Any]:
    """(broker URL, credentials) for Faust from the Kafka settings."""
    from c2c.errors import ConfigError

    protocol = settings.kafka_security_protocol
    servers = ";".join(f"kafka://{host}" for host in settings.kafka_bootstrap.split(","))
    if protocol == "PLAINTEXT":
        return servers, None
    ssl_context = None
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(
            cafile=str(settings.kafka_ssl_ca_location) if settings.kafka_ssl_ca_location else None,
            certfile=str(settings.kafka_ssl_certificate_location)
            if settings.kafka_ssl_certificate_location
            else None,
            keyfile=str(settings.kafka_ssl_key_location)
            if settings.kafka_ssl_key_location
            else None,
        )
    if protocol == "SSL":
        return servers, faust.SSLCredentials(ssl_context)
    mechanism = settings.kafka_sasl_mechanism or "PLAIN"
    if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ConfigError(
            f"C2C_KAFKA_SASL_MECHANISM={mechanism} is not supported by the Faust worker "
            "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
            code="config.kafka_sasl",
        )
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    return servers, faust.SASLCredentials(
        username=settings.kafka_sasl_username or "",
        password=password,
        mechanism=mechanism,
        ssl_context=ssl_context,
    )


ROLES = ("all", "resolve")  # `--role forward` runs streams.forwarder.run_alone, no Faust
# Packs a resolve batch takes at most. A pack holds at most RECORDS_PER_PACK records (the
# forwarder cuts its batches so), so a batch is up to 16,000 records when there is a
# backlog. Without one, a pack is what the forwarder read in one cycle (tens of records at
# 1,000/s) and a batch whatever arrived within C2C_STREAMS_BATCH_WAIT_S: the cap must then
# be far from binding, or the resolver, whose every batch waits for its deliveries, falls
# behind a load it could carry (8 packs of ~35 records did, at 1,000/s on a busy machine:
# the intake lag grew to seconds while it counted under 60 messages).
PACKS_PER_BATCH = 16_000 // RECORDS_PER_PACK

# How long the results producer holds a message before sending it. Each batch ends with a
# flush, which sends at once whatever the linger (librdkafka >= 1.8 overrides linger.ms
# while flushing: confluentinc/librdkafka#3494), so the linger only decides whether
# librdkafka sends while a batch is still being resolved. With 5 ms it sent a produce
# request per partition every 5 ms, a message or two each, over about 40 partitions: at a
# backlog most of the broker's produce requests (bench.end_to_end, broker CPU a record at
# the maximum 77 -> 35 us). At a backlog the sink now sees a batch's results at its end
# rather than during it; at 1,000/s a batch is a few packs, flushed at once, and latency
# is unchanged (p99 0.75 s against 0.76 s).
RESULTS_LINGER_MS = 1_000

# Longest a fetch of the worker's consumer waits at the broker for data (Faust fixes 1.5 s).
# aiokafka sends no new fetch to a broker while one is in flight, and leaves a partition
# with unconsumed records out of the fetch it builds: a fetch built while a batch of packs
# was still buffered named only partitions with nothing new (the tables' changelogs), and
# the intake's next packs waited for it to expire, up to 1.5 s, at any load below a backlog.
FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return cast(Mapping[Any, int], await self.call_thread(self._seek_to_committed))

    async def _seek_to_committed(self) -> Mapping[Any, int]:
        """Seek every partition to its committed offset, and the intake partitions with
        none (or 0) committed to where the group starts reading (the beginning).

        Faust drops the records it fetched when a rebalance or a pause cuts a fetch short,
        and counts on this seek to read them again; aiokafka's seek_to_committed seeks
        only partitions with an offset above 0 committed. A worker that took the intake
        over from one killed before its first commit had fetched the whole partition,
        delivered none of it, and waited for records that never came (issue 22: a lost
        worker's shard, tests/integration/test_failover.py). Changelog partitions are the
        tables' recovery's to place, not this seek's."""
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        # (Faust's assignor topic is assigned too, and read by no one)
        streams = [
            tp for tp in committed if tp.topic not in changelogs and "__assignor" not in tp.topic
        ]
        never = [tp for tp in streams if not committed[tp]]
        if never:
            log.info("intake partition(s) with no committed offset read from the start: %s", never)
            await consumer.seek_to_beginning(*never)
        # where each stream partition's next message must be: the committed offset, or the
        # log's start where none is committed or retention deleted past it
        starts = await consumer.beginning_offsets(streams) if streams else {}
        state = getattr(self.transport, "worker_state", None)
        if state is not None:
            state.cursor.sought(
                {
                    (tp.topic, tp.partition): max(committed[tp] or 0, starts.get(tp, 0))
                    for tp in streams
                }
            )
        return cast(Mapping[Any, int], committed)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's offset to commit, never past a message the agent has not resolved:
        Faust counts what its stream skipped as acknowledged (streams/cursor.py)."""
        offset = super()._new_offset(tp)
        state = getattr(self.transport, "worker_state", None)
        if offset is None or state is None:
            return offset
        resolved = state.cursor.resolved_up_to((tp.topic, tp.partition))
        return offset if resolved is None else min(offset, resolved)


# c2c.kafka.DURABLE_PRODUCER in aiokafka's names
_DURABLE_AIOKAFKA: Mapping[str, Any] = {
    "acks": DURABLE_PRODUCER["acks"],
    "enable_idempotence": DURABLE_PRODUCER["enable.idempotence"],
}


class _Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, idempotent: Faust asks aiokafka for idempotence only
    inside a transaction (processing_guarantee exactly_once) and has no setting for it.
    The worker's own results and changelogs go through streams.delivery.BatchProducer; this
    one sends what Faust sends itself (an agent's or a table's writes through Faust)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **_DURABLE_AIOKAFKA}


class _Transport(faust_aiokafka.Transport):
    """aiokafka's transport with the worker consumer's fetch wait set (Faust has no setting
    for it) and an idempotent producer; given to the app in :func:`create_app`."""

    Consumer = _Consumer
    Producer = _Producer
    # the worker's state, told by the consumer where each intake partition resumes
    worker_state: WorkerState | None = None


@dataclass
class WorkerState:
    """What the worker holds besides Faust's tables: the stage, rebuilt when needed."""

    stage: IdentityStage | None = None
    counts: Counter[str] = field(default_factory=Counter)
    # where the resolve agent stands in the intake (the next offset to resolve, per
    # partition), and the holes Faust leaves in it
    cursor: IntakeCursor = field(default_factory=IntakeCursor)
    forwarder: Forwarder | None = None
    # C2C_STREAMS_RESOLVER=shards: the decider over the shard hosts, rebuilt with the stage
    decider: WorkerDecider | None = None

    def all_counts(self) -> dict[str, int]:
        """What the resolver and the forwarder counted (the /metrics/counts page), and
        the intake messages delivered beyond a hole Faust left (``intake.beyond_hole``:
        left unresolved and read again, streams/cursor.py)."""
        forwarded = self.forwarder.counts if self.forwarder is not None else {}
        return {**self.counts, **forwarded, "intake.beyond_hole": self.cursor.holes}


def create_app(
    settings: Settings,
    registry: SchemaRegistry,
    *,
    telemetry: Telemetry | None = None,
    model: MatchModel | None = None,
    app_id: str = APP_ID,
    intake_topic: str = INTAKE_TOPIC,
    role: str = "all",
    brokers: int = 1,
) -> tuple[faust.App, WorkerState]:
    """The Faust app and the state its parts share. ``app_id`` names the consumer groups
    (``<app id>`` for Faust, ``<app id>-forward`` for the forwarder) and the tables'
    changelog topics; tests use their own. ``role``: ``all`` runs the forwarder and the
    resolve agent, ``resolve`` the resolve agent alone (the forwarder alone needs no Faust:
    :func:`streams.forwarder.run_alone`). ``brokers``: the cluster's brokers, which
    Faust's own topics are replicated to (:func:`c2c.topics.replication_factor`)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    broker, credentials = faust_broker(settings)
    datadir = settings.data_dir / "streams" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=broker,
        broker_credentials=credentials,
        store="rocksdb://" if settings.streams_store == "rocksdb" else "memory://",
        datadir=str(datadir),
        # tables' changelogs use the app's serializers; every topic names its own (raw)
        key_serializer="json",
        value_serializer="json",
        topic_partitions=1,  # the intake topic and the tables: one resolver shard
        topic_allow_declare=True,
        # Faust reads only the intake topic (and the changelogs): whatever is on the intake
        # was forwarded to be resolved, so a new group reads it from its start. Where raw
        # reading starts (C2C_STREAMS_START) is the forwarder's to decide.
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,  # and idempotence: _Producer
        table_standby_replicas=settings.streams_standby_replicas,
        topic_replication_factor=replication_factor(brokers),
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        # through the shards, a rebalance waits for the batch in hand (decided, logged,
        # applied, published): the intake's next holder resumes the decider's log only
        # once this worker has stopped deciding (streams/worker_decider.py)
        stream_wait_empty=settings.streams_resolver == "shards",
        # a worker that died is replaced after 10 s, not the default 60 s
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=SESSION_TIMEOUT_S // 3,
        broker_max_poll_records=settings.streams_batch_size,
        # a fetch brings about a resolve batch's worth of packs (~110 kB each), not one
        # pack at a time; at least the largest pack (900 kB)
        consumer_max_fetch_size=8 * 1024**2,
        # events on the intake are packs (~110 kB, at most 900 kB): buffer two batches
        stream_buffer_maxsize=2 * PACKS_PER_BATCH,
    )
    state = WorkerState()
    app.transport = _Transport(app.conf.broker_consumer, app)
    app.transport.worker_state = state
    observed = observe_worker(  # metrics (observability/worker.py)
        app,
        telemetry,
        counts=state.counts,
        lag=lambda: worker_readiness(app, state, settings.ready_max_lag),
    )
    if role == "all":
        state.forwarder = Forwarder(
            settings,
            intake_topic,
            group_id=forward_group(app_id),
            legacy_group=app_id,
            observer=observed,
        )
        _run_forwarder(app, state.forwarder)
    _add_resolver(app, state, settings, registry, telemetry, model, intake_topic, observed)

    @app.task
    async def _quiet_client_logs() -> None:
        # aiokafka and Faust log every message sent at debug level; building those records
        # cost a tenth of the worker's time even when nothing printed them.
        for name in ("aiokafka", "faust", "mode"):
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))

    @app.page("/health/live")
    async def live(view: Any, request: Any) -> Any:
        return view.json({"live": True})

    @app.page("/health/ready")
    async def ready(view: Any, request: Any) -> Any:
        answer = await worker_readiness(app, state, settings.ready_max_lag)
        return view.json(answer.as_json(), status=200 if answer.ready else 503)

    @app.page("/metrics/counts")
    async def counts(view: Any, request: Any) -> Any:
        return view.json(state.all_counts())

    return app, state


def _run_forwarder(app: faust.App, forwarder: Forwarder) -> None:
    """Run ``forwarder`` in a thread of its own for as long as ``app`` runs."""

    @app.service
    class ForwarderService(mode.Service):
        def __post_init__(self) -> None:
            self._stop_forwarding = threading.Event()
            self._thread: threading.Thread | None = None

        async def on_start(self) -> None:
            self._thread = threading.Thread(
                target=forwarder.run, args=(self._stop_forwarding,), name="forwarder"
            )
            self._thread.start()

        async def on_stop(self) -> None:
            # the batch in hand is finished (sent, confirmed, committed) before it returns
            self._stop_forwarding.set()
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, 60)


def _add_resolver(
    app: faust.App,
    state: WorkerState,
    settings: Settings,
    registry: SchemaRegistry,
    telemetry: Telemetry | None,
    model: MatchModel | None,
    intake_topic: str,
    observed: WorkerObserver,
) -> None:
    """The resolve agent, its two tables and the producer of its results."""
    intake = app.topic(intake_topic, key_serializer="raw", value_serializer="raw")
    # A person's value is its snapshot encoded once (streams.identity.snapshots; the JSON
    # values of earlier workers still load), stored and sent as those bytes.
    persons = app.Table(PERSONS_TABLE, default=None, value_type=bytes)  # raw values
    sources = app.Table(SOURCES_TABLE, default=None)
    decisions = app.Table(DECISIONS_TABLE, default=None, value_type=bytes)  # sealed JSON
    decoders = {
        name: registry.decoder(get_topic(name)) for name in (*RAW_TOPICS, OPERATOR_DECISIONS_TOPIC)
    }
    encoders = {name: registry.encoder(get_topic(name)) for name in OUTPUT_TOPICS}
    resolver_model = model if model is not None else load_model(settings.identity_model)
    # Every key version's secret, in order: each hashes the hash of the one before
    # (IdentifierHasher), and person values (names, birth dates) are sealed under the
    # current one (streams/identity/sealing.py). State kept under fewer keys is re-keyed
    # when the worker rebuilds it (streams/README.md, "Key rotation").
    secrets = settings.identity_secrets()
    chain = {version: at + 1 for at, version in enumerate(secrets)}  # version -> keys
    hasher = IdentifierHasher(*secrets.values(), cache_size=settings.identity_hash_cache)
    sealer = Sealer(secrets, settings.identity_key_version)

    # identity-sources keys an earlier worker wrote with the source id in clear, or hashed
    # under fewer keys, found when the state was rebuilt: (old key, new key, person id),
    # re-keyed in the next batch
    rekey: list[tuple[str, str, str]] = []

    def restored_sources() -> Iterator[tuple[tuple[str, str], str]]:
        """Every source id of the table, hashed under the current key chain (noting in
        ``rekey`` those to write again), one at a time."""
        rekey.clear()
        for key, person_id in sources.items():
            if person_id is None:
                continue
            parsed = parse_source_key(str(key))
            hashed = parsed.source_id
            if parsed.keys == 0:  # in clear
                hashed = hasher.source_id(parsed.provider, parsed.source_id)
            elif parsed.keys < hasher.keys:  # under fewer keys than the chain has now
                hashed = hasher.rekey(parsed.source_id, parsed.keys)
            if parsed.keys < hasher.keys:
                new = source_key(parsed.provider, hashed, hasher.keys)
                rekey.append((str(key), new, str(person_id)))
            yield (parsed.provider, hashed), str(person_id)

    # persons an earlier worker wrote unsealed (names in clear), or sealed and hashed under
    # an earlier key version: sealed (and re-keyed) under the current one in the next batch
    reseal: dict[str, bytes] = {}

    def rekey_from(keyed: int, digest: str) -> str:
        return hasher.rekey(digest, keyed)

    def restored_person(key: str, value: bytes) -> dict[str, Any]:
        """One person's snapshot from the table, re-keyed if an earlier key version hashed
        it (noting in ``reseal`` those to write again)."""
        snapshot = decode_snapshot(sealer.open(key, value), where=f"{PERSONS_TABLE} {key}")
        # an unsealed value is an earlier worker's, hashed with the first key
        version = sealer.version(value)
        keyed = 1 if version is None else chain[version]
        if keyed < hasher.keys:
            snapshot = rekeyed_snapshot(snapshot, functools.partial(rekey_from, keyed))
        if keyed < hasher.keys or version is None:
            reseal[key] = sealer.seal(key, encode_snapshot(snapshot))
        return snapshot

    def person_values() -> Iterator[tuple[str, bytes]]:
        return ((str(k), v) for k, v in persons.items() if v is not None)

    def restored_persons() -> list[tuple[str, dict[str, Any]]]:
        reseal.clear()
        return [(key, restored_person(key, value)) for key, value in person_values()]

    # C2C_STREAMS_STATE=disk: the state in a store kept across restarts (streams/durable.py)
    durable = (
        DurableState(
            settings.data_dir / "streams" / app.conf.id / "identity-state",
            sealer,
            secrets[settings.identity_key_version],
            keys=f"{hasher.keys}:{settings.identity_key_version}",
            cache_bytes=settings.streams_state_cache_mb * 1024**2,
        )
        # with the shards (C2C_STREAMS_RESOLVER=shards) the state is the shard hosts'
        if settings.streams_state == "disk" and settings.streams_resolver == "one"
        else None
    )
    state_tables: dict[str, Any] = {
        t.changelog_topic.get_topic_name(): t for t in (persons, sources)
    }

    def read_tail(target: IdentityState, since: Mapping[tuple[str, int], int], ends: Any) -> int:
        """Apply the changelogs' messages from ``since`` to ``ends`` to ``target``."""
        tail: dict[Any, dict[str, Any]] = {persons: {}, sources: {}}
        read = 0
        for message in read_to_end(settings, list(state_tables), since=since, until=ends):
            read += 1
            table = state_tables[str(message.topic())]
            key = app.serializers.loads_key(
                table.key_type, message.key(), serializer=table.key_serializer
            )
            raw = message.value()
            tail[table][str(key)] = (
                None
                if raw is None
                else app.serializers.loads_value(
                    table.value_type, raw, serializer=table.value_serializer
                )
            )
        apply_tail(
            target,
            tail[persons],
            tail[sources],
            sealer=sealer,
            key_version=settings.identity_key_version,
            keys=hasher.keys,
        )
        return read

    def kept_state(kept: DurableState) -> IdentityState:
        """The state on disk, brought to the changelogs' ends: their tail applied if the
        store is consistent, else rebuilt from the tables."""
        ends = end_offsets(settings, list(state_tables))
        try:
            since = kept.consistent_with(ends)
            kept.begin()
            read = read_tail(kept.store.state, since, ends)
            kept.commit(ends, next_offsets=True)
            state.counts["state_tail_messages"] += read
            log.info("identity state kept on disk: %d changelog messages of its tail read", read)
            return kept.store.state
        except StaleStore as exc:
            log.info("identity state on disk rebuilt from the tables: %s", exc)
        store = kept.reset()
        # one person at a time, in id order through a sort on disk: never the whole state
        reseal.clear()
        in_order = in_id_order(person_values(), kept.path.with_name("identity-state.sorting"))
        store.state.load(
            ((key, restored_person(key, value)) for key, value in in_order), restored_sources()
        )
        kept.commit(ends, next_offsets=True)
        state.counts["state_rebuilds"] += 1
        return store.state

    def build_stage() -> IdentityStage:
        restored = (
            IdentityState.restore(restored_persons(), restored_sources())
            if durable is None
            else kept_state(durable)
        )
        log.info(
            "identity state rebuilt from tables: %d persons (%d unsealed or under an earlier "
            "key version, sealed now), %d source ids (%d in clear or under an earlier key "
            "version, re-keyed now)",
            len(restored.profiles) + len(restored.merged_into),
            len(reseal),
            len(restored.sources),
            len(rekey),
        )
        resolver = Resolver(
            hasher, resolver_model, restored, review_floor=settings.identity_review_min_weight
        )
        stage = IdentityStage(resolver, decoders, encoders, telemetry)
        restore_decisions(stage, unconfirmed_too=True)
        return stage

    def restore_decisions(stage: IdentityStage, *, unconfirmed_too: bool) -> None:
        """The operators' reviews, decisions and separations from their table, and (with
        ``unconfirmed_too``) the last batch's unconfirmed messages, sent again with the
        next batch's results (through the shards the decider's log keeps them instead)."""
        kept = []
        chunks: dict[int, bytes] = {}
        for key, value in decisions.items():
            if value is None:
                continue
            kind, _, index = str(key).partition(":")
            if kind == UNCONFIRMED_KEY:
                if unconfirmed_too:
                    chunks[int(index)] = sealer.open(str(key), value)
                continue
            data = json.loads(sealer.open(str(key), value))
            version = sealer.version(value)
            keyed = 1 if version is None else chain[version]
            if keyed < hasher.keys:  # a key rotation since: re-keyed, written again
                data = rekeyed_value(data, functools.partial(rekey_from, keyed))
                stage.decisions.pending[str(key)] = data
            kept.append((str(key), data))
        stage.decisions.restore(kept)
        # the last batch's merges, splits and opt-out decisions, kept with its state: sent
        # again with the next batch's results (they may not have been, and a replay of the
        # batch does not make them again: the state already holds them)
        unconfirmed.resend = [m for i in sorted(chunks) for m in unconfirmed_messages(chunks[i])]
        unconfirmed.kept = len(chunks)
        if unconfirmed.resend:
            log.info(
                "%d merges, splits and opt-out decisions of the last batch sent again",
                len(unconfirmed.resend),
            )

    def build_sharded() -> IdentityStage:
        """C2C_STREAMS_RESOLVER=shards: a stage whose state is the shard hosts' (its own
        resolver holds none: the decider lends it each epoch's view), the operators'
        decisions restored from their table, and the decider resumed from its log; what
        the log's last epoch published, to publish again with the next batch."""
        stage = IdentityStage(
            Resolver(hasher, resolver_model, review_floor=settings.identity_review_min_weight),
            decoders,
            encoders,
            telemetry,
        )
        restore_decisions(stage, unconfirmed_too=False)
        close_decider()
        ensure_topics(settings, shard_topics(app.conf.id, settings.streams_shards))
        shards = KafkaShards(settings, app.conf.id, settings.streams_shards, sealer)
        log_ = DeciderLog(settings, app.conf.id, sealer)
        sharded = ShardedResolver(
            hasher,
            settings.streams_shards,
            resolver_model,
            settings.identity_review_min_weight,
            over=shards,
        )
        decider_clients.extend((shards, log_))
        decider = WorkerDecider(stage, sharded, log_)
        decider.resume()
        state.decider = decider
        log.info(
            "identity decider over %d shard(s) resumed from its log: epoch %d, intake "
            "position %s, %d message(s) of its last epoch published again",
            settings.streams_shards,
            log_.epoch,
            decider.position or "none",
            sum(len(p.outgoing) for p in decider.unpublished),
        )
        return stage

    def close_decider() -> None:
        state.decider = None
        while decider_clients:
            decider_clients.pop().close()

    # Results and the tables' changelogs on two producers: only the changelogs' offsets
    # are wanted, and a producer that tracks offsets calls back into Python for every
    # message (results are ~2 messages a record, changelogs ~0.1). Both are confirmed,
    # at once, before a batch is acknowledged.
    results = BatchProducer(
        settings,
        what="publishing resolved events",
        extra_config={"linger.ms": RESULTS_LINGER_MS},
    )
    changelogs = BatchProducer(
        settings,
        what="writing the identity tables' changelogs",
        extra_config={"linger.ms": RESULTS_LINGER_MS},
        track_offsets=True,
    )
    tables = TableWriter(changelogs, app, (persons, sources, decisions))
    unconfirmed = _Unconfirmed()
    snapshots = SnapshotEncoder()

    async def publish(decided: list[tuple[int, list[Outgoing]]]) -> None:
        # The state first, then what it decided: a batch's changelog is confirmed before
        # its results are sent, so a worker killed in between starts again from a state
        # that holds every person and source id its published results name, and resolves
        # the batch again to those persons (or their survivors). Sent before the changelog,
        # results could name a person the restored state never had: the batch, resolved
        # again in another order (the forwarder's backlog interleaved anew), linked the
        # same events to another person that no published merge joins to the first
        # (tests/integration/test_crashes.py). Both are confirmed before the batch is
        # acknowledged, so an offset is never committed for a message whose results or
        # changelog Kafka did not take. Each record's results carry the time it was
        # resolved as their create time, not the time they are sent: the sink keeps out a
        # person's events published up to their opt-out's decided_at (sinks/optouts.py),
        # and an event resolved before the opt-out, in the same batch, must be dated
        # before it.
        await asyncio.to_thread(changelogs.confirm)
        for resolved_ms, outgoing in decided:
            results.send_all(outgoing, resolved_ms)
        await asyncio.to_thread(results.confirm)

    def damaged(message: Incoming, error: SerdeError) -> None:
        # an intake message that is not a whole pack: kept whole as a dead letter
        value = encoders[DEAD_LETTER_TOPIC].encode(identity_dead_letter(message, error))
        results.send(DEAD_LETTER_TOPIC, message.key, value)
        state.counts["dead_letter"] += 1

    async def read_again(where: tuple[str, int], hole: int) -> None:
        # the consumer reads the intake partition from the hole again (not mid-rebalance:
        # a partition no longer assigned is the next holder's to read)
        if TP(*where) in app.consumer.assignment():
            await app.consumer.seek(TP(*where), hole)

    sharded_mode = settings.streams_resolver == "shards"
    # C2C_STREAMS_RESOLVER=shards: the decider's Kafka clients, closed when it is rebuilt
    decider_clients: list[KafkaShards | DeciderLog] = []

    def gather(events: list[EventT]) -> _Gathered:
        """The batch's records, read off its intake messages, leaving out those beyond a
        hole Faust left and those an epoch of the decider's log already decided (a
        damaged message: a dead letter)."""
        gathered = _Gathered()
        cursor, decider = state.cursor, state.decider
        for event in events:
            message = _incoming(event)
            where = (message.topic, message.partition)
            hole = cursor.hole(where, message.offset)
            if hole is not None:  # not before the messages Faust skipped
                gathered.holes.setdefault(where, (hole, message.offset))
                gathered.left += 1
                continue
            cursor.resolved(where, message.offset)
            if decider is not None and decider.decided_before(message.partition, message.offset):
                gathered.before += 1  # published again from the log (WorkerDecider.resume)
                continue
            gathered.position[message.partition] = message.offset + 1
            try:
                gathered.records += records_of(message)
            except SerdeError as exc:
                damaged(message, exc)
                gathered.damaged.append(message.topic)
        return gathered

    def write_decisions(writes: Mapping[str, Any], partition: int) -> None:
        """The operators' decisions table's writes (None: delete the key)."""
        for key, kept in writes.items():
            if kept is None:
                tables.delete(decisions, key, partition)
            else:
                sealed = sealer.seal(key, json.dumps(kept, sort_keys=True).encode())
                tables.put(decisions, key, sealed, partition)

    async def sharded_batch(
        gathered: _Gathered, partition: int, batch: Any
    ) -> list[tuple[int, list[Outgoing]]]:
        """C2C_STREAMS_RESOLVER=shards: the batch decided as one epoch over the shard
        hosts and logged (streams/worker_decider.py); its decisions table's writes made.
        What to publish: the log's last epoch's again first (after a takeover), then the
        batch's."""
        decider = state.decider
        assert decider is not None, "build_sharded makes the decider with the stage"
        if gathered.damaged:
            # their dead letters confirmed before the epoch is logged: the log's position
            # passes their offsets, and a successor would not make them again
            await asyncio.to_thread(results.confirm)
        processed = (
            await asyncio.to_thread(decider.decide, gathered.records, gathered.position)
            if gathered.records
            else []
        )
        # what the log's last epoch published, until published again (decider.published)
        decided = [(p.resolved_ms, p.outgoing) for p in decider.unpublished]
        for done in processed:
            decided.append((done.resolved_ms, done.outgoing))
            batch.sent(done.outgoing)
        write_decisions(decider.take_decisions(), partition)
        return decided

    @app.agent(intake)
    async def resolve(stream: faust.StreamT[bytes]) -> None:
        # Faust's StreamT protocol omits take_events, which its Stream class has.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            PACKS_PER_BATCH, within=settings.streams_batch_wait_s
        ):
            with _fail_stop("resolving identities"), observed.batch("identity") as batch:
                if state.stage is None:
                    state.stage = (
                        await asyncio.to_thread(build_sharded) if sharded_mode else build_stage()
                    )
                stage = state.stage
                counted = Counter(stage.counts)
                gathered = gather(events)
                for topic in gathered.damaged:
                    batch.read(topic)
                for incoming in gathered.records:
                    batch.read(incoming.topic)
                last = events[-1]
                partition = last.message.partition
                if sharded_mode:
                    _make_current(last)  # the decisions table's writes need an event
                    decided = await sharded_batch(gathered, partition, batch)
                    changed: set[str] = set()
                else:
                    decided, changed = one_batch(stage, gathered, last, batch)
                await publish(decided)
                if state.decider is not None:  # what its resume gave is published now
                    state.decider.published()
                written = tables.record_offsets()
                if durable is not None:
                    durable.commit(written)
                outcomes = stage.counts - counted
                state.counts.update(outcomes)
                state.counts["batches"] += 1
                state.counts["persons_written"] += len(changed)
                if gathered.before:
                    state.counts["intake.decided_before"] += gathered.before
                # where each batch stood in the intake and what became of its records:
                # what a lost worker's successor took up is read from these lines
                log.info(
                    "resolved intake[%d] offsets %d-%d: %s",
                    partition,
                    events[0].message.offset,
                    last.message.offset,
                    ", ".join(
                        [f"{n} {outcome}" for outcome, n in sorted(outcomes.items())]
                        + ([f"{gathered.left} pack(s) beyond a hole left"] if gathered.left else [])
                        + (
                            [f"{gathered.before} pack(s) decided before (logged)"]
                            if gathered.before
                            else []
                        )
                    ),
                )
                for where, (hole, offset) in gathered.holes.items():
                    if state.cursor.refetch(where, hole, offset, time.monotonic()):
                        log.warning(
                            "intake %s[%d]: offset %d delivered where %d was next (Faust "
                            "skipped the messages between): those after are left, and the "
                            "partition is read from %d again",
                            *where,
                            offset,
                            hole,
                            hole,
                        )
                        await read_again(where, hole)

    def one_batch(
        stage: IdentityStage, gathered: _Gathered, last: EventT, batch: Any
    ) -> tuple[list[tuple[int, list[Outgoing]]], set[str]]:
        """The batch resolved by the worker's own resolver, its state written to the
        tables; what to publish, each record's results with when it was resolved, and the
        persons it changed."""
        if durable is not None:
            durable.begin()
        changed: set[str] = set()
        first_seen: dict[tuple[str, str], str] = {}
        # what no replay of the batch would send again, kept with its state; after a
        # restart, with what the last batch kept (sent with this batch's results)
        resend, unconfirmed.resend = unconfirmed.resend, []
        once: list[Outgoing] = list(resend)
        # (bound once: the loop runs per record)
        process, sent = stage.process, batch.sent
        # the batch's results, each record's with when it was resolved: sent after the
        # batch's state
        decided: list[tuple[int, list[Outgoing]]] = []
        for incoming in gathered.records:
            processed = process(incoming)
            outgoing = processed.outgoing
            decided.append((time.time_ns() // 1_000_000, outgoing))
            sent(outgoing)
            changed.update(processed.persons)
            if processed.once:
                once += processed.once
            if processed.sources:
                first_seen.update(processed.sources)
        # Each person changed in the batch is written once, as it is at the end, through
        # our producer (streams.tables: Faust's own send of each write was about a fifth
        # of the resolver).
        _make_current(last)
        partition = last.message.partition
        # an earlier worker's unsealed persons first, so that a person the batch changed
        # is written after
        for person_id, value in reseal.items():
            tables.put(persons, person_id, value, partition)
        reseal.clear()
        for person_id in changed:
            value = sealer.seal(person_id, snapshots.encode(stage.state, person_id))
            tables.put(persons, person_id, value, partition)
        for (provider, hashed), person_id in first_seen.items():
            tables.put(sources, source_key(provider, hashed, hasher.keys), person_id, partition)
        # an earlier worker's clear source ids: the hashed key written, the clear one
        # deleted (its tombstone lets compaction drop it from the changelog)
        for old, new, person_id in rekey:
            tables.put(sources, new, person_id, partition)
            tables.delete(sources, old, partition)
        rekey.clear()
        write_decisions(stage.decisions.drain(), partition)
        unconfirmed.write(tables, decisions, sealer, once, partition)
        if resend:
            decided.insert(0, (time.time_ns() // 1_000_000, resend))
        return decided, changed

    @app.timer(interval=1.0)
    async def _read_holes_again() -> None:
        # a hole the agent asked for that is still not filled: ask again (no batch comes
        # when every message Faust had was beyond the hole); IntakeGap at the last
        with _fail_stop("reading the intake again"):
            for where, hole in state.cursor.due(time.monotonic()):
                log.warning("intake %s[%d]: reading from %d again (not come)", *where, hole)
                await read_again(where, hole)

    if durable is not None:
        kept_on_disk = durable

        @app.service
        class KeepState(mode.Service):
            async def on_stop(self) -> None:
                # the last commit written to RocksDB's files: a restart reads no tail
                kept_on_disk.persist()

    @app.on_rebalance_complete.connect
    async def _forget_state(*_args: Any, **_kwargs: Any) -> None:
        # Partitions may have moved: rebuild from the (recovered) tables on the next batch,
        # and read from wherever the seek to the committed offsets puts the intake.
        state.stage = None
        state.cursor.forget()


async def worker_readiness(app: faust.App, state: WorkerState, max_lag: int) -> Readiness:
    """Readiness of this worker: the Faust consumer's assignment (the intake partition, if
    this worker holds the shard) and its high-water marks, and the forwarder's raw
    partitions and lag."""
    assigned = app.consumer.assignment() if app.consumer is not None else set()
    lag = {}
    for tp in assigned:
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        high = app.consumer.highwater(tp)
        if high is None:
            continue
        # the next offset after the last one processed; before any, where reading starts
        done = state.cursor.positions.get((tp.topic, tp.partition))
        if done is None:
            done = await app.consumer.position(tp) or 0
        lag[f"{tp.topic}[{tp.partition}]"] = max(0, int(high) - int(done))
    forwarder = state.forwarder
    connected = bool(assigned)
    if forwarder is not None:
        lag.update(forwarder.lag())
        # a worker without the shard (a standby) is connected if it forwards
        connected = forwarder.assigned and (connected or bool(forwarder.lag()))
    return readiness(
        connected=connected, recovering=bool(app.in_recovery), lag=lag, max_lag=max_lag
    )


@dataclass
class _Gathered:
    """A batch's intake messages read: their records in order, and what was left out."""

    records: list[Incoming] = field(default_factory=list)
    # topics of the damaged messages (dead letters), counted as read
    damaged: list[str] = field(default_factory=list)
    # intake partition -> the offset after the batch's last message taken
    position: dict[int, int] = field(default_factory=dict)
    # holes Faust left: (topic, partition) -> (next offset, the one delivered)
    holes: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    left: int = 0  # messages beyond a hole, not resolved
    before: int = 0  # messages an epoch of the decider's log decided before


@dataclass
class _Unconfirmed:
    """The resolver's merges, splits and opt-out decisions whose publication is not known
    to be confirmed (:attr:`streams.resolution.Processed.once`), kept in the decisions
    table under ``unconfirmed:<n>`` keys with the batch's state.

    A batch's state is confirmed before its results: a worker killed in between restarts
    on a state that holds the batch's merges, and the replayed batch links its records to
    the survivors without merging again, so the merges would never be published and
    downstream could not join the ids the records were first published under (an
    "unrelated person" in tests/integration/test_crashes.py). So each batch keeps its own
    with its state, replacing the last batch's (whose results were confirmed before it
    started), and a restarted worker sends what it finds again with its first batch's
    results. Sent twice is harmless: a merge re-points ids already re-pointed, a decision
    removes nothing more."""

    resend: list[Outgoing] = field(default_factory=list)
    kept: int = 0  # unconfirmed:<n> keys in the table

    def write(
        self, tables: TableWriter, table: Any, sealer: Sealer, once: list[Outgoing], partition: int
    ) -> None:
        """Keep ``once`` (the batch's, with any sent again) in ``table`` in place of the
        last batch's."""
        chunks = unconfirmed_chunks(once)
        for index, chunk in enumerate(chunks):
            key = f"{UNCONFIRMED_KEY}:{index}"
            tables.put(table, key, sealer.seal(key, chunk), partition)
        for index in range(len(chunks), self.kept):
            tables.delete(table, f"{UNCONFIRMED_KEY}:{index}", partition)
        self.kept = len(chunks)


def _make_current(event: EventT) -> None:
    """Make ``event`` Faust's current event, as its own per-event iteration does.

    Inside ``take_events`` Faust leaves no current event, but a table write needs one: the
    RocksDB store records the source offset each write belongs to. (faust.streams keeps it
    in a context variable; this is the one private name the worker uses.)
    """
    faust_streams._current_event.set(weakref.ref(event))


def _incoming(event: EventT) -> Incoming:
    message = event.message
    return Incoming(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=list(
            message.headers.items()
            if isinstance(message.headers, Mapping)
            else message.headers or ()
        ),
    )

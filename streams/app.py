"""The identity worker: a Faust app that turns raw events into linked events.

Two agents (see streams/README.md for why):

- ``forward`` reads every raw topic (six partitions each, spread over all workers) and
  forwards each message, bytes untouched, to the intake topic with headers saying where it
  was read. The intake topic has one partition per resolver shard (one here), so that every
  record that could match another is resolved by the same resolver, in one order.
- ``resolve`` reads the intake topic in batches and runs :class:`IdentityStage` on each
  message: linked events, identity changes, review records and dead letters are sent with a
  librdkafka producer, and a batch is acknowledged to Faust only once Kafka confirmed all of
  it (at least once); the persons and source ids the batch changed are written to two
  changelogged tables (RocksDB on disk by default). After a restart or a rebalance the
  resolver's in-memory indexes are rebuilt from those tables, so ids stay the same.

Faust's web server answers ``/health/live``, ``/health/ready`` (connected, recovered and
lag below a bound) and ``/metrics/counts`` on ``C2C_WORKER_WEB_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
import faust.streams as faust_streams
from faust.types import EventT

from c2c.errors import ServiceError
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import get_topic
from observability.health import Readiness, readiness
from observability.telemetry import Telemetry
from observability.worker import observe_worker
from producers.publisher import Publisher
from streams.identity.matching import MatchModel, load_model
from streams.identity.resolver import IdentifierHasher, IdentityState, Resolver
from streams.resolution import (
    INTAKE_TOPIC,
    OUTPUT_TOPICS,
    RAW_TOPICS,
    IdentityStage,
    Incoming,
    forwarding_headers,
)

__all__ = ["APP_ID", "WorkerState", "create_app", "faust_broker"]

APP_ID = "c2c-identity"
PERSONS_TABLE = "identity-persons"
SOURCES_TABLE = "identity-sources"
_SOURCE_SEP = "\x1f"
log = logging.getLogger(__name__)


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


@dataclass
class WorkerState:
    """What the worker holds besides Faust's tables: the stage, rebuilt when needed."""

    stage: IdentityStage | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # (topic, partition) -> next offset to process, as the agents saw it
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    failures: list[str] = field(default_factory=list)

    def delivery_failed(self, _context: Any, reason: str) -> None:
        self.failures.append(reason)

    def saw(self, incoming: Incoming) -> None:
        self.positions[(incoming.topic, incoming.partition)] = incoming.offset + 1


def _source_key(key: str) -> tuple[str, str]:
    provider, _, source_id = key.partition(_SOURCE_SEP)
    return provider, source_id


def create_app(
    settings: Settings,
    registry: SchemaRegistry,
    *,
    telemetry: Telemetry | None = None,
    model: MatchModel | None = None,
    app_id: str = APP_ID,
    intake_topic: str = INTAKE_TOPIC,
) -> tuple[faust.App, WorkerState]:
    """The Faust app and the state its agents share. ``app_id`` names the consumer group and
    the tables' changelog topics; tests use their own."""
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
        consumer_auto_offset_reset=settings.streams_start,
        producer_acks=-1,
        table_standby_replicas=0,
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        stream_wait_empty=False,
        # a worker that died is replaced after 10 s, not the default 60 s
        broker_session_timeout=10,
        broker_heartbeat_interval=3,
        broker_max_poll_records=settings.streams_batch_size,
        stream_buffer_maxsize=4 * settings.streams_batch_size,
    )
    state = WorkerState()
    observed = observe_worker(  # metrics (observability/worker.py)
        app,
        telemetry,
        counts=state.counts,
        lag=lambda: worker_readiness(app, state, settings.ready_max_lag),
    )
    raw = app.topic(*RAW_TOPICS, key_serializer="raw", value_serializer="raw")
    intake = app.topic(intake_topic, key_serializer="raw", value_serializer="raw")
    persons = app.Table(PERSONS_TABLE, default=None)
    sources = app.Table(SOURCES_TABLE, default=None)
    decoders = {name: registry.decoder(get_topic(name)) for name in RAW_TOPICS}
    encoders = {name: registry.encoder(get_topic(name)) for name in OUTPUT_TOPICS}
    resolver_model = model if model is not None else load_model(settings.identity_model)
    hasher = IdentifierHasher(settings.identity_secret.get_secret_value().encode())

    def build_stage() -> IdentityStage:
        restored = IdentityState.restore(
            ((str(k), v) for k, v in persons.items() if v is not None),
            ((_source_key(str(k)), str(v)) for k, v in sources.items() if v is not None),
        )
        log.info(
            "identity state rebuilt from tables: %d persons, %d source ids",
            len(restored.profiles),
            len(restored.sources),
        )
        return IdentityStage(
            Resolver(hasher, resolver_model, restored), decoders, encoders, telemetry
        )

    # A short linger: every batch waits for its deliveries before Faust acknowledges it.
    publisher = Publisher(
        settings, registry, on_failure=state.delivery_failed, extra_config={"linger.ms": 5}
    )

    @app.task
    async def _quiet_client_logs() -> None:
        # aiokafka and Faust log every message sent at debug level; building those records
        # cost a tenth of the worker's time even when nothing printed them.
        for name in ("aiokafka", "faust", "mode"):
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))

    async def confirm() -> None:
        # Deliveries are confirmed before the batch is acknowledged to Faust, so an offset
        # is never committed for a message whose results Kafka did not take.
        remaining = await asyncio.to_thread(publisher.flush)
        if remaining or state.failures:
            raise DeliveryError(
                f"{remaining} message(s) unconfirmed and {len(state.failures)} refused "
                f"({'; '.join(state.failures[:3])})"
            )

    @app.agent(raw)
    async def forward(stream: faust.StreamT[bytes]) -> None:
        # Faust's StreamT protocol omits take_events, which its Stream class has.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.streams_batch_size, within=settings.streams_batch_wait_s
        ):
            with (
                _fail_stop("forwarding raw events to the intake topic"),
                observed.batch("forward", events, forwarded_to=intake_topic),
            ):
                for event in events:
                    incoming = _incoming(event)
                    publisher.send(
                        intake_topic,
                        incoming.key,
                        incoming.value or b"",
                        None,
                        forwarding_headers(incoming),
                    )
                    state.saw(incoming)
                await confirm()
                state.counts["forwarded"] = state.counts.get("forwarded", 0) + len(events)

    @app.agent(intake)
    async def resolve(stream: faust.StreamT[bytes]) -> None:
        # Faust's StreamT protocol omits take_events, which its Stream class has.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.streams_batch_size, within=settings.streams_batch_wait_s
        ):
            with _fail_stop("resolving identities"), observed.batch("identity", events) as batch:
                if state.stage is None:
                    state.stage = build_stage()
                stage = state.stage
                changed: dict[str, dict[str, Any]] = {}
                first_seen: dict[tuple[str, str], str] = {}
                for event in events:
                    incoming = _incoming(event)
                    processed = stage.process(incoming)
                    for out in processed.outgoing:
                        publisher.send(out.topic, out.key, out.value, None, out.headers)
                    batch.sent(processed.outgoing)
                    changed.update(processed.persons)
                    first_seen.update(processed.sources)
                    state.saw(incoming)
                # Each person changed in the batch is written once, as it is at the end.
                _make_current(events[-1])
                for person_id, snapshot in changed.items():
                    persons[person_id] = snapshot
                for (provider, source_id), person_id in first_seen.items():
                    sources[f"{provider}{_SOURCE_SEP}{source_id}"] = person_id
                await confirm()
                state.counts.update(stage.counts)

    @app.on_rebalance_complete.connect
    async def _forget_state(*_args: Any, **_kwargs: Any) -> None:
        # Partitions may have moved: rebuild from the (recovered) tables on the next batch.
        state.stage = None

    @app.page("/health/live")
    async def live(view: Any, request: Any) -> Any:
        return view.json({"live": True})

    @app.page("/health/ready")
    async def ready(view: Any, request: Any) -> Any:
        answer = await worker_readiness(app, state, settings.ready_max_lag)
        return view.json(answer.as_json(), status=200 if answer.ready else 503)

    @app.page("/metrics/counts")
    async def counts(view: Any, request: Any) -> Any:
        return view.json(dict(state.counts))

    return app, state


async def worker_readiness(app: faust.App, state: WorkerState, max_lag: int) -> Readiness:
    """Readiness of this worker from its consumer's assignment and high-water marks."""
    assigned = app.consumer.assignment() if app.consumer is not None else set()
    lag = {}
    for tp in assigned:
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        high = app.consumer.highwater(tp)
        if high is None:
            continue
        # the next offset after the last one processed; before any, where reading starts
        done = state.positions.get((tp.topic, tp.partition))
        if done is None:
            done = await app.consumer.position(tp) or 0
        lag[f"{tp.topic}[{tp.partition}]"] = max(0, int(high) - int(done))
    return readiness(
        connected=bool(assigned), recovering=bool(app.in_recovery), lag=lag, max_lag=max_lag
    )


class DeliveryError(ServiceError):
    """Kafka did not take what the worker sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="worker.delivery")


@contextlib.contextmanager
def _fail_stop(doing: str) -> Iterator[None]:
    """Any error while ``doing`` ends the process at once, before Faust acknowledges the
    batch: Faust would otherwise commit the offsets of messages whose results were never
    sent. The batch is read again after the restart (and resolves to the same ids)."""
    try:
        yield
    except BaseException as exc:
        log.critical("stopping the worker: failed while %s: %r", doing, exc, exc_info=True)
        logging.shutdown()
        os._exit(70)


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

"""The sharded resolver's rounds over Kafka (issue #22; streams/README.md, Scaling out).

streams/identity/sharding.py resolves on N shards in rounds (PREPARE, PROBE, SCORE, APPLY)
that a :class:`~streams.identity.sharding.ShardSet` carries. Here they go through three
topics:

- ``<app id>-shard-calls`` (N partitions, 7 days): the decider's :class:`KafkaShards`
  writes shard i's call of each reading round (prepare, probe, score) to partition i.
- ``<app id>-shard-applies`` (N partitions, 7 days): each epoch's writes, shard i's on
  partition i.
- ``<app id>-shard-replies`` (1 partition): the answers, which :class:`KafkaShards` reads.
- ``<app id>-shard-changelog`` (N partitions, compacted): each shard's keys and their
  values as its holder applied them, and the apply offset they reflect.

Rounds of one shard on two topics cannot overtake each other where it matters: the decider
sends an epoch's probe only once every shard has answered the last epoch's apply (only the
next epoch's prepare, which reads no state, is in flight beside an apply).

:class:`ShardHost` serves shards: a consumer of both topics in the group
``<app id>-shard-hosts`` (range assignment: partition i of both on one host), so that
Kafka's group protocol spreads the N shards over however many hosts run and moves a lost
host's to the others (after the session timeout, 10 s). A host taking a shard takes its
state from a standby copy it keeps, its store on disk (streams/shard_stores.py) or else the
changelog, and replays the apply calls after the one that state reflects, up to the
group's committed offset; then it serves. A host answers a call, then commits past it; killed in
between, the next holder answers the call again and :class:`KafkaShards` keeps the first
answer. So a lost host costs the session timeout and a replay, never a round: the decider
waits and goes on, with the same result.

Every message is sealed under the identity secret (streams/identity/wire.py) and cut into
chunks the broker takes. A call a host cannot serve (a message that does not open, a round
that raises) is answered with its reason and committed past: the decider stops with that
reason (a refusal repeats, so it is never retried).

The identity worker decides through these with ``C2C_STREAMS_RESOLVER=shards``
(streams/worker_decider.py): its decider's failover is the intake partition's, from the
decider's log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from c2c.errors import ConfigError, ServiceError
from c2c.kafka import CONSUMER_LIVENESS, read_to_end, topic_partitions
from c2c.serde import SerdeError
from c2c.settings import Settings
from c2c.topics import (
    Topic,
    shard_applies_topic,
    shard_calls_topic,
    shard_changelog_topic,
    shard_decider_topic,
    shard_replies_topic,
)
from streams.identity import wire
from streams.identity.resolver import IdentityState
from streams.identity.sealing import Sealer
from streams.identity.sharding import EpochWrites, Shard, restore_entry, shard_entries
from streams.shard_messages import (
    CALL,
    CHUNK,
    ERROR,
    Chunks,
    flush_or_raise,
    headers_of,
    send_chunks,
    shard_producer,
)
from streams.shard_stores import ShardStores

__all__ = [
    "METHODS",
    "KafkaShards",
    "ShardHost",
    "ShardTopics",
    "host_group",
    "shard_topics",
]

log = logging.getLogger(__name__)

METHODS = frozenset({"prepare", "probe", "score", "apply"})
_STANDBY_PLAN_S = 3.0  # how often a host asks the group who holds which shard


class ShardTopics(NamedTuple):
    """The topics of one sharded resolver (see the module's doc)."""

    calls: Topic
    applies: Topic
    replies: Topic
    changelog: Topic
    decider: Topic


def shard_topics(app_id: str, shards: int) -> ShardTopics:
    """The topics of ``app_id``'s sharded resolver of ``shards`` shards."""
    return ShardTopics(
        shard_calls_topic(app_id, shards),
        shard_applies_topic(app_id, shards),
        shard_replies_topic(app_id),
        shard_changelog_topic(app_id, shards),
        shard_decider_topic(app_id),
    )


def host_group(app_id: str) -> str:
    """The consumer group of ``app_id``'s shard hosts."""
    return f"{app_id}-shard-hosts"


class KafkaShards:
    """:class:`~streams.identity.sharding.ShardSet` of ``count`` shards served by
    :class:`ShardHost` processes through ``app_id``'s topics (which must exist with
    ``count`` calls partitions). ``timeout_s``: the longest wait for a round's answers
    with none arriving (a lost host's partition moves in about the session timeout)."""

    def __init__(
        self,
        settings: Settings,
        app_id: str,
        count: int,
        sealer: Sealer,
        *,
        timeout_s: float = 120.0,
    ) -> None:
        topics = shard_topics(app_id, count)
        self._calls, self._applies = topics.calls.name, topics.applies.name
        self._replies = topics.replies.name
        self._count = count
        self._sealer = sealer
        self._timeout_s = timeout_s
        self._run = uuid.uuid4().hex[:12]
        self._round = 0
        self._pending: deque[int] = deque()
        self._arrived: dict[tuple[int, int], Any] = {}
        self._chunks = Chunks()
        self._errors: list[str] = []
        self._producer = shard_producer(settings)
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"{app_id}-decider-{self._run}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5,
                }
            )
        )
        held = len(topic_partitions(settings, self._consumer, self._calls))
        if held != count:
            raise ConfigError(
                f"{self._calls} has {held} partitions and {count} shards were asked for: the "
                f"shard count is fixed when {app_id}'s topics are made (a key's shard is its "
                "hash modulo it); use the same count (C2C_STREAMS_SHARDS, --shards) or a new "
                "app id",
                code="identity.shard_count",
            )
        # from the replies' end as it is now: answers to earlier runs are not ours
        place = TopicPartition(self._replies, 0)
        _low, high = self._consumer.get_watermark_offsets(place, timeout=30)
        self._consumer.assign([TopicPartition(self._replies, 0, high)])
        self.waited = 0.0  # seconds spent waiting for answers

    @property
    def count(self) -> int:
        return self._count

    def send(self, method: str, arguments: Sequence[tuple[Any, ...]]) -> None:
        self._round += 1
        errors = self._errors
        for shard, args in enumerate(arguments):
            call = f"{self._run}:{self._round}:{shard}"
            payload = wire.encode(self._sealer, call, (method, args))
            topic = self._applies if method == "apply" else self._calls
            send_chunks(self._producer, errors, topic, shard, call, payload)
        self._producer.poll(0)
        flush_or_raise(
            self._producer, f"sending round {self._round} ({method}) to the shards", errors
        )
        self._pending.append(self._round)

    def receive(self) -> list[Any]:
        started = time.perf_counter()
        round_ = self._pending.popleft()
        wanted = [(round_, shard) for shard in range(self._count)]
        last_progress = time.monotonic()
        while any(place not in self._arrived for place in wanted):
            if time.monotonic() - last_progress > self._timeout_s:
                missing = [shard for r, shard in wanted if (r, shard) not in self._arrived]
                raise ServiceError(
                    f"shard(s) {missing} did not answer round {round_} in "
                    f"{self._timeout_s:.0f} s: is a `c2c identity shard-host` running for "
                    f"{self._calls}?",
                    code="identity.shards_silent",
                )
            # poll returns at the first message; consume(n, timeout) would wait for n
            first = self._consumer.poll(0.2)
            arrived = [] if first is None else [first, *self._consumer.consume(1000, 0)]
            for message in arrived:
                if message.error() is not None:
                    continue
                if self._take(message, round_):
                    last_progress = time.monotonic()
        self.waited += time.perf_counter() - started
        return [self._arrived.pop(place) for place in wanted]

    def _take(self, message: Message, oldest: int) -> bool:
        headers = headers_of(message)
        call = headers.get(CALL, "")
        run, _, rest = call.partition(":")
        if run != self._run:
            return False
        round_text, _, shard_text = rest.partition(":")
        place = (int(round_text), int(shard_text))
        error = headers.get(ERROR)
        if error is not None:
            raise ServiceError(
                f"shard {place[1]} could not serve round {place[0]}: {error}",
                code="identity.shard_failed",
            )
        payload = self._chunks.add(call, headers[CHUNK], message.value() or b"")
        if payload is not None and place[0] >= oldest and place not in self._arrived:
            self._arrived[place] = wire.decode(self._sealer, call, payload)
        return True  # (a second answer, from a shard's next holder, is dropped)

    def close(self) -> None:
        self._consumer.close()
        self._producer.flush(10)


class ShardHost:
    """Serves the shards Kafka's group assigns it (see the module's doc). ``make_shard``
    makes a shard over a state (keyed and with the model of the decider's); ``stores``:
    each shard's state on disk, else in memory (rebuilt from its changelog); ``name``:
    the host's, stable across its restarts (Kafka's static membership). ``standbys``: how
    many hosts keep a standby copy of each shard (named hosts only): the ``standbys``
    hosts after its holder in the order of their names each tail its apply calls, so that
    the one given the shard when its holder is lost replays only what it had not read."""

    def __init__(
        self,
        settings: Settings,
        app_id: str,
        make_shard: Callable[[IdentityState | None], Shard],
        sealer: Sealer,
        key_secret: bytes,
        stores: ShardStores | None = None,
        name: str | None = None,
        standbys: int = 0,
    ) -> None:
        self._stores = stores
        # block keys (names in them) on the changelog as keyed hashes
        self._key_hash = hmac.digest(key_secret, b"c2c shard-changelog block keys", "sha256")
        self._group = host_group(app_id)
        self._instance = f"{self._group}-{name}" if name else None
        self._standby_count = standbys if name else 0
        # partition -> (a standby copy of its shard, the next apply offset it has not read)
        self.standbys: dict[int, tuple[Shard, int]] = {}
        self._standby_chunks = Chunks()
        self._planned = 0.0  # when the standbys were last planned
        self._settings = settings
        topics = shard_topics(app_id, 1)
        self._calls, self._applies = topics.calls.name, topics.applies.name
        self._replies, self._changelog = topics.replies.name, topics.changelog.name
        self._make_shard = make_shard
        self._sealer = sealer
        self.shards: dict[int, Shard] = {}
        # partition -> offset of its applies after the last one served
        self._next: dict[int, int] = {}
        self._chunks = Chunks()
        self._errors: list[str] = []
        self.served = 0
        self.replayed = 0  # apply calls replayed into shards taken over
        self._producer = shard_producer(settings)
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": host_group(app_id),
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 5,
                    # a shard's calls and applies (partition i of both) on one host
                    "partition.assignment.strategy": "range",
                    **CONSUMER_LIVENESS,
                    # static membership: a host started again within the session timeout
                    # gets its shards back with no rebalance (and none goes to another
                    # host that holds no store of it)
                    **({"group.instance.id": self._instance} if self._instance else {}),
                }
            )
        )
        self._tail: Consumer | None = None
        self._admin: AdminClient | None = None
        if self._standby_count:
            self._admin = AdminClient(settings.kafka_config())
            self._tail = Consumer(
                settings.kafka_config(
                    **{
                        "group.id": f"{self._group}-standby-{name}",
                        "enable.auto.commit": False,
                        "fetch.wait.max.ms": 5,
                    }
                )
            )

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve calls until ``stop`` is set (or forever)."""
        self._consumer.subscribe(
            [self._calls, self._applies], on_assign=self._assigned, on_revoke=self._revoked
        )
        try:
            while stop is None or not stop.is_set():
                if self._tail is not None and self._admin is not None:
                    self._keep_standbys(self._tail, self._admin)
                message = self._consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("shard calls: %s", error)
                    continue
                self._serve(message)
        finally:
            self._consumer.close()
            if self._tail is not None:
                self._tail.close()
            self._producer.flush(10)
            if self._stores is not None:
                self._stores.close_all()  # on disk: a restart replays no apply call

    def _serve(self, message: Message) -> None:
        partition = int(message.partition() or 0)
        headers = headers_of(message)
        call = headers.get(CALL, "")
        shard = self.shards.get(partition)
        if shard is None:  # a partition being taken over: served once it is rebuilt
            return
        error = ""
        answer: Any = None
        try:
            payload = self._chunks.add(call, headers.get(CHUNK, "0/1"), message.value() or b"")
            if payload is None:
                return  # committed with the call's last chunk
            method, args = wire.decode(self._sealer, call, payload)
            if method not in METHODS or (method == "apply") != (message.topic() == self._applies):
                raise SerdeError(
                    f"call {call} on {message.topic()} asks for {method!r}: not a round of "
                    "that topic",
                    code="identity.wire",
                )
            answer = getattr(shard, method)(*args)
            if method == "apply":  # its keys' values now, before the call is answered
                self._log_entries(partition, shard, args[0], int(message.offset() or 0) + 1)
        except SerdeError as exc:  # ours: it names the call, never a value
            error = str(exc)[:500]
            log.error("shard %d could not serve call %s: %s", partition, call, error)
        except Exception as exc:  # the call is answered with why, and not retried
            error = _where(exc)
            log.error(
                "shard %d could not serve call %s: %s\n%s",
                partition,
                call,
                error,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        if error:
            send_chunks(self._producer, self._errors, self._replies, 0, call, b"", [(ERROR, error)])
        else:
            send_chunks(
                self._producer,
                self._errors,
                self._replies,
                0,
                call,
                wire.encode(self._sealer, call, answer),
            )
        flush_or_raise(self._producer, f"answering call {call}", self._errors)
        topic = str(message.topic())
        next_offset = int(message.offset() or 0) + 1
        if topic == self._applies:
            if self._stores is not None:
                self._stores.commit(partition, next_offset)  # before the group's offset
            self._next[partition] = next_offset
        self._consumer.commit(
            offsets=[TopicPartition(topic, partition, next_offset)], asynchronous=False
        )
        self.served += 1

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = [
            place
            for place in consumer.committed(partitions, timeout=30)
            if place.topic == self._applies
        ]
        held = {int(place.partition) for place in partitions}
        for partition in set(self.shards) - held:  # moved to another host
            del self.shards[partition]
            self._next.pop(partition, None)
            if self._stores is not None:
                self._stores.close(partition)
        rebuild: dict[int, int] = {}
        for place in committed:
            partition, offset = int(place.partition), int(place.offset)
            start = 0 if offset == OFFSET_INVALID or offset < 0 else offset
            if partition in self.shards and self._next.get(partition) == start:
                continue  # held it, and served every call it committed: current
            rebuild[partition] = start
        if rebuild:
            self._rebuild(rebuild)
        log.info("shard host: holds shard(s) %s", sorted(self.shards))

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # kept: if the group gives them back unchanged (_assigned checks), no replay
        self._chunks.clear()

    def _rebuild(self, partitions: dict[int, int]) -> None:
        """Each shard of ``partitions`` (partition -> committed offset) as its apply calls
        before that offset leave it: its standby's, its store's (on disk) or its
        changelog's state, and the apply calls after the one that state reflects."""
        shards: dict[int, Shard] = {}
        starts: dict[int, int] = {}
        for partition in partitions:
            standby = self.standbys.pop(partition, None)
            if standby is not None:  # kept up to date: only the apply calls after it
                shards[partition], starts[partition] = standby
                log.info("shard host: standby for shard(s) %s", sorted(self.standbys))
                source = "standby"
            else:
                shards[partition], starts[partition], source = self._opened(partition)
            log.info(
                "shard host: shard %d from its %s, at apply offset %d",
                partition,
                source,
                starts[partition],
            )
        for partition, start in starts.items():
            low, _high = self._consumer.get_watermark_offsets(
                TopicPartition(self._applies, partition), timeout=30
            )
            if start < low:
                raise ServiceError(
                    f"shard {partition}: its state reflects apply calls up to offset {start}, "
                    f"and {self._applies} keeps them from {low} only: the calls between are "
                    "lost, and the shard cannot be rebuilt (was its changelog deleted?)",
                    code="identity.shard_state",
                )
        since = {(self._applies, p): starts[p] for p in partitions}
        until = {(self._applies, p): partitions[p] for p in partitions}
        chunks = Chunks()
        replayed = 0
        for message in read_to_end(
            self._settings, [self._applies], since=since, until=until, partitions=partitions
        ):
            headers = headers_of(message)
            call = headers[CALL]
            payload = chunks.add(call, headers[CHUNK], message.value() or b"")
            if payload is None:
                continue
            _method, args = wire.decode(self._sealer, call, payload)
            partition = int(message.partition() or 0)
            shards[partition].apply(*args)
            if self._stores is not None:
                self._stores.commit(partition, int(message.offset() or 0) + 1)
            replayed += 1
        for partition, offset in partitions.items():
            self.shards[partition] = shards[partition]
            self._next[partition] = offset
        self.replayed += replayed
        log.info(
            "shard host: rebuilt shard(s) %s from %d apply calls", sorted(partitions), replayed
        )

    def _opened(self, partition: int) -> tuple[Shard, int, str]:
        """Shard ``partition`` as this host keeps it (its store on disk), else from its
        changelog; the applies offset it reflects; which of the two."""
        if self._stores is None:
            state, offset = None, 0
        else:
            self._stores.close(partition)
            state, offset = self._stores.open(partition)
        shard = self._make_shard(state)
        if offset:
            return shard, offset, "store"
        offset = self._restore(partition, shard)  # nothing kept here: the changelog's values
        if self._stores is not None and offset:
            self._stores.commit(partition, offset)
        return shard, offset, "changelog"

    def _log_entries(
        self, partition: int, shard: Shard, writes: EpochWrites, next_offset: int
    ) -> None:
        """The keys ``writes`` changed on ``shard``, and the applies offset it now
        reflects, on its changelog partition (sent with the call's answer, confirmed
        before its commit)."""
        for kind, key, value in shard_entries(shard.state, writes):
            self._log(partition, kind, key, value)
        self._log(partition, "offset", "", next_offset)

    def _log(self, partition: int, kind: str, key: Any, value: Any) -> None:
        if kind == "block":
            named = hmac.digest(self._key_hash, str(key).encode(), hashlib.sha256)[:20].hex()
        elif kind == "source":
            named = f"{key[0]}:{key[1]}"
        else:
            named = str(key)
        record = f"{kind}:{named}"
        payload = wire.encode(self._sealer, record, (kind, key, value))
        send_chunks(self._producer, self._errors, self._changelog, partition, record, payload)

    def _restore(self, partition: int, shard: Shard) -> int:
        """``shard`` (empty) from its changelog partition; the applies offset it reflects
        (0: none logged)."""
        offset = 0
        chunks = Chunks()
        for message in read_to_end(self._settings, [self._changelog], partitions=[partition]):
            headers = headers_of(message)
            record = headers.get(CALL, "")
            payload = chunks.add(record, headers.get(CHUNK, "0/1"), message.value() or b"")
            if payload is None:
                continue
            kind, key, value = wire.decode(self._sealer, record, payload)
            if kind == "offset":
                offset = int(value)
            else:
                restore_entry(shard.state, kind, key, value)
        return offset

    def _keep_standbys(self, tail: Consumer, admin: AdminClient) -> None:
        """Plan the standbys every few seconds; apply the apply calls they have not read."""
        now = time.monotonic()
        if now - self._planned >= _STANDBY_PLAN_S:
            self._planned = now
            self._plan_standbys(tail, admin)
        if not self.standbys:
            return
        for message in tail.consume(500, 0):
            if message.error() is not None:
                continue
            partition = int(message.partition() or 0)
            standby = self.standbys.get(partition)
            if standby is None:
                continue
            headers = headers_of(message)
            call = headers.get(CALL, "")
            offset = int(message.offset() or 0) + 1
            payload = self._standby_chunks.add(
                call, headers.get(CHUNK, "0/1"), message.value() or b""
            )
            if payload is not None:
                _method, args = wire.decode(self._sealer, call, payload)
                standby[0].apply(*args)
                if self._stores is not None:
                    self._stores.commit(partition, offset)
            self.standbys[partition] = (standby[0], offset)

    def _plan_standbys(self, tail: Consumer, admin: AdminClient) -> None:
        """The shards this host keeps a standby of: for each shard held by another, if
        this host is among the ``standbys`` members after its holder (by name)."""
        try:
            described = admin.describe_consumer_groups([self._group])[self._group]
            members = sorted(
                described.result(timeout=10).members,
                key=lambda m: m.group_instance_id or m.member_id,
            )
        except Exception as exc:  # an outage: planned again later
            log.warning("shard host: the group could not be described (%s)", exc)
            return
        names = [m.group_instance_id or m.member_id for m in members]
        if self._instance not in names:
            return
        mine = names.index(self._instance)
        steps = range(1, min(self._standby_count, len(members) - 1) + 1)
        held = {
            int(place.partition): at
            for at, member in enumerate(members)
            for place in member.assignment.topic_partitions
            if place.topic == self._applies
        }
        plan = {
            partition
            for partition, at in held.items()
            if any((at + step) % len(members) == mine for step in steps)
        } - set(self.shards)
        # a standby of a shard nobody holds now (its holder lost, the group rebalancing)
        # is kept: it is the copy the shard's next holder wants
        plan |= {partition for partition in self.standbys if partition not in held}
        if plan == set(self.standbys):
            return
        for partition in set(self.standbys) - plan:
            del self.standbys[partition]
            if self._stores is not None:
                self._stores.close(partition)
        for partition in plan - set(self.standbys):
            shard, offset, _source = self._opened(partition)
            self.standbys[partition] = (shard, offset)
        self._standby_chunks.clear()
        tail.assign(
            [TopicPartition(self._applies, p, offset) for p, (_s, offset) in self.standbys.items()]
        )
        log.info("shard host: standby for shard(s) %s", sorted(self.standbys))


def _where(exc: BaseException) -> str:
    """An exception's type and where it was raised, not its message: a message may hold a
    value of the state (a block key holds a name), and the answer's headers are not sealed."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} ({last.name})"

"""The identity worker through Faust: sustained records/s and publication-to-linked latency,
side by side with the same resolution in this process without Kafka (the stage's limit).

    .venv/bin/python -m bench.identity_worker [--people N] [--rate R] [--seconds S] [--split]
        [--shards N]

Needs the local stack (`c2c services up`, topics and schemas). Rows, all from one run:

- resolver in one process: `Resolver.resolve` on every record (no Kafka, no Avro);
- stage in one process: `IdentityStage.process` on every record in wire format (decode,
  resolve, encode what to publish; no Kafka): what one resolver shard can do at most;
- worker, backlog: a synth of N people is published while the worker is not running (its
  forwarder group's offsets set at the raw topics' ends first), then the worker is started
  and timed from 10 % to 90 % of the records handled (sustained rate), and from its launch
  to the last record (start-up and recovery included). CPU: user+system seconds of the
  worker process(es) over the sustained window, as records per CPU-second (the machine is
  shared: this figure moves less than wall time), and of the resolving process alone
  (with ``--split``: the `--role resolve` one, the pacing stage).

- worker through N shards (``--shards N``): the same backlog into a worker with
  ``C2C_STREAMS_RESOLVER=shards`` deciding over N shard hosts of its own (N shards, state
  in memory, streams/worker_decider.py); its CPU counts the hosts' too.

Latency (first, with a worker of its own that has nothing else to do): replay at R
records/s for S seconds; for each linked event, the broker timestamp of the linked message
minus that of the raw message (CreateTime stamps, one machine's clock), p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench._harness import print_table
from c2c.child import free_port
from c2c.kafka import Offsets, end_offsets, read_to_end
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import Settings, load_settings
from c2c.topics import get_topic
from cli.shard_hosts import ShardHosts
from cli.worker_process import WorkerProcess
from producers.files import in_time_order, open_folder, replay
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.matching import DEFAULT_MODEL
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.linking import LINKED_TOPICS
from streams.resolution import OUTPUT_TOPICS, RAW_TOPICS, IdentityStage, Incoming


def _cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _stage_rate(registry: SchemaRegistry, rows: list[MappedRow]) -> tuple[float, float]:
    """(records/s, records per CPU-second) of the stage alone."""
    encoders = {name: registry.encoder(get_topic(name)) for name in OUTPUT_TOPICS}
    decoders = {name: registry.decoder(get_topic(name)) for name in RAW_TOPICS}
    raw_encoders = {name: registry.encoder(get_topic(name)) for name in RAW_TOPICS}
    messages = [
        Incoming(row.topic, 0, i, row.key, raw_encoders[row.topic].encode(row.event))
        for i, row in enumerate(rows)
    ]
    stage = IdentityStage(Resolver(IdentifierHasher(b"bench"), DEFAULT_MODEL), decoders, encoders)
    started, cpu = time.perf_counter(), time.process_time()
    for message in messages:
        stage.process(message)
    return len(messages) / (time.perf_counter() - started), len(messages) / (
        time.process_time() - cpu
    )


def _backlog(
    settings: Settings,
    worker: WorkerProcess,
    folder: Path,
    records: int,
    others: Iterable[int] = (),
) -> tuple[float, float, float, float]:
    """(sustained records/s, records/s from launch, records per CPU-second of the worker's
    processes and the processes ``others`` (shard hosts), and of the resolving one alone)."""
    others = list(others)
    worker.begin_here()
    replay(settings, folder)  # published before the worker runs: a backlog
    launched = time.perf_counter()
    worker.launch()
    marks: dict[str, tuple[float, float, float]] = {}
    resolving = [c.process.pid for c in worker.children[-1:] if c.process is not None]
    deadline = launched + 1800
    while len(marks) < 3 and time.perf_counter() < deadline:
        exited = [c.name for c in worker.children if c.process and c.process.poll() is not None]
        if exited:
            raise RuntimeError(f"{', '.join(exited)} exited; log {worker.children[0].log}")
        try:
            handled = worker.handled()
        except (OSError, ValueError):
            handled = 0
        now = time.perf_counter()
        for name, share in (("10%", 0.1), ("90%", 0.9), ("end", 1.0)):
            if name not in marks and handled >= share * records:
                marks[name] = (
                    now,
                    _cpu_seconds([*worker.pids, *others]),
                    _cpu_seconds(resolving),
                )
        time.sleep(0.05)
    if len(marks) < 3:
        raise RuntimeError(f"the worker handled only {worker.handled()} of {records} records")
    (t10, cpu10, res10), (t90, cpu90, res90) = marks["10%"], marks["90%"]
    if t90 - t10 < 1.0 or min(cpu90 - cpu10, res90 - res10) <= 0:
        raise SystemExit(
            f"the worker handled 10-90 % of the backlog ({0.8 * records:,.0f} of {records:,} "
            f"records) in {t90 - t10:.2f} s, too short to measure a sustained rate by "
            "looking every 0.05 s: give it more people (--people 2000 or more)"
        )
    window = 0.8 * records
    return (
        window / (t90 - t10),
        records / (marks["end"][0] - launched),
        window / (cpu90 - cpu10),
        window / (res90 - res10),
    )


# the raw topics whose events are linked, and their linked topics: where latency is read
_LATENCY_RAW = [t for t in RAW_TOPICS if t in LINKED_TOPICS]
_LATENCY_LINKED = list(LINKED_TOPICS.values())


def _latencies(
    settings: Settings, registry: SchemaRegistry, since: Offsets, wanted: set[str]
) -> list[float]:
    """Raw -> linked delays (s) of the events ``wanted``, published after the marks
    ``since`` (of _LATENCY_RAW and _LATENCY_LINKED)."""
    raw_sent: dict[str, float] = {}
    decoders = {t: registry.decoder(get_topic(t)) for t in _LATENCY_RAW}
    for message in read_to_end(settings, list(decoders), since=since):
        try:
            raw = decoders[str(message.topic())].decode(message.value() or b"")
        except SerdeError:
            continue  # other runs' bad input (tests publish some on purpose)
        if str(raw["event_id"]) in wanted:
            raw_sent[str(raw["event_id"])] = message.timestamp()[1] / 1000
    linked_decoders = {t: registry.decoder(get_topic(t)) for t in _LATENCY_LINKED}
    delays = []
    for message in read_to_end(settings, list(linked_decoders), since=since):
        value = linked_decoders[str(message.topic())].decode(message.value() or b"")
        sent = raw_sent.get(str(value["event_id"]))
        if sent is not None:
            delays.append(message.timestamp()[1] / 1000 - sent)
    return sorted(delays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--split", action="store_true", help="forwarder and resolver in two processes"
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="also a worker deciding over this many shards on as many shard hosts",
    )
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    shape = "2 processes: forward, resolve" if args.split else "1 process"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        synthesize(SynthConfig(people=args.people, seed=seed), NoiseConfig(), folder)
        rows = [o for _i, _r, o in in_time_order(open_folder(folder)) if isinstance(o, MappedRow)]

        # The limits: the same records resolved in this process, no Kafka.
        resolver = Resolver(IdentifierHasher(b"bench"), DEFAULT_MODEL)
        started, cpu = time.perf_counter(), time.process_time()
        for row in rows:
            resolver.resolve(row.event["provider"], row.event["person"])
        in_process = len(rows) / (time.perf_counter() - started)
        in_process_cpu = len(rows) / (time.process_time() - cpu)
        stage, stage_cpu = _stage_rate(registry, rows)

        # Latency at a fixed offered load, into a worker that has nothing else to do.
        latency_folder = Path(tmp) / "latency"
        people = max(50, int(args.rate * args.seconds / 30))
        synthesize(SynthConfig(people=people, seed=seed + 1), NoiseConfig(), latency_folder)
        wanted = {
            str(o.event["event_id"])
            for _i, _r, o in in_time_order(open_folder(latency_folder))
            if isinstance(o, MappedRow)
        }
        offered = len(wanted)

        def new_worker(log: str, environment: dict[str, str] | None = None) -> WorkerProcess:
            return WorkerProcess(
                settings,
                Path(tmp) / log,
                port=free_port(),
                split=args.split,
                forward_port=free_port(),
                environment=environment,
            )

        worker = new_worker("latency.log")
        try:
            worker.start()
            since = end_offsets(settings, [*_LATENCY_RAW, *_LATENCY_LINKED])
            replay(settings, latency_folder, rate=args.rate)
            worker.drained(offered, timeout_s=1800)
        finally:
            worker.stop()

        # Throughput: a fresh worker started on a backlog.
        worker = new_worker("worker.log")
        try:
            sustained, from_launch, per_cpu, resolver_cpu = _backlog(
                settings, worker, folder, len(rows)
            )
            worker.drained(len(rows), timeout_s=600)
            counts = worker.counts()
        finally:
            worker.stop()
        sharded: tuple[float, float, float, float] | None = None
        if args.shards:
            environment = {
                "C2C_STREAMS_RESOLVER": "shards",
                "C2C_STREAMS_SHARDS": str(args.shards),
            }
            worker = new_worker("sharded.log", environment)
            hosts = ShardHosts(
                settings, worker.app_id, args.shards, args.shards, Path(tmp) / "hosts"
            )
            try:
                hosts.wait_settled()
                sharded = _backlog(
                    settings,
                    worker,
                    folder,
                    len(rows),
                    others=[p.pid for p in hosts.processes],
                )
                worker.drained(len(rows), timeout_s=600)
            finally:
                worker.stop()
                hosts.stop()
    delays = _latencies(settings, registry, since, wanted)
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(
        f"{len(rows):,} records of {args.people:,} synthetic people (seed {seed}); worker: {shape}"
    )
    print_table(
        ["path", "records/s", "vs in-process", "per CPU-s", "vs in-process"],
        [
            [
                "resolver in one process (no Kafka, no Avro)",
                f"{in_process:,.0f}",
                "1.00",
                f"{in_process_cpu:,.0f}",
                "1.00",
            ],
            [
                "stage in one process (decode, resolve, encode; no Kafka)",
                f"{stage:,.0f}",
                f"{stage / in_process:.2f}",
                f"{stage_cpu:,.0f}",
                f"{stage_cpu / in_process_cpu:.2f}",
            ],
            [
                "worker through Faust, backlog, sustained (10-90 %)",
                f"{sustained:,.0f}",
                f"{sustained / in_process:.2f}",
                f"{per_cpu:,.0f}",
                f"{per_cpu / in_process_cpu:.2f}",
            ],
            [
                "  the resolving process alone (CPU)" if args.split else "  (one process)",
                "",
                "",
                f"{resolver_cpu:,.0f}",
                f"{resolver_cpu / in_process_cpu:.2f}",
            ],
            [
                "worker through Faust, backlog, from launch to last",
                f"{from_launch:,.0f}",
                f"{from_launch / in_process:.2f}",
                "",
                "",
            ],
            *_sharded_rows(args.shards, sharded, sustained, per_cpu),
        ],
    )
    print(
        f"worker, backlog: {counts.get('forwarded', 0) / max(1, counts.get('packs', 0)):,.0f} "
        f"records per intake pack, {len(rows) / max(1, counts.get('batches', 0)):,.0f} per "
        f"resolve batch, {counts.get('persons_written', 0) / len(rows):.2f} table writes of "
        "a person per record"
    )
    print(
        f"latency raw -> linked at {args.rate:,.0f} records/s offered, {len(delays):,} events: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


def _sharded_rows(
    shards: int,
    sharded: tuple[float, float, float, float] | None,
    sustained: float,
    per_cpu: float,
) -> list[list[str]]:
    """The rows of the worker through ``shards`` shards: its figures against the worker's
    own resolver (the ratios), none if it did not run."""
    if sharded is None:
        return []
    rate, from_launch, cpu, decider_cpu = sharded
    return [
        [
            f"worker through {shards} shard(s) on {shards} host(s), backlog, sustained",
            f"{rate:,.0f}",
            f"{rate / sustained:.2f} x worker",
            f"{cpu:,.0f}",
            f"{cpu / per_cpu:.2f} x worker",
        ],
        [
            "  the deciding worker alone (CPU)",
            "",
            "",
            f"{decider_cpu:,.0f}",
            "",
        ],
        ["  from launch to last", f"{from_launch:,.0f}", "", "", ""],
    ]


if __name__ == "__main__":
    main()

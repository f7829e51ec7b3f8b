"""The whole pipeline: sustained events/s from replay to rows in ClickHouse, latency from
publication to visible in the outcome tables, and the sink beside a plain insert.

    .venv/bin/python -m bench.end_to_end [--people N] [--rate R] [--seconds S] [--repeats K]

Needs the local stack (`c2c services up`). The identity worker (fresh group, intake topic
and state) and the sink (fresh group, its own embedded ClickHouse in a temporary folder)
run as child processes, as `make demo` runs them; both read only what arrives after they
are ready.

- Maximum: a synth of N people is replayed as fast as replay goes; events/s = records
  replayed / (replay start -> the sink has written every linked event and lags nowhere).
  When the forwarder, the resolver and the sink were each done is printed too (the
  forwarder as of its last lag check, at most 0.5 s old): the stage that ends long after
  the one before it is the one that bounds the rate.
- Latency, at the maximum and at R events/s offered for S seconds: for each linked event,
  from the raw message's broker CreateTime (the replay publishing it) to the first moment
  the sink group's committed offset passes the linked message. The sink commits only after
  ClickHouse took the batch, and outcome_* are views over the fact tables read at query
  time, so a committed row is in the next outcome query: this is an upper bound on
  "visible", by at most the commit call and the 50 ms polling step. One machine's clock.
  The worker's part (raw message to linked message, broker CreateTimes) is shown too.
- - CPU: user+system seconds of each process (replay, which runs in this process; the
  forwarder and the resolver, run apart as the demo runs them; the sink; the local Kafka
  broker) over each phase, per record replayed: what the throughput would need of two free
  cores, far less noisy than wall time on a shared machine.
- Sink against plain insert: the linked events, identity changes and opt-out decisions of
  both phases (the maximum and the paced run: everything on those topics since the run
  began), read again from Kafka by a second sink process (a fresh group whose offsets are
  set to where the run began on each, a fresh ClickHouse): fact rows/s from the moment it
  is positioned to the moment it wrote the last row, and its process's CPU per fact row
  over the same span, both as the sink marks them itself (its /metrics/counts); then the
  same linked messages read in this process, decoded, built into fact rows (sinks/rows.py)
  and inserted column-oriented with clickhouse-connect into another fresh ClickHouse,
  timed (wall and this process's CPU, chdb's threads included) for the insert alone. K
  interleaved repeats, medians. The sink's figures include Kafka, reading an identity
  change per event, the person map and dimension, and whatever its last batch waited; the
  plain one is the limit. CPU per row is the steadier ratio on a shared machine. Each
  round also re-reads with the sink decoding linked events itself (C2C_SINK_DECODE=python)
  instead of passing them to ClickHouse (sinks/wire.py), for comparison.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from bench._harness import plain_insert, print_table
from bench.identity_worker import _cpu_seconds
from c2c.child import free_port
from c2c.clickhouse import connect
from c2c.errors import ServiceError
from c2c.kafka import Offsets, end_offsets, read_to_end
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import Settings, load_settings
from c2c.topics import CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC, get_topic
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.migrate import migrate
from sinks.rows import FACT_TABLES, fact_row
from streams.resolution import RAW_TOPICS

LINKED = list(FACT_TABLES)
_TARGETS = {"events": 5_000.0, "p99_s": 2.0, "ratio": 0.5}


def _read(settings: Settings, start: Offsets, end: Offsets) -> Iterator[Message]:
    """Every message between two sets of marks (of the same topics)."""
    topics = sorted({topic for topic, _partition in end})
    return read_to_end(settings, topics, since=start, until=end, timeout_s=300)


class _Visibility:
    """Polls a consumer group's committed offsets every 50 ms in a thread: when did its
    committed offset first pass a given message."""

    def __init__(self, settings: Settings, group: str, partitions: list[tuple[str, int]]):
        self._consumer = Consumer(settings.kafka_config(**{"group.id": group}))
        self._partitions = [TopicPartition(t, p) for t, p in partitions]
        self._seen: dict[tuple[str, int], tuple[list[float], list[int]]] = {
            tp: ([], []) for tp in partitions
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="visibility", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                committed = self._consumer.committed(self._partitions, timeout=5)
            except Exception:  # a slow answer: the next poll will do
                continue
            now = time.time()
            for tp in committed:
                times, offsets = self._seen[(tp.topic, tp.partition)]
                if tp.offset >= 0 and (not offsets or tp.offset > offsets[-1]):
                    times.append(now)
                    offsets.append(tp.offset)
            self._stop.wait(0.05)

    def visible_at(self, topic: str, partition: int, offset: int) -> float | None:
        times, offsets = self._seen[(topic, partition)]
        index = bisect.bisect_right(offsets, offset)  # first committed offset > offset
        return times[index] if index < len(times) else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _latencies(
    settings: Settings,
    registry: SchemaRegistry,
    seen: _Visibility,
    raw: tuple[Offsets, Offsets],
    linked: tuple[Offsets, Offsets],
) -> tuple[list[float], list[float]]:
    """Seconds from each raw event's publication to its linked row being committed, and
    the worker's part of it (raw to linked message, both broker CreateTimes), sorted."""
    raw_decoders = {t: registry.decoder(get_topic(t)) for t in RAW_TOPICS}
    published: dict[str, float] = {}
    for message in _read(settings, *raw):
        try:
            event = raw_decoders[str(message.topic())].decode(message.value() or b"")
        except SerdeError:
            continue
        published[str(event["event_id"])] = message.timestamp()[1] / 1000
    linked_decoders = {t: registry.decoder(get_topic(t)) for t in LINKED}
    delays, worker = [], []
    for message in _read(settings, *linked):
        event = linked_decoders[str(message.topic())].decode(message.value() or b"")
        sent = published.get(str(event["event_id"]))
        topic, partition = str(message.topic()), int(message.partition() or 0)
        shown = seen.visible_at(topic, partition, message.offset())
        if sent is not None and shown is not None:
            delays.append(shown - sent)
            worker.append(message.timestamp()[1] / 1000 - sent)
    return sorted(delays), sorted(worker)


class _Cpu:
    """CPU seconds of the pipeline's processes, read at phase boundaries (Linux /proc)."""

    def __init__(self, settings: Settings, worker: WorkerProcess, sink: SinkProcess) -> None:
        children = {
            "forwarder": worker.children[0],
            "resolver": worker.children[-1],
            "sink": sink,
        }
        pids = {n: c.process.pid for n, c in children.items() if c.process is not None}
        with contextlib.suppress(OSError, ValueError):  # a broker elsewhere: not measured
            pids["Kafka broker"] = int((settings.data_dir / "run" / "kafka.pid").read_text())
        self.pids = pids

    def read(self) -> dict[str, float]:
        """CPU seconds so far: each child process, and this process (the replay)."""
        now = {name: _cpu_seconds([pid]) for name, pid in self.pids.items()}
        now["replay (this process)"] = time.process_time()
        return now


def _cpu_rows(phases: list[tuple[dict[str, float], dict[str, float], int]]) -> list[list[str]]:
    """One row per process: CPU seconds and microseconds per record in each phase."""
    names = list(phases[0][0])
    rows = []
    for name in [*names, "all"]:
        row = [name]
        for before, after, records in phases:
            used = (
                sum(after[n] - before[n] for n in names)
                if name == "all"
                else after[name] - before[name]
            )
            row += [f"{used:.1f}", f"{1e6 * used / max(1, records):,.0f}"]
        rows.append(row)
    return rows


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def _commit_group(settings: Settings, group: str, marks: Offsets) -> None:
    """Set a new, empty group's committed offsets to ``marks``."""
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in marks.items()], asynchronous=False
        )
    finally:
        consumer.close()


def _sink_rate(settings: Settings, folder: Path, start: Offsets, facts: int) -> tuple[float, float]:
    """A second sink reading the run's linked events and identity changes again: (fact
    rows/s, CPU microseconds per fact row of its process) from the moment it was assigned
    and positioned to the moment it wrote a batch that brought it to at least ``facts``
    rows, both marked by the sink itself (its /metrics/counts: wall clock and its
    process's CPU seconds then), so that polling its pages every 0.2 s adds nothing to
    either end. Start-up and migrations are left out; every batch is in, the last one with
    whatever it waited."""
    group = f"bench-sink-{uuid.uuid4().hex[:10]}"
    _commit_group(settings, group, start)
    ch = settings.model_copy(
        update={"clickhouse_url": f"chdb://{folder / 'ch'}", "clickhouse_database": "again"}
    )
    sink = SinkProcess(ch, folder / "sink.log", port=free_port(), group=group, start_at="earliest")
    try:
        sink.start(timeout_s=300)

        def handled(counts: dict[str, Any]) -> int:  # written, or withheld after an opt-out
            return int(counts.get("facts", 0)) + int(counts.get("optout.not_written", 0))

        # looked at once a second: the marks time it, and each look costs the sink a web
        # request or two (ChildService.wait would look every 0.2 s)
        deadline = time.monotonic() + 1800
        counts = sink.counts()
        while handled(counts) < facts:
            if sink.process is None or sink.process.poll() is not None:
                raise ServiceError(
                    f"the re-reading sink exited; see {folder / 'sink.log'}", code="child.exited"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"the re-reading sink was not done in 1800 s: {counts}", code="child.timeout"
                )
            time.sleep(1.0)
            counts = sink.counts()
    finally:
        sink.stop()
    # the rows written by then (it goes on into what came after the run, and may have
    # written part of it in the same batch), over the time and CPU it took to write them
    written = handled(counts)
    seconds = float(counts["written_at"]) - float(counts["positioned_at"])
    cpu = float(counts["written_cpu_s"]) - float(counts["positioned_cpu_s"])
    return written / seconds, 1e6 * cpu / written


def _plain_rate(
    settings: Settings, folder: Path, rows: dict[str, list[list[Any]]]
) -> tuple[float, float]:
    """The same fact rows inserted column-oriented by clickhouse-connect: (rows/s, CPU
    microseconds per row of this process, chdb's threads included), the insert alone."""
    client = connect(
        settings.model_copy(
            update={"clickhouse_url": f"chdb://{folder / 'ch'}", "clickhouse_database": "plain"}
        )
    )
    try:
        migrate(client, min_cell=11)
        started, cpu_started = time.perf_counter(), time.process_time()
        count = plain_insert(client, rows, settings.sink_batch_rows)
        cpu = time.process_time() - cpu_started
        return count / (time.perf_counter() - started), 1e6 * cpu / count
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="of offered load")
    parser.add_argument("--repeats", type=int, default=3, help="sink-vs-plain rounds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    # every topic the sink reads: a re-reading sink starts each where the run began (the
    # opt-out decisions too, else it would apply every decision the stack ever published)
    sink_topics = [*LINKED, CHANGES_TOPIC, OPTOUT_DECISIONS_TOPIC]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder, paced = tmp / "synth", tmp / "paced"
        synthesize(SynthConfig(people=args.people, seed=seed), NoiseConfig(), folder)
        people = max(50, int(args.rate * args.seconds / 30))  # about 30 records a person
        synthesize(SynthConfig(people=people, seed=seed + 1), NoiseConfig(), paced)
        records = sum(1 for _ in mapped_events(folder))
        paced_records = sum(1 for _ in mapped_events(paced))

        ch = settings.model_copy(
            update={"clickhouse_url": f"chdb://{tmp / 'ch'}", "clickhouse_database": "bench"}
        )
        sink = SinkProcess(ch, tmp / "sink.log", port=free_port())
        # forwarder and resolver apart, as the demo runs them (and their CPU apart)
        worker = WorkerProcess(
            settings, tmp / "worker.log", port=free_port(), split=True, forward_port=free_port()
        )
        sink.start()
        worker.start()
        cpu = _Cpu(settings, worker, sink)
        seen = _Visibility(settings, sink.group, sorted(end_offsets(settings, LINKED)))
        try:
            # -- the maximum ------------------------------------------------------------
            raw0, linked0, sink0 = (
                end_offsets(settings, RAW_TOPICS),
                end_offsets(settings, LINKED),
                end_offsets(settings, sink_topics),
            )
            started, cpu0 = time.perf_counter(), cpu.read()
            replay(settings, folder)
            replayed_s = time.perf_counter() - started
            worker.forwarded(timeout_s=3600)
            forwarded_s = time.perf_counter() - started
            counts = worker.drained(records, timeout_s=3600)
            worker_s = time.perf_counter() - started
            linked = int(counts.get("linked", 0))
            sink.caught_up(linked, timeout_s=3600)
            end_to_end_s = time.perf_counter() - started
            cpu1 = cpu.read()
            raw1, linked1 = end_offsets(settings, RAW_TOPICS), end_offsets(settings, LINKED)
            # -- offered load ------------------------------------------------------------
            cpu2 = cpu.read()
            replay(settings, paced, rate=args.rate)
            counts = worker.drained(records + paced_records, timeout_s=3600)
            sink.caught_up(int(counts.get("linked", 0)), timeout_s=3600)
            cpu3 = cpu.read()
            raw2, linked2 = end_offsets(settings, RAW_TOPICS), end_offsets(settings, LINKED)
        finally:
            worker.stop()
            sink.stop()
            seen.close()
        at_max, worker_max = _latencies(settings, registry, seen, (raw0, raw1), (linked0, linked1))
        at_rate, worker_rate = _latencies(
            settings, registry, seen, (raw1, raw2), (linked1, linked2)
        )

        # -- the sink against a plain insert of the same rows ---------------------------
        decoders = {t: registry.decoder(get_topic(t)) for t in LINKED}
        rows: dict[str, list[list[Any]]] = {}
        for message in _read(settings, linked0, linked2):  # both phases: all there is
            topic = str(message.topic())
            table, row = fact_row(topic, decoders[topic].decode(message.value() or b""))
            rows.setdefault(table, []).append(row)
        facts = sum(len(r) for r in rows.values())
        sink_runs, python_runs, plain_runs = [], [], []
        in_python = settings.model_copy(update={"sink_decode": "python"})
        for round_ in range(args.repeats):
            sink_runs.append(_sink_rate(settings, tmp / f"again{round_}", sink0, facts))
            python_runs.append(_sink_rate(in_python, tmp / f"python{round_}", sink0, facts))
            plain_runs.append(_plain_rate(settings, tmp / f"plain{round_}", rows))

    events_s = records / end_to_end_s
    sink_s, python_s, plain_s = (
        statistics.median(rate for rate, _cpu in runs)
        for runs in (sink_runs, python_runs, plain_runs)
    )
    sink_cpu, python_cpu, plain_cpu = (
        statistics.median(cpu for _rate, cpu in runs)
        for runs in (sink_runs, python_runs, plain_runs)
    )
    print(
        f"{records:,} records of {args.people:,} synthetic people (seed {seed}), {linked:,} "
        f"linked; replay {records / replayed_s:,.0f}/s, forwarder done after {forwarded_s:.1f} s, "
        f"worker after {worker_s:.1f} s, "
        f"sink after {end_to_end_s:.1f} s; paced: {paced_records:,} records at "
        f"{args.rate:,.0f}/s offered; sink and plain insert compared on the {facts:,} fact "
        "rows of both"
    )
    p99_rate = _percentile(at_rate, 0.99)
    print_table(
        ["measure", "value", "target", "met"],
        [
            [
                "end to end, replay -> rows in ClickHouse",
                f"{events_s:,.0f} events/s",
                f">= {_TARGETS['events']:,.0f}",
                "yes" if events_s >= _TARGETS["events"] else "no",
            ],
            [
                f"latency at {args.rate:,.0f}/s offered, p50 / p99 ({len(at_rate):,} events)",
                f"{_percentile(at_rate, 0.5):.2f} s / {p99_rate:.2f} s",
                f"p99 <= {_TARGETS['p99_s']:.0f} s",
                "yes" if p99_rate <= _TARGETS["p99_s"] else "no",
            ],
            [
                "  of which raw -> linked (the worker), p50 / p99",
                f"{_percentile(worker_rate, 0.5):.2f} s / {_percentile(worker_rate, 0.99):.2f} s",
                "-",
                "-",
            ],
            [
                f"latency at the maximum, p50 / p99 ({len(at_max):,} events)",
                f"{_percentile(at_max, 0.5):.1f} s / {_percentile(at_max, 0.99):.1f} s",
                "-",
                "-",
            ],
            [
                "  of which raw -> linked (the worker), p50 / p99",
                f"{_percentile(worker_max, 0.5):.1f} s / {_percentile(worker_max, 0.99):.1f} s",
                "-",
                "-",
            ],
            [
                f"sink from Kafka, rows/s (median of {args.repeats})",
                f"{sink_s:,.0f}",
                "-",
                "-",
            ],
            [
                "  decoding in the sink instead (C2C_SINK_DECODE=python), rows/s",
                f"{python_s:,.0f}",
                "-",
                "-",
            ],
            [
                f"plain clickhouse-connect column insert, rows/s (median of {args.repeats})",
                f"{plain_s:,.0f}",
                "-",
                "-",
            ],
            [
                "sink / plain",
                f"{sink_s / plain_s:.2f}",
                f">= {_TARGETS['ratio']:.1f}",
                "yes" if sink_s / plain_s >= _TARGETS["ratio"] else "no",
            ],
            [
                f"  by CPU: plain / sink us per row (median of {args.repeats})",
                f"{plain_cpu:.1f} / {sink_cpu:.1f} = {plain_cpu / sink_cpu:.2f}",
                f">= {_TARGETS['ratio']:.1f}",
                "yes" if plain_cpu / sink_cpu >= _TARGETS["ratio"] else "no",
            ],
            [
                "  decoding in the sink: plain / sink, by wall and by CPU",
                f"{python_s / plain_s:.2f}, {plain_cpu / python_cpu:.2f}",
                "-",
                "-",
            ],
        ],
    )
    for name, runs in (("sink", sink_runs), ("decoding in the sink", python_runs)):
        print(
            f"\n{name} against plain insert, each round (rows/s, CPU us per row): "
            + "; ".join(
                f"{sink_rate:,.0f} / {plain_rate:,.0f} = {sink_rate / plain_rate:.2f}, "
                f"{plain_us:.1f} / {sink_us:.1f} = {plain_us / sink_us:.2f}"
                for (sink_rate, sink_us), (plain_rate, plain_us) in zip(
                    runs, plain_runs, strict=True
                )
            )
        )
    print(
        f"\nCPU per process: at the maximum ({records:,} records in {end_to_end_s:.1f} s) "
        f"and at {args.rate:,.0f}/s offered ({paced_records:,} records)"
    )
    print_table(
        ["process", "CPU-s (max)", "us/record (max)", "CPU-s (paced)", "us/record (paced)"],
        _cpu_rows([(cpu0, cpu1, records), (cpu2, cpu3, paced_records)]),
    )
    print(
        "the replay's figure includes this process's offset poller (50 ms); 'all' in "
        "us/record is what a record costs the machine: 2 free cores carry at most "
        "2e6 / that records/s"
    )


if __name__ == "__main__":
    main()

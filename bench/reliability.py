"""The pipeline with faults injected, beside a clean run of the same records: events/s,
latency, and what was lost or duplicated.

    .venv/bin/python -m bench.reliability [--people N] [--poison-every N] [--rate R]
        [--seed S] [--no-dedupe]

Needs the local stack (`c2c services up`), and kills its broker once: run it on a stack of
your own, not one others use. One synth folder is replayed twice, each time through a
worker and a sink of their own (cli.pipeline_run: own groups, intake topic, state, and
ClickHouse database):

- clean: nothing happens to it;
- faulted: while the replay runs, a poison message goes onto a raw topic after every N
  records replayed (in turn: bytes that are not Avro; 900 kB of them, near the broker's
  limit; an enrollment that fits its schema but starts on 1800-08-14, which the worker
  links and ClickHouse refuses), and the worker, the sink and the broker are each killed
  (SIGKILL) once, at a quarter, half and three quarters of the worker's work, and started
  again.

Printed for each: events/s (records replayed / replay start -> both stages have committed
everything), latency (raw message's broker time -> the sink group's commit passing its
linked message, as bench.end_to_end measures it) at p50 and p99, fact rows, dead letters;
and for the faulted run against the clean one: fact rows beyond one an event before FINAL
(the sink looks each batch's event ids up before writing it, sinks/dedupe.py; --no-dedupe:
it does not, as before 2026-12-06), events lost (in the clean run's tables,
not in the faulted run's, after FINAL), duplicated (rows beyond one an event after FINAL),
extra (in the faulted run's tables only), of each how many were a revoked opt-out's, the
events of people whose opt-out stands that ClickHouse holds (by synth's truth: 0 in both
runs, whatever the grouping), linked events published again under a person that no
published merge joins to their first copy's (streams/README: open), linked to other
persons (the grouping depends on the intake's order, which a crash changes:
streams/README), poison messages dead-lettered against injected. The targets: 0 lost, 0
duplicated before FINAL and after, every poison message a dead letter.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench._harness import print_table
from bench.end_to_end import _latencies, _percentile, _Visibility
from c2c.clickhouse import connect
from c2c.kafka import PRODUCER_CONFIG, end_offsets, read_to_end
from c2c.kinds import get_kind
from c2c.registry import SchemaRegistry
from c2c.settings import Settings, load_settings
from c2c.topics import CHANGES_TOPIC, DEAD_LETTER_TOPIC, get_topic
from cli.pipeline_run import PipelineRun, clickhouse_snapshot, opted_out_events, republished
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from services.kafka import KafkaService
from sinks.rows import FACT_TABLES
from streams.identity.evaluation import grouping_difference
from streams.resolution import RAW_TOPICS

LINKED = list(FACT_TABLES)
BIG_POISON_BYTES = 900_000
POISON_KINDS = ("not Avro", f"{BIG_POISON_BYTES // 1000} kB", "date ClickHouse refuses")


class Poisoner:
    """Sends the poison messages: the ``index``-th is of kind ``POISON_KINDS[index % 3]``.
    The third kind is a copy of ``template`` (a raw enrollment) with another event id and
    a start date of 1800-08-14."""

    def __init__(self, settings: Settings, registry: SchemaRegistry, template: dict[str, Any]):
        self._producer = Producer(settings.kafka_config(**PRODUCER_CONFIG))
        self._topic = get_kind("enrollment").raw_topic
        self._encoder = registry.encoder(get_topic(self._topic))
        self._template = template
        self.sent: Counter[str] = Counter()
        self.event_ids: set[str] = set()

    def send(self, index: int) -> None:
        kind = POISON_KINDS[index % len(POISON_KINDS)]
        if kind == POISON_KINDS[0]:
            value = b"\x00\xff\xff\xff\xf0 not an Avro message " + os.urandom(64)
        elif kind == POISON_KINDS[1]:
            value = os.urandom(BIG_POISON_BYTES)
        else:
            event = {
                **self._template,
                "event_id": str(uuid.uuid4()),
                "facts": {**self._template["facts"], "term_start_date": datetime.date(1800, 8, 14)},
            }
            self.event_ids.add(event["event_id"])
            value = self._encoder.encode(event)
        self._producer.produce(self._topic, value, key=f"poison-{index}".encode())
        self._producer.poll(0)
        self.sent[kind] += 1

    def flush(self) -> None:
        left = self._producer.flush(120)
        if left:
            raise RuntimeError(f"{left} poison messages not acknowledged in 120 s")


def _published(settings: Settings, start: dict[tuple[str, int], int]) -> int:
    """Messages published since ``start`` on its topics."""
    topics = sorted({topic for topic, _partition in start})
    return sum(end_offsets(settings, topics).values()) - sum(start.values())


def _faults(
    stack: Settings,
    run: PipelineRun,
    poisoner: Poisoner,
    linked: int,
    every: int,
    replaying: threading.Thread,
    timeline: list[str],
) -> None:
    """Poison after every ``every`` records replayed (``linked // every`` in all: what the
    replay outran is sent as soon as it is seen), and one kill each of the worker, the
    sink and the broker once the worker has published a quarter, a half and three
    quarters of the ``linked`` events the run will link (counted on the linked topics,
    which survive the worker's restarts)."""
    raw0, linked0 = end_offsets(stack, RAW_TOPICS), end_offsets(stack, LINKED)
    started = time.monotonic()
    kills = [(0.25, "worker"), (0.5, "sink"), (0.75, "broker")]
    sent = 0
    deadline = time.monotonic() + 900
    poisons = linked // every
    while kills or sent < poisons:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not get to {kills[0]} in 900 s: {run.kills}")
        replayed = _published(stack, raw0) - sent  # the replay's, poison aside
        while sent < poisons and (replayed >= (sent + 1) * every or not replaying.is_alive()):
            poisoner.send(sent)
            sent += 1
        if kills and _published(stack, linked0) >= kills[0][0] * linked:
            _share, target = kills.pop(0)
            timeline.append(f"{target} killed at {time.monotonic() - started:.1f} s")
            if target == "broker":
                run.kill_broker_and_restart()
            else:
                run.kill_and_restart(target)
        time.sleep(0.2)
    poisoner.flush()
    timeline.append(f"last kill done at {time.monotonic() - started:.1f} s")


def _run(
    stack: Settings,
    registry: SchemaRegistry,
    synth: Path,
    tmp: Path,
    name: str,
    rate: float | None,
    faults: Callable[[PipelineRun, threading.Thread], None] | None,
) -> dict[str, Any]:
    """One replay of ``synth`` through a pipeline of its own; what it took and left."""
    run = PipelineRun.create(stack, tmp, name, tmp / "ch")
    dead0 = end_offsets(stack, [DEAD_LETTER_TOPIC])
    raw0, linked0 = end_offsets(stack, RAW_TOPICS), end_offsets(stack, LINKED)
    changes0 = end_offsets(stack, [CHANGES_TOPIC])
    seen = _Visibility(stack, run.sink.group, sorted(linked0))
    try:
        run.begin()
        started = time.perf_counter()
        replaying = threading.Thread(target=replay, args=(stack, synth), kwargs={"rate": rate})
        replaying.start()
        if faults is not None:
            faults(run, replaying)
        replaying.join()
        replayed_s = time.perf_counter() - started
        run.drain(timeout_s=900)
        seconds = time.perf_counter() - started
        run.stop()
    finally:
        run.kill()
        seen.close()
    raw1, linked1 = end_offsets(stack, RAW_TOPICS), end_offsets(stack, LINKED)
    changes1 = end_offsets(stack, [CHANGES_TOPIC])
    delays, _worker = _latencies(stack, registry, seen, (raw0, raw1), (linked0, linked1))
    decoders = {t: registry.decoder(get_topic(t)) for t in LINKED}
    copies: dict[str, list[str]] = {}
    for m in read_to_end(stack, LINKED, since=linked0, until=linked1, timeout_s=300):
        event = decoders[str(m.topic())].decode(m.value() or b"")
        copies.setdefault(str(event["event_id"]), []).append(str(event["person_id"]))
    changes = registry.decoder(get_topic(CHANGES_TOPIC))
    merges = [
        (str(change["previous_person_id"]), str(change["person_id"]))
        for m in read_to_end(stack, [CHANGES_TOPIC], since=changes0, until=changes1)
        if (change := changes.decode(m.value() or b""))["change_type"] == "PERSONS_MERGED"
    ]
    replays = republished(copies, merges)
    decoder = registry.decoder(get_topic(DEAD_LETTER_TOPIC))
    letters = [
        decoder.decode(m.value() or b"")
        for m in read_to_end(
            stack,
            [DEAD_LETTER_TOPIC],
            since=dead0,
            until=end_offsets(stack, [DEAD_LETTER_TOPIC]),
            timeout_s=120,
        )
    ]
    # one a failure: a stage killed after sending one sends it again (c2c.deadletter)
    distinct = {d["dead_letter_id"]: d for d in letters}.values()
    dead = Counter(f"{d['stage']}: {d['error_code']}" for d in distinct)
    client = connect(run.settings)
    try:
        snapshot = clickhouse_snapshot(client, name)
        after_final = {
            table: client.query(
                f"SELECT count() - uniqExact(event_id) FROM {name}.{table} FINAL"
            ).result_rows[0][0]
            for table in FACT_TABLES.values()
        }
    finally:
        client.close()
    return {
        "seconds": seconds,
        "delays": delays,
        "dead": dead,
        "published_twice": replays["twice"],
        "other_survivor": replays["other_survivor"],
        "dead_copies": len(letters) - len(distinct),
        "snapshot": snapshot,
        "duplicated": sum(after_final.values()),
        "kills": run.kills,
        "replayed_s": replayed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1500)
    parser.add_argument(
        "--poison-every", type=int, default=2000, help="records replayed between poison messages"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered events/s (0: as fast as replay goes)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--no-dedupe",
        action="store_true",
        help="sinks that write every copy (C2C_SINK_DEDUPE=false): copies collapse at FINAL",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the runs' logs and state in this folder"
    )
    args = parser.parse_args()
    stack = load_settings()
    if args.no_dedupe:
        stack = stack.model_copy(update={"sink_dedupe": False})
    if not KafkaService(stack).local:
        raise SystemExit(f"C2C_KAFKA_BOOTSTRAP={stack.kafka_bootstrap} is not a local broker")
    registry = SchemaRegistry(stack)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    rate = args.rate or None
    timeline: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        synth = tmp / "synth"
        synthesize(
            SynthConfig(people=args.people, seed=seed, optout_rate=0.02), NoiseConfig(), synth
        )
        events = [e for _s, e in mapped_events(synth)]
        template = next(e for s, e in mapped_events(synth) if s == "k12")
        poisoner = Poisoner(stack, registry, template)
        linked = sum(1 for e in events if "request_id" not in e)  # opt-outs are not linked
        opted_out, revoked = opted_out_events(synth)
        runs = {
            "clean": _run(stack, registry, synth, tmp, "clean", rate, None),
            "faulted": _run(
                stack,
                registry,
                synth,
                tmp,
                "faulted",
                rate,
                lambda run, replaying: _faults(
                    stack, run, poisoner, linked, args.poison_every, replaying, timeline
                ),
            ),
        }
    clean, faulted = runs["clean"]["snapshot"], runs["faulted"]["snapshot"]
    ids = {
        n: {e for t in s["facts"].values() for e in t} for n, s in (("c", clean), ("f", faulted))
    }
    lost, extra = ids["c"] - ids["f"], ids["f"] - ids["c"]
    regrouped = grouping_difference(faulted["persons"], clean["persons"]).regrouped
    poison_dead = sum(runs["faulted"]["dead"].values()) - sum(runs["clean"]["dead"].values())
    escaped = {n: len(ids[n] & opted_out) for n in ("c", "f")}

    print(
        f"{len(events):,} records of {args.people:,} synthetic people (seed {seed}), replayed "
        f"{'as fast as replay goes' if rate is None else f'at {rate:,.0f}/s'}; faulted run: "
        f"{sum(poisoner.sent.values())} poison messages ({dict(poisoner.sent)}), kills and "
        f"restarts: {runs['faulted']['kills']}; {', '.join(timeline)}; replay done after "
        + ", ".join(f"{n} {r['replayed_s']:.1f} s" for n, r in runs.items())
    )
    rows = []
    for name, run in runs.items():
        delays = run["delays"]
        rows.append(
            [
                name,
                f"{len(events) / run['seconds']:,.0f}",
                f"{_percentile(delays, 0.5):.2f} / {_percentile(delays, 0.99):.2f}",
                f"{sum(len(t) for t in run['snapshot']['facts'].values()):,}",
                f"{run['published_twice']:,}",
                f"{sum(run['snapshot']['duplicates'].values()):,}",
                f"{run['duplicated']:,}",
                ("; ".join(f"{k} {v}" for k, v in sorted(run["dead"].items())) or "0")
                + f" ({run['dead_copies']})",
            ]
        )
    print_table(
        [
            "run",
            "events/s",
            "latency p50 / p99 s",
            "fact rows",
            "linked events published twice",
            "copies before FINAL",
            "duplicated after FINAL",
            "dead letters (copies sent again)",
        ],
        rows,
    )
    ratio = runs["clean"]["seconds"] / runs["faulted"]["seconds"]
    print_table(
        ["faulted against clean", "value", "target"],
        [
            ["events/s, faulted / clean", f"{ratio:.2f}", "-"],
            [
                "events lost (in clean, not in faulted), of them revoked opt-outs'",
                f"{len(lost):,}, {len(lost & revoked):,}",
                "0",
            ],
            [
                "fact rows beyond one an event before FINAL, faulted run"
                + (" (look-up off: --no-dedupe)" if args.no_dedupe else ""),
                f"{sum(faulted['duplicates'].values()):,}",
                "0",
            ],
            ["events duplicated after FINAL", f"{runs['faulted']['duplicated']:,}", "0"],
            [
                "events extra (in faulted only), of them revoked opt-outs'",
                f"{len(extra):,}, {len(extra & revoked):,}",
                "0",
            ],
            [
                "opted-out people's events in ClickHouse, clean / faulted (synth's truth)",
                f"{escaped['c']:,} / {escaped['f']:,} of {len(opted_out):,}",
                "0 / 0",
            ],
            [
                "poison messages dead-lettered / injected",
                f"{poison_dead} / {sum(poisoner.sent.values())}",
                "equal",
            ],
            [
                "events published again under an unrelated person (no merge joins the copies)",
                f"{runs['faulted']['other_survivor']:,}",
                "0",
            ],
            [
                "events grouped into other persons (intake order: streams/README)",
                f"{len(regrouped):,} of {len(ids['c']):,}",
                "-",
            ],
        ],
    )


if __name__ == "__main__":
    main()

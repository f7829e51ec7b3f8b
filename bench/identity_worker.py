"""The identity worker through Faust: sustained records/s and publication-to-linked latency,
side by side with the same resolution in one process without Kafka (the stage's limit).

    .venv/bin/python -m bench.identity_worker [--people N] [--rate R] [--seconds S]

Needs the local stack (`c2c services up`, topics and schemas). Throughput: a synth of N
people is published as fast as replay goes, then the worker (fresh group, reading only
what arrives after it is ready) is timed from the replay's start to the last record
handled.
Latency: replay at R records/s for S seconds; for each linked event, the broker timestamp
of the linked message minus that of the raw message (CreateTime stamps, one machine's
clock), p50 and p99.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench._harness import print_table
from c2c.child import free_port
from c2c.kafka import read_to_end
from c2c.registry import SchemaRegistry
from c2c.serde import SerdeError
from c2c.settings import load_settings
from c2c.topics import get_topic
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.matching import DEFAULT_MODEL
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.linking import LINKED_TOPICS
from streams.process import WorkerProcess
from streams.resolution import RAW_TOPICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        synthesize(SynthConfig(people=args.people, seed=seed), NoiseConfig(), folder)
        events = list(mapped_events(folder))

        # The limit: the same records resolved in this process, no Kafka, no Avro.
        resolver = Resolver(IdentifierHasher(b"bench"), DEFAULT_MODEL)
        started = time.perf_counter()
        for _source, event in events:
            resolver.resolve(event["provider"], event["person"])
        in_process = len(events) / (time.perf_counter() - started)

        worker = WorkerProcess(settings, Path(tmp) / "worker.log", port=free_port())
        worker.start()
        try:
            started = time.perf_counter()
            replay(settings, folder)  # the worker starts on it while it is published
            worker.drained(len(events), timeout_s=1800)
            through_faust = len(events) / (time.perf_counter() - started)

            # Latency at a fixed offered load.
            latency_folder = Path(tmp) / "latency"
            people = max(50, int(args.rate * args.seconds / 30))
            synthesize(SynthConfig(people=people, seed=seed + 1), NoiseConfig(), latency_folder)
            offered = list(mapped_events(latency_folder))[: int(args.rate * args.seconds)]
            wanted = {str(e["event_id"]) for _s, e in offered}
            before = worker.handled()
            replay(settings, latency_folder, rate=args.rate)
            worker.drained(before + len(list(mapped_events(latency_folder))), timeout_s=1800)
        finally:
            worker.stop()
    raw_sent: dict[str, float] = {}
    decoders = {t: registry.decoder(get_topic(t)) for t in RAW_TOPICS if t in LINKED_TOPICS}
    for message in read_to_end(settings, list(decoders)):
        try:
            raw = decoders[str(message.topic())].decode(message.value() or b"")
        except SerdeError:
            continue  # other runs' bad input (tests publish some on purpose)
        event_id = str(raw["event_id"])
        if event_id in wanted:
            raw_sent[event_id] = message.timestamp()[1] / 1000
    linked_decoders = {t: registry.decoder(get_topic(t)) for t in LINKED_TOPICS.values()}
    delays = []
    for message in read_to_end(settings, list(linked_decoders)):
        value = linked_decoders[str(message.topic())].decode(message.value() or b"")
        sent = raw_sent.get(str(value["event_id"]))
        if sent is not None:
            delays.append(message.timestamp()[1] / 1000 - sent)
    delays.sort()
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(f"{len(events):,} records of {args.people:,} synthetic people (seed {seed})")
    print_table(
        ["path", "records/s", "vs in-process"],
        [
            ["resolver in one process (no Kafka, no Avro)", f"{in_process:,.0f}", "1.00"],
            [
                "worker through Faust (intake + resolve, 1 worker)",
                f"{through_faust:,.0f}",
                f"{through_faust / in_process:.2f}",
            ],
        ],
    )
    print(
        f"latency raw -> linked at {args.rate:,.0f} records/s offered, {len(delays):,} events: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()

"""Opt-out latency under load: from an opt-out's publication to the last of the person's
rows removed from ClickHouse, p50 and p99, while a replay offers background events.

    .venv/bin/python -m bench.optout [--people N] [--rate R] [--optouts K]

Needs the local stack (`c2c services up`, topics and schemas). A synth of N people (no
opt-outs of its own) is replayed at R events/s through a fresh identity worker and sink
(child processes, embedded ClickHouse in a temporary folder). Once the replay is under way,
K operators' opt-outs are published, one every 1.5 s, each for a person whose records were
published at least 5 s before. Side by side, for each: when the identity worker's decision
reached ``c2c.identity.optouts`` (the resolver's share of the latency) and when the sink's
audit showed the rows removed (the sink holds its lock from the insert through the deletes,
so the audit is visible only once every row is gone), and the sink's own share: from
reading the decision off Kafka to its rows removed and audited, as the sink measured it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench._harness import print_table
from c2c.child import free_port
from c2c.registry import SchemaRegistry
from c2c.settings import load_settings
from c2c.topics import OPTOUT_DECISIONS_TOPIC, get_topic
from producers.emitter import EventEmitter
from producers.files import mapped_events
from producers.optouts import request_event
from producers.synth import NoiseConfig, SynthConfig, synthesize
from sinks.process import SinkProcess
from streams.process import WorkerProcess


def _identity(event: dict[str, Any]) -> dict[str, Any] | None:
    person = event.get("person") or {}
    if not (person.get("first_name") and person.get("last_name")):
        return None
    if not (person.get("ssid") or person.get("ssn")) or not person.get("birth_date"):
        return None
    keys = ("ssn", "ssid", "first_name", "last_name", "birth_date", "zip")
    return {k: person.get(k) for k in keys}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--optouts", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings()
    registry = SchemaRegistry(settings)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        config = SynthConfig(people=args.people, seed=seed, optout_rate=0.0)
        synthesize(config, NoiseConfig(), folder)
        events = [e for _s, e in mapped_events(folder)]
        sink_settings = settings.model_copy(
            update={"clickhouse_url": f"chdb://{Path(tmp) / 'ch'}", "clickhouse_database": "bench"}
        )
        sink = SinkProcess(sink_settings, Path(tmp) / "sink.log", port=free_port())
        worker = WorkerProcess(settings, Path(tmp) / "worker.log", port=free_port())
        decided: dict[str, float] = {}
        stop = threading.Event()

        def watch_decisions() -> None:
            decoder = registry.decoder(get_topic(OPTOUT_DECISIONS_TOPIC))
            consumer = Consumer(
                settings.kafka_config(
                    **{"group.id": f"bench-{uuid.uuid4()}", "auto.offset.reset": "latest"}
                )
            )
            consumer.subscribe([OPTOUT_DECISIONS_TOPIC])
            while not stop.is_set():
                for message in consumer.consume(100, 0.05):
                    if message.error() is None:
                        record = decoder.decode(message.value() or b"")
                        decided.setdefault(str(record["request_id"]), time.time())
            consumer.close()

        replaying: subprocess.Popen[bytes] | None = None
        watcher = threading.Thread(target=watch_decisions, daemon=True)
        latencies: list[tuple[float, float, int]] = []
        sink_shares: list[float] = []
        try:
            sink.start()
            worker.start()
            watcher.start()
            time.sleep(2)  # the watcher is assigned before anything is decided
            replay_cmd = [sys.executable, "-m", "c2c", "replay", str(folder)]
            replaying = subprocess.Popen(
                [*replay_cmd, "--rate", str(args.rate)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started = time.monotonic()
            emitter = EventEmitter(settings, registry)
            time.sleep(8)
            for _ in range(args.optouts):
                published = int(args.rate * (time.monotonic() - started - 5))
                candidates = events[: max(1, min(published, len(events)))]
                person = None
                while person is None:
                    person = _identity(rng.choice(candidates))
                event = request_event(person, requested_by="OPERATOR")
                asked = time.time()
                emitter.emit("optout", event)
                emitter.flush()
                answer: dict[str, Any] = {"decisions": []}
                deadline = time.monotonic() + 60
                while not answer["decisions"] and time.monotonic() < deadline:
                    time.sleep(0.02)
                    answer = sink.page(f"/optouts/{event['request_id']}")
                removed_at = time.time()
                if not answer["decisions"]:
                    print(f"opt-out {event['request_id']} not applied within 60 s", flush=True)
                    continue
                rows = sum(answer["decisions"][0]["rows_removed"].values())
                if answer["decisions"][0].get("sink_s") is not None:
                    sink_shares.append(float(answer["decisions"][0]["sink_s"]))
                worker_s = decided.get(event["request_id"], removed_at) - asked
                latencies.append((worker_s, removed_at - asked, rows))
                time.sleep(max(0.0, 1.5 - (time.time() - asked)))
            background = worker.counts().get("linked", 0) / (time.monotonic() - started)
        finally:
            stop.set()
            if replaying is not None:
                replaying.kill()
            worker.kill()
            sink.kill()
    if not latencies:
        raise SystemExit("no opt-out was applied: see the worker's and the sink's logs")
    worker_s = [w for w, _, _ in latencies]
    total_s = [t for _, t, _ in latencies]
    rows = statistics.median([r for *_, r in latencies])
    print(
        f"\n{len(latencies)} opt-outs under about {background:.0f} linked events/s of "
        f"background load (offered {args.rate:.0f}/s); median {rows:.0f} rows removed each\n"
    )
    print_table(
        ["from publication to", "p50 ms", "p99 ms", "max ms"],
        [
            [
                "decision published (identity worker)",
                f"{1000 * statistics.median(worker_s):.0f}",
                f"{1000 * _percentile(worker_s, 0.99):.0f}",
                f"{1000 * max(worker_s):.0f}",
            ],
            *(
                [
                    [
                        "(sink's share: decision read to rows removed)",
                        f"{1000 * statistics.median(sink_shares):.0f}",
                        f"{1000 * _percentile(sink_shares, 0.99):.0f}",
                        f"{1000 * max(sink_shares):.0f}",
                    ]
                ]
                if sink_shares
                else []
            ),
            [
                "last row removed (sink, ClickHouse)",
                f"{1000 * statistics.median(total_s):.0f}",
                f"{1000 * _percentile(total_s, 0.99):.0f}",
                f"{1000 * max(total_s):.0f}",
            ],
        ],
    )
    print("\ntarget: p99 of the last row removed at most 2,000 ms")


if __name__ == "__main__":
    main()

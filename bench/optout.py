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

import statistics
import subprocess
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer

from bench._harness import print_table
from bench._optout_load import OptoutLoad, load_arguments, percentile
from c2c.child import free_port
from c2c.topics import OPTOUT_DECISIONS_TOPIC, get_topic
from cli.worker_process import WorkerProcess


def main() -> None:
    args = load_arguments(__doc__.splitlines()[0], optouts=30).parse_args()
    with OptoutLoad.prepared(args) as load:
        settings, registry = load.settings, load.registry
        sink = load.sink()
        worker = WorkerProcess(settings, load.folder.parent / "worker.log", port=free_port())
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
            replaying = load.replay()
            time.sleep(8)
            for _ in range(args.optouts):
                request_id, asked = load.publish_optout()
                answer: dict[str, Any] = {"decisions": []}
                deadline = time.monotonic() + 60
                while not answer["decisions"] and time.monotonic() < deadline:
                    time.sleep(0.02)
                    answer = sink.page(f"/optouts/{request_id}")
                removed_at = time.time()
                if not answer["decisions"]:
                    print(f"opt-out {request_id} not applied within 60 s", flush=True)
                    continue
                rows = sum(answer["decisions"][0]["rows_removed"].values())
                if answer["decisions"][0].get("sink_s") is not None:
                    sink_shares.append(float(answer["decisions"][0]["sink_s"]))
                worker_s = decided.get(request_id, removed_at) - asked
                latencies.append((worker_s, removed_at - asked, rows))
                time.sleep(max(0.0, 1.5 - (time.time() - asked)))
            background = worker.counts().get("linked", 0) / (time.monotonic() - load.began)
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
                f"{1000 * percentile(worker_s, 0.99):.0f}",
                f"{1000 * max(worker_s):.0f}",
            ],
            *(
                [
                    [
                        "(sink's share: decision read to rows removed)",
                        f"{1000 * statistics.median(sink_shares):.0f}",
                        f"{1000 * percentile(sink_shares, 0.99):.0f}",
                        f"{1000 * max(sink_shares):.0f}",
                    ]
                ]
                if sink_shares
                else []
            ),
            [
                "last row removed (sink, ClickHouse)",
                f"{1000 * statistics.median(total_s):.0f}",
                f"{1000 * percentile(total_s, 0.99):.0f}",
                f"{1000 * max(total_s):.0f}",
            ],
        ],
    )
    print("\ntarget: p99 of the last row removed at most 2,000 ms")


if __name__ == "__main__":
    main()

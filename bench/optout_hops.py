"""The identity worker's share of the opt-out latency, hop by hop: from an opt-out's
publication to its decision delivered on ``c2c.identity.optouts``, under background load.

    .venv/bin/python -m bench.optout_hops [--people N] [--rate R] [--optouts K] [--no-sink]

Needs the local stack (`c2c services up`, topics and schemas). As bench.optout does, a
synth of N people is replayed at R events/s through a fresh identity worker (and sink,
unless ``--no-sink``: it competes for the same cores); once the replay is under way, K
operators' opt-outs are published, one every 1.5 s. Afterwards every hop of each is read
back from Kafka, all on this machine's clock:

- published: the raw opt-out's CreateTime (librdkafka stamps it when produce() is called);
- forwarded: the CreateTime of the intake pack that carries it (the forwarder read it and
  queued the pack);
- decided: the decision record's ``decided_at`` (the resolver built it; the batch it was in
  had been taken and the records before it in that batch resolved);
- produced: the decision message's CreateTime (queued to the resolver's producer);
- delivered: when a consumer of ``c2c.identity.optouts`` in this process received it.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import threading
import time
import uuid

from confluent_kafka import Consumer

from bench._harness import print_table
from bench._optout_load import OptoutLoad, load_arguments, percentile
from bench.end_to_end import Marks, _marks, _read
from bench.identity_worker import _cpu_seconds
from c2c.child import free_port
from c2c.registry import SchemaRegistry
from c2c.settings import Settings
from c2c.topics import OPTOUT_DECISIONS_TOPIC, get_topic
from cli.worker_process import WorkerProcess
from streams.intake import records_of
from streams.resolution import OPTOUT_TOPIC, OUTCOMES, Incoming

HOPS = ("published", "forwarded", "decided", "produced", "delivered")


class _Watcher:
    """Receives decisions in a thread: request id -> time first received."""

    def __init__(self, settings: Settings, registry: SchemaRegistry) -> None:
        self.received: dict[str, float] = {}
        self._decoder = registry.decoder(get_topic(OPTOUT_DECISIONS_TOPIC))
        self._consumer = Consumer(
            settings.kafka_config(
                **{"group.id": f"bench-{uuid.uuid4()}", "auto.offset.reset": "latest"}
            )
        )
        self._consumer.subscribe([OPTOUT_DECISIONS_TOPIC])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(100, 0.05):
                if message.error() is None:
                    now = time.time()
                    record = self._decoder.decode(message.value() or b"")
                    self.received.setdefault(str(record["request_id"]), now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _hops(
    settings: Settings,
    registry: SchemaRegistry,
    intake: str,
    start: Marks,
    end: Marks,
    received: dict[str, float],
) -> dict[str, dict[str, float]]:
    """request id -> hop -> seconds since the epoch."""
    optout = registry.decoder(get_topic(OPTOUT_TOPIC))
    decisions = registry.decoder(get_topic(OPTOUT_DECISIONS_TOPIC))
    times: dict[str, dict[str, float]] = {}

    def of(request_id: str) -> dict[str, float]:
        return times.setdefault(request_id, {})

    raw = {tp: mark for tp, mark in start.items() if tp[0] == OPTOUT_TOPIC}
    raw_end = {tp: mark for tp, mark in end.items() if tp[0] == OPTOUT_TOPIC}
    for message in _read(settings, raw, raw_end):
        record = optout.decode(message.value() or b"")
        of(str(record["request_id"]))["published"] = message.timestamp()[1] / 1000
    packs = {tp: mark for tp, mark in start.items() if tp[0] == intake}
    packs_end = {tp: mark for tp, mark in end.items() if tp[0] == intake}
    for message in _read(settings, packs, packs_end):
        pack = Incoming(
            intake,
            int(message.partition() or 0),
            int(message.offset() or 0),
            None,
            message.value(),
        )
        for forwarded in records_of(pack):
            if forwarded.topic == OPTOUT_TOPIC:
                record = optout.decode(forwarded.value or b"")
                of(str(record["request_id"]))["forwarded"] = message.timestamp()[1] / 1000
    made = {tp: mark for tp, mark in start.items() if tp[0] == OPTOUT_DECISIONS_TOPIC}
    made_end = {tp: mark for tp, mark in end.items() if tp[0] == OPTOUT_DECISIONS_TOPIC}
    for message in _read(settings, made, made_end):
        record = decisions.decode(message.value() or b"")
        hop = of(str(record["request_id"]))
        hop.setdefault("decided", record["decided_at"].timestamp())
        hop.setdefault("produced", message.timestamp()[1] / 1000)
    for request_id, at in received.items():
        of(request_id)["delivered"] = at
    return {rid: hop for rid, hop in times.items() if "published" in hop}


def main() -> None:
    parser = load_arguments(__doc__.splitlines()[0], optouts=20)
    parser.add_argument("--no-sink", action="store_true", help="run the worker alone")
    args = parser.parse_args()
    with OptoutLoad.prepared(args) as load:
        settings = load.settings
        sink = None if args.no_sink else load.sink()
        worker = WorkerProcess(settings, load.folder.parent / "worker.log", port=free_port())
        assert worker.intake is not None
        topics = [OPTOUT_TOPIC, worker.intake, OPTOUT_DECISIONS_TOPIC]
        replaying: subprocess.Popen[bytes] | None = None
        watcher: _Watcher | None = None
        try:
            if sink is not None:
                sink.start()
            worker.start()
            watcher = _Watcher(settings, load.registry)
            time.sleep(4)  # the watcher is assigned before anything is decided
            start = _marks(settings, topics)
            replaying = load.replay()
            cpu0 = _cpu_seconds(worker.pids)
            time.sleep(8)
            for _ in range(args.optouts):
                request_id, asked = load.publish_optout()
                deadline = time.monotonic() + 10
                while request_id not in watcher.received and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(max(0.0, 1.5 - (time.time() - asked)))
            elapsed = time.monotonic() - load.began
            cpu = _cpu_seconds(worker.pids) - cpu0
            counts = worker.counts()
            linked_s = counts.get("linked", 0) / elapsed
            end = _marks(settings, topics)
        finally:
            if watcher is not None:
                watcher.close()
            if replaying is not None:
                replaying.kill()
            worker.kill()
            if sink is not None:
                sink.kill()
        received = dict(watcher.received) if watcher is not None else {}
        hops = _hops(settings, load.registry, worker.intake, start, end, received)
    rows = []
    for before, after in itertools.pairwise(HOPS):
        spans = [
            hop[after] - hop[before] for hop in hops.values() if before in hop and after in hop
        ]
        if spans:
            rows.append(
                [
                    f"{before} -> {after}",
                    str(len(spans)),
                    f"{1000 * statistics.median(spans):.0f}",
                    f"{1000 * percentile(spans, 0.99):.0f}",
                    f"{1000 * max(spans):.0f}",
                ]
            )
    whole = [h["delivered"] - h["published"] for h in hops.values() if "delivered" in h]
    if whole:
        rows.append(
            [
                "published -> delivered",
                str(len(whole)),
                f"{1000 * statistics.median(whole):.0f}",
                f"{1000 * percentile(whole, 0.99):.0f}",
                f"{1000 * max(whole):.0f}",
            ]
        )
    missing = {h: sum(1 for hop in hops.values() if h not in hop) for h in HOPS}
    print(
        f"\n{len(hops)} opt-outs under about {linked_s:.0f} linked events/s (offered "
        f"{args.rate:.0f}/s{', worker alone' if args.no_sink else ', with the sink'}); "
        f"missing hops: {missing}\n"
    )
    handled = sum(int(counts.get(k, 0)) for k in OUTCOMES)
    print(
        f"worker: {cpu / elapsed:.2f} CPU-s per s; {handled / max(1, counts.get('packs', 0)):.0f}"
        f" records per pack, {counts.get('packs', 0) / max(1, counts.get('batches', 0)):.1f} "
        f"packs and {handled / max(1, counts.get('batches', 0)):.0f} records per batch, "
        f"{counts.get('batches', 0) / elapsed:.1f} batches/s\n"
    )
    print_table(["hop", "n", "p50 ms", "p99 ms", "max ms"], rows)
    for rid, hop in sorted(hops.items(), key=lambda item: item[1]["published"]):
        first = hop["published"]
        print(
            f"{rid[:8]}  "
            + "  ".join(f"{h}={1000 * (hop[h] - first):7.0f}" for h in HOPS if h in hop)
        )


if __name__ == "__main__":
    main()

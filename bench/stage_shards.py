"""The identity stage through the resolver on N shards (``IdentityStage.process_sharded``
over shards in this process) against the same stage over one resolver (``process``), on
the same messages in the same run: synth's records, opt-out requests and revocations in
wire format.

    .venv/bin/python -m bench.stage_shards [--people N] [--shards 1,2] [--epoch E] [--repeats R]

No stack needed (the shards are in this process: what the decider's path costs in CPU,
not what N processes gain). Every sharded run's outcomes and counts are checked equal to
the one-resolver stage's. Medians of the repeats, the runs interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench._harness import print_table
from c2c.offline_codecs import OfflineCodecs
from producers.files import in_time_order, open_folder
from producers.mapping import MappedRow
from producers.synth import NoiseConfig, SynthConfig, synthesize
from streams.identity.resolver import IdentifierHasher, Resolver
from streams.identity.sharding import ShardedResolver
from streams.resolution import INPUT_TOPICS, OUTPUT_TOPICS, IdentityStage, Incoming

_SECRET = b"bench-stage-shards"
_FLOOR = 10.0  # possible matches held for review, as a deployment with reviews runs

_CODECS = OfflineCodecs(300)


def _stage() -> IdentityStage:
    return IdentityStage(
        Resolver(IdentifierHasher(_SECRET), review_floor=_FLOOR),
        {t: _CODECS.decoder(t) for t in INPUT_TOPICS},
        {t: _CODECS.encoders[t] for t in OUTPUT_TOPICS},
    )


def _messages(people: int) -> list[Incoming]:
    folder = Path(tempfile.mkdtemp(prefix="c2c-stage-shards-"))
    synthesize(SynthConfig(people=people, seed=1, optout_rate=0.1), NoiseConfig(), folder)
    encoders = {t: _CODECS.encoders[t] for t in INPUT_TOPICS}
    return [
        Incoming(outcome.topic, 0, at, None, encoders[outcome.topic].encode(outcome.event))
        for at, (_item, _row, outcome) in enumerate(in_time_order(open_folder(folder)))
        if isinstance(outcome, MappedRow)
    ]


def _run(messages: list[Incoming], shards: int, epoch: int) -> tuple[float, float, Counter[str]]:
    """(wall s, CPU s, the stage's counts); ``shards`` 0: the stage over one resolver."""
    stage = _stage()
    started, cpu = time.perf_counter(), time.process_time()
    if shards == 0:
        for message in messages:
            stage.process(message)
    else:
        sharded = ShardedResolver(
            IdentifierHasher(_SECRET), shards, review_floor=_FLOOR, epoch=epoch
        )
        stage.process_sharded(messages, sharded)
    return time.perf_counter() - started, time.process_time() - cpu, stage.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--shards", default="1,2")
    parser.add_argument("--epoch", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = [0, *(int(n) for n in args.shards.split(","))]
    messages = _messages(args.people)
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    for _ in range(args.repeats):
        baseline: Counter[str] | None = None
        for n in counts:
            wall, cpu, seen = _run(messages, n, args.epoch)
            if baseline is None:
                baseline = seen
            elif seen != baseline:
                raise SystemExit(f"{n} shards counted {dict(seen)}, one resolver {baseline}")
            runs[n].append((wall, cpu))
    one_cpu = statistics.median(c for _w, c in runs[0])
    rows = []
    for n in counts:
        wall = statistics.median(w for w, _c in runs[n])
        cpu = statistics.median(c for _w, c in runs[n])
        name = "stage over one resolver" if n == 0 else f"stage on {n} shard(s), in process"
        rows.append(
            [
                name,
                f"{len(messages):,}",
                f"{len(messages) / wall:,.0f}",
                f"{wall:.2f}",
                f"{cpu:.2f}",
                f"{one_cpu / cpu:.2f}x",
            ]
        )
    print(
        f"{len(messages):,} messages (synth, {args.people} people, opt-outs 10 %), epochs of "
        f"{args.epoch:,}, medians of {args.repeats}"
    )
    print_table(["run", "messages", "messages/s", "wall s", "CPU s", "CPU vs one"], rows)


if __name__ == "__main__":
    main()

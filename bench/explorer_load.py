"""The explorer under load: 50 concurrent readers of its summary and of a query-builder
query, on loopback, while the sink writes a replay; p50, p99 and requests/s beside the
sink's own /outcomes JSON page (one public view, read the same way) in the same run.

    .venv/bin/python -m bench.explorer_load [--people N] [--readers R] [--seconds S]

Needs the local stack (`c2c services up`, topics and schemas). A synth of N people is
replayed through a fresh identity worker and sink (embedded ClickHouse in a temporary
folder) at a rate that lasts the whole test; once a fifth of it is written, `c2c explore`
starts (reading through the sink's /explore pages, as it does while a sink holds embedded
ClickHouse), once with its default 1 s cache (the summary: seven queries and freshness;
the query builder's page: three queries and freshness) and once without (its CSV: one
query through the sink, the explorer's own cost over the baseline). Each target is read by
R readers for S seconds, targets interleaved over --rounds rounds. Bounded: loopback only,
R connections, S seconds a target a round, 30 s at most a request (an error).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench._harness import print_table
from bench._optout_load import percentile
from c2c.child import free_port, free_port_pair
from c2c.settings import load_settings
from cli.demo import declare_synth_horizons
from cli.explore import ExplorerProcess
from cli.sink_process import SinkProcess
from cli.worker_process import WorkerProcess
from producers.files import mapped_events
from producers.synth import NoiseConfig, SynthConfig, synthesize

QUERY = "/query?measure=college_going&breakdown=race"
CSV = "/query.csv?measure=college_going&breakdown=race"


async def _read(url: str, readers: int, seconds: float) -> tuple[list[float], int, float]:
    """``readers`` loops reading ``url`` for ``seconds``: latencies (s), errors, elapsed."""
    latencies: list[float] = []
    errors = 0

    async def reader(session: aiohttp.ClientSession, until: float) -> None:
        nonlocal errors
        while time.monotonic() < until:
            began = time.perf_counter()
            try:
                async with session.get(url) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append(time.perf_counter() - began)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=readers)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.monotonic()
        until = began + seconds
        await asyncio.gather(*(reader(session, until) for _ in range(readers)))
        return latencies, errors, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    stack = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "synth"
        config = SynthConfig(people=args.people, seed=int(uuid.uuid4().int % 10**6))
        synthesize(config, NoiseConfig(), folder)
        events = sum(1 for _ in mapped_events(folder))
        settings = stack.model_copy(
            update={"clickhouse_url": f"chdb://{root / 'ch'}", "clickhouse_database": "bench"}
        )
        declare_synth_horizons(settings, folder)
        sink = SinkProcess(settings, root / "sink.log", port=free_port_pair())
        worker = WorkerProcess(stack, root / "worker.log", port=free_port_pair())
        explorers = {
            cache: ExplorerProcess(
                settings.model_copy(update={"sink_web_port": sink.port}),
                root / f"explorer-{cache}.log",
                port=free_port(),
                cache_s=cache,
            )
            for cache in (1.0, 0.0)
        }
        targets = {
            "sink /outcomes/public_outcome_college_going (baseline)": (
                f"http://127.0.0.1:{sink.port}/outcomes/public_outcome_college_going"
            ),
            "explorer summary /": explorers[1.0].url + "/",
            f"explorer query {QUERY}": explorers[1.0].url + QUERY,
            f"explorer {CSV}, no cache": explorers[0.0].url + CSV,
        }
        load_s = len(targets) * args.rounds * args.seconds
        rate = events / (load_s + 40)  # the replay outlasts the load
        replaying: subprocess.Popen[bytes] | None = None
        try:
            sink.start()
            worker.start()
            replaying = subprocess.Popen(
                [sys.executable, "-m", "cli", "replay", str(folder), "--rate", f"{rate:.0f}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            sink.wait(lambda _r, c: int(c.get("facts", 0)) >= events // 5, "a fifth written")
            for explorer in explorers.values():
                explorer.start()
            results: dict[str, list[tuple[list[float], int, float]]] = {t: [] for t in targets}
            written: dict[str, int] = dict.fromkeys(targets, 0)
            for _round in range(args.rounds):
                for name, url in targets.items():
                    before = int(sink.counts().get("facts", 0))
                    results[name].append(asyncio.run(_read(url, args.readers, args.seconds)))
                    written[name] += int(sink.counts().get("facts", 0)) - before
            still = replaying.poll() is None
        finally:
            if replaying is not None and replaying.poll() is None:
                replaying.kill()
            for explorer in explorers.values():
                explorer.stop()
            worker.stop()
            sink.stop()
    rows = []
    for name, runs in results.items():
        latencies = [s for run, _e, _t in runs for s in run]
        rates = [len(run) / elapsed for run, _e, elapsed in runs]
        rows.append(
            [
                name,
                f"{len(latencies):,}",
                f"{statistics.median(rates):,.0f}",
                f"{1000 * percentile(latencies, 0.5):.0f}",
                f"{1000 * percentile(latencies, 0.99):.0f}",
                str(sum(e for _r, e, _t in runs)),
                f"{written[name]:,}",
            ]
        )
    print(
        f"{args.readers} concurrent readers, {args.seconds:.0f} s a target a round, "
        f"{args.rounds} rounds interleaved; replay of {events:,} events at {rate:.0f}/s "
        f"({'still running' if still else 'ended'} at the end)"
    )
    print_table(
        ["target", "requests", "req/s (median)", "p50 ms", "p99 ms", "errors", "rows written"],
        rows,
    )


if __name__ == "__main__":
    main()

"""The sharded resolver over Kafka at scale (streams/shards.py): records/s, CPU and peak
RSS of each `c2c identity shard-host` and of the decider, the shards' stores on disk, and
a host's restart, at several sizes; beside the one-shard ``Resolver`` in memory over the
same records (bench/scale.py's generator and its resolve step, in a process of its own).

    python -m bench.shard_hosts --sizes 200000,1000000 [--shards 2] [--state disk]
        [--epoch 16000] [--cache-mb 4] [--seed 1]

Needs the stack (the C2C_* settings reach Kafka). Each size runs in fresh processes: the
decider (this bench's child: records generated as they are sent, resolutions counted, not
kept) and ``--shards`` hosts, one shard each, under a new app id. After the run, host 0 is
stopped (SIGTERM) and started again: the restart is the seconds until the group has
settled with every shard held again, and how many apply calls it replayed (0 with its
stores kept on disk; every one in memory).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._harness import print_table
from bench.scale import _SECRET, _child, _dir_mb, _rss_mb, generate


def run_sharded(
    records: int, seed: int, shards: int, state: str, epoch: int, cache_mb: int
) -> dict[str, Any]:
    """One size through ``shards`` hosts over Kafka (this process is the decider)."""
    from c2c.settings import load_settings
    from cli.shard_hosts import ShardHosts
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sealing import Sealer
    from streams.identity.sharding import Decider, epochs_of, resolve_epochs
    from streams.shards import KafkaShards

    settings = load_settings(identity_secret=_SECRET.decode())
    app_id = f"c2c-identity-bench-{uuid.uuid4().hex[:8]}"
    stores = settings.data_dir / "streams" / app_id
    logs = Path(tempfile.mkdtemp(prefix="bench-shard-hosts-"))
    environment = {
        "C2C_IDENTITY_SECRET": _SECRET.decode(),
        "C2C_STREAMS_STATE": state,
        "C2C_STREAMS_STATE_CACHE_MB": str(cache_mb),
        # bounded as bench.scale's disk runs bound it (--hash-cache's default)
        "C2C_IDENTITY_HASH_CACHE": str(16_384),
    }
    hosts = ShardHosts(settings, app_id, shards, shards, logs, environment=environment)
    try:
        hosts.wait_settled()
        kafka = KafkaShards(settings, app_id, shards, Sealer({1: _SECRET}, 1), timeout_s=600)
        decider = Decider(IdentifierHasher(_SECRET))
        hosts_before = hosts.cpu_now()
        cpu, started = time.process_time(), time.perf_counter()
        reviewed = 0
        for resolution in resolve_epochs(kafka, decider, epochs_of(generate(records, seed), epoch)):
            reviewed += resolution.person_id is None
        seconds = time.perf_counter() - started
        decider_cpu = time.process_time() - cpu
        hosts_cpu = [a - b for a, b in zip(hosts.cpu_now(), hosts_before, strict=True)]
        hosts_rss = hosts.peak_rss_mb()
        kafka.close()
        replays_before = len(hosts.rebuilt(0))
        restarted = time.perf_counter()
        hosts.restart(0)
        hosts.wait_settled(timeout_s=600)
        restart_s = time.perf_counter() - restarted
        replayed = [calls for _shards, calls in hosts.rebuilt(0)[replays_before:]]
        store_mb = _dir_mb(stores) if stores.exists() else 0.0
    except Exception:
        print(hosts.tails(), file=sys.stderr)
        raise
    finally:
        hosts.stop()
        shutil.rmtree(stores, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    return {
        "records": records,
        "seconds": seconds,
        "rate": records / seconds,
        "decider_cpu": decider_cpu,
        "decider_rss_mb": _rss_mb(),
        "hosts_cpu": hosts_cpu,
        "hosts_rss_mb": hosts_rss,
        "store_mb": store_mb,
        "restart_s": restart_s,
        "replayed": sum(replayed),
        "reviewed": reviewed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="records, comma-separated")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--state", choices=("memory", "disk"), default="disk")
    parser.add_argument("--epoch", type=int, default=16_000)
    parser.add_argument("--cache-mb", type=int, default=4, help="disk: MB cached a map")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the one Resolver in memory (its columns stay empty): the sizes compare "
        "with each other, the smallest the baseline, as bench.scale's do",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run_sharded(
            args.records, args.seed, args.shards, args.state, args.epoch, args.cache_mb
        )
        print(json.dumps(result))
        return
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        one = {"rate": float("nan"), "cpu_rate": float("nan"), "rss_mb": float("nan")}
        if not args.no_baseline:
            store = Path(tempfile.mkdtemp(prefix="c2c-scale-"))
            try:
                resolve = ("--child", "resolve", "--records", str(size), "--seed", str(args.seed))
                one = _child(
                    [*resolve, "--store", str(store), "--kind", "memory", "--cache-mb", "0"]
                )
            finally:
                shutil.rmtree(store, ignore_errors=True)
        options = {
            "--records": size,
            "--seed": args.seed,
            "--shards": args.shards,
            "--state": args.state,
            "--epoch": args.epoch,
            "--cache-mb": args.cache_mb,
        }
        done = subprocess.run(
            [
                sys.executable,
                *("-m", "bench.shard_hosts", "--child"),
                *(str(part) for pair in options.items() for part in pair),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        sharded = json.loads(done.stdout.strip().splitlines()[-1])
        hosts_cpu = sum(sharded["hosts_cpu"])
        rows.append(
            [
                f"{size:,}",
                f"{one['rate']:,.0f}",
                f"{sharded['rate']:,.0f}",
                f"{sharded['rate'] / one['rate']:.2f}x",
                f"{size / (sharded['decider_cpu'] + hosts_cpu):,.0f}",
                f"{one['cpu_rate']:,.0f}",
                f"{one['rss_mb']:,.0f}",
                " / ".join(f"{mb:,.0f}" for mb in sharded["hosts_rss_mb"]),
                f"{sharded['decider_rss_mb']:,.0f}",
                f"{sharded['store_mb']:,.0f}",
                f"{sharded['restart_s']:.1f} ({sharded['replayed']})",
            ]
        )
    print_table(
        [
            "records",
            "one Resolver rec/s",
            f"{args.shards} hosts rec/s",
            "ratio",
            "hosts+decider rec/CPU-s",
            "one rec/CPU-s",
            "one RSS MB",
            "hosts' peak RSS MB",
            "decider RSS MB",
            "stores MB",
            "restart s (applies replayed)",
        ],
        rows,
    )
    print(
        f"\n{args.shards} shard hosts, state in {args.state} (cache {args.cache_mb} MB a map), "
        f"epochs of {args.epoch:,}; one run a size. The brokers' CPU is not counted."
    )


if __name__ == "__main__":
    main()

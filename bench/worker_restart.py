"""The identity worker's restart with its resolver state in memory and on disk
(``C2C_STREAMS_STATE``, streams/durable.py), at two sizes of state.

    .venv/bin/python -m bench.worker_restart [--people 1000,5000] [--repeats 3]

Needs the local stack. For each size, a synth of N people goes through one worker (its own
app id and intake); then, with that worker stopped, the same app is restarted:

- memory (the default): the state rebuilt from every person and source id of the tables;
- disk, first start: no store yet (a new machine): built from the tables, then kept;
- disk, kept store: a restart that reads only the changelogs' tail (empty after a stop).

Restart: from the process's launch to the first record resolved after it (a few events of
a second small synth, published once the worker is ready): connection, Faust's table
recovery and the resolver's state together. RSS: the worker process's resident memory
then. Medians of ``--repeats`` restarts (the first disk start once: it makes the store).
The baseline is the memory row of the same size, in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench._harness import print_table
from c2c.child import free_port_pair
from c2c.settings import load_settings
from cli.worker_process import WorkerProcess
from producers.files import mapped_events, replay
from producers.synth import NoiseConfig, SynthConfig, synthesize


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _restart(
    app_id: str, intake: str, state: str, probe: Path, probes: int, logs: Path
) -> tuple[float, float, int]:
    """(seconds to the first record resolved, RSS MB, changelog messages of the tail read)."""
    os.environ["C2C_STREAMS_STATE"] = state
    settings = load_settings()
    worker = WorkerProcess(
        settings,
        logs / f"{app_id}-{state}-{uuid.uuid4().hex[:6]}.log",
        port=free_port_pair(),
        app_id=app_id,
        intake=intake,
    )
    started = time.monotonic()
    try:
        worker.start()
        replay(settings, probe)
        counts = worker.drained(probes)
        elapsed = time.monotonic() - started
        rss = _rss_mb(worker.pids[0])
        worker.stop()
    finally:
        worker.kill()
    return elapsed, rss, int(counts.get("state_tail_messages", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="1000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(n) for n in args.people.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        for people in sizes:
            synth = here / f"synth-{people}"
            synthesize(
                SynthConfig(people=people, seed=people, optout_rate=0.0), NoiseConfig(), synth
            )
            records = sum(1 for _ in mapped_events(synth))
            app_id = f"c2c-bench-restart-{uuid.uuid4().hex[:8]}"
            intake = f"c2c.identity.intake.{app_id}"
            os.environ["C2C_STREAMS_STATE"] = "memory"
            settings = load_settings()
            worker = WorkerProcess(
                settings,
                here / f"{app_id}.log",
                port=free_port_pair(),
                app_id=app_id,
                intake=intake,
            )
            try:
                worker.start()
                replay(settings, synth)
                worker.drained(records, timeout_s=1800)
                worker.stop()
            finally:
                worker.kill()
            probe = here / f"probe-{people}"
            synthesize(
                SynthConfig(people=3, seed=people + 1, optout_rate=0.0), NoiseConfig(), probe
            )
            probes = sum(1 for _ in mapped_events(probe))
            runs: dict[str, list[tuple[float, float, int]]] = {"memory": [], "disk": []}
            first_disk = None
            for _ in range(args.repeats):
                runs["memory"].append(_restart(app_id, intake, "memory", probe, probes, here))
                if first_disk is None:
                    first_disk = _restart(app_id, intake, "disk", probe, probes, here)
                runs["disk"].append(_restart(app_id, intake, "disk", probe, probes, here))
            assert first_disk is not None
            base = statistics.median(r[0] for r in runs["memory"])
            for label, measured in (
                ("memory", runs["memory"]),
                ("disk, first start", [first_disk]),
                ("disk, kept store", runs["disk"]),
            ):
                seconds = statistics.median(r[0] for r in measured)
                rows.append(
                    [
                        f"{people:,}",
                        f"{records:,}",
                        label,
                        f"{seconds:.2f}",
                        f"{seconds / base:.2f}x",
                        f"{statistics.median(r[1] for r in measured):.0f}",
                        f"{max(r[2] for r in measured):,}",
                    ]
                )
    print_table(
        ["people", "records", "state", "restart s", "vs memory", "RSS MB", "tail msgs"], rows
    )


if __name__ == "__main__":
    main()

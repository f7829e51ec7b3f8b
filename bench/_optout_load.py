"""What bench.optout and bench.optout_hops share: a synth of people without opt-outs of
their own, its replay at an offered rate as background load, a sink with its own embedded
ClickHouse, and operators' opt-outs of people whose records were already published."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c.child import free_port
from c2c.registry import SchemaRegistry
from c2c.settings import Settings, load_settings
from cli.sink_process import SinkProcess
from producers.emitter import EventEmitter
from producers.files import mapped_events
from producers.optouts import request_event
from producers.synth import NoiseConfig, SynthConfig, synthesize

#: An opt-out names a person whose records were published at least this long before.
PUBLISHED_BEFORE_S = 5.0


def load_arguments(description: str, optouts: int) -> argparse.ArgumentParser:
    """The options both benches take: --people, --rate (offered events/s), --optouts, --seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s")
    parser.add_argument("--optouts", type=int, default=optouts)
    parser.add_argument("--seed", type=int, default=None)
    return parser


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank ``share`` quantile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _identity(event: dict[str, Any]) -> dict[str, Any] | None:
    """The identity an operator's opt-out gives for the person behind ``event``, or None when
    the event carries too little to name anyone (no full name, no number or birth date)."""
    person = event.get("person") or {}
    if not (person.get("first_name") and person.get("last_name")):
        return None
    if not (person.get("ssid") or person.get("ssn")) or not person.get("birth_date"):
        return None
    keys = ("ssn", "ssid", "first_name", "last_name", "birth_date", "zip")
    return {k: person.get(k) for k in keys}


@dataclass
class OptoutLoad:
    """A prepared synth in a temporary folder, its replay, and opt-outs of published people."""

    settings: Settings
    registry: SchemaRegistry
    folder: Path
    rate: float
    rng: random.Random
    events: list[dict[str, Any]]
    began: float = 0.0
    _emitter: EventEmitter | None = field(default=None, repr=False)

    @classmethod
    @contextmanager
    def prepared(cls, args: argparse.Namespace) -> Iterator[OptoutLoad]:
        """Synthesize ``args.people`` people (seeded by ``args.seed`` or the clock) in a
        temporary folder that lives as long as the context."""
        settings = load_settings()
        seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "synth"
            synthesize(
                SynthConfig(people=args.people, seed=seed, optout_rate=0.0), NoiseConfig(), folder
            )
            yield cls(
                settings,
                SchemaRegistry(settings),
                folder,
                args.rate,
                random.Random(seed),
                [event for _source, event in mapped_events(folder)],
            )

    def sink(self) -> SinkProcess:
        """A sink process (not started) with its own embedded ClickHouse beside the synth."""
        root = self.folder.parent
        settings = self.settings.model_copy(
            update={"clickhouse_url": f"chdb://{root / 'ch'}", "clickhouse_database": "bench"}
        )
        return SinkProcess(settings, root / "sink.log", port=free_port())

    def replay(self) -> subprocess.Popen[bytes]:
        """Start ``c2c replay`` of the synth at the offered rate; the caller kills it."""
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "replay", str(self.folder), "--rate", str(self.rate)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.began = time.monotonic()
        self._emitter = EventEmitter(self.settings, self.registry)  # connected before the first
        return process

    def publish_optout(self) -> tuple[str, float]:
        """Publish an operator's opt-out of a person the replay published at least
        PUBLISHED_BEFORE_S before (at the offered rate); its request id and time.time()."""
        published = int(self.rate * (time.monotonic() - self.began - PUBLISHED_BEFORE_S))
        candidates = self.events[: max(1, min(published, len(self.events)))]
        person = None
        while person is None:
            person = _identity(self.rng.choice(candidates))
        event = request_event(person, requested_by="OPERATOR")
        if self._emitter is None:
            raise RuntimeError("OptoutLoad.publish_optout: start the replay first")
        asked = time.time()
        self._emitter.emit("optout", event)
        self._emitter.flush()
        return str(event["request_id"]), asked

"""Identity resolution on N shards (issue #22): where the one-shard resolver's CPU goes, and
the throughput of the sharded core against it.

    python -m bench.shards --breakdown [--records 50000] [--seed 1]
    python -m bench.shards [--records 48000] [--epoch 8000] [--shards 1,2] [--repeats 3]

Without ``--breakdown``: records/s of the one-shard ``Resolver`` (the baseline, in this
process) and of streams/identity/sharding.py with each of N shards in a process of its own
(multiprocessing pipes; PREPARE, PROBE, SCORE and APPLY in the shards, the decider in this
process), interleaved, medians of ``--repeats`` runs; the ratio to the baseline; where the
time went (the decider's CPU seconds, this process's CPU including pickling, the seconds it
waited for the shards, each shard's CPU, all processes' CPU), and the speedup the CPU
seconds allow. Every sharded run's resolutions are checked equal to the baseline's.

As in the design, each shard reads the epoch from the intake itself (here: the records it
inherited when it forked; an epoch is sent as its offsets) and takes the records it
prepares; an identity's masks cross each pipe once, then go by name (``_Link``). What
lives on is frozen out of the garbage collector's view: the inputs, each shard's state
after each APPLY, each round's answers in the deciding process, the resolutions every
epoch in the deciding and the one-shard process, and before each run what earlier runs
left; ``--no-gc`` turns the collector off in every process, the one-shard run's included.

``--breakdown`` times the one-shard ``Resolver`` phase by phase over the fast identity
generator (bench/scale.py): PREPARE (``Resolver.identity``: normalising and hashing, and the
source-id hash), probe keys, candidate lookup (blocks, roots, de-duplication), scoring the
candidates, and the rest (the decision: ranking, merge conflicts and state writes). Each
phase is a wrapper around the resolver's own function on one instance; the run without
wrappers is beside it, so the wrappers' cost shows. Amdahl's bound for N shards follows
with the decision kept sequential.
"""

from __future__ import annotations

import argparse
import functools
import gc
import io
import multiprocessing
import pickle
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any, overload

from bench._harness import print_table
from bench.scale import _SECRET, generate
from streams.identity.matching import Identity

Record = tuple[str, dict[str, Any]]


def _timed(
    func: Callable[..., Any],
    totals: dict[str, float],
    name: str,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return func(*args, **kwargs)
        finally:
            totals[name] += clock() - started

    return wrapper


def breakdown(records: list[Record]) -> dict[str, float]:
    """Seconds per phase of one ``Resolver`` over ``records`` (see the module's doc)."""
    import streams.identity.resolver as module
    from streams.identity.resolver import IdentifierHasher, Resolver

    totals = dict.fromkeys(
        ("total", "identity", "source_id", "matches", "probe_keys", "score_candidates"), 0.0
    )
    totals["score_decision"] = 0.0
    resolver = Resolver(IdentifierHasher(_SECRET))
    resolver.identity = _timed(resolver.identity, totals, "identity")  # type: ignore[method-assign]
    resolver.hasher.source_id = _timed(  # type: ignore[method-assign]
        resolver.hasher.source_id, totals, "source_id"
    )
    in_matches = [False]
    matches = resolver._matches
    score = resolver.score

    def timed_matches(*args: Any) -> Any:
        in_matches[0] = True
        started = time.perf_counter()
        try:
            return matches(*args)
        finally:
            totals["matches"] += time.perf_counter() - started
            in_matches[0] = False

    def timed_score(identity: Any, profile: Any) -> Any:
        started = time.perf_counter()
        try:
            return score(identity, profile)
        finally:
            phase = "score_candidates" if in_matches[0] else "score_decision"
            totals[phase] += time.perf_counter() - started

    resolver._matches = timed_matches  # type: ignore[method-assign,assignment]
    resolver.score = timed_score  # type: ignore[method-assign]
    original_probe = module.probe_keys
    module.probe_keys = _timed(original_probe, totals, "probe_keys")
    try:
        started = time.perf_counter()
        for provider, person in records:
            resolver.resolve(provider, person)
        totals["total"] = time.perf_counter() - started
    finally:
        module.probe_keys = original_probe
    return totals


def plain_seconds(records: list[Record]) -> float:
    """Seconds of one unwrapped ``Resolver`` over ``records``."""
    from streams.identity.resolver import IdentifierHasher, Resolver

    resolver = Resolver(IdentifierHasher(_SECRET))
    started = time.perf_counter()
    for provider, person in records:
        resolver.resolve(provider, person)
    return time.perf_counter() - started


def amdahl(sequential: float, shards: int) -> float:
    """The most speedup N shards give when ``sequential`` (a share) stays on one core."""
    return 1.0 / (sequential + (1.0 - sequential) / shards)


def print_breakdown(records: list[Record]) -> None:
    plain = plain_seconds(records)
    t = breakdown(records)
    total = t["total"]
    lookup = t["matches"] - t["probe_keys"] - t["score_candidates"]
    rest = total - t["identity"] - t["source_id"] - t["matches"]
    phases = [
        ("PREPARE: Resolver.identity (normalise, HMAC ids and masks)", t["identity"], True),
        ("PREPARE: source-id hash", t["source_id"], True),
        ("PREPARE: probe keys", t["probe_keys"], True),
        ("PROBE: candidate lookup (blocks, roots, dedup)", lookup, True),
        ("SCORE: scoring candidates", t["score_candidates"], True),
        ("DECIDE: scoring merge conflicts", t["score_decision"], False),
        ("DECIDE: rule, ranking, state writes", rest - t["score_decision"], False),
    ]
    rows = [
        [name, f"{seconds * 1e6 / len(records):.1f}", f"{100 * seconds / total:.1f} %", part]
        for name, seconds, parallel in phases
        for part in ["parallel" if parallel else "sequential"]
    ]
    rows.append(["total (wrapped)", f"{total * 1e6 / len(records):.1f}", "100 %", ""])
    rows.append(["total (no wrappers)", f"{plain * 1e6 / len(records):.1f}", "", ""])
    print_table(["phase", "us / record", "share", "on N shards"], rows)
    sequential = sum(s for _, s, parallel in phases if not parallel) / total
    print(
        f"\nsequential share {100 * sequential:.1f} %: Amdahl bound "
        f"N=2 {amdahl(sequential, 2):.2f}x, N=4 {amdahl(sequential, 4):.2f}x"
    )


# The records of the run, set before the shards' processes fork: each shard reads them as
# it would read the intake topic (an epoch travels as its offsets, :class:`_Intake`).
_INTAKE: list[Record] = []


class _Intake(Sequence[Record]):
    """Records [start, end) of the run's intake, pickled as the two offsets: in the design
    every shard reads the epoch from the intake topic, so the decider's process does not
    send it (the forked shard holds ``_INTAKE`` as its topic)."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start

    @overload
    def __getitem__(self, at: int) -> Record: ...

    @overload
    def __getitem__(self, at: slice) -> Sequence[Record]: ...

    def __getitem__(self, at: int | slice) -> Record | Sequence[Record]:
        if isinstance(at, slice):
            return _INTAKE[self.start : self.end][at]
        if not -len(self) <= at < len(self):
            raise IndexError(at)
        return _INTAKE[self.start + at if at >= 0 else self.end + at]

    def __iter__(self) -> Iterator[Record]:
        return iter(_INTAKE[self.start : self.end])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Intake, (self.start, self.end))


def intake_epochs(size: int, first: int = 0, end: int | None = None) -> Iterator[_Intake]:
    """The intake (``_INTAKE``) from offset ``first`` to ``end`` cut into epochs of
    ``size``, each as its offsets."""
    end = len(_INTAKE) if end is None else end
    for start in range(first, end, size):
        yield _Intake(start, min(start + size, end))


# Messages between the processes: pickles, except that an identity's masks (an SSN's 53
# keyed hashes, most of its bytes) cross a pipe once: afterwards either end names them by
# the hash they are the masks of (0: the masks I sent you under it; 1: those you sent me).
# Each process keeps one object per set of masks (_CANON, first come) and names only
# those, so that a name always stands for the masks the other end holds under it; masks
# unlike the canonical ones of their hash (never, with one hasher) are sent whole and not
# named.
_CANON: dict[str, frozenset[str]] = {}


class _Link:
    """One end of a pipe: the canonical masks sent and received on it, by hash."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sent: dict[str, frozenset[str]] = {}
        self.received: dict[str, frozenset[str]] = {}

    def send(self, message: Any) -> None:
        buffer = io.BytesIO()
        _Pickler(buffer, self).dump(message)
        self.connection.send_bytes(buffer.getbuffer())

    def recv(self) -> Any:
        return _Unpickler(io.BytesIO(self.connection.recv_bytes()), self).load()


_Masks = frozenset[str] | int | list[frozenset[str]]


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, link: _Link) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._link = link

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not Identity:
            return NotImplemented
        masks = (self._masks(obj.ssn, obj.ssn_masks), self._masks(obj.ssid, obj.ssid_masks))
        return (_received_identity, (obj[:3], *masks, obj[5:]))

    def _masks(self, name: str | None, masks: frozenset[str]) -> _Masks:
        if not masks or not name:
            return masks
        canon = _CANON.setdefault(name, masks)
        if canon is not masks and canon != masks:
            return [masks]  # whole, not named
        link = self._link
        if link.sent.get(name) is canon:
            return 0
        if link.received.get(name) is canon:
            return 1
        link.sent[name] = canon
        return canon


def _received_identity(*args: Any) -> Identity:
    raise RuntimeError("an identity unpickled outside bench.shards' pipes: a bug")


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, link: _Link) -> None:
        super().__init__(file)
        self._link = link

    def find_class(self, module: str, name: str) -> Any:
        if name == "_received_identity":
            return self._identity
        return super().find_class(module, name)

    def _identity(
        self, head: tuple[Any, ...], ssn_masks: _Masks, ssid_masks: _Masks, tail: tuple[Any, ...]
    ) -> Identity:
        masks = (self._masks(head[0], ssn_masks), self._masks(head[1], ssid_masks))
        return Identity._make((*head, *masks, *tail))

    def _masks(self, name: str, masks: _Masks) -> frozenset[str]:
        if isinstance(masks, int):
            return (self._link.received if masks == 0 else self._link.sent)[name]
        if isinstance(masks, list):
            return masks[0]
        if not masks or not name:
            return masks
        canon = _CANON.setdefault(name, masks)
        if canon is not masks and canon == masks:
            masks = canon
        self._link.received[name] = masks
        return masks


def _serve(connection: Connection, shard_args: tuple[Any, ...]) -> None:
    """A shard's process: run each round sent, answer with its result."""
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sharding import Shard

    secret, floor = shard_args
    shard = Shard(IdentifierHasher(secret), review_floor=floor)
    link = _Link(connection)
    while True:
        method, args = link.recv()
        if method == "stop":
            link.send(time.process_time())
            return
        if method == "cpu":
            link.send(time.process_time())
            continue
        link.send(getattr(shard, method)(*args))
        if method == "apply" and gc.isenabled():
            # the shard's state is long-lived and acyclic: out of the collector's view, so
            # that the next rounds' allocations do not rescan it (freed by refcount as ever)
            gc.freeze()


class ProcessShards:
    """:class:`streams.identity.sharding.ShardSet` of shards each in a process of its own.
    Rounds are sent by a thread per shard: a shard answering a round may block until its
    answer is read, and this process, sending the next round meanwhile, must not block too."""

    def __init__(self, count: int, secret: bytes, floor: float | None = None) -> None:
        context = multiprocessing.get_context("fork")
        self._links: list[_Link] = []
        self._processes = []
        self._outboxes: list[queue.SimpleQueue[Any]] = []
        self._senders = []
        for _ in range(count):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, (secret, floor)), daemon=True)
            process.start()
            outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
            link = _Link(mine)
            sender = threading.Thread(target=_send_all, args=(link, outbox), daemon=True)
            sender.start()
            self._links.append(link)
            self._processes.append(process)
            self._outboxes.append(outbox)
            self._senders.append(sender)
        self.waited = 0.0  # seconds this process waited for answers (and unpickled them)

    @property
    def count(self) -> int:
        return len(self._links)

    def send(self, method: str, arguments: Sequence[tuple[Any, ...]]) -> None:
        for outbox, args in zip(self._outboxes, arguments, strict=True):
            outbox.put((method, args))

    def receive(self) -> list[Any]:
        started = time.perf_counter()
        answers = [link.recv() for link in self._links]
        self.waited += time.perf_counter() - started
        if gc.isenabled():
            gc.freeze()  # the answers live for the epoch: not rescanned meanwhile
        return answers

    def cpu_now(self) -> list[float]:
        """Each shard's CPU seconds so far (between rounds: none may be in flight)."""
        self.send("cpu", [()] * self.count)
        return self.receive()

    def stop(self) -> list[float]:
        """Stop every shard; each one's CPU seconds."""
        for outbox in self._outboxes:
            outbox.put(("stop", ()))
        cpu = [link.recv() for link in self._links]
        stopping = zip(self._outboxes, self._senders, self._processes, strict=True)
        for outbox, sender, process in stopping:
            outbox.put(None)
            sender.join()
            process.join()
        return cpu


def _send_all(link: _Link, outbox: queue.SimpleQueue[Any]) -> None:
    while (message := outbox.get()) is not None:
        link.send(message)


def _kept(resolutions: Iterable[Any], every: int) -> list[Any]:
    """``resolutions`` in a list; what lives on (the list, the resolver's state) taken out
    of the collector's view every ``every`` records (an epoch), as each shard freezes its
    state after each APPLY: the same policy in every process."""
    out = []
    freeze = gc.isenabled()
    for resolution in resolutions:
        out.append(resolution)
        if freeze and len(out) % every == 0:
            gc.freeze()
    return out


def _one_shard(records: list[Record], epoch: int, warm: int = 0) -> tuple[float, float, list[Any]]:
    """One resolver over ``records``: (wall s, CPU s, resolutions), the first ``warm``
    records resolved before the clocks start."""
    from streams.identity.resolver import IdentifierHasher, Resolver

    resolver = Resolver(IdentifierHasher(_SECRET))
    out = _kept((resolver.resolve(provider, person) for provider, person in records[:warm]), epoch)
    _settle()
    cpu_before = time.process_time()
    started = time.perf_counter()
    out += _kept((resolver.resolve(provider, person) for provider, person in records[warm:]), epoch)
    return time.perf_counter() - started, time.process_time() - cpu_before, out


def _sharded(records: list[Record], shards: int, epoch: int, warm: int = 0) -> dict[str, Any]:
    """The sharded core over ``records`` in processes (see the module's doc), the first
    ``warm`` records (whole epochs) resolved before the clocks start."""
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sharding import Decider, resolve_epochs

    decider = Decider(IdentifierHasher(_SECRET))
    deciding = {"decide": 0.0}
    decide, plan = decider.decide, decider.plan
    cpu = time.process_time
    decider.decide = _timed(decide, deciding, "decide", cpu)  # type: ignore[method-assign]
    decider.plan = _timed(plan, deciding, "decide", cpu)  # type: ignore[method-assign]
    _INTAKE[:] = records  # before the shards fork: their intake
    process_shards = ProcessShards(shards, _SECRET)
    out = _kept(resolve_epochs(process_shards, decider, intake_epochs(epoch, 0, warm)), epoch)
    shards_before = process_shards.cpu_now() if warm else [0.0] * shards
    deciding["decide"], process_shards.waited = 0.0, 0.0
    _settle()
    cpu_before = time.process_time()
    started = time.perf_counter()
    out += _kept(resolve_epochs(process_shards, decider, intake_epochs(epoch, warm)), epoch)
    seconds = time.perf_counter() - started
    parent_cpu = time.process_time() - cpu_before
    shard_cpu = [a - b for a, b in zip(process_shards.stop(), shards_before, strict=True)]
    return {
        "seconds": seconds,
        "out": out,
        "decide": deciding["decide"],
        "parent_cpu": parent_cpu,
        "waited": process_shards.waited,
        "shard_cpu": shard_cpu,
    }


def _over_kafka(records: list[Record], shards: int, epoch: int) -> dict[str, Any]:
    """The sharded core with its rounds over Kafka (streams/shards.py): ``shards`` shards
    served by as many `c2c identity shard-host` processes, on the configured stack (a
    fresh app id: empty shards). Each epoch's records travel in the PREPARE call."""
    import tempfile
    import uuid
    from pathlib import Path

    from c2c.settings import load_settings
    from cli.shard_hosts import ShardHosts
    from streams.identity.resolver import IdentifierHasher
    from streams.identity.sealing import Sealer
    from streams.identity.sharding import Decider, epochs_of, resolve_epochs
    from streams.shards import KafkaShards

    settings = load_settings(identity_secret=_SECRET.decode())
    app_id = f"c2c-identity-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as logs:
        hosts = ShardHosts(
            settings,
            app_id,
            shards,
            shards,
            Path(logs),
            environment={"C2C_IDENTITY_SECRET": _SECRET.decode()},
        )
        try:
            hosts.wait_settled()
            sealer = Sealer({1: _SECRET}, 1)
            kafka = KafkaShards(settings, app_id, shards, sealer)
            decider = Decider(IdentifierHasher(_SECRET))
            hosts_before = hosts.cpu_now()
            cpu_before = time.process_time()
            started = time.perf_counter()
            out = _kept(resolve_epochs(kafka, decider, epochs_of(records, epoch)), epoch)
            seconds = time.perf_counter() - started
            parent_cpu = time.process_time() - cpu_before
            shard_cpu = [a - b for a, b in zip(hosts.cpu_now(), hosts_before, strict=True)]
            kafka.close()
        finally:
            hosts.stop()
    return {
        "seconds": seconds,
        "out": out,
        "parent_cpu": parent_cpu,
        "waited": kafka.waited,
        "shard_cpu": shard_cpu,  # during the run (not the hosts' start-up)
    }


def _settle() -> None:
    """Before each run: what earlier runs left (their resolutions, kept to compare) out of
    the collector's view, so that no run pays for rescanning another's."""
    if gc.isenabled():
        gc.collect()
        gc.freeze()


def throughput(
    records: list[Record],
    shard_counts: list[int],
    epoch: int,
    repeats: int,
    kafka: bool = False,
    warm: int = 0,
) -> None:
    """Records/s of the one-shard resolver and of each shard count, interleaved (see the
    module's doc); with ``kafka``, each shard count over Kafka too. The first ``warm``
    records are resolved before each run's clocks start (not over Kafka)."""
    runs: dict[str, list[dict[str, Any]]] = {"one-shard Resolver": []}
    runs.update({f"{n} shard{'s' if n > 1 else ''}": [] for n in shard_counts})
    if kafka:
        runs.update({f"{n} over Kafka": [] for n in shard_counts})
    for _ in range(repeats):
        _settle()
        seconds, cpu, expected = _one_shard(records, epoch, warm)
        runs["one-shard Resolver"].append({"seconds": seconds, "parent_cpu": cpu})
        for n in shard_counts:
            _settle()
            run = _sharded(records, n, epoch, warm)
            if run.pop("out") != expected:
                raise SystemExit(f"{n} shards resolved differently from one resolver: a bug")
            runs[f"{n} shard{'s' if n > 1 else ''}"].append(run)
            if kafka:
                _settle()
                run = _over_kafka(records, n, epoch)
                if run.pop("out") != expected:
                    raise SystemExit(f"{n} shards over Kafka resolved differently: a bug")
                runs[f"{n} over Kafka"].append(run)
    base = statistics.median(r["seconds"] for r in runs["one-shard Resolver"])
    base_cpu = statistics.median(r["parent_cpu"] for r in runs["one-shard Resolver"])
    rows = []
    for name, measured in runs.items():
        seconds = statistics.median(r["seconds"] for r in measured)

        def med(key: str, measured: list[dict[str, Any]] = measured) -> str:
            if key not in measured[0]:
                return ""
            return f"{statistics.median(r[key] for r in measured):.2f}"

        shards_cpu = [
            statistics.median(r["shard_cpu"][i] for r in measured)
            for i in range(len(measured[0].get("shard_cpu", ())))
        ]
        shard_cpu = " / ".join(f"{cpu:.2f}" for cpu in shards_cpu)
        # on idle cores the slowest process bounds the run: CPU seconds, not wall
        critical = max([statistics.median(r["parent_cpu"] for r in measured), *shards_cpu])
        every = statistics.median(r["parent_cpu"] for r in measured) + sum(shards_cpu)
        rows.append(
            [
                name,
                f"{(len(records) - warm) / seconds:,.0f}",
                f"{base / seconds:.2f}x",
                f"{seconds:.2f}",
                med("decide"),
                med("parent_cpu"),
                med("waited"),
                shard_cpu,
                f"{every:.2f}",
                f"{base_cpu / critical:.2f}x",
            ]
        )
    print_table(
        [
            "resolver",
            "records/s",
            "vs one",
            "wall s",
            "decider CPU s",
            "parent CPU s",
            "parent waiting s",
            "shards' CPU s",
            "all CPU s",
            "CPU bound vs one",
        ],
        rows,
    )
    print(
        f"\n{len(records) - warm:,} records timed after {warm:,} resolved first, epochs of "
        f"{epoch:,}; medians of {repeats} runs. "
        "CPU bound: the one-shard run's CPU seconds over the busiest process's (the speedup "
        "if every process had a core of its own and nothing waited)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=48_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--epoch", type=int, default=8_000)
    parser.add_argument("--shards", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--wave",
        type=int,
        default=500,
        help="people whose records interleave (bench.scale.generate): a person's records "
        "spread over about 25 x this many",
    )
    parser.add_argument(
        "--warm",
        type=int,
        default=0,
        help="records resolved before the clocks start (whole epochs; not with --kafka)",
    )
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="also each shard count over Kafka (streams/shards.py; needs the stack: C2C_*)",
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="the cyclic garbage collector off in every process (the one-shard run's too)",
    )
    args = parser.parse_args(argv)
    if args.warm % args.epoch or (args.warm and args.kafka) or args.warm >= args.records:
        parser.error("--warm: whole epochs, fewer than --records, and not with --kafka")
    records = list(generate(args.records, args.seed, args.wave))
    # the inputs live for the whole run (as in no resolver): out of the collector's view,
    # for the one-shard resolver and the decider alike (as bench/sink.py does)
    gc.collect()
    gc.freeze()
    if args.no_gc:
        gc.disable()  # (the shards' processes fork with it off)
    if args.breakdown:
        print_breakdown(records)
    else:
        counts = [int(n) for n in args.shards.split(",")]
        throughput(records, counts, args.epoch, args.repeats, args.kafka, args.warm)


if __name__ == "__main__":
    main()

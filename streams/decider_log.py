"""The sharded resolver's decider's write-ahead log (streams/README.md, Scaling out):
what a decider lost while the shards apply an epoch resumes from."""

from __future__ import annotations

from typing import Any, NamedTuple

from c2c.kafka import read_to_end
from c2c.settings import Settings
from c2c.topics import shard_decider_topic
from streams.identity import wire
from streams.identity.resolver import Resolution
from streams.identity.sealing import Sealer
from streams.identity.sharding import Decider, EpochWrites
from streams.shard_messages import flush_or_raise, produce, shard_producer

__all__ = ["DeciderLog", "Resumed", "logged_epoch"]


class Resumed(NamedTuple):
    """Where a decider's log left off: the items its epochs took (the intake's offset to
    go on from), the resolutions of its last epoch (to publish again: they may not have
    been) and that epoch's writes (to send the shards again), None if it logged none;
    ``extra``: what the decider's user logged with that epoch (``record``'s), else None."""

    done: int
    resolutions: list[Resolution]
    pending: EpochWrites | None
    extra: Any = None


def logged_epoch(
    logged: tuple[Any, ...],
) -> tuple[int, int, list[Resolution], EpochWrites, Any]:
    """A logged epoch's (items done, next person number, resolutions, writes, extra); an
    earlier decider's has no extra (None)."""
    if len(logged) == 4:
        return (*logged, None)
    if len(logged) != 5:
        raise ValueError(f"a decider's logged epoch has 4 or 5 parts, not {len(logged)}")
    return logged


class DeciderLog:
    """The decider's write-ahead log on ``<app id>-shard-decider`` (one partition,
    compacted): before the shards are sent an epoch's writes, its merges (one key each)
    and the epoch itself (its resolutions and writes, the records taken so far and the
    next person number, in chunks keyed by the epoch) are written and confirmed, and the
    epoch before it deleted. A decider started again (:meth:`resume`) takes the merges,
    the next number and the persons the last epoch wrote from it, sends that epoch's writes
    again and goes on after its records: the same resolutions as if it had not stopped."""

    def __init__(self, settings: Settings, app_id: str, sealer: Sealer) -> None:
        self._settings = settings
        self._topic = shard_decider_topic(app_id).name
        self._sealer = sealer
        self._producer = shard_producer(settings)
        self._errors: list[str] = []
        self._last: tuple[int, int] | None = None  # (epoch, chunks) of the last logged
        self.epoch = 0  # epochs decided (this decider's and those before it)
        self.done = 0  # items those epochs took (records, and Named items: not resolved)

    def resume(self, decider: Decider) -> Resumed:
        """``decider`` (new) where the log leaves off; what to do again (:class:`Resumed`)."""
        merges: dict[str, str] = {}
        # (epoch, chunks) -> chunk -> bytes: a torn epoch (its decider lost while writing
        # it) may share its number with a whole one written after, not its chunk count
        epochs: dict[tuple[int, int], dict[int, bytes]] = {}
        for message in read_to_end(self._settings, [self._topic]):
            key = (message.key() or b"").decode()
            value = message.value()
            kind, _, rest = key.partition(":")
            if kind == "merge":
                if value is not None:
                    merges[rest] = wire.decode(self._sealer, key, value)
                else:
                    merges.pop(rest, None)
            elif kind == "epoch":
                epoch, chunk, count = (int(part) for part in rest.replace("/", ":").split(":"))
                if value is None:
                    epochs.get((epoch, count), {}).pop(chunk, None)
                else:
                    epochs.setdefault((epoch, count), {})[chunk] = value
        whole = [place for place, chunks in epochs.items() if len(chunks) == place[1]]
        if not whole:
            decider.resume(1, merges, {})
            return Resumed(0, [], None)
        epoch, count = max(whole)
        chunks = epochs[epoch, count]
        payload = b"".join(chunks[i] for i in range(count))
        done, next_number, resolutions, writes, extra = logged_epoch(
            wire.decode(self._sealer, f"epoch:{epoch}", payload)
        )
        for absorbed, survivor in writes.merges.items():  # None: a split took it back
            if survivor is None:
                merges.pop(absorbed, None)
            else:
                merges[absorbed] = survivor
        decider.resume(next_number, merges, writes.persons)
        self.epoch, self.done, self._last = epoch, done, (epoch, count)
        return Resumed(done, resolutions, writes, extra)

    def record(
        self,
        resolutions: list[Resolution],
        writes: EpochWrites,
        taken: int,
        next_number: int,
        extra: Any = None,
    ) -> None:
        """Log a decided epoch of ``taken`` items (``resolve_epochs``' ``decided``); returns
        once Kafka has the epoch. ServiceError if it does not. ``extra``: more to keep with
        the epoch (plain values: the identity worker's intake position and the messages the
        epoch publishes), given back by :meth:`resume`.

        The epoch first (its merges are in its writes), then its merges by key and the
        previous epoch's deletion, which go out before the next epoch (one partition, in
        order): a decider lost before an epoch is whole resumes from the one before, whose
        merges are all logged, and never sees a merge of an epoch it decides again."""
        self.epoch += 1
        self.done += taken
        payload = wire.encode(
            self._sealer,
            f"epoch:{self.epoch}",
            (self.done, next_number, resolutions, writes, extra),
        )
        chunks = wire.split_chunks(payload)
        for at, chunk in enumerate(chunks):
            self._produce(f"epoch:{self.epoch}:{at}/{len(chunks)}", chunk)
        flush_or_raise(self._producer, f"logging epoch {self.epoch} of the decider", self._errors)
        for absorbed, survivor in writes.merges.items():
            key = f"merge:{absorbed}"
            self._produce(
                key, None if survivor is None else wire.encode(self._sealer, key, survivor)
            )
        if self._last is not None:  # the epoch before: no longer the one to resume from
            last, count = self._last
            for at in range(count):
                self._produce(f"epoch:{last}:{at}/{count}", None)
        self._last = (self.epoch, len(chunks))

    def _produce(self, key: str, value: bytes | None) -> None:
        produce(self._producer, self._errors, self._topic, key, value)

    def close(self) -> None:
        flush_or_raise(self._producer, "closing the decider's log", self._errors)

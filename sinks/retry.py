"""Writing a batch until ClickHouse takes it: the sink's retry policy.

While ClickHouse refuses a batch, the sink holds its partitions paused (the group kept
alive), waits 0.5 s, then twice as long after each refusal up to 30 s, and tries the same
batch again: nothing is acknowledged that was not written. A batch holding linked messages
for ClickHouse to decode (sinks/wire.py) that is refused may hold a message ClickHouse
refused: its messages are decoded in the sink instead (which names a bad one, a dead
letter) and the batch is tried again at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from sinks.batch import Batch, BatchBuilder
from sinks.consumer import SinkConsumer
from sinks.refusal import RefusedRow, refused_for_data, summary

__all__ = ["RetryingWriter"]

log = logging.getLogger(__name__)
# clickhouse-connect logs every value it cannot serialize at ERROR with a traceback, then
# raises; the sink reports the refusal itself (RetryingWriter: one line a batch, the rows
# dead-lettered), so halving a batch down to a bad row printed a traceback a try
logging.getLogger("clickhouse_connect.driver.transform").setLevel(logging.CRITICAL)
_FIRST_WAIT_S = 0.5
_LONGEST_WAIT_S = 30.0


class RetryingWriter:
    """Writes batches through ``insert`` (one attempt at every insert of a batch, raising
    what ClickHouse raised) by the policy of the module docstring; ``consumer`` is held
    while it waits (through ``sleep``), ``builder`` decodes refused wire messages.

    ``salvage(batch)`` finds and takes out the rows refused for their data (raising for an
    outage).

    ``counts``: ``clickhouse_errors`` (refused attempts), ``wire.refused`` (of those, the
    ones tried again with their wire messages decoded) and ``refused.salvaged`` (the ones
    tried again without the rows refused for their data). ``clickhouse_error``: why the
    last attempt was refused, None once one is taken; ``last_insert_s``: how long the last
    attempt taken took."""

    def __init__(
        self,
        insert: Callable[[Batch], None],
        *,
        consumer: SinkConsumer,
        builder: BatchBuilder,
        salvage: Callable[[Batch], list[RefusedRow]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._insert = insert
        self._salvage = salvage
        self._consumer = consumer
        self._builder = builder
        self._sleep = sleep
        self.counts: Counter[str] = Counter()
        self.clickhouse_error: str | None = None
        self.last_insert_s: float | None = None

    def write(self, batch: Batch, stop: threading.Event) -> bool:
        """Insert ``batch`` until ClickHouse takes it (True) or ``stop`` is set (False)."""
        delay = _FIRST_WAIT_S
        while True:
            started = time.perf_counter()
            try:
                self._insert(batch)
            except Exception as exc:  # clickhouse-connect and chdb raise many types
                self.clickhouse_error = summary(exc)
                self.counts["clickhouse_errors"] += 1
                if any(batch.wire.values()):
                    log.warning(
                        "ClickHouse refused a batch of linked messages as they came (%s); "
                        "decoding them in the sink and retrying",
                        exc,
                    )
                    self.counts["wire.refused"] += 1
                    self._consumer.send_dead_letters(self._builder.unwire(batch))
                    continue
                if self._salvage is not None and refused_for_data(exc) and self._set_aside(batch):
                    continue
                log.warning("ClickHouse refused a batch (%s); retrying in %.1f s", exc, delay)
                if not self._consumer.hold(delay, stop, self._sleep):
                    return False
                delay = min(delay * 2, _LONGEST_WAIT_S)
                continue
            self.last_insert_s = time.perf_counter() - started
            self.clickhouse_error = None
            self._consumer.resume()
            return True

    def _set_aside(self, batch: Batch) -> bool:
        """Take the rows refused for their data out of ``batch`` as dead letters; whether
        any were found (none: the refusal did not repeat, and the batch waits as for an
        outage). An outage met meanwhile is an outage: False."""
        assert self._salvage is not None
        try:
            refused = self._salvage(batch)
        except Exception as exc:
            log.warning("ClickHouse failed while the sink looked for refused rows (%s)", exc)
            return False
        if not refused:
            return False
        log.warning(
            "ClickHouse refused %d row(s) for what they hold (%s); dead-lettered, the rest "
            "is written",
            len(refused),
            refused[0].error,
        )
        self.counts["refused.salvaged"] += 1
        self._consumer.publish_dead_letters(item.dead_letter() for item in refused)
        return True

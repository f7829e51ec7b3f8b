"""Garbage collection while the sink runs: the collector's automatic runs are off, and the
sink's loop collects where no batch is held.

A batch holds up to hundreds of thousands of rows, lists the collector would traverse
again and again as they age, though they hold no cycles and are freed with their batch. A
collection while a batch is open would traverse (and promote, to be traversed again) every
row read into it so far; between batches there is little to traverse.
"""

from __future__ import annotations

import gc
import time
from types import TracebackType

__all__ = ["BetweenBatches"]

_YOUNG_EVERY_S = 1.0  # the young generations, at least this often while no batch is open
_ALL_EVERY_S = 60.0  # everything, this often (at the next point between batches)


class BetweenBatches:
    """Within ``with``: the whole process's automatic collection off (restored on leaving,
    if it was on). The loop asks :meth:`due` at points where no batch is held, and calls
    :meth:`collect` when it says so: the young generations after every batch written (or
    every second while none is open), everything every minute."""

    def __init__(self) -> None:
        self._collected = self._collected_all = time.monotonic()
        self._enabled = False

    def __enter__(self) -> BetweenBatches:
        self._enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(
        self,
        _kind: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._enabled:
            gc.enable()

    def due(self, now: float, *, written: bool) -> bool:
        """Whether to collect now (monotonic ``now``), a batch just ``written`` or not."""
        return written or now - self._collected >= _YOUNG_EVERY_S

    def collect(self, now: float) -> None:
        """Collect the young generations, or everything once a minute."""
        if now - self._collected_all >= _ALL_EVERY_S:
            gc.collect()
            self._collected_all = now
        else:
            gc.collect(1)
        self._collected = now

"""The sink's garbage collection between batches (sinks/gc_control.py)."""

from __future__ import annotations

import gc
import time

from sinks.gc_control import BetweenBatches


def test_automatic_collection_is_off_within_and_as_it_was_after() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        with BetweenBatches() as collector:
            assert not gc.isenabled()
            now = time.monotonic()
            assert collector.due(now, written=True)  # after every batch written
            assert not collector.due(now, written=False)
            assert collector.due(now + 1.0, written=False)  # every second meanwhile
            collector.collect(now + 1.0)
            assert not collector.due(now + 1.5, written=False)
        assert gc.isenabled()
        gc.disable()
        with BetweenBatches():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        if was:
            gc.enable()

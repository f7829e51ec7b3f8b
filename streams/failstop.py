"""Fail-stop: an error while handling a batch ends the worker process at once.

Faust acknowledges a batch taken with ``take_events`` even when the agent raised, and would
then commit the offsets of messages whose results were never sent; a thread that died
quietly would leave partitions unread. So any error while handling a batch stops the
process before anything can be committed, and the batch is read again after the restart
(it resolves to the same ids)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

__all__ = ["EXIT_CODE", "fail_stop"]

EXIT_CODE = 70  # EX_SOFTWARE
log = logging.getLogger(__name__)


@contextlib.contextmanager
def fail_stop(doing: str) -> Iterator[None]:
    """Any error while ``doing`` ends the process at once (exit code 70), before Faust or
    the forwarder can acknowledge the batch."""
    try:
        yield
    except BaseException as exc:
        log.critical("stopping the worker: failed while %s: %r", doing, exc, exc_info=True)
        logging.shutdown()
        os._exit(EXIT_CODE)

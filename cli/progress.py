"""Progress of long work (replay, produce, demo): a line redrawn in place on a terminal, a
plain line every ``interval_s`` seconds otherwise (a log collector keeps it), nothing with
``--quiet``. Always on stderr, so that stdout (and --json) stays the result alone."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

import click

__all__ = ["QUIET_OPTION", "Progress"]

QUIET_OPTION = click.option(
    "--quiet", "-q", is_flag=True, help="No progress lines on stderr (the result still prints)."
)


class Progress:
    """Counts ``unit`` done of ``total`` (if known) and shows it, with the rate."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "rows",
        total: int | None = None,
        quiet: bool = False,
        interval_s: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.label, self.unit, self.total = label, unit, total
        self.done = 0
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._tty = self._stream.isatty()
        self._interval = 0.2 if self._tty else interval_s
        self._started = self._last = time.monotonic()

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if not self._quiet and now - self._last >= self._interval:
            self._last = now
            self._show(now, end="\r" if self._tty else "\n")

    def _show(self, now: float, end: str) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        of = f" of {self.total:,}" if self.total else ""
        self._stream.write(f"{self.label}: {self.done:,}{of} {self.unit} ({rate:,.0f}/s){end}")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if not self._quiet and self._tty and self.done:
            self._show(time.monotonic(), end="\n")

"""Repeated log lines are throttled, so a flood of bad connections cannot become a flood of logs.

A sidecar that logs a traceback per refused connection wrote 28 MB of errors in about ten seconds
(issue 15): disk, log shipping and the reader's attention all pay for it. ``Throttle`` lets through
``burst`` records of one kind (logger and message template) per ``window`` seconds, and notes on
the next one let through how many it dropped. Only the first record of a kind in a window keeps its
traceback: asyncio logs one per failed ``accept()`` when descriptors run out, and five tracebacks are
thirty lines. Installed on the process's log handler by
``modes.running.configure_logging``; the per-request JSON lines (stdout) are not throttled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

BURST = 5  # records of one kind let through per window
WINDOW_SECONDS = 10.0
KINDS_MAX = 1024  # distinct kinds remembered; beyond it the oldest window is forgotten


class Throttle(logging.Filter):
    def __init__(
        self, *, burst: int = BURST, window: float = WINDOW_SECONDS, now: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._now = now
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # kind → (window start, records seen)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg))
        now = self._now()
        started, seen = self._windows.get(kind, (now, 0))
        if now - started >= self.window:
            if seen > self.burst:
                record.msg = f"{record.msg} [{seen - self.burst} similar lines dropped in {self.window:g}s]"
            started, seen = now, 0
        if kind not in self._windows and len(self._windows) >= KINDS_MAX:
            del self._windows[next(iter(self._windows))]
        self._windows[kind] = (started, seen + 1)
        if seen > 0:  # the window's first record shows the traceback; the repeats are one line each
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return seen < self.burst

"""The adaptive first-token deadline: abandon a member that is far slower than its own normal.

A fixed ``firstTokenSeconds`` must be set for the slowest normal case, so a member that usually answers
in 300 ms and then hangs is waited for the whole 15 s, by every request in flight. Each member keeps its
recent times to first token here (``FirstTokenTimes``, owned by ``failover.health.MemberHealth``), and
``first_token_seconds`` turns them into the deadline for its next attempt. ``failover.engine`` asks for
it before every attempt. No I/O; the clock is a parameter.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Callable

from pilotfish.specs import modelclass

# Samples kept per member: enough for a stable p95 (the 4th largest of 64), small enough to sort per attempt.
SAMPLES_KEPT = 64
# A sample older than this no longer speaks for the member: a member that became slower for good is
# judged by firstTokenSeconds again after this long, and learns its new normal.
SAMPLE_MAX_AGE_SECONDS = 600.0
PERCENTILE = 0.95  # the member's "recent high" normal


class FirstTokenTimes:
    """A member's recent times to first token, newest last, each with when it was measured."""

    __slots__ = ("_now", "_samples", "_sorted")

    def __init__(self, *, now: Callable[[], float]) -> None:
        self._now = now
        self._samples: collections.deque[tuple[float, float]] = collections.deque()  # (when, seconds)
        # the same seconds in ascending order, kept so as samples come and go (a bisect each): the p95 is
        # then an index, where sorting the samples again cost more than the rest of the member's health view,
        # once per request under steady load (every success adds a sample)
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        """A committed attempt's time from send to its first content."""
        if seconds >= 0 and math.isfinite(seconds):
            if len(self._samples) >= SAMPLES_KEPT:
                self._drop_oldest()
            self._samples.append((self._now(), seconds))
            bisect.insort(self._sorted, seconds)

    def count(self) -> int:
        """Samples young enough to count."""
        self._expire()
        return len(self._samples)

    def high(self, *, min_samples: int) -> float | None:
        """The recent p95 time to first token, or None with fewer than ``min_samples`` samples."""
        self._expire()
        ordered = self._sorted
        if len(ordered) < min_samples or not ordered:
            return None
        return ordered[min(len(ordered) - 1, math.ceil(PERCENTILE * len(ordered)) - 1)]

    def _expire(self) -> None:
        oldest = self._now() - SAMPLE_MAX_AGE_SECONDS
        samples = self._samples
        while samples and samples[0][0] < oldest:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, seconds = self._samples.popleft()
        del self._sorted[bisect.bisect_left(self._sorted, seconds)]  # one equal to it, if not that very one


def first_token_seconds(
    *,
    timeouts: modelclass.TimeoutsSpec,
    times: FirstTokenTimes,
    fallback: bool,
) -> float:
    """The first-token deadline of one attempt, in seconds from its start.

    ``fallback``: another member could take over if this one is abandoned. Without one, the configured
    deadline holds: cutting the only member short would turn a slow answer into no answer."""
    configured = timeouts.first_token_seconds
    adaptive = timeouts.adaptive_first_token
    if not adaptive.enabled or not fallback:
        return configured
    high = times.high(min_samples=adaptive.min_samples)
    if high is None:
        return configured
    # never below the member's own normal (multiple >= 1), never above what the class configured
    return min(configured, max(adaptive.floor_seconds, adaptive.multiple * high))

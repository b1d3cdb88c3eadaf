"""A retry budget: retries and failovers are capped at a percentage of recent first attempts.

Without it an outage multiplies upstream load: every request that fails on member A is sent again
to B, and SDK retries multiply that again. With it, a sidecar sends at most ``1 + percent/100`` times
its own traffic upstream, plus a small floor so a quiet pod can still fail over. Same idea as
Finagle's and Envoy's retry budgets. ``failover.engine`` keeps one budget per class: it calls
``record_request()`` once per client request and ``try_spend()`` before every attempt after the first.

The window slides in whole buckets of ``BUCKET_SECONDS``: an event is forgotten between
``window - BUCKET_SECONDS`` and ``window`` seconds after it happened. Each call is O(1) amortised
and memory is at most ``window / BUCKET_SECONDS + 1`` buckets, whatever the traffic: this is on the
hot path of every request.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

from pilotfish.telemetry import records

# Retries always allowed per window, so a pod serving one request a minute can still fail over
# through a whole class (three members need two retries) a few times over, while an outage at
# thousands of requests a window is still held to ``percent``.
MIN_RETRIES_PER_WINDOW = 10
# One bucket a second: a 10 s window costs 11 small objects; finer buckets buy nothing measurable.
BUCKET_SECONDS = 1.0


class _Bucket:
    """First attempts and retries that happened in one bucket of time."""

    __slots__ = ("index", "requests", "retries")

    def __init__(self, index: int) -> None:
        self.index = index  # floor(now / BUCKET_SECONDS)
        self.requests = 0
        self.retries = 0


class RetryBudget:
    """Retries allowed in the window: ``min_retries + percent% of first attempts`` in the window."""

    def __init__(
        self,
        *,
        percent: float,
        now: Callable[[], float],
        window: float = 10.0,
        min_retries: int = MIN_RETRIES_PER_WINDOW,
    ) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be in [0, 100], got {percent}")
        if not window >= BUCKET_SECONDS:
            raise ValueError(f"window must be at least {BUCKET_SECONDS} s, got {window}")
        if min_retries < 0:
            raise ValueError(f"min_retries must not be negative, got {min_retries}")
        self.percent = percent
        self._now = now
        self._buckets_kept = math.ceil(window / BUCKET_SECONDS)
        self._min_retries = min_retries
        self._buckets: collections.deque[_Bucket] = collections.deque()
        self._requests = 0  # totals over the buckets in the window
        self._retries = 0
        self.exhausted_total = 0
        """Retries refused since the budget was made (a monotonic counter, for a metric)."""

    def record_request(self) -> None:
        """A first attempt: each one raises the allowance by ``percent / 100`` of a retry."""
        self._current().requests += 1
        self._requests += 1

    def try_spend(self) -> bool:
        """Spend one retry or failover; False (and ``exhausted_total`` + 1) when the budget is used up."""
        bucket = self._current()
        if (self._retries + 1 - self._min_retries) * 100.0 > self._requests * self.percent:
            self.exhausted_total += 1
            return False
        bucket.retries += 1
        self._retries += 1
        return True

    def allowed(self) -> float:
        """Retries the window allows now (spent ones included)."""
        self._current()
        return self._min_retries + self._requests * self.percent / 100.0

    def spent(self) -> int:
        """Retries spent in the window."""
        self._current()
        return self._retries

    def utilisation(self) -> float:
        """Spent over allowed, in [0, 1]: 1 means the next retry is refused. (Spent retries can
        briefly outlive the first attempts that allowed them in the window; that reads as 1.)"""
        allowed = self.allowed()
        if allowed <= 0:
            return 0.0 if self._retries == 0 else 1.0
        return min(1.0, self._retries / allowed)

    def _current(self) -> _Bucket:
        """Drop buckets that left the window and return the one for now."""
        index = math.floor(self._now() / BUCKET_SECONDS)
        buckets = self._buckets
        while buckets and buckets[0].index <= index - self._buckets_kept:
            gone = buckets.popleft()
            self._requests -= gone.requests
            self._retries -= gone.retries
        if not buckets or buckets[-1].index < index:
            buckets.append(_Bucket(index))
        return buckets[-1]


def rationed(record: records.RequestRecord, member_id: str, *, steady: bool) -> bool:
    """Does the next attempt (on ``member_id``, ``steady`` or not: ``health.MemberHealth.steady``) spend the
    retry budget? The budget stops amplification: more calls to an upstream that is already failing. A retry
    of the same member, or a failover onto a member that is itself struggling, is that; a failover away from
    a member that just failed onto a steady one is not (it sends the failed member nothing more), and neither
    is the retry after a failed canary: its weight already bounds that extra load, and a bad canary must
    cost users nothing, not even the retry budget the stable members rely on."""
    if not record.attempts:
        return False
    if len(record.attempts) == 1 and record.attempts[0].member_id == record.canary_member:
        return False
    return record.attempts[-1].member_id == member_id or not steady

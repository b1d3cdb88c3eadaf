"""A retry budget: failovers and retries are capped at a percentage of recent first attempts.

Without it an outage multiplies upstream load: every request that fails on member A is sent again
to B, and SDK retries multiply that again. With it, a sidecar sends at most ``1 + percent/100`` times
its own traffic upstream (plus a small floor so a quiet pod can still fail over). Same idea as
Finagle's and Envoy's retry budgets.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

# Retries always allowed per window, so a pod serving one request a minute can still fail over
# through a whole class (three members need two retries).
MIN_RETRIES_PER_WINDOW = 10
BUCKET_SECONDS = 1.0


class RetryBudget:
    """Sliding window of 1-second buckets of (first attempts, retries spent)."""

    def __init__(
        self,
        *,
        percent: float,
        now: Callable[[], float],
        window: float = 10.0,
        min_retries: int = MIN_RETRIES_PER_WINDOW,
    ) -> None:
        self.percent = percent
        self._now = now
        self._buckets_kept = max(1, math.ceil(window / BUCKET_SECONDS))
        self._min_retries = min_retries
        self._buckets: collections.deque[list[int]] = collections.deque()  # [bucket id, requests, retries]
        self._requests = 0
        self._retries = 0
        self.exhausted_total = 0

    def record_request(self) -> None:
        self._bucket()[1] += 1
        self._requests += 1

    def try_spend(self) -> bool:
        """Spend one retry if the budget allows it."""
        bucket = self._bucket()
        if self._retries + 1 > self.allowed():
            self.exhausted_total += 1
            return False
        bucket[2] += 1
        self._retries += 1
        return True

    def allowed(self) -> float:
        return self._min_retries + self._requests * self.percent / 100.0

    def utilisation(self) -> float:
        self._bucket()
        return self._retries / self.allowed()

    def _bucket(self) -> list[int]:
        current = int(self._now() // BUCKET_SECONDS)
        buckets = self._buckets
        while buckets and buckets[0][0] <= current - self._buckets_kept:
            _, requests, retries = buckets.popleft()
            self._requests -= requests
            self._retries -= retries
        if not buckets or buckets[-1][0] != current:
            buckets.append([current, 0, 0])
        return buckets[-1]

"""A per-member circuit breaker that stops sending to a member that keeps failing, then lets exactly
one probe through to find out whether it has recovered.

Cooldowns carry jitter so that the sidecars of many pods, which all saw the same outage at the same
moment, do not all probe the recovering provider in the same instant (no thundering herd). A
Retry-After from the provider opens the circuit at once for that long.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

# A provider asking for more than this is treated as down for this long, then probed again.
RETRY_AFTER_CAP_SECONDS = 600.0


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """closed → (threshold failures | Retry-After) → open → (cooldown) → half-open → one probe."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown: float,
        now: Callable[[], float],
        rng: random.Random | None = None,
        jitter: float = 0.1,
        probe_timeout: float | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._now = now
        self._rng = rng or random.Random()
        self._jitter = jitter
        self._probe_timeout = probe_timeout if probe_timeout is not None else cooldown
        self._failures = 0
        self._open_until: float | None = None  # set while open or half-open
        self._probe_deadline: float | None = None  # set while a probe is out

    @property
    def state(self) -> CircuitState:
        if self._open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if self._now() < self._open_until else CircuitState.HALF_OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def cooldown_left(self) -> float:
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._now())

    def allow(self) -> bool:
        """May a request go to this member now? In half-open, true for one caller at a time."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        now = self._now()
        if self._probe_deadline is not None and now < self._probe_deadline:
            return False  # a probe is already out
        self._probe_deadline = now + self._probe_timeout
        return True

    def release_probe(self) -> None:
        """The admitted probe was never sent: let the next caller probe instead."""
        self._probe_deadline = None

    def record_success(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probe_deadline = None

    def record_failure(self, *, retry_after: float | None = None) -> None:
        self._failures += 1
        self._probe_deadline = None
        if retry_after is not None:
            self._open_for(min(max(retry_after, 0.0), RETRY_AFTER_CAP_SECONDS))
        elif self._open_until is not None or self._failures >= self.failure_threshold:
            self._open_for(self._jittered(self.cooldown))

    def _open_for(self, seconds: float) -> None:
        self._open_until = self._now() + seconds

    def _jittered(self, seconds: float) -> float:
        return seconds * (1.0 + self._rng.uniform(-self._jitter, self._jitter))

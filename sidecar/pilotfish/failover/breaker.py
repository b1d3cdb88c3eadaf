"""A per-member circuit breaker: stop sending to a member that keeps failing, then let exactly one
probe through to find out whether it has recovered.

One breaker per member, owned by ``failover.health.MemberHealth``; ``failover.engine`` asks
``allow()`` before each attempt and reports the outcome. No I/O: the clock is a parameter, and
states are computed lazily from it (an open circuit becomes half-open when its cooldown has passed,
without a timer).

::

    closed ──(threshold consecutive failures, a trip, or any Retry-After)──▶ open
    open ──(cooldown passed)──▶ half-open ──(probe succeeds)──▶ closed
                                half-open ──(probe fails)──▶ open, with a fresh cooldown

Cooldowns carry jitter so that the sidecars of many pods, which all saw the same outage at the same
moment, do not all probe the recovering provider in the same instant (no thundering herd). A
Retry-After from the provider opens the circuit at once for exactly that long: the provider said
when to come back. A probe that never reports (its caller vanished) holds the half-open slot only
for ``probe_timeout``, so the breaker cannot stay stuck.

With active probing (``active_probe``, a credential with ``spec.probe``), a half-open circuit admits no
caller through ``allow``: only the prober, through ``lease_probe``, so no user request is ever the
probe of a dead member. A prober that leaves its turn to other sidecars ``postpone``s: the circuit
stays open for another jittered cooldown, no failure counted.

Results that arrive while the circuit is open come from calls admitted before it opened. They do
not change the decision: a late success does not close the circuit (a rate-limited member would be
hammered again), and a late failure does not push the cooldown further out; only a Retry-After, the
provider's own word, can extend it.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable

# A provider asking for more than this is treated as down for this long, then probed again: a typo
# or a daily-quota Retry-After must not take a member out of service for a day.
RETRY_AFTER_CAP_SECONDS = 600.0


class CircuitState(enum.StrEnum):
    """A member's circuit, as /debug/members and the metrics show it."""

    CLOSED = "closed"  # in use
    OPEN = "open"  # skipped until its cooldown has passed
    HALF_OPEN = "half_open"  # one probe at a time may go through


class CircuitBreaker:
    """Consecutive-failure breaker with Retry-After, jittered cooldowns and a leased half-open probe."""

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
        """``jitter`` is a fraction: 0.1 opens for ``cooldown`` ±10%. ``rng`` defaults to a private
        unseeded generator; pass one for reproducible jitter. ``probe_timeout`` defaults to ``cooldown``."""
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if probe_timeout is not None and not probe_timeout > 0:
            raise ValueError(f"probe_timeout must be positive, got {probe_timeout}")
        self._now = now
        self._rng = rng if rng is not None else random.Random()
        self._jitter = jitter
        self._probe_timeout_given = probe_timeout
        self._failure_threshold = _checked_threshold(failure_threshold)
        self._cooldown = _checked_cooldown(cooldown)
        self._failures = 0
        self._open_until: float | None = None  # set while open or half-open
        self._probe_deadline: float | None = None  # set while a half-open probe is out
        self.active_probe = False  # the prober, not a caller, probes a half-open circuit

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open the circuit."""
        return self._failure_threshold

    @property
    def cooldown(self) -> float:
        """Seconds an opened circuit stays open, before jitter."""
        return self._cooldown

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cooldown has passed reads as half-open)."""
        if self._open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if self._now() < self._open_until else CircuitState.HALF_OPEN

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success that closed (or kept closed) the circuit."""
        return self._failures

    def cooldown_left(self) -> float:
        """Seconds until an open circuit turns half-open; 0 when closed or half-open."""
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._now())

    def allow(self) -> bool:
        """May an attempt go to this member now? In half-open, true for one caller (the probe), unless
        the prober probes (``active_probe``)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self.active_probe:
            return False
        return self.lease_probe()

    def admits(self, *, last_resort: bool) -> bool:
        """``allow``, except that a last resort (every circuit of the class open) tries the member anyway,
        unless the prober probes it: then no user request goes to it until a probe has closed it."""
        return (last_resort and not self.active_probe) or self.allow()

    def lease_probe(self) -> bool:
        """Take the half-open probe slot (the prober's way in): false when not half-open or it is taken."""
        if self.state is not CircuitState.HALF_OPEN:
            return False
        now = self._now()
        if self._probe_deadline is not None and now < self._probe_deadline:
            return False  # a probe is out and its lease has not expired
        self._probe_deadline = now + self._probe_timeout
        return True

    def postpone(self) -> None:
        """Leave this cooldown's probe to other sidecars: open for another jittered cooldown, no failure."""
        if self.state is CircuitState.HALF_OPEN:
            self._open_for(self._jittered(self._cooldown))

    def release_probe(self) -> None:
        """The admitted probe was never sent (or got no verdict): let the next caller probe instead."""
        self._probe_deadline = None

    def record_success(self) -> None:
        """An attempt succeeded: closes a closed or half-open circuit for good; ignored while open."""
        if self.state is CircuitState.OPEN:
            return  # admitted before the circuit opened: the probe decides recovery, not this
        self._failures = 0
        self._open_until = None
        self._probe_deadline = None

    def record_failure(self, *, retry_after: float | None = None, trip: bool = False) -> None:
        """An attempt failed in a way that counts. ``retry_after`` (seconds) opens the circuit at once
        for exactly that long (negative as 0, capped at RETRY_AFTER_CAP_SECONDS, NaN ignored). ``trip``
        opens it at once for a cooldown, whatever the count: the failure alone shows the member is down
        (a hang), and every caller would otherwise wait to find that out on its own."""
        wait = _sane_retry_after(retry_after)
        state = self.state
        self._failures += 1
        if state is CircuitState.OPEN:
            assert self._open_until is not None
            if wait is not None:
                self._open_until = max(self._open_until, self._now() + wait)
            return
        if wait is not None:
            self._open_for(wait)
        elif trip or state is CircuitState.HALF_OPEN or self._failures >= self._failure_threshold:
            self._open_for(self._jittered(self._cooldown))

    def reconfigure(self, *, failure_threshold: int, cooldown: float) -> None:
        """Apply new settings and keep the state: a member that is down stays down after an edit.

        A new threshold applies from the next failure. An open circuit keeps its remaining wait,
        capped at the new (jittered) cooldown, so shortening a cooldown takes effect at once and the
        sidecars that all received the edit together still do not all probe together."""
        self._failure_threshold = _checked_threshold(failure_threshold)
        self._cooldown = _checked_cooldown(cooldown)
        if self.state is CircuitState.OPEN:
            assert self._open_until is not None
            self._open_until = min(self._open_until, self._now() + self._jittered(self._cooldown))

    @property
    def _probe_timeout(self) -> float:
        return self._probe_timeout_given if self._probe_timeout_given is not None else self._cooldown

    def _open_for(self, seconds: float) -> None:
        self._open_until = self._now() + seconds
        self._probe_deadline = None

    def _jittered(self, seconds: float) -> float:
        if self._jitter == 0.0:
            return seconds
        return seconds * (1.0 + self._rng.uniform(-self._jitter, self._jitter))


def _checked_threshold(failure_threshold: int) -> int:
    if failure_threshold < 1:
        raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
    return failure_threshold


def _checked_cooldown(cooldown: float) -> float:
    if not cooldown > 0:  # also refuses NaN
        raise ValueError(f"cooldown must be positive, got {cooldown}")
    return cooldown


def _sane_retry_after(retry_after: float | None) -> float | None:
    if retry_after is None or math.isnan(retry_after):
        return None
    return min(max(retry_after, 0.0), RETRY_AFTER_CAP_SECONDS)

"""What the sidecar knows about each member: its breaker, how fast it answers, how often it fails.

Kept per (class, member id) across routes reloads, so a config change does not forget that a
provider is down. ``snapshot`` gives plan and /debug/members an immutable view.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

from pilotfish import failures
from pilotfish.api import modelclass
from pilotfish.failover import breaker
from pilotfish.routes import document

EWMA_ALPHA = 0.2  # weight of the newest sample: reacts within ~5 requests, smooths single outliers
ERROR_ALPHA = 0.1  # the error rate is an EWMA of 0/1 outcomes: O(1) memory, ~the last 20 attempts


@dataclasses.dataclass(frozen=True, slots=True)
class MemberView:
    state: breaker.CircuitState
    consecutive_failures: int
    cooldown_left: float
    latency_ewma: float | None  # seconds; None until the first success
    ttft_ewma: float | None
    error_rate: float  # EWMA of failed attempts (0..1); 0 before any attempt
    attempts: int  # since the member appeared in the routes

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutiveFailures": self.consecutive_failures,
            "cooldownLeftSeconds": round(self.cooldown_left, 3),
            "latencyEwmaSeconds": None if self.latency_ewma is None else round(self.latency_ewma, 4),
            "ttftEwmaSeconds": None if self.ttft_ewma is None else round(self.ttft_ewma, 4),
            "errorRate": round(self.error_rate, 4),
            "attempts": self.attempts,
        }


class MemberHealth:
    def __init__(self, *, spec: modelclass.HealthSpec, now: Callable[[], float], rng: random.Random) -> None:
        self.spec = spec
        self._now = now
        self.breaker = breaker.CircuitBreaker(
            failure_threshold=spec.failure_threshold, cooldown=spec.cooldown_seconds, now=now, rng=rng
        )
        self.latency_ewma: float | None = None
        self.ttft_ewma: float | None = None
        self.error_rate = 0.0
        self.attempts = 0

    def record_success(self, *, latency: float, ttft: float | None) -> None:
        self.breaker.record_success()
        self.latency_ewma = _ewma(self.latency_ewma, latency)
        if ttft is not None:
            self.ttft_ewma = _ewma(self.ttft_ewma, ttft)
        self._count(failed=False)

    def record_failure(self, *, failure: failures.Failure, counts_against_health: bool) -> None:
        if not counts_against_health:
            self.breaker.release_probe()  # the member answered; its health is not in question
            return
        self.breaker.record_failure(retry_after=failure.retry_after)
        self._count(failed=True)

    def _count(self, *, failed: bool) -> None:
        self.attempts += 1
        self.error_rate += ERROR_ALPHA * ((1.0 if failed else 0.0) - self.error_rate)

    def view(self) -> MemberView:
        return MemberView(
            state=self.breaker.state,
            consecutive_failures=self.breaker.consecutive_failures,
            cooldown_left=self.breaker.cooldown_left(),
            latency_ewma=self.latency_ewma,
            ttft_ewma=self.ttft_ewma,
            error_rate=self.error_rate,
            attempts=self.attempts,
        )


class HealthRegistry:
    def __init__(self, *, now: Callable[[], float], rng: random.Random) -> None:
        self._now = now
        self._rng = rng
        self._members: dict[str, dict[str, MemberHealth]] = {}  # class → member id → health
        self._specs: dict[str, modelclass.HealthSpec] = {}

    def member(self, class_name: str, member: document.MemberRoute) -> MemberHealth:
        members = self._members.setdefault(class_name, {})
        found = members.get(member.id)
        if found is None:
            spec = self._specs.get(class_name) or modelclass.HealthSpec()
            found = members[member.id] = MemberHealth(spec=spec, now=self._now, rng=self._rng)
        return found

    def reconcile(self, routes: document.RoutesDocument) -> None:
        """Keep the state of members that survive a reload; forget the rest; apply new specs."""
        self._specs = {name: route.health for name, route in routes.classes.items()}
        kept: dict[str, dict[str, MemberHealth]] = {}
        for name, route in routes.classes.items():
            old_members = self._members.get(name, {})
            kept[name] = {}
            for member in route.members:
                old = old_members.get(member.id)
                if old is not None and old.spec == route.health:
                    kept[name][member.id] = old
                elif old is not None:  # new thresholds: a fresh breaker, but keep what we measured
                    fresh = MemberHealth(spec=route.health, now=self._now, rng=self._rng)
                    fresh.latency_ewma, fresh.ttft_ewma = old.latency_ewma, old.ttft_ewma
                    kept[name][member.id] = fresh
        self._members = kept

    def snapshot(self, class_name: str) -> Mapping[str, MemberView]:
        return {mid: health.view() for mid, health in self._members.get(class_name, {}).items()}


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + EWMA_ALPHA * (sample - previous)

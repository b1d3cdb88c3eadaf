"""What the sidecar knows about each member: its breaker, how fast it answers, how often it fails.

``failover.engine`` reports every attempt's outcome here; ``failover.plan`` orders members from an
immutable ``snapshot``; ``admin`` shows the same views at /debug/members. State is kept per
(class, member id) across routes reloads (``HealthRegistry.reconcile``), so editing a class does not
forget that a provider is down.

Measurements, and why these:

- latency and time to first token are EWMAs (``EWMA_ALPHA``): O(1) memory, and they follow a member
  that gets slower within a handful of requests while smoothing out a single outlier;
- the error rate is over a sliding window of the last ``ERROR_WINDOW_SECONDS`` (buckets of
  ``ERROR_BUCKET_SECONDS``): a rate over time reads the same on a busy pod and a quiet one, and it
  falls back to zero once a member has been left alone for a minute. Only failures that count
  against health are errors; a client's bad request is an attempt the member answered correctly.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
from collections.abc import Callable, Mapping

from pilotfish import failures, scrub
from pilotfish.failover import breaker, deadlines, policy
from pilotfish.routes import document
from pilotfish.specs import modelclass, refs

EWMA_ALPHA = 0.2  # weight of the newest sample: reacts within ~5 requests, smooths single outliers
ERROR_WINDOW_SECONDS = 60.0  # long enough to be stable at a request a second, short enough to recover
ERROR_BUCKET_SECONDS = 5.0  # 12 buckets a member: cheap to keep for every member of every class
_ERROR_BUCKETS_KEPT = math.ceil(ERROR_WINDOW_SECONDS / ERROR_BUCKET_SECONDS)
# A member whose recent error rate is at least this is struggling: sending it more work is what the retry
# budget rations. Below it, an occasional failure among many successes is a member doing its job.
STRUGGLING_ERROR_RATE = 0.25
# How long a member that refused a prefill, or started over instead of continuing, is left out of
# continuations: long enough not to pay for the lesson again on every broken stream, short enough that a
# model fixed (or a declaration corrected) on the provider's side is tried again the same day.
CANNOT_CONTINUE_SECONDS = 3600.0
Keys = Mapping[tuple[str, str], refs.ApiKey]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MemberView:
    """One member's health at one instant: what plan orders by and /debug/members shows."""

    state: breaker.CircuitState
    consecutive_failures: int
    cooldown_left: float  # seconds until an open circuit turns half-open; 0 otherwise
    latency_ewma: float | None  # seconds per successful attempt; None until the first success
    ttft_ewma: float | None  # seconds to the first token; None until one was measured
    error_rate: float  # failures that count / attempts, over the last ERROR_WINDOW_SECONDS; 0 if none
    requests: int  # attempts reported since the member appeared in the routes
    client_errors: int = 0  # failures that did not count against the member (bad request, …)
    ttft_p95: float | None = None  # recent p95 time to first token (deadlines.FirstTokenTimes); None until sampled
    ttft_samples: int = 0  # how many recent first tokens that p95 is drawn from
    cannot_continue: failures.ContinuationProblem | None = None  # learned unable to continue (for a while); None: able
    credential_problem: failures.CredentialProblem | None = None  # its key was rejected, until a success

    def to_dict(self) -> dict[str, object]:
        """JSON for /debug/members, camelCase like the rest of the API."""
        return {
            "state": self.state.value,
            "consecutiveFailures": self.consecutive_failures,
            "cooldownLeftSeconds": round(self.cooldown_left, 3),
            "latencyEwmaSeconds": _rounded(self.latency_ewma),
            "ttftEwmaSeconds": _rounded(self.ttft_ewma),
            "errorRate": round(self.error_rate, 4),
            "requests": self.requests,
            "clientErrors": self.client_errors,
            "ttftP95Seconds": _rounded(self.ttft_p95),
            "ttftSamples": self.ttft_samples,
            "canContinue": self.cannot_continue is None,
            **({"cannotContinueReason": self.cannot_continue.value} if self.cannot_continue else {}),
            "credentialProblem": self.credential_problem.value if self.credential_problem else None,
        }


class _ErrorWindow:
    """Attempts and errors over a sliding window of fixed buckets, with running totals: O(1)."""

    __slots__ = ("_buckets", "_now", "attempts", "errors")

    def __init__(self, *, now: Callable[[], float]) -> None:
        self._now = now
        self._buckets: collections.deque[list[int]] = collections.deque()  # [index, attempts, errors]
        self.attempts = 0
        self.errors = 0

    def add(self, *, failed: bool) -> None:
        index = self._expire()
        if not self._buckets or self._buckets[-1][0] < index:
            self._buckets.append([index, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        self.attempts += 1
        self.errors += failed

    def rate(self) -> float:
        self._expire()
        return self.errors / self.attempts if self.attempts else 0.0

    def _expire(self) -> int:
        """Drop the buckets that left the window; the index of the current bucket."""
        index = math.floor(self._now() / ERROR_BUCKET_SECONDS)
        buckets = self._buckets
        while buckets and buckets[0][0] <= index - _ERROR_BUCKETS_KEPT:
            _, attempts, errors = buckets.popleft()
            self.attempts -= attempts
            self.errors -= errors
        return index


class MemberHealth:
    """Everything measured about one member, and its breaker (``breaker``, asked by the engine)."""

    def __init__(
        self,
        *,
        spec: modelclass.HealthSpec,
        now: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.spec = spec
        self.breaker = breaker.CircuitBreaker(
            failure_threshold=spec.failure_threshold,
            cooldown=spec.cooldown_seconds,
            now=now,
            rng=rng,
        )
        self.latency_ewma: float | None = None
        self.ttft_ewma: float | None = None
        self.requests = 0
        self.client_errors = 0
        self.credential_problem: failures.CredentialProblem | None = None
        self._errors = _ErrorWindow(now=now)
        self.first_tokens = deadlines.FirstTokenTimes(now=now)
        """Recent times to first token, for the adaptive first-token deadline."""
        self._now = now
        self._cannot_continue: tuple[float, failures.ContinuationProblem] | None = None  # (until, why)
        self._hung_watchers: set[Callable[[], None]] = set()  # attempts in flight that a hang would cut

    def record_success(self, *, latency: float, ttft: float | None) -> None:
        """An attempt succeeded in ``latency`` seconds, its first token after ``ttft`` (if measured)."""
        self.breaker.record_success()
        self.credential_problem = None
        self.latency_ewma = _ewma(self.latency_ewma, latency)
        if ttft is not None:
            self.ttft_ewma = _ewma(self.ttft_ewma, ttft)
            self.first_tokens.add(ttft)
        self.requests += 1
        self._errors.add(failed=False)

    def record_failure(
        self,
        *,
        failure: failures.Failure,
        counts_against_health: bool,
        trips: bool = False,
        open_for: float | None = None,
    ) -> None:
        """An attempt failed. One that does not count leaves the breaker alone: the member answered,
        its health is not in question (a half-open probe slot it held is handed back). ``trips``: the
        failure shows the member hung, so its circuit opens at once for every request to come.
        ``open_for`` opens the circuit at once for that long (the policy's word for a rejected credential)."""
        self.requests += 1
        self._errors.add(failed=counts_against_health)
        if failure.credential is not None:
            self.credential_problem = failure.credential
        if counts_against_health:
            was_open = self.breaker.state is breaker.CircuitState.OPEN
            self.breaker.record_failure(
                retry_after=open_for if open_for is not None else failure.retry_after, trip=trips
            )
            if trips and not was_open and self.breaker.state is breaker.CircuitState.OPEN:
                for cut in list(self._hung_watchers):  # each unsubscribes as its attempt ends
                    cut()
        else:
            self.client_errors += 1
            self.breaker.release_probe()

    def watch(self, *, ttft: float, started: float, scrubber: scrub.Scrubber) -> StreamWatch:
        """What records how a committed stream of this member ends (``StreamWatch``); its time to first
        token was ``ttft``, its attempt started at ``started``."""
        return StreamWatch(self, ttft=ttft, started=started, now=self._now, scrubber=scrubber)

    def when_hung(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when a request finds this member hung (a failure that trips its circuit open);
        returns the call that cancels this. An attempt still waiting for its first token here subscribes,
        so it is cut the moment the member is known hung instead of waiting out its own deadline."""
        self._hung_watchers.add(callback)
        return lambda: self._hung_watchers.discard(callback)

    def reconfigure(self, spec: modelclass.HealthSpec) -> None:
        """New breaker settings from a reload; state and measurements are kept."""
        self.breaker.reconfigure(failure_threshold=spec.failure_threshold, cooldown=spec.cooldown_seconds)
        self.spec = spec

    def learn_cannot_continue(self, reason: failures.ContinuationProblem) -> None:
        """The member refused a prefill or started over instead of continuing: leave it out of
        continuations for CANNOT_CONTINUE_SECONDS, whatever its declaration says."""
        self._cannot_continue = (self._now() + CANNOT_CONTINUE_SECONDS, reason)

    def cannot_continue(self) -> failures.ContinuationProblem | None:
        """Why the member is not to be asked to continue a stream now, or None."""
        learned = self._cannot_continue
        if learned is not None and self._now() >= learned[0]:
            self._cannot_continue = learned = None
        return None if learned is None else learned[1]

    def steady(self) -> bool:
        """Closed circuit, last attempt a success, few recent errors: more work here amplifies nothing."""
        return (
            self.breaker.state is breaker.CircuitState.CLOSED
            and self.breaker.consecutive_failures == 0
            and self._errors.rate() < STRUGGLING_ERROR_RATE
        )

    def view(self) -> MemberView:
        """An immutable copy of the member's health now."""
        return MemberView(
            state=self.breaker.state,
            consecutive_failures=self.breaker.consecutive_failures,
            cooldown_left=self.breaker.cooldown_left(),
            latency_ewma=self.latency_ewma,
            ttft_ewma=self.ttft_ewma,
            error_rate=self._errors.rate(),
            requests=self.requests,
            client_errors=self.client_errors,
            ttft_p95=self.first_tokens.high(min_samples=1),
            ttft_samples=self.first_tokens.count(),
            cannot_continue=self.cannot_continue(),
            credential_problem=self.credential_problem,
        )


class StreamWatch:
    """How a committed stream ended, recorded in its member's health: a success (with its time to first
    token) once it finished, a failure as the policy says if it broke. Called by the loop that passes the
    stream on (``failover.resuming.recovering``), not a generator of its own: a stream resumes each
    generator it passes once per network read."""

    __slots__ = ("_health", "_now", "_scrubber", "_started", "_ttft")

    def __init__(
        self,
        health: MemberHealth,
        *,
        ttft: float,
        started: float,
        now: Callable[[], float],
        scrubber: scrub.Scrubber,
    ) -> None:
        self._health = health
        self._ttft = ttft
        self._started = started  # when the attempt started, on ``now``'s clock
        self._now = now
        self._scrubber = scrubber

    def finished(self) -> None:
        self._health.record_success(latency=self._now() - self._started, ttft=self._ttft)

    def broke(self, exc: failures.AttemptFailed) -> failures.AttemptFailed:
        """Record the failure; the same failure scrubbed, to be raised on (``from exc``)."""
        failure = exc.failure.scrubbed(self._scrubber)
        rule = policy.policy_for(failure.kind)
        self._health.record_failure(
            failure=failure, counts_against_health=rule.counts_against_health, open_for=rule.open_circuit_seconds
        )
        return failures.AttemptFailed(failure)


@dataclasses.dataclass(slots=True)
class _Tracked:
    health: MemberHealth
    endpoint: tuple[object, ...]  # where the member's attempts go; a change makes it a new member
    member: document.MemberRoute  # as the newest routes document has it (the prober builds from it)


class HealthRegistry:
    """Every member's health, by class and member id; the engine's and the admin port's one source."""

    def __init__(self, *, now: Callable[[], float], rng: random.Random) -> None:
        self._now = now
        self._rng = rng
        self._classes: dict[str, dict[str, _Tracked]] = {}  # class → member id → health
        self._specs: dict[str, modelclass.HealthSpec] = {}
        self._keys: Keys = {}  # the key values of the last reconcile: a rotated key is a new endpoint

    def member(self, class_name: str, member: document.MemberRoute) -> MemberHealth:
        """The member's health, created on first use with its class's HealthSpec (the default one
        for a class the last ``reconcile`` did not have)."""
        members = self._classes.setdefault(class_name, {})
        tracked = members.get(member.id)
        if tracked is None:
            tracked = members[member.id] = self._track(member, self._specs.get(class_name))
        return tracked.health

    def reconcile(self, routes: document.RoutesDocument, *, keys: Keys | None = None) -> None:
        """Follow a reloaded routes document (and the key values it references, when given).

        A member whose (class, id) and endpoint (provider, base URL, API version, key reference and
        key value) persist keeps its breaker and measurements; a rotated key starts fresh, so a member
        whose old key was rejected serves again at once; new health settings are applied to it in place
        (``CircuitBreaker.reconfigure``). A member whose endpoint changed starts fresh: fixing a
        wrong base URL must not wait out the old cooldown. Removed members and classes are dropped;
        new ones are tracked at once, so every member has a view."""
        if keys is not None:
            self._keys = keys
        kept: dict[str, dict[str, _Tracked]] = {}
        for name, route in routes.classes.items():
            old = self._classes.get(name, {})
            kept[name] = {
                member.id: self._carried(old.get(member.id), member, route.health) for member in route.members
            }
        self._classes = kept
        self._specs = {name: route.health for name, route in routes.classes.items()}

    def snapshot(self, class_name: str) -> Mapping[str, MemberView]:
        """Member id → view, for every tracked member of the class (empty for an unknown class)."""
        return {member_id: tracked.health.view() for member_id, tracked in self._classes.get(class_name, {}).items()}

    def probes_due(self) -> list[tuple[str, document.MemberRoute, MemberHealth]]:
        """(class, member, health) of every actively probed member whose open circuit's cooldown has
        ended: the prober's work (``failover.probing``)."""
        return [
            (class_name, tracked.member, tracked.health)
            for class_name, members in self._classes.items()
            for tracked in members.values()
            if tracked.member.probe is not None and tracked.health.breaker.state is breaker.CircuitState.HALF_OPEN
        ]

    def rejected_credentials(self) -> dict[str, str]:
        """Credential name → why its provider rejected it, for every credential a member of which is
        rejected now (the operator's sweep reads this from /readyz onto the ProviderCredential)."""
        rejected: dict[str, str] = {}
        for members in self._classes.values():
            for member_id, tracked in members.items():
                problem = tracked.health.credential_problem
                if problem is not None:
                    rejected[member_id.split("/", 1)[0]] = problem.value
        return dict(sorted(rejected.items()))

    def unable_to_continue(self) -> dict[str, dict[str, str]]:
        """Class → member id → why, for every member learned unable to continue a stream now (the operator's
        sweep reads this from /readyz onto the ModelClass's PrefillMismatch condition)."""
        learned: dict[str, dict[str, str]] = {}
        for class_name, members in sorted(self._classes.items()):
            for member_id, tracked in sorted(members.items()):
                reason = tracked.health.cannot_continue()
                if reason is not None:
                    learned.setdefault(class_name, {})[member_id] = reason.value
        return learned

    def _carried(
        self,
        old: _Tracked | None,
        member: document.MemberRoute,
        spec: modelclass.HealthSpec,
    ) -> _Tracked:
        if old is None or old.endpoint != self._endpoint(member):
            return self._track(member, spec)
        if old.health.spec != spec:
            old.health.reconfigure(spec)
        old.member = member
        old.health.breaker.active_probe = member.probe is not None
        return old

    def _track(self, member: document.MemberRoute, spec: modelclass.HealthSpec | None) -> _Tracked:
        health = MemberHealth(spec=spec or modelclass.HealthSpec(), now=self._now, rng=self._rng)
        health.breaker.active_probe = member.probe is not None
        return _Tracked(health=health, endpoint=self._endpoint(member), member=member)

    def _endpoint(self, member: document.MemberRoute) -> tuple[object, ...]:
        ref = member.api_key_ref
        key = self._keys.get((ref.name, ref.key)) if ref else None  # an ApiKey: compares by value, never prints
        return (member.provider, member.base_url, member.api_version, ref, key)


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + EWMA_ALPHA * (sample - previous)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)

"""Every Prometheus metric the sidecar exports, declared once, on a registry of its own.

Labels carry class, provider, model, member id and failure kinds only: never a prompt, a key, a
conversation id or anything else of unbounded cardinality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import prometheus_client as prom

from pilotfish.telemetry import records

if TYPE_CHECKING:
    from pilotfish.routes.document import MemberRoute, RoutesDocument

# Buckets for LLM calls: sub-second cache hits up to multi-minute generations.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
# Event-loop iterations of 1 ms or more (telemetry.looptime): the 0.1 s bucket is the /healthz bar.
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
NO_PROVIDER = "none"  # provider/model label of a request no member served
# Children kept bound at most (``Metrics._child``): far more than the series a real set of routes makes.
CHILDREN_CACHED = 4096
CIRCUIT_OPEN = "circuit_open"  # failover.plan.SkipReason.CIRCUIT_OPEN (telemetry sits below failover)


class Metrics:
    """The sidecar's metric families; one instance per process (or per test)."""

    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        prom.disable_created_metrics()  # type: ignore[no-untyped-call] # *_created series double the scrape size for no dashboard use
        self.registry = registry or prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # (class, member id) → (provider, position in the class): a skipped member has no attempt to say
        # its provider, and only a member ahead of the one that served was really failed over from
        self._members: dict[tuple[str, str], tuple[str, int]] = {}
        self.requests = prom.Counter(
            "pilotfish_requests",
            "Requests by class, serving member and outcome.",
            ["class", "provider", "model", "outcome"],
            registry=r,
        )
        self.attempts = prom.Counter(
            "pilotfish_attempts",
            "Upstream attempts by member and result (success or failure kind).",
            ["class", "provider", "model", "result"],
            registry=r,
        )
        self.failovers = prom.Counter(
            "pilotfish_failovers",
            "Requests moved off a member to another, by the member's provider and why.",
            ["class", "from_provider", "reason"],
            registry=r,
        )
        self.retries = prom.Counter(
            "pilotfish_retries",
            "Members asked again by the same request (a waited-out Retry-After, a transient 5xx), by why.",
            ["class", "provider", "reason"],
            registry=r,
        )
        self.duration = prom.Histogram(
            "pilotfish_request_duration_seconds",
            "Request latency as the app saw it.",
            ["class", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = prom.Histogram(
            "pilotfish_time_to_first_token_seconds",
            "Time from request to the first content.",
            ["class", "provider"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = prom.Counter(
            "pilotfish_tokens",
            "Tokens by direction (input/output).",
            ["class", "provider", "model", "direction"],
            registry=r,
        )
        self.cost = prom.Counter(
            "pilotfish_cost_usd",
            "Cost in USD from the member's declared pricing.",
            ["class", "provider", "model"],
            registry=r,
        )
        self.member_up = prom.Gauge(
            "pilotfish_member_up",
            "1 while the member's circuit is closed or half-open, 0 while open.",
            ["class", "member"],
            registry=r,
        )
        self.can_continue = prom.Gauge(
            "pilotfish_member_can_continue",
            "0 while the member is learned unable to continue a broken stream (it rejected a prefill, or started "
            "over instead of continuing), else 1.",
            ["class", "member"],
            registry=r,
        )
        self.circuit = prom.Gauge(
            "pilotfish_member_circuit",
            "1 for the member's current circuit state (closed, open or half_open), by state.",
            ["class", "member", "state"],
            registry=r,
        )
        self.loop_iterations = prom.Histogram(
            "pilotfish_event_loop_iteration_seconds",
            "Event-loop iterations of 1 ms or more, from one select() to the next: elapsed (clock=wall) and "
            "the loop thread's own CPU time (clock=cpu, which a CPU-starved process does not grow).",
            ["clock"],
            buckets=LOOP_BUCKETS,
            registry=r,
        )
        # bound once: under load nearly every iteration takes 1 ms or more, and .labels() costs more than
        # the observation
        self._loop_clocks = {clock: self.loop_iterations.labels(clock) for clock in ("wall", "cpu")}
        self.probes = prom.Counter(
            "pilotfish_probes",
            "Active health probes of members whose circuit is open, by result: success, a failure kind, or "
            "postponed (this cooldown's probe left to other sidecars).",
            ["class", "member", "result"],
            registry=r,
        )
        self.probe_tokens = prom.Counter(
            "pilotfish_probe_tokens",
            "Tokens active probes cost (input + output, as the provider reported them); increase over 1h is "
            "the tokens per hour probing a member costs this sidecar.",
            ["class", "member"],
            registry=r,
        )
        self.reloads = prom.Counter(
            "pilotfish_config_reloads",
            "Routes document loads by result (success/failure).",
            ["result"],
            registry=r,
        )
        self.config_valid = prom.Gauge(
            "pilotfish_config_last_reload_successful",
            "0 while the newest routes document is rejected.",
            registry=r,
        )
        self.routes_info = prom.Gauge(
            "pilotfish_routes_info",
            "The routes document being served (value 1), by content digest.",
            ["digest", "namespace"],
            registry=r,
        )
        self.slice_requests = prom.Counter(
            "pilotfish_slice_requests",
            "Requests of classes with a canary, by the slice they were put in (canary/stable).",
            ["class", "slice"],
            registry=r,
        )
        self.canary_attempts = prom.Counter(
            "pilotfish_canary_attempts",
            "Attempts on a class's canary member, by result: every failure counts, even when a stable member "
            "then served, and a canary-slice request that skipped the canary for its open circuit counts as "
            "circuit_open.",
            ["class", "result"],
            registry=r,
        )
        self.canary_duration = prom.Histogram(
            "pilotfish_canary_request_duration_seconds",
            "Latency of requests the canary member served.",
            ["class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.canary_ttft = prom.Histogram(
            "pilotfish_canary_time_to_first_token_seconds",
            "Time to first token of requests the canary member served.",
            ["class"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.stream_recoveries = prom.Counter(
            "pilotfish_stream_recoveries",
            "Streams cut after they reached the client, and whether another member finished them.",
            ["class", "from_provider", "to_provider", "result"],
            registry=r,
        )
        self.hedges = prom.Counter(
            "pilotfish_hedges",
            "Hedges started at a member's adaptive first-token deadline (routing.hedge), by how they ended: won "
            "(answered first), lost (cancelled: the hedged member answered first) or failed.",
            ["class", "result"],
            registry=r,
        )
        self.malformed_events = prom.Counter(
            "pilotfish_stream_malformed_events",
            "Upstream stream events skipped because they could not be parsed (the stream went on).",
            ["class", "provider"],
            registry=r,
        )
        self.tier_decisions = prom.Counter(
            "pilotfish_tier_decisions",
            "Requests of classes with tiers, by the tier its rules chose and why (rules[N] or default).",
            ["class", "tier", "reason"],
            registry=r,
        )
        self.tier_escalations = prom.Counter(
            "pilotfish_tier_escalations",
            "Moves up the ladder after every member of a tier failed, by the tier left and the tier tried next.",
            ["class", "from_tier", "to_tier"],
            registry=r,
        )
        self.credential_rejections = prom.Counter(
            "pilotfish_credential_rejections",
            "Attempts whose provider rejected the member's credential (invalid key, permission, region) or "
            "that had no key to send, by credential and reason.",
            ["class", "credential", "provider", "reason"],
            registry=r,
        )
        self.credential_rejected = prom.Gauge(
            "pilotfish_credential_rejected",
            "1 while a credential's provider rejects it (until a member using it succeeds, or its key changes).",
            ["credential", "reason"],
            registry=r,
        )
        self.budget_exhausted = prom.Counter(
            "pilotfish_retry_budget_exhausted",
            "Retries refused because the class's retry budget ran out.",
            ["class"],
            registry=r,
        )
        self.budget_decisions = prom.Counter(
            "pilotfish_budget_decisions",
            "Requests a team Budget acted on: rejected (429), downgraded to its cheaper class, or admitted on the "
            "fail-open allowance while the operator was unreachable; by class asked for, budget and limit.",
            ["class", "budget", "limit", "decision"],
            registry=r,
        )
        self.quota_failed_open = prom.Counter(
            "pilotfish_quota_failed_open",
            "Attempts sent to a member on its provider quota's fail-open share, admitted while the operator "
            "was unreachable (one share a minute per pod at most: docs/quotas.md); by class and member.",
            ["class", "member"],
            registry=r,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the lookup costs more than the increment. Label values come
        from the routes and closed sets of kinds, so the cache is as bounded as the series; it is emptied
        anyway past ``CHILDREN_CACHED`` (classes come and go with reloads), and refills as requests come."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= CHILDREN_CACHED:
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: records.RequestRecord) -> None:
        """Count one finished request."""
        cls = record.class_name
        provider = record.provider or NO_PROVIDER
        model = record.model or NO_PROVIDER
        child = self._child
        child(self.requests, cls, provider, model, record.outcome.value).inc()
        for attempt in record.attempts:
            child(self.attempts, cls, attempt.provider, attempt.model, attempt.result).inc()
            if attempt.failure is not None and attempt.failure.credential is not None:
                credential = attempt.member_id.split("/", 1)[0]
                reason = attempt.failure.credential.value
                child(self.credential_rejections, cls, credential, attempt.provider, reason).inc()
        for attempt, same_member in record.handovers():
            child(self.retries if same_member else self.failovers, cls, attempt.provider, attempt.result).inc()
        if record.skipped:
            self._count_skips(record)
        if record.canary_slice is not None:
            self._count_canary(record)
        if record.malformed_events:
            child(self.malformed_events, cls, provider).inc(record.malformed_events)
        for from_provider, to_provider, result in record.recoveries:
            child(self.stream_recoveries, cls, from_provider, to_provider, result).inc()
        for _, result in record.hedges:
            child(self.hedges, cls, result).inc()
        if record.tier is not None:
            self._count_tiers(record)
        if record.error_code == "retry_budget_exhausted":
            child(self.budget_exhausted, cls).inc()
        if record.budget_decision is not None:
            child(self.budget_decisions, cls, *record.budget_decision).inc()
        for member_id in record.quotas_failed_open:
            child(self.quota_failed_open, cls, member_id).inc()
        if record.provider is None:
            return
        child(self.duration, cls, provider).observe(record.latency)
        if record.time_to_first_token is not None:
            child(self.ttft, cls, provider).observe(record.time_to_first_token)
        if record.prompt_tokens:
            child(self.tokens, cls, provider, model, "input").inc(record.prompt_tokens)
        if record.completion_tokens:
            child(self.tokens, cls, provider, model, "output").inc(record.completion_tokens)
        if record.cost_usd:
            child(self.cost, cls, provider, model).inc(record.cost_usd)

    def _count_tiers(self, record: records.RequestRecord) -> None:
        cls, child = record.class_name, self._child
        child(self.tier_decisions, cls, record.tier or "", record.tier_reason or "").inc()
        for left, tried in zip([record.tier, *record.escalations], record.escalations, strict=False):
            child(self.tier_escalations, cls, left or "", tried).inc()

    def _count_canary(self, record: records.RequestRecord) -> None:
        """The series the operator's canary analysis reads: slice shares, canary attempts, canary latency."""
        cls, child = record.class_name, self._child
        child(self.slice_requests, cls, record.canary_slice or "stable").inc()
        for attempt in record.attempts:
            if attempt.member_id == record.canary_member:
                child(self.canary_attempts, cls, attempt.result).inc()
        for member_id, reason in record.skipped:
            # a canary-slice request that skipped the canary (its circuit is open) is a failure of the canary:
            # without it, a failing canary's error rate rests on the few attempts made before the circuit
            # opened, and the analysis sees no data once they leave the query window
            if member_id == record.canary_member and reason == CIRCUIT_OPEN:
                child(self.canary_attempts, cls, reason).inc()
        if record.member_id is not None and record.member_id == record.canary_member:
            child(self.canary_duration, cls).observe(record.latency)
            if record.time_to_first_token is not None:
                child(self.canary_ttft, cls).observe(record.time_to_first_token)

    def _count_skips(self, record: records.RequestRecord) -> None:
        """A skipped member ahead of the one that served (an open circuit, a context window too small) is a
        failover too: without this, a sustained outage shows no failovers once the circuit opens."""
        cls = record.class_name
        served = self._members.get((cls, record.member_id or ""))
        for member_id, reason in record.skipped:
            if reason in records.NEVER_A_CHOICE:
                continue
            provider, position = self._members.get((cls, member_id), (NO_PROVIDER, -1))
            if served is None or position < served[1]:
                self._child(self.failovers, cls, provider, reason).inc()

    def set_routes(self, document: RoutesDocument, *, digest: str) -> None:
        self.routes_info.clear()
        self.routes_info.labels(digest, document.namespace).set(1)
        self._members = {
            (name, member.id): (member.provider.value, position)
            for name in document.classes
            for position, member in enumerate(_members_of(document, name))
        }

    def probed(self, class_name: str, member_id: str, *, result: str, tokens: int) -> None:
        self.probes.labels(class_name, member_id, result).inc()
        if tokens:
            self.probe_tokens.labels(class_name, member_id).inc(tokens)

    def loop_iteration(self, clock: str, seconds: float) -> None:
        self._loop_clocks[clock].observe(seconds)

    def reload_result(self, *, ok: bool) -> None:
        self.reloads.labels("success" if ok else "failure").inc()
        self.config_valid.set(1 if ok else 0)

    def render(self) -> bytes:
        return prom.generate_latest(self.registry)


def _members_of(document: RoutesDocument, name: str) -> list[MemberRoute]:
    """A class's members in failover order; for a class with tiers, its tiers' members up the ladder."""
    route = document.classes[name]
    if route.tiers is None:
        return list(route.members)
    return [m for tier in route.tiers.ladder if tier in document.classes for m in document.classes[tier].members]

"""The only failover loop: plan, attempt, classify, decide, until one member commits.

What an attempt sends and when it commits is the ``exchange``'s business (``failover.streaming`` for
chat, ``failover.unary`` for one JSON call such as embeddings); the loop here is the same for all:
breaker, retry budget, the policy table, context-window moves, pinning and the attempt records.

Called by ``server``; calls ``failover.plan`` (pure ordering), ``failover.policy`` (what a
failure means) and the exchange (translation and the wire).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from pilotfish import failures, scrub, upstream
from pilotfish.budgets import ledger
from pilotfish.budgets import quotas as quotas_  # `quotas` is a parameter name below
from pilotfish.failover import (
    breaker,
    budget,
    canary,
    deadlines,
    exchange,
    health,
    hedging,
    pinning,
    plan,
    policy,
    resuming,
    streaming,
)
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.telemetry import records
from pilotfish.telemetry import tracing as tracing_  # `tracing` is a parameter name below

Keys = Mapping[tuple[str, str], refs.ApiKey]
Batch = exchange.Batch
Committed = streaming.Committed  # what chat handlers get back; other exchanges commit other heads
Head = TypeVar("Head")
is_content = streaming.is_content

# Skip reasons that mean "this member can never serve this request", as opposed to "not right now".
INELIGIBLE = frozenset({plan.SkipReason.OPERATION_NOT_SUPPORTED, plan.SkipReason.INPUT_NOT_SUPPORTED})
QUOTAS_SPENT = "member_quotas_spent"  # no attempt was made: every member left had spent its provider quota


class AllMembersFailed(failures.PilotfishError):
    """No member could serve; carries what each tried member said, for the client and the log."""

    def __init__(
        self, *, class_name: str, code: str, failure: failures.Failure | None, retry_after: float | None = None
    ) -> None:
        self.class_name = class_name
        self.code = code  # "all_members_failed", "retry_budget_exhausted", "no_eligible_members", …
        self.failure = failure  # the failure that ended the loop, when there was one
        self.retry_after = retry_after  # QUOTAS_SPENT: seconds until the first member's quota window ends
        super().__init__(code)


class Engine:
    """Holds the state failover needs across requests: health, pins, retry budgets, sessions."""

    def __init__(
        self,
        *,
        sessions: upstream.Sessions,
        health_registry: health.HealthRegistry,
        pins: pinning.PinStore,
        now: Callable[[], float],
        rng: random.Random,
        tracing: tracing_.Tracing | None = None,
        quotas: quotas_.Quotas | None = None,
    ) -> None:
        self._sessions = sessions
        self.quotas = quotas  # who counts members' provider quotas (None: not enforced); set once at startup
        self.health = health_registry
        self._pins = pins
        self._now = now
        self._rng = rng
        self._budgets: dict[str, budget.RetryBudget] = {}
        self._canary_routes = canary.CanaryFirst()
        self._tracing = tracing  # None while tracing is off: then no span code runs at all
        self._scrubber = scrub.Scrubber()
        self._scrubbing: Keys | None = None  # the keys the scrubber last learned (one mapping per routes snapshot)

    def budget_for(self, route: document.ClassRoute) -> budget.RetryBudget:
        current = self._budgets.get(route.name)
        percent = route.routing.retry_budget_percent
        if current is None or current.percent != percent:
            current = budget.RetryBudget(percent=percent, now=self._now)
            self._budgets[route.name] = current
        return current

    async def open(
        self,
        route: document.ClassRoute,
        exchange_: exchange.Exchange[Head],
        *,
        keys: Keys,
        record: records.RequestRecord,
        pin_key: str | None,
        slice_key: str | None = None,
        deadline: float | None = None,
        escalation: Sequence[document.ClassRoute] = (),
    ) -> exchange.Committed[Head]:
        """Try members in plan order until one commits; raise AllMembersFailed otherwise.

        ``slice_key``: the value of the canary's stickiness header, when the class has a canary.
        ``deadline``: set when this continues a request already under way (a mid-stream recovery): the
        request keeps its one ``totalSeconds`` deadline and is not counted again in the retry budget.
        ``escalation``: the tiers above ``route`` (``failover.tiers``); when the current tier's plan runs
        out on failures that fail over, this same loop goes on with the next tier's plan, its own
        maxAttempts and retry budget, and the deadline of the longest ``totalSeconds`` so far."""
        started = self._now()
        continuing = deadline is not None
        if deadline is None:
            deadline = started + route.timeouts.total_seconds
        scrubber = self._scrubber_for(keys)
        if route.canary is not None:
            record.canary_member = route.canary.member.id
            record.canary_slice = "canary" if canary.in_canary_slice(route.canary, slice_key, self._rng) else "stable"
            if record.canary_slice == "canary":
                route = self._canary_routes.canary_first(route)
        pinned = self._pins.get(route.name, pin_key) if pin_key else None
        attempt_plan = self._plan(route, exchange_, record, pinned=pinned)
        if not attempt_plan.members and any(skip.reason in INELIGIBLE for skip in attempt_plan.skipped):
            raise AllMembersFailed(class_name=route.name, code="no_eligible_members", failure=None)
        retry_budget = self.budget_for(route)
        if not continuing:
            retry_budget.record_request()  # once per client request, however many members it visits
        queue = list(attempt_plan.members)
        same_member: dict[str, int] = {}  # member id → quick retries it has had
        last: failures.Failure | None = None
        tier_start = 0  # attempts made before the current tier: maxAttempts counts per tier
        attempts_before = len(record.attempts)
        quota_reset: float | None = None  # the soonest end of a skipped member's quota window
        while self._now() < deadline:
            if not queue or len(record.attempts) - tier_start >= route.routing.max_attempts:
                if not escalation:
                    break
                route, escalation = escalation[0], escalation[1:]  # the whole tier failed over: the next one up
                record.escalations.append(route.name)
                attempt_plan, retry_budget = self._plan(route, exchange_, record, pinned=None), self.budget_for(route)
                queue, tier_start = list(attempt_plan.members), len(record.attempts)
                deadline = max(deadline, started + route.timeouts.total_seconds)
                continue
            member = queue.pop(0)
            member_health = self.health.member(route.name, member)
            if not member_health.breaker.admits(last_resort=attempt_plan.last_resort):
                record.skipped.append((member.id, plan.SkipReason.CIRCUIT_OPEN.value))
                continue
            ticket = None
            if self.quotas is not None and member.has_quota():
                took = await self.quotas.take(route.name, member)
                if not took.ok:  # this pod's share of the member's quota is spent: the next member, not a 429
                    member_health.breaker.release_probe()
                    record.skipped.append((member.id, plan.SkipReason.QUOTA_SPENT.value))
                    quota_reset = took.retry_after if quota_reset is None else min(quota_reset, took.retry_after)
                    continue
                ticket = took.ticket
                if took.failed_open:  # admitted only because the operator could not be asked (docs/quotas.md)
                    record.quotas_failed_open.append(member.id)
            # (a request's first attempt is never rationed: its member's steadiness is not even looked at)
            if (
                record.attempts
                and budget.rationed(record, member.id, steady=member_health.steady())
                and not retry_budget.try_spend()
            ):
                member_health.breaker.release_probe()
                raise AllMembersFailed(class_name=route.name, code="retry_budget_exhausted", failure=last)
            fallback = bool(escalation) or self._can_take_over(  # a tier above can take over, or a member of this one
                route, queue, attempts_left=route.routing.max_attempts - (len(record.attempts) - tier_start)
            )
            first_token = deadlines.first_token_seconds(
                timeouts=route.timeouts, times=member_health.first_tokens, fallback=fallback
            )
            attempt_started = self._now()
            attempt = self._attempt_for(route, member, keys=keys, deadline=deadline, first_token=first_token)
            if fallback:  # found hung by another request meanwhile: cut at once, another member takes over
                attempt = dataclasses.replace(attempt, when_hung=member_health.when_hung)
            span = None
            if self._tracing is not None and record.span is not None:
                span, headers = self._tracing.start_attempt(
                    record.span,
                    member,
                    operation=exchange_.operation,
                    number=len(record.attempts) + 1,
                    circuit=member_health.breaker.state.value,
                )
                attempt = dataclasses.replace(attempt, trace_headers=headers)
            try:
                if attempt.api_key is None and member.api_key_ref is not None:
                    raise exchange.key_missing(member.api_key_ref)  # never a request upstream without its key
                if route.routing.hedge and fallback and first_token < route.timeouts.first_token_seconds:
                    won = await hedging.hedged(
                        exchange_,
                        hedging.Contender(member, member_health, attempt, attempt_started, span),
                        hedge_after=first_token,
                        start_hedge=functools.partial(
                            self._hedge, route, queue, record, keys=keys, deadline=deadline, op=exchange_.operation
                        ),
                        report=functools.partial(self._record_failure, record),
                        scrubber=scrubber,
                        record=record,
                    )
                    winner, committed = won.contender, won.committed
                    member, member_health, attempt_started, span = (
                        winner.member,
                        winner.health,
                        winner.started,
                        winner.span,
                    )
                    if winner is won.hedged:
                        first_token = winner.attempt.first_token_seconds
                else:
                    committed = await exchange_.attempt(attempt)
            except hedging.Exhausted as exc:  # both contenders failed; each is in the record already
                last = exc.failure
                continue
            except failures.AttemptFailed as exc:
                last = exc.failure.scrubbed(scrubber)  # what a client, the log and the traces may see
                rule = policy.policy_for(last.kind)
                # a failing canary goes straight to the stable members: users must not wait on an experiment
                again = (
                    member.id != record.canary_member
                    and policy.retry_same_member(
                        last,
                        route.routing,
                        retried=same_member.get(member.id, 0),
                        attempts_left=route.routing.max_attempts - (len(record.attempts) - tier_start) - 1,
                        members_waiting=len(queue),
                    )
                    and self._now() + (last.retry_after or 0.0) < deadline  # the wait must fit the request
                )
                self._record_failure(
                    record, member, member_health, last, started=attempt_started, first_token=first_token, span=span,
                    retrying=again,
                )  # fmt: skip
                if again:
                    if last.retry_after:
                        await asyncio.sleep(last.retry_after)
                    same_member[member.id] = same_member.get(member.id, 0) + 1
                    queue.insert(0, member)
                    continue
                if not policy.fails_over(last, route.routing):
                    raise AllMembersFailed(class_name=route.name, code=last.kind.value, failure=last) from exc
                if rule.learns_cannot_continue is not None:
                    member_health.learn_cannot_continue(rule.learns_cannot_continue)
                if rule.needs_larger_window:
                    queue = list(plan.after_context_length(tuple(queue), member))
                continue
            except BaseException:
                member_health.breaker.release_probe()  # cancelled: the probe never got an answer
                if span is not None:
                    span.end()
                raise
            member_ttft = committed.time_to_first_token - attempt_started  # the member's own, for its deadline
            committed.time_to_first_token -= started
            duration = self._now() - attempt_started
            record.attempts.append(_attempt_record(member, duration, None, first_token))
            if span is not None:
                self._traced_end(span, record)
            if committed.rest is None:
                member_health.record_success(latency=duration, ttft=member_ttft)
            else:
                watch = member_health.watch(ttft=member_ttft, started=attempt_started, scrubber=scrubber)
                resumer = exchange_.resumer(committed.head)  # optional: a stream another member can finish
                resume = functools.partial(self._resume, keys=keys, record=record, deadline=deadline)
                committed.rest = resuming.recovering(
                    committed.rest,
                    resumer,
                    route,
                    member,
                    watch=watch,
                    resume=resume,
                    registry=self.health,
                    record=record,
                )
            if ticket is not None and self.quotas is not None:
                record.quota_settle = functools.partial(_settle, self.quotas, ticket)
            if pin_key:
                ttl = route.routing.pinning.ttl_seconds if route.routing.pinning else 3600
                self._pins.set(route.name, pin_key, member.id, ttl=ttl)
            return committed
        if quota_reset is not None and len(record.attempts) == attempts_before:
            raise AllMembersFailed(class_name=route.name, code=QUOTAS_SPENT, failure=None, retry_after=quota_reset)
        code = "all_members_failed" if record.attempts else "no_available_members"
        raise AllMembersFailed(class_name=route.name, code=code, failure=last)

    def _plan(
        self,
        route: document.ClassRoute,
        exchange_: exchange.Exchange[Head],
        record: records.RequestRecord,
        *,
        pinned: str | None,
    ) -> plan.Plan:
        attempt_plan = plan.plan_attempts(
            route,
            self.health.snapshot(route.name),
            prompt_tokens=exchange_.prompt_tokens(),
            pinned=pinned,
            rng=self._rng,
            skip_reason=exchange_.skip_reason,
        )
        record.skipped.extend((skip.member_id, skip.reason.value) for skip in attempt_plan.skipped)
        return attempt_plan

    async def _resume(
        self, choice: resuming.Choice, *, keys: Keys, record: records.RequestRecord, deadline: float
    ) -> Committed | None:
        """A broken stream's resumption through this same loop, within the request's deadline; None when no
        member could take it."""
        try:
            return await self.open(
                choice.route, choice.resumption.exchange, keys=keys, record=record, pin_key=None, deadline=deadline
            )
        except AllMembersFailed:
            return None

    def _record_failure(
        self,
        record: records.RequestRecord,
        member: document.MemberRoute,
        member_health: health.MemberHealth,
        failure: failures.Failure,
        *,
        started: float,
        first_token: float,
        span: object | None,
        retrying: bool = False,
    ) -> None:
        """One failed attempt, in its member's health (as the policy says), the record and its span."""
        rule = policy.policy_for(failure.kind)
        if failure.kind is failures.FailureKind.HEDGE_CANCELLED:
            member_health.breaker.release_probe()  # a hedge that lost the race: no verdict on its member
        else:
            member_health.record_failure(
                # a Retry-After we are about to wait out must not open the circuit it would reopen
                failure=dataclasses.replace(failure, retry_after=None) if retrying else failure,
                counts_against_health=rule.counts_against_health,
                trips=rule.trips_circuit,
                open_for=rule.open_circuit_seconds,
            )
        record.attempts.append(_attempt_record(member, self._now() - started, failure, first_token))
        if span is not None:
            self._traced_end(span, record)

    def _hedge(
        self,
        route: document.ClassRoute,
        queue: list[document.MemberRoute],
        record: records.RequestRecord,
        *,
        keys: Keys,
        deadline: float,
        op: str,
    ) -> hedging.Contender | None:
        """The next member as a hedge (``hedging.next_contender``), on this engine's health, budget and clock."""
        return hedging.next_contender(
            route,
            queue,
            record,
            registry=self.health,
            budget=self.budget_for(route),
            attempt=functools.partial(self._attempt_for, route, keys=keys, deadline=deadline),
            tracing=self._tracing,
            now=self._now,
            op=op,
        )

    def _traced_end(self, span: object, record: records.RequestRecord) -> None:
        assert self._tracing is not None
        self._tracing.end_attempt(span, record.attempts[-1])

    def _attempt_for(
        self,
        route: document.ClassRoute,
        member: document.MemberRoute,
        *,
        keys: Keys,
        deadline: float,
        first_token: float,
    ) -> exchange.Attempt:
        sessions, now = self._sessions, self._now
        return exchange.attempt_for(
            route, member, keys=keys, sessions=sessions, now=now, deadline=deadline, first_token=first_token
        )

    def _can_take_over(
        self, route: document.ClassRoute, queue: list[document.MemberRoute], *, attempts_left: int
    ) -> bool:
        """Could another member take this request if the next attempt is abandoned? Only then may the
        adaptive first-token deadline cut it short."""
        if attempts_left < 2:
            return False
        return any(
            self.health.member(route.name, other).breaker.state is not breaker.CircuitState.OPEN for other in queue
        )

    def _scrubber_for(self, keys: Keys) -> scrub.Scrubber:
        """The scrubber that knows every key held (each routes snapshot's keys are learned once)."""
        if keys is not self._scrubbing:
            self._scrubber = self._scrubber.knowing(key.reveal() for key in keys.values())
            self._scrubbing = keys
        return self._scrubber


def _settle(quotas: quotas_.Quotas, ticket: ledger.Ticket, tokens: int) -> None:
    """Charge the tokens of the request to the provider quota of the member that served it."""
    quotas.settle(ticket, tokens=tokens)


def _attempt_record(
    member: document.MemberRoute, duration: float, failure: failures.Failure | None, first_token: float
) -> records.AttemptRecord:
    return records.AttemptRecord(
        member_id=member.id,
        provider=member.provider.value,
        model=member.model,
        duration=duration,
        failure=failure,
        first_token_deadline=first_token,
    )

"""The only failover loop: plan, attempt, classify, decide, until one member commits.

Every attempt streams upstream, for streaming and non-streaming clients alike, so one loop serves
both and the first-token deadline catches a provider that is slow rather than dead. The commit
point is explicit: for a streaming client it is the first chunk with content (after that the
response headers go out and failover is no longer invisible); for a non-streaming client it is the
end of the upstream stream, so a stream cut half-way still fails over transparently.

Called by ``server.chat``; calls ``failover.plan`` (pure ordering), ``failover.policy`` (what a
failure means), ``providers`` (translation) and ``upstream`` (the wire).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Mapping

from pilotfish import failures, upstream
from pilotfish.api import refs
from pilotfish.failover import budget, health, pinning, plan, policy
from pilotfish.providers import base, registry
from pilotfish.routes import document
from pilotfish.telemetry import records
from pilotfish.wire import openai

Keys = Mapping[tuple[str, str], refs.ApiKey]
Batch = list[openai.ChatChunk]  # the chunks of one network read, passed on together

# Timers fire a hair early or late; within this of the total deadline a timeout is the total one.
DEADLINE_SLACK = 0.005


class AllMembersFailed(failures.PilotfishError):
    """No member could serve; carries what each tried member said, for the client and the log."""

    def __init__(self, *, class_name: str, code: str, failure: failures.Failure | None) -> None:
        self.class_name = class_name
        self.code = code  # "all_members_failed", "retry_budget_exhausted", "no_eligible_members", …
        self.failure = failure  # the failure that ended the loop, when there was one
        super().__init__(code)


@dataclasses.dataclass(slots=True)
class Committed:
    """A member has produced content; ``head`` is what it produced so far, ``rest`` the remainder."""

    member: document.MemberRoute
    head: list[openai.ChatChunk]
    rest: AsyncIterator[Batch] | None  # None once the whole stream is in ``head``
    time_to_first_token: float


def is_content(chunk: openai.ChatChunk) -> bool:
    """A chunk that carries something the client must see: text, a tool call, a finish, usage."""
    choices = chunk.get("choices")
    if not choices:
        return chunk.get("usage") is not None
    choice = choices[0]
    if choice.get("finish_reason"):
        return True
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("tool_calls") or delta.get("refusal"))


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
    ) -> None:
        self._sessions = sessions
        self.health = health_registry
        self._pins = pins
        self._now = now
        self._rng = rng
        self._budgets: dict[str, budget.RetryBudget] = {}

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
        request: openai.ChatRequest,
        *,
        keys: Keys,
        record: records.RequestRecord,
        pin_key: str | None,
        buffered: bool,
    ) -> Committed:
        """Try members in plan order until one commits; raise AllMembersFailed otherwise."""
        started = self._now()
        deadline = started + route.timeouts.total_seconds
        pinned = self._pins.get(route.name, pin_key) if pin_key else None
        attempt_plan = plan.plan_attempts(
            route,
            self.health.snapshot(route.name),
            prompt_tokens=request.estimate_prompt_tokens(),
            pinned=pinned,
            rng=self._rng,
        )
        record.skipped.extend((skip.member_id, skip.reason.value) for skip in attempt_plan.skipped)
        retry_budget = self.budget_for(route)
        retry_budget.record_request()
        queue = list(attempt_plan.members)
        last: failures.Failure | None = None
        while queue and len(record.attempts) < route.routing.max_attempts:
            member = queue.pop(0)
            member_health = self.health.member(route.name, member)
            if not attempt_plan.last_resort and not member_health.breaker.allow():
                record.skipped.append((member.id, plan.SkipReason.CIRCUIT_OPEN.value))
                continue
            if record.attempts and not retry_budget.try_spend():
                member_health.breaker.release_probe()
                raise AllMembersFailed(class_name=route.name, code="retry_budget_exhausted", failure=last)
            attempt_started = self._now()
            try:
                committed = await self._attempt(route, member, request, keys=keys, deadline=deadline, buffered=buffered)
            except failures.AttemptFailed as exc:
                last = exc.failure
                rule = policy.policy_for(last.kind)
                member_health.record_failure(failure=last, counts_against_health=rule.counts_against_health)
                record.attempts.append(_attempt_record(member, self._now() - attempt_started, last))
                if not rule.failover:
                    raise AllMembersFailed(class_name=route.name, code=last.kind.value, failure=last) from exc
                if rule.needs_larger_window:
                    queue = list(plan.after_context_length(tuple(queue), member))
                continue
            except BaseException:
                member_health.breaker.release_probe()  # cancelled: the probe never got an answer
                raise
            committed.time_to_first_token -= started
            record.attempts.append(_attempt_record(member, self._now() - attempt_started, None))
            if buffered:
                member_health.record_success(latency=self._now() - attempt_started, ttft=committed.time_to_first_token)
            else:
                committed.rest = self._watch(committed, member_health, attempt_started)  # wraps rest
            if pin_key:
                ttl = route.routing.pinning.ttl_seconds if route.routing.pinning else 3600
                self._pins.set(route.name, pin_key, member.id, ttl=ttl)
            return committed
        code = "all_members_failed" if record.attempts else "no_available_members"
        raise AllMembersFailed(class_name=route.name, code=code, failure=last)

    async def _attempt(
        self,
        route: document.ClassRoute,
        member: document.MemberRoute,
        request: openai.ChatRequest,
        *,
        keys: Keys,
        deadline: float,
        buffered: bool,
    ) -> Committed:
        adapter = registry.adapter_for(member.provider)
        key = keys.get((member.api_key_ref.name, member.api_key_ref.key)) if member.api_key_ref else None
        timeouts = route.timeouts
        first_token_deadline = min(self._now() + timeouts.first_token_seconds, deadline)
        stream: upstream.UpstreamStream | None = None
        try:
            async with asyncio.timeout(first_token_deadline - self._now()):
                stream = await upstream.open_stream(
                    self._sessions,
                    adapter.build_request(request, member, api_key=key),
                    connect_timeout=timeouts.connect_seconds,
                    read_timeout=timeouts.first_token_seconds,
                    classify=adapter.classify_error,
                )
                chunks = _translate(stream, adapter.new_stream_translator(member=member))
                head = await _read_until_content(chunks)
            first_token_at = self._now()
            if buffered:
                async with asyncio.timeout(deadline - self._now()):
                    async for batch in chunks:
                        head.extend(batch)
                stream.close()
                return Committed(member=member, head=head, rest=None, time_to_first_token=first_token_at)
            return Committed(
                member=member,
                head=head,
                rest=_bounded(chunks, stream, deadline - self._now()),
                time_to_first_token=first_token_at,
            )
        except TimeoutError as exc:
            if stream is not None:
                stream.close()
            out_of_time = self._now() >= deadline - DEADLINE_SLACK
            kind = failures.FailureKind.TOTAL_TIMEOUT if out_of_time else failures.FailureKind.FIRST_TOKEN_TIMEOUT
            raise failures.AttemptFailed(failures.Failure(kind=kind, detail="deadline exceeded")) from exc
        except BaseException:
            if stream is not None:
                stream.close()
            raise

    def _watch(
        self,
        committed: Committed,
        member_health: health.MemberHealth,
        attempt_started: float,
    ) -> AsyncIterator[Batch]:
        assert committed.rest is not None
        return self._watched(committed.rest, committed, member_health, attempt_started)

    async def _watched(
        self,
        rest: AsyncIterator[Batch],
        committed: Committed,
        member_health: health.MemberHealth,
        attempt_started: float,
    ) -> AsyncIterator[Batch]:
        """Pass the committed stream on, and tell the member's health how it ended."""
        try:
            async for batch in rest:
                yield batch
        except failures.AttemptFailed as exc:
            member_health.record_failure(
                failure=exc.failure,
                counts_against_health=policy.policy_for(exc.failure.kind).counts_against_health,
            )
            raise
        member_health.record_success(latency=self._now() - attempt_started, ttft=committed.time_to_first_token)


def _attempt_record(
    member: document.MemberRoute, duration: float, failure: failures.Failure | None
) -> records.AttemptRecord:
    return records.AttemptRecord(
        member_id=member.id,
        provider=member.provider.value,
        model=member.model,
        duration=duration,
        failure=failure,
    )


async def _translate(stream: upstream.UpstreamStream, translator: base.StreamTranslator) -> AsyncIterator[Batch]:
    """Upstream events → OpenAI chunks; a stream that ends before its terminal event is a failure."""
    finish_seen = False
    async for events in stream.batches():
        batch: Batch = []
        for event in events:
            for chunk in translator.feed(event):
                choices = chunk.get("choices")
                if choices and choices[0].get("finish_reason"):
                    finish_seen = True
                batch.append(chunk)
            if translator.finished:
                break
        if batch:
            yield batch
        if translator.finished:
            return
    if not finish_seen:
        raise failures.AttemptFailed(
            failures.Failure(kind=failures.FailureKind.STREAM_INTERRUPTED, detail="stream ended before it finished")
        )


async def _read_until_content(batches: AsyncIterator[Batch]) -> list[openai.ChatChunk]:
    head: list[openai.ChatChunk] = []
    async for batch in batches:
        head.extend(batch)
        if any(is_content(chunk) for chunk in batch):
            return head
    return head  # an upstream that finished with nothing at all: an empty but complete answer


async def _bounded(
    batches: AsyncIterator[Batch],
    stream: upstream.UpstreamStream,
    seconds: float,
) -> AsyncIterator[Batch]:
    """The rest of a committed stream, under the request's total deadline; always closes upstream."""
    try:
        async with asyncio.timeout(seconds):
            async for batch in batches:
                yield batch
    except TimeoutError as exc:
        raise failures.AttemptFailed(
            failures.Failure(kind=failures.FailureKind.TOTAL_TIMEOUT, detail="total deadline exceeded")
        ) from exc
    finally:
        stream.close()

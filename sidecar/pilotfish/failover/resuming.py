"""Finishing a broken stream on another member: who may be asked, and the seam its answer passes.

``failover.engine`` passes every committed stream through ``recovering``: when the stream breaks,
``choose`` picks the members and the request, the engine's one loop attempts it (the ``resume``
callback), and the answer passes ``through_seam`` before the client sees any of it. Nothing here sends
anything: the exchange (``Exchange.resumer``) builds the request, the engine attempts it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import msgspec

from pilotfish import failures
from pilotfish.failover import exchange, health, recovery
from pilotfish.routes import document
from pilotfish.telemetry import records

Batch = exchange.Batch


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """A resumption and the members that may serve it."""

    resumption: exchange.Resumption
    route: document.ClassRoute  # the class narrowed to those members, without its canary
    splice: bool  # the whole answer is asked for again (no member can continue it)


# The engine's loop, asked to attempt a resumption: the committed answer, or None when no member could.
Resume = Callable[["Choice"], Awaitable[exchange.Committed[Batch] | None]]


async def recovering(
    rest: AsyncIterator[Batch],
    resumer: exchange.Resumer | None,
    route: document.ClassRoute,
    failed: document.MemberRoute,
    *,
    watch: health.StreamWatch,
    resume: Resume,
    registry: health.HealthRegistry,
    record: records.RequestRecord,
) -> AsyncIterator[Batch]:
    """Pass a committed stream on; if it breaks, finish the answer on another member.

    How the stream ended goes to its member's health (``watch``), and what the client was sent to the
    ``resumer``, as calls on this one loop: a stream resumes each generator it passes once per network
    read. Without a resumer (an exchange whose answers cannot be resumed) a failure goes on as it is.

    A member that can continue is given the delivered text as a trailing assistant message (a prefill);
    when none can and the class allows it, another member is asked for the whole answer again
    (``streaming.splice``). Either goes through the engine's one loop (``resume``), and its answer through
    the seam: the client sees one answer, within the request's one deadline, never a word twice or a
    contradiction. When nobody can finish it, or the seam refuses, the original failure goes on as an
    in-band error."""
    try:
        if resumer is None:
            async for batch in rest:
                yield batch
                del batch  # a stream waiting for its next read holds nothing of the last one
        else:
            take = resumer.take
            async for batch in rest:
                take(batch)
                yield batch
                del batch
    except failures.AttemptFailed as exc:
        failure, cause = watch.broke(exc), exc
    else:
        watch.finished()
        return
    if resumer is None:
        raise failure from cause
    mark_failed(record, failed, failure.failure)
    choice = choose(route, resumer, failed, cannot_continue=lambda m: registry.member(route.name, m).cannot_continue())
    resumed = None if choice is None else await resume(choice)
    if choice is None or resumed is None:
        record.recoveries.append((failed.provider.value, "none", "failed"))
        raise failure from cause
    target_health = registry.member(route.name, resumed.member)
    async for batch in _finished(resumed, choice, target_health, source=failed, failure=failure, record=record):
        yield batch


async def _finished(
    resumed: exchange.Committed[Batch],
    choice: Choice,
    target_health: health.MemberHealth,
    *,
    source: document.MemberRoute,
    failure: failures.AttemptFailed,
    record: records.RequestRecord,
) -> AsyncIterator[Batch]:
    """The resumed answer through the seam; what the target showed (a restart, a divergence) is learned."""
    target, recovered = resumed.member, (source.provider.value, resumed.member.provider.value, "success")
    max_seconds, counted = choice.route.streaming.splice.max_seconds, False
    try:
        async for batch in through_seam(resumed, choice.resumption, max_seconds=max_seconds):
            if not counted:
                counted = True
                record.recoveries.append(recovered)
                if choice.resumption.seam.restarted and not choice.splice:  # usable once, at a regeneration's price
                    target_health.learn_cannot_continue(failures.ContinuationProblem.RESTARTED)
            yield batch
    except recovery.DivergenceError as exc:
        record.recoveries.append((source.provider.value, target.provider.value, "diverged"))
        mark_failed(record, target, failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail=str(exc)))
        if not choice.splice:
            target_health.learn_cannot_continue(failures.ContinuationProblem.DIVERGED)
        raise failure from None
    if not counted:
        record.recoveries.append(recovered)


def mark_failed(record: records.RequestRecord, member: document.MemberRoute, failure: failures.Failure) -> None:
    """The attempt that committed and then broke failed after all: say so in its record."""
    for index in range(len(record.attempts) - 1, -1, -1):
        attempt = record.attempts[index]
        if attempt.member_id == member.id and attempt.failure is None:
            record.attempts[index] = dataclasses.replace(attempt, failure=failure)
            return


def choose(
    route: document.ClassRoute,
    resumer: exchange.Resumer,
    failed: document.MemberRoute,
    *,
    cannot_continue: Callable[[document.MemberRoute], failures.ContinuationProblem | None],
) -> Choice | None:
    """Continue on the members declared able to (``prefill``) and not learned unable; else, where the class
    allows it, regenerate and splice on any other member; else None (the stream ends with its error)."""
    others = tuple(m for m in route.members if m.id != failed.id)
    able = tuple(m for m in others if m.prefill and cannot_continue(m) is None)
    splice = route.streaming.splice
    if able:
        members, splicing = able, False
    elif others and splice.enabled and resumer.delivered_chunks() <= splice.max_tokens:
        members, splicing = others, True
    else:
        return None
    resumption = resumer.resumption(splice=splicing)
    if resumption is None:
        return None
    narrowed = msgspec.structs.replace(route, members=members, canary=None)
    return Choice(resumption=resumption, route=narrowed, splice=splicing)


async def through_seam(
    committed: exchange.Committed[Batch],
    resumption: exchange.Resumption,
    *,
    max_seconds: float,
) -> AsyncIterator[Batch]:
    """The resumed answer as the client may have it: checked at the seam (``recovery.Seam``: raises
    ``DivergenceError``), its usage made to add up both attempts. Until the seam's verdict is in, the
    answer is held, for at most ``max_seconds`` (then it counts as diverged: a regeneration that never
    reaches the delivered text is not an answer)."""
    seam, cut = resumption.seam, resumption.delivered_chunks
    loop = asyncio.get_running_loop()
    give_up = loop.time() + max_seconds
    batches = _all(committed)
    try:
        while True:
            try:
                if seam.decided:
                    batch = await anext(batches)
                else:
                    async with asyncio.timeout(max(0.0, give_up - loop.time())):
                        batch = await anext(batches)
            except StopAsyncIteration:
                out = seam.end()
                if out:
                    yield [recovery.with_cut_attempt(c, delivered_chunks=cut) for c in out]
                return
            except TimeoutError as exc:
                raise recovery.DivergenceError(f"no verdict at the seam within {max_seconds:g}s") from exc
            out = seam.feed(batch)
            if out:
                yield [recovery.with_cut_attempt(c, delivered_chunks=cut) for c in out]
    finally:
        await batches.aclose()
        if isinstance(committed.rest, AsyncGenerator):
            await committed.rest.aclose()  # held or abandoned at the seam: the upstream call ends here too


async def _all(committed: exchange.Committed[Batch]) -> AsyncGenerator[Batch, None]:
    yield committed.head
    if committed.rest is not None:
        async for batch in committed.rest:
            yield batch

"""Finishing a broken stream on another member: who may be asked, and the seam its answer passes.

``failover.engine`` calls ``choose`` when a committed stream breaks, sends the chosen resumption through
its one loop, and passes the answer through ``through_seam`` before the client sees any of it. Nothing
here sends anything: the exchange (``Exchange.resumer``) builds the request, the engine attempts it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from pilotfish.failover import exchange, recovery
from pilotfish.routes import document

Batch = exchange.Batch


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """A resumption and the members that may serve it."""

    resumption: exchange.Resumption
    route: document.ClassRoute  # the class narrowed to those members, without its canary
    splice: bool  # the whole answer is asked for again (no member can continue it)


def choose(
    route: document.ClassRoute,
    resumer: exchange.Resumer,
    failed: document.MemberRoute,
    *,
    cannot_continue: Callable[[document.MemberRoute], str | None],
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
    narrowed = route.model_copy(update={"members": members, "canary": None})
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

"""The unary exchange: one JSON request, one JSON answer; the attempt commits when the whole answer
is in and parsed. Embeddings are its first user.

The whole answer must arrive within the first-token deadline (capped by the total one): for a
unary call the first useful byte is the answer, so "slow, not dead" is caught the same way as for
chat. A member whose provider has no such API is skipped by the plan (``skip_reason``), never tried.

Built per request by ``server.embeddings``; attempted by ``failover.engine``.
"""

from __future__ import annotations

from pilotfish import failures, memory, upstream
from pilotfish.failover import exchange, plan
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.wire import http, openai


class Embeddings:
    """An embeddings request, sent whole to whichever member the engine attempts."""

    __slots__ = ("hold", "request")

    operation = "embeddings"

    def __init__(self, request: openai.EmbeddingsRequest, *, hold: memory.Hold | None = None) -> None:
        self.request = request
        self.hold = hold  # the request's share of the memory budget; the answer takes from it

    def prompt_tokens(self) -> int:
        return self.request.estimate_prompt_tokens()

    def resumer(self, head: openai.EmbeddingsResponse) -> None:
        return None  # one JSON answer: nothing is sent to the client before it is whole

    def skip_reason(self, member: document.MemberRoute) -> plan.SkipReason | None:
        embedder = registry.embedder_for(member.provider)
        if embedder is None:
            return plan.SkipReason.OPERATION_NOT_SUPPORTED
        if self.request.is_tokens and not embedder.TOKEN_INPUT:
            return plan.SkipReason.INPUT_NOT_SUPPORTED
        return None

    async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[openai.EmbeddingsResponse]:
        member = attempt.member
        embedder = registry.embedder_for(member.provider)
        assert embedder is not None  # the plan skipped members without one
        built = embedder.build_embeddings_request(self.request, member, api_key=attempt.api_key)
        held = self.hold.sibling() if self.hold is not None else None
        try:
            body = await send_json(attempt, built, max_bytes=attempt.limits.max_embeddings_response_bytes, hold=held)
            try:
                answer = embedder.parse_embeddings_response(body, member=member, count=len(self.request.texts()))
            except failures.SHAPE_ERRORS as exc:  # JSON, but not an embeddings answer
                detail = "embeddings response is not in the provider's format"
                raise failures.AttemptFailed(
                    failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail=detail)
                ) from exc
            if held is not None and self.hold is not None:
                self.hold.adopt(held)
        finally:
            if held is not None:
                held.release()  # a no-op once adopted by the request
        return exchange.Committed(member=member, head=answer, rest=None, time_to_first_token=attempt.now())


async def send_json(
    attempt: exchange.Attempt,
    request: http.UpstreamRequest,
    *,
    max_bytes: int,
    hold: memory.Hold | None = None,
) -> bytes:
    """Send one request and read its whole answer (at most ``max_bytes``) under the first-token deadline;
    errors classified."""
    timeouts = attempt.timeouts
    classify = registry.adapter_for(attempt.member.provider).classify_error
    answer: upstream.UpstreamStream | None = None
    window: exchange.FirstTokenWindow | None = None
    try:
        async with exchange.first_token_window(attempt) as window:
            answer = await upstream.open_stream(
                attempt.sessions,
                request,
                connect_timeout=timeouts.connect_seconds,
                read_timeout=timeouts.first_token_seconds,
                classify=classify,
                extra_headers=attempt.trace_headers,
            )
            return await answer.read(max_bytes=max_bytes, hold=hold)
    except TimeoutError as exc:
        raise exchange.timed_out(attempt, window) from exc
    finally:
        if answer is not None:
            answer.close()  # a no-op once the body was read and the connection went back to the pool

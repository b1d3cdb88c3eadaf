"""What one attempt does on the wire, as a pluggable part of the one failover loop.

``failover.engine`` owns the loop (plan, breaker, retry budget, policy); an ``Exchange`` owns what
a single attempt sends and when that attempt counts as committed: a chat completion streamed chunk
by chunk (``failover.streaming``) or one JSON request and response (``failover.unary``, embeddings).
One loop, several exchanges: the loop is never written twice.

Exchanges are built per request by ``server`` and hold the request; the engine hands each attempt
an ``Attempt`` with the member, its key, the sessions and the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from pilotfish import failures, upstream
from pilotfish.failover import plan, recovery
from pilotfish.routes import document
from pilotfish.specs import modelclass, refs
from pilotfish.wire import openai

Batch = list[openai.ChatChunk]  # the chunks of one network read, passed on together
Head = TypeVar("Head")

# Timers fire a hair early or late; within this of the total deadline a timeout is the total one.
DEADLINE_SLACK = 0.005
Unsubscribe = Callable[[], None]


def _never(callback: Callable[[], None]) -> Unsubscribe:
    return lambda: None


@dataclasses.dataclass(slots=True)
class Committed(Generic[Head]):
    """A member has answered; ``head`` is its answer so far, ``rest`` the remainder of a stream."""

    member: document.MemberRoute
    head: Head
    rest: AsyncIterator[Batch] | None  # None once the whole answer is in ``head``
    time_to_first_token: float  # on the engine's clock; the engine makes it relative to the request


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """Everything one attempt needs from the engine: who, with which key, over which sessions, by when."""

    member: document.MemberRoute
    api_key: refs.ApiKey | None
    sessions: upstream.Sessions
    timeouts: modelclass.TimeoutsSpec
    deadline: float  # the request's total deadline, on ``now``'s clock
    now: Callable[[], float]
    first_token_seconds: float  # this attempt's first-token deadline (adaptive: failover.deadlines)
    trace_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # W3C traceparent, when tracing
    hold_back: int = 0  # content chunks to hold before a streaming answer commits (class streaming.holdBackTokens)
    limits: modelclass.LimitsSpec = dataclasses.field(default_factory=modelclass.LimitsSpec)  # class limits
    # subscribe to "this member was just found hung" (``health.MemberHealth.when_hung``): set when another
    # member could take over, so an attempt waiting here is cut at once rather than at its own deadline
    when_hung: Callable[[Callable[[], None]], Unsubscribe] = _never


def attempt_for(
    route: document.ClassRoute,
    member: document.MemberRoute,
    *,
    keys: Mapping[tuple[str, str], refs.ApiKey],
    sessions: upstream.Sessions,
    now: Callable[[], float],
    deadline: float,
    first_token: float,
) -> Attempt:
    """An attempt on ``member`` with its key (None when the member has none, or it is not loaded)."""
    key = keys.get((member.api_key_ref.name, member.api_key_ref.key)) if member.api_key_ref else None
    return Attempt(
        member=member,
        api_key=key,
        sessions=sessions,
        timeouts=route.timeouts,
        deadline=deadline,
        now=now,
        first_token_seconds=first_token,
        hold_back=route.streaming.hold_back_tokens,
        limits=route.limits,
    )


def key_missing(ref: refs.SecretKeyRef) -> failures.AttemptFailed:
    """The member's Secret key is not loaded (deleted in local mode): fail it, as a rejected credential."""
    return failures.AttemptFailed(
        failures.Failure(
            kind=failures.FailureKind.AUTH,
            credential=failures.CredentialProblem.KEY_MISSING,
            detail=f'no API key loaded: Secret "{ref.name}" has no key "{ref.key}"; nothing was sent',
        )
    )


class Exchange(Protocol[Head]):
    """One kind of upstream call the engine can attempt, for one request."""

    @property
    def operation(self) -> str:
        """``chat`` or ``embeddings``: for logs and messages."""
        ...

    def prompt_tokens(self) -> int:
        """The prompt estimate for the context-window pre-check."""
        ...

    def skip_reason(self, member: document.MemberRoute) -> plan.SkipReason | None:
        """Why this member cannot serve this request at all (no such API at its provider), or None."""
        ...

    async def attempt(self, attempt: Attempt) -> Committed[Head]:
        """Send, and return once committed; raise ``failures.AttemptFailed`` otherwise."""
        ...

    def resumer(self, head: Head) -> Resumer | None:
        """An optional capability: what lets another member finish a committed stream that broke
        (continuation, splicing), told that ``head`` went to the client. None: this exchange's answers
        cannot be resumed."""
        ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Resumption:
    """How to finish a broken stream: the request to send, and the seam its answer must pass."""

    exchange: Exchange[Batch]
    seam: recovery.Seam
    delivered_chunks: int  # what the broken attempt sent the client (about one token each), for usage


class Resumer(Protocol):
    """Follows what a committed stream delivered, and says how another member could finish it."""

    def take(self, batch: Batch) -> None:
        """``batch`` went to the client."""
        ...

    def resumption(self, *, splice: bool) -> Resumption | None:
        """A continuation of the delivered text (a prefill), or with ``splice`` the whole answer asked for
        again; None when the stream cannot be resumed at all (nothing delivered yet, tool calls)."""
        ...

    def delivered_chunks(self) -> int:
        """Content chunks the client has (about one token each)."""
        ...


class FirstTokenWindow:
    """Until the first token: ends at the attempt's first-token deadline (capped by its total one), or early
    when the member is found hung (``cut``). Either way the body raises ``TimeoutError``; ``timed_out``
    tells which.

    An async context manager of its own rather than an ``asynccontextmanager`` generator: it is entered
    once per attempt, and the generator's machinery cost as much again as the ``asyncio.timeout`` inside."""

    __slots__ = ("_attempt", "_deadline", "_unsubscribe", "cut")

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._deadline: asyncio.Timeout | None = None
        self._unsubscribe: Unsubscribe | None = None
        self.cut = False

    async def __aenter__(self) -> FirstTokenWindow:
        attempt = self._attempt
        now = attempt.now()
        deadline = self._deadline = asyncio.timeout(min(now + attempt.first_token_seconds, attempt.deadline) - now)
        await deadline.__aenter__()
        try:
            self._unsubscribe = attempt.when_hung(self._cut)
        except BaseException:
            await deadline.__aexit__(None, None, None)  # no timer left behind to cancel the task later
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._deadline is not None and self._unsubscribe is not None, "entered first"
        try:
            self._unsubscribe()
        finally:
            await self._deadline.__aexit__(exc_type, exc, traceback)  # a deadline that fired: TimeoutError

    def _cut(self) -> None:
        assert self._deadline is not None
        if self._deadline.expired():
            return  # its own deadline fired first: a first-token timeout, not a cut
        self.cut = True
        # fires now, as the deadline would have: the same clean unwinding
        self._deadline.reschedule(asyncio.get_running_loop().time())


def first_token_window(attempt: Attempt) -> FirstTokenWindow:
    """The wait for an attempt's first token: ``async with first_token_window(attempt) as window:``."""
    return FirstTokenWindow(attempt)


def timed_out(attempt: Attempt, window: FirstTokenWindow | None = None) -> failures.AttemptFailed:
    """A deadline fired during an attempt: the total one if the request is out of time, else the first-token
    one, or the member was found hung by another request while this one waited (``window.cut``)."""
    if window is not None and window.cut:
        detail = "cut while waiting for the first token: another request found the member hung"
        return failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.CUT_HUNG, detail=detail))
    out_of_time = attempt.now() >= attempt.deadline - DEADLINE_SLACK
    kind = failures.FailureKind.TOTAL_TIMEOUT if out_of_time else failures.FailureKind.FIRST_TOKEN_TIMEOUT
    return failures.AttemptFailed(failures.Failure(kind=kind, detail="deadline exceeded"))

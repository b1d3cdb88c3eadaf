"""The chat exchange: one attempt streams a chat completion and commits at its first content.

Every chat attempt streams upstream, for streaming and non-streaming clients alike, so the
first-token deadline catches a provider that is slow rather than dead. The commit point is
explicit: for a streaming client it is the first chunk with content (after that the response
headers go out and failover is no longer invisible); for a buffered (non-streaming) client it is the
end of the upstream stream, so a stream cut half-way still fails over transparently.

Built per request by ``server.chat`` and ``server.messages``; attempted by ``failover.engine``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator

from pilotfish import failures, memory, upstream
from pilotfish.failover import exchange, plan, recovery, watchdog
from pilotfish.providers import base, registry
from pilotfish.routes import document
from pilotfish.telemetry import records
from pilotfish.wire import http, openai, sse

# A buffered answer's plain text chunks are folded into one chunk every this many chunks: a long answer
# is tens of thousands of one-token chunks, and a dict per token would cost many times the text.
FOLD_EVERY = 256

Batch = exchange.Batch
Committed = exchange.Committed[list[openai.ChatChunk]]  # a chat answer: its chunks so far, and the rest


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


class ChatStream:
    """A chat completion request, streamed from whichever member the engine attempts."""

    __slots__ = ("buffered", "hold", "prefilled", "record", "request")

    operation = "chat"

    def __init__(
        self,
        request: openai.ChatRequest,
        *,
        buffered: bool,
        record: records.RequestRecord | None = None,
        hold: memory.Hold | None = None,
        prefilled: bool = False,
    ) -> None:
        self.request = request
        self.buffered = buffered  # read the whole upstream stream before committing
        self.record = record  # where skipped malformed events are counted
        self.hold = hold  # the request's share of the memory budget; a buffered answer takes from it
        self.prefilled = prefilled  # ends in a prefill: a 400 means "cannot continue", not a bad request

    def prompt_tokens(self) -> int:
        return self.request.estimate_prompt_tokens()

    def continuation(self, prefill: str) -> ChatStream:
        """The same conversation with the text already delivered as a trailing assistant message: a member
        that can prefill answers with only what comes next."""
        raw = self.request.raw
        body = {**raw, "messages": [*raw["messages"], {"role": "assistant", "content": prefill}]}
        return ChatStream(
            openai.ChatRequest.from_body(body), buffered=False, record=self.record, hold=self.hold, prefilled=True
        )

    def resumer(self, head: Batch) -> ChatResumer:
        resumer = ChatResumer(self)
        resumer.take(head)
        return resumer

    def skip_reason(self, member: document.MemberRoute) -> plan.SkipReason | None:
        return None  # every provider has a chat API

    async def attempt(self, attempt: exchange.Attempt) -> Committed:
        member, now = attempt.member, attempt.now
        adapter = registry.adapter_for(member.provider)
        timeouts = attempt.timeouts
        stream: upstream.UpstreamStream | None = None
        answer = self.hold.sibling() if self.buffered and self.hold is not None else None
        window: exchange.FirstTokenWindow | None = None
        try:
            async with exchange.first_token_window(attempt) as window:
                stream = await upstream.open_stream(
                    attempt.sessions,
                    _built(adapter, self.request, attempt),
                    connect_timeout=timeouts.connect_seconds,
                    # no socket read timeout: this first-token timeout, then _translate's watchdog, bound every
                    # read of the stream; aiohttp's would re-arm a loop timer on each network read
                    read_timeout=None,
                    classify=adapter.classify_error,
                    extra_headers=attempt.trace_headers,
                )
                events = stream.batches(
                    max_bytes=attempt.limits.max_chat_response_bytes if self.buffered else None, hold=answer
                )
                bound = _Bound()
                chunks = _translate(events, adapter.new_stream_translator(member=member), stream, bound, self.record)
                head = await _read_until_content(chunks, hold_back=attempt.hold_back)
            first_token_at = now()
            bound.seconds, bound.idle = attempt.deadline - now(), timeouts.idle_seconds  # committed: bound the rest
            rest = chunks
            if self.buffered:
                head = await _buffer_rest(head, rest)
                if answer is not None and self.hold is not None:
                    self.hold.adopt(answer)
                return exchange.Committed(member=member, head=head, rest=None, time_to_first_token=first_token_at)
            return exchange.Committed(member=member, head=head, rest=rest, time_to_first_token=first_token_at)
        except TimeoutError as exc:
            if stream is not None:
                stream.close()
            raise exchange.timed_out(attempt, window) from exc
        except failures.AttemptFailed as exc:
            if stream is not None:
                stream.close()
            if self.prefilled and exc.failure.kind is failures.FailureKind.BAD_REQUEST:
                rejected = dataclasses.replace(exc.failure, kind=failures.FailureKind.PREFILL_REJECTED)
                raise failures.AttemptFailed(rejected) from exc
            raise
        except BaseException:
            if stream is not None:
                stream.close()
            raise
        finally:
            if answer is not None:
                answer.release()  # a no-op once adopted by the request


class ChatResumer:
    """What a committed chat stream delivered, and the requests that could finish it elsewhere."""

    __slots__ = ("_chat", "_delivered")

    def __init__(self, chat: ChatStream) -> None:
        self._chat = chat
        self._delivered = recovery.Delivered()

    def take(self, batch: Batch) -> None:
        self._delivered.take(batch)

    def delivered_chunks(self) -> int:
        return self._delivered.count

    def resumption(self, *, splice: bool) -> exchange.Resumption | None:
        """A stream that was emitting tool calls is never resumed: arguments cannot be spliced."""
        delivered = self._delivered
        if not delivered.continuable:
            return None
        if splice:  # the whole answer again, held at the seam until it has reproduced the delivered text
            again = ChatStream(self._chat.request, buffered=False, record=self._chat.record)
            seam = recovery.Seam(delivered.text, trimmed=False, splice=True)
            return exchange.Resumption(exchange=again, seam=seam, delivered_chunks=delivered.count)
        prefill, trimmed = recovery.prefill_of(delivered.text)
        seam = recovery.Seam(delivered.text, trimmed=trimmed, splice=False)
        return exchange.Resumption(
            exchange=self._chat.continuation(prefill), seam=seam, delivered_chunks=delivered.count
        )


def _built(adapter: base.Adapter, request: openai.ChatRequest, attempt: exchange.Attempt) -> http.UpstreamRequest:
    """The upstream request, or a bad_request failure when the client's request cannot take this provider's
    shape (validation lets through what OpenAI members accept; a translator may still need more)."""
    try:
        return adapter.build_request(request, attempt.member, api_key=attempt.api_key)
    except failures.SHAPE_ERRORS as exc:
        provider = attempt.member.provider.value
        detail = f"the request cannot be translated for provider {provider}: a field has an unexpected shape"
        raise failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.BAD_REQUEST, detail=detail)) from exc


class _Bound:
    """How the rest of a stream is bounded once it commits (until then, the first-token window bounds it):
    the seconds left to the request's total deadline, and the stream idle limit."""

    __slots__ = ("idle", "seconds")

    def __init__(self) -> None:
        self.seconds: float | None = None  # None until the commit
        self.idle = 0.0


async def _translate(
    stream: AsyncGenerator[list[sse.Event], None],
    translator: base.StreamTranslator,
    upstream_stream: upstream.UpstreamStream,
    bound: _Bound,
    record: records.RequestRecord | None,
) -> AsyncGenerator[Batch, None]:
    """Upstream events → OpenAI chunks (``_Answer``); a stream that ends before its terminal event is a
    failure. After the commit (``bound``), every read is under the total deadline and the stream idle
    limit, with one ``watchdog.Watchdog`` for the whole stream, not a timer per read (what that saved: its
    docstring). Translating and bounding are one generator: a stream resumes each generator it passes
    once per network read.

    ``stream`` is closed here as soon as the answer is complete: the body's end is usually still unread
    then, and an async generator dropped unfinished is closed by asyncio's finalizer hook instead, which
    wakes the loop through its self-pipe (a socket write and read) and runs a task, per generator. The
    upstream connection is closed with it, however the stream ended."""
    loop = asyncio.get_running_loop()
    answer = _Answer(translator, record)
    watch: watchdog.Watchdog | None = None
    deadline = left = 0.0
    try:
        async with contextlib.aclosing(stream):
            while not answer.complete():
                if watch is None and bound.seconds is not None:
                    deadline = loop.time() + bound.seconds
                    watch = watchdog.Watchdog(bound.idle, until=deadline)
                try:
                    if watch is None:
                        events = await anext(stream)
                    else:
                        left = deadline - loop.time()
                        async with watch:
                            events = await anext(stream)
                except StopAsyncIteration:
                    if answer.finish_seen:
                        return
                    detail = "stream ended before it finished"
                    raise failures.AttemptFailed(
                        failures.Failure(kind=failures.FailureKind.STREAM_INTERRUPTED, detail=detail)
                    ) from None
                except TimeoutError as exc:
                    if watch is None:
                        raise
                    raise _stalled(left, idle=bound.idle) from exc
                start = 0
                while start < len(events):
                    batch, start = answer.batch(events, start)
                    if batch:
                        yield batch
                        del batch  # a stream waiting for its next read holds nothing of the last one
                del events
    finally:
        if watch is not None:
            watch.close()
        upstream_stream.close()


class _Answer:
    """One stream's translation and what it has shown so far: its first content, its finish, its end.

    Hygiene: a malformed event is skipped and counted, and the stream goes on; a stream that has sent
    its finish and its usage is complete even if its terminal event (``[DONE]``) never comes."""

    __slots__ = ("content_seen", "done", "finish_seen", "record", "translator")

    def __init__(self, translator: base.StreamTranslator, record: records.RequestRecord | None) -> None:
        self.translator = translator
        self.record = record  # where skipped malformed events are counted
        self.finish_seen = False
        self.done = False  # the usage chunk followed the finish: nothing else is owed
        self.content_seen = False

    def complete(self) -> bool:
        return self.translator.finished or self.done

    def batch(self, events: list[sse.Event], start: int) -> tuple[Batch, int]:
        """The chunks of ``events[start:]`` up to the first content, or to the end; and where to go on
        from. The first content goes on at once, in a batch of its own: an upstream that sends a whole
        answer in one burst must not have all of it translated before the client sees its first byte."""
        batch: Batch = []
        for index in range(start, len(events)):
            try:
                chunks = self.translator.feed(events[index])
            except failures.GARBAGE_EVENT:  # garbage is skipped; an error event is not
                if self.record is not None:
                    self.record.malformed_events += 1
                continue
            for chunk in chunks:
                choices = chunk.get("choices")
                if choices and choices[0].get("finish_reason"):
                    self.finish_seen = True
                elif self.finish_seen and not choices and chunk.get("usage") is not None:
                    self.done = True
                batch.append(chunk)
            if self.complete():
                break
            if not self.content_seen and any(is_content(chunk) for chunk in chunks):
                self.content_seen = True
                return batch, index + 1
        return batch, len(events)


def _stalled(left: float, *, idle: float) -> failures.AttemptFailed:
    """A read of a committed stream timed out: the total deadline (``left`` seconds were left when it
    began) or the stream idle limit."""
    if left <= idle:
        kind, detail = failures.FailureKind.TOTAL_TIMEOUT, "total deadline exceeded"
    else:
        kind, detail = failures.FailureKind.STREAM_INTERRUPTED, f"stream stalled for {idle:g}s"
    return failures.AttemptFailed(failures.Failure(kind=kind, detail=detail))


async def _buffer_rest(head: list[openai.ChatChunk], rest: AsyncIterator[Batch]) -> list[openai.ChatChunk]:
    """The whole answer for a buffered client, with runs of plain text folded as they come."""
    folded = 0
    async for batch in rest:
        head.extend(batch)
        if len(head) - folded >= FOLD_EVERY:
            head[folded:] = fold_text(head[folded:])
            folded = len(head)
    return head


def fold_text(chunks: list[openai.ChatChunk]) -> list[openai.ChatChunk]:
    """The same chunks, each run of plain text deltas (one choice, text only) joined into its first chunk."""
    out: list[openai.ChatChunk] = []
    run: list[str] = []
    for chunk in chunks:
        text = _plain_text(chunk)
        if text is not None and run:
            run.append(text)
            continue
        if len(run) > 1:
            out[-1] = _with_text(out[-1], "".join(run))
        run = [text] if text is not None else []
        out.append(chunk)
    if len(run) > 1:
        out[-1] = _with_text(out[-1], "".join(run))
    return out


def _plain_text(chunk: openai.ChatChunk) -> str | None:
    """The text of a chunk that carries nothing else (no finish, tool call, logprobs or usage), else None."""
    choices = chunk.get("choices")
    if not choices or len(choices) != 1 or chunk.get("usage") is not None:
        return None
    choice = choices[0]
    delta = choice.get("delta") or {}
    if choice.get("finish_reason") or choice.get("logprobs") or set(delta) != {"content"}:
        return None
    text = delta["content"]
    return text if isinstance(text, str) else None


def _with_text(chunk: openai.ChatChunk, text: str) -> openai.ChatChunk:
    choice = chunk["choices"][0]
    return {**chunk, "choices": [{**choice, "delta": {"content": text}}]}


async def _read_until_content(batches: AsyncIterator[Batch], *, hold_back: int = 0) -> list[openai.ChatChunk]:
    """Read up to the commit point: the first content, or ``hold_back`` content chunks (or the finish)."""
    head: list[openai.ChatChunk] = []
    held = 0
    async for batch in batches:
        head.extend(batch)
        for chunk in batch:
            if is_content(chunk):
                held += 1
                choices = chunk.get("choices")
                if held >= hold_back or not choices or choices[0].get("finish_reason"):
                    return head
    return head  # an upstream that finished with nothing at all: an empty but complete answer

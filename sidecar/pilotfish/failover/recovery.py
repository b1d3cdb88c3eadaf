"""Mid-stream recovery, the pure parts: what the client has already been sent, the prefill that carries
it, and the seam that checks a resuming member's text against it (``Seam``): no text is ever forwarded
twice or in contradiction of what the client has.

Anthropic's API refuses a final assistant message that ends in whitespace, so the prefill is sent
without it; the continuation then tends to start with that whitespace, which the client already has,
and it is dropped from the seam so no character arrives twice.
"""

from __future__ import annotations

from pilotfish.wire import openai

Batch = list[openai.ChatChunk]

# Delivered text kept for a continuation's prefill, at most: about 64k tokens, more than most context
# windows take back. Past it the stream can no longer be continued, and nothing more is kept: an
# endless upstream answer must not grow the sidecar by everything it ever sent (a stalled reader held
# 6-7 MB per stream this way).
TEXT_MAX_CHARS = 256 * 1024


# Delivered text is kept joined every this many content chunks, and its pieces joined again every this
# many pieces: a str per token costs about 50 bytes beside its few characters, and a long-lived stream
# holds all of them until it ends. The text is copied again every JOIN_EVERY² tokens, a few bytes per
# token amortised.
JOIN_EVERY = 16


class Delivered:
    """The text and tool calls of the chunks passed to the client so far."""

    __slots__ = ("chars", "count", "parts", "recent", "too_long", "tool_calls")

    def __init__(self) -> None:
        self.parts: list[str] = []  # the text delivered, in fewer than JOIN_EVERY pieces
        self.recent: list[str] = []  # the content chunks since the last piece, about one token each
        self.count = 0  # content chunks delivered, kept or not
        self.chars = 0
        self.tool_calls = False
        self.too_long = False  # over TEXT_MAX_CHARS: the text is dropped and no continuation is possible

    def take(self, batch: Batch) -> None:
        """What ``batch`` delivered, in one pass over its chunks (one per token: this runs for every one)."""
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")
                if not delta:
                    continue
                content = delta.get("content")
                if content:
                    self.count += 1
                    if not self.too_long:
                        self._keep(content)
                if delta.get("tool_calls"):
                    self.tool_calls = True

    def _keep(self, content: str) -> None:
        self.chars += len(content)
        if self.chars > TEXT_MAX_CHARS:
            self.too_long, self.parts, self.recent = True, [], []
            return
        recent = self.recent
        recent.append(content)
        if len(recent) >= JOIN_EVERY:
            parts = self.parts
            parts.append("".join(recent))
            recent.clear()
            if len(parts) >= JOIN_EVERY:
                self.parts = ["".join(parts)]

    @property
    def continuable(self) -> bool:
        """Whether another member could finish this answer from a prefill of what was delivered."""
        return bool(self.parts or self.recent) and not self.tool_calls and not self.too_long

    @property
    def text(self) -> str:
        return "".join(self.parts) + "".join(self.recent)


def prefill_of(text: str) -> tuple[str, bool]:
    """The prefill for ``text``, and whether trailing whitespace was trimmed from it."""
    prefill = text.rstrip()
    return prefill, len(prefill) != len(text)


# A resumed stream whose text matched the start of the delivered text for this many characters before it
# differed was starting the answer over (and said it differently), not continuing it by coincidence.
RESTART_EVIDENCE_CHARS = 12


class DivergenceError(Exception):
    """The resumed stream contradicts what the client already has: none of it may be forwarded."""


class Seam:
    """Checks what a resuming member sends against the text the client already has, before any of it is
    forwarded, and hands on only what is new.

    A continuation (the member was given the delivered text as a prefill) may do one of three things:
    continue it (forwarded, minus whitespace the client already has), start the answer over (held until
    it has repeated the delivered text exactly, then only the rest is forwarded, and ``restarted`` is
    set), or start over and say it differently (``DivergenceError``). A splice (the member was asked for the
    whole answer again) must reproduce the delivered text exactly before anything goes on. What is held
    is bounded by the delivered text: past its length the verdict is certain."""

    __slots__ = ("_delivered", "_held", "_splice", "_strip", "_text", "decided", "restarted")

    def __init__(self, delivered: str, *, trimmed: bool, splice: bool) -> None:
        self._delivered = delivered
        self._splice = splice
        self._strip = trimmed  # the prefill lost whitespace the client has: drop it from a continuation
        self._held: Batch = []
        self._text = ""  # the resumed text while no verdict is in
        self.decided = False
        self.restarted = False  # the member started the answer over instead of continuing it

    def feed(self, batch: Batch) -> Batch:
        """The chunks of ``batch`` the client may have now (held ones included); raises ``DivergenceError``."""
        if self.decided:
            return self._seamed(batch)
        ended = False
        for chunk in batch:
            self._held.append(chunk)
            self._text += _content(chunk)
            ended = ended or _finished(chunk)
        return self._judge(ended=ended)

    def end(self) -> Batch:
        """The resumed stream ended: whatever is still held, if the verdict allows it."""
        return [] if self.decided else self._judge(ended=True)

    def _judge(self, *, ended: bool) -> Batch:
        delivered, text = self._delivered, self._text
        if text.startswith(delivered) and (len(text) > len(delivered) or ended) and (text or self._splice):
            self.restarted = bool(delivered)
            return self._release(skip=len(delivered))
        if delivered.startswith(text):
            if not ended:
                return []  # the start of a restart, or not yet enough to tell
            if text or self._splice:
                raise DivergenceError("the resumed answer stopped inside the text already delivered")
            return self._release(skip=0)  # a continuation with nothing more to say
        if self._splice or _common_prefix(text, delivered) >= min(RESTART_EVIDENCE_CHARS, len(delivered)):
            raise DivergenceError("the resumed answer started over and differs from the text already delivered")
        return self._release(skip=0)

    def _release(self, *, skip: int) -> Batch:
        self.decided = True
        if skip:
            self._strip = False  # a restart repeats the whitespace too: it is cut with the rest
        held, self._held, self._text = self._held, [], ""
        out: Batch = []
        for chunk in held:
            content = _content(chunk)
            if skip and content:
                cut = min(skip, len(content))
                skip -= cut
                chunk = _with_content(chunk, content[cut:])
            out.extend(self._seamed([chunk]))
        return out

    def _seamed(self, batch: Batch) -> Batch:
        """Drop the role announcement (the client had it), and whitespace the client already has."""
        out: Batch = []
        for chunk in batch:
            choices = chunk.get("choices") or []
            if choices:
                delta = dict(choices[0].get("delta") or {})
                delta.pop("role", None)
                content = delta.get("content")
                if self._strip and content:
                    delta["content"] = content.lstrip()
                    self._strip = not delta["content"]
                chunk = {**chunk, "choices": [{**choices[0], "delta": delta}, *choices[1:]]}
                if not (delta.get("content") or delta.get("tool_calls") or choices[0].get("finish_reason")):
                    continue
            out.append(chunk)
        return out


def _content(chunk: openai.ChatChunk) -> str:
    choices = chunk.get("choices") or []
    return str((choices[0].get("delta") or {}).get("content") or "") if choices else ""


def _finished(chunk: openai.ChatChunk) -> bool:
    choices = chunk.get("choices") or []
    return bool(choices and choices[0].get("finish_reason"))


def _with_content(chunk: openai.ChatChunk, content: str) -> openai.ChatChunk:
    choices = chunk["choices"]
    delta = {**(choices[0].get("delta") or {}), "content": content}
    return {**chunk, "choices": [{**choices[0], "delta": delta}, *choices[1:]]}


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def with_cut_attempt(chunk: openai.ChatChunk, *, delivered_chunks: int) -> openai.ChatChunk:
    """The continuation's usage chunk, made to add up both attempts.

    The cut attempt's usage never arrived, so it is estimated: it generated the delivered chunks (about
    one token each), and its prompt was the continuation's prompt without them (the continuation's
    prompt holds the conversation plus the prefill)."""
    usage = chunk.get("usage")
    if chunk.get("choices") or not isinstance(usage, dict):
        return chunk
    prompt, completion = openai.usage_of(chunk)
    cut_prompt = max(0, prompt - delivered_chunks)
    summed = {
        **usage,
        "prompt_tokens": prompt + cut_prompt,
        "completion_tokens": completion + delivered_chunks,
        "total_tokens": prompt + cut_prompt + completion + delivered_chunks,
    }
    return {**chunk, "usage": summed}

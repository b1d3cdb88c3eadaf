"""Mid-stream recovery, the pure parts: what the client has already been sent, the prefill that carries
it, and the seam between the broken stream and its continuation.

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


class Delivered:
    """The text and tool calls of the chunks passed to the client so far."""

    __slots__ = ("chars", "count", "parts", "too_long", "tool_calls")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.count = 0  # content chunks delivered, kept or not
        self.chars = 0
        self.tool_calls = False
        self.too_long = False  # over TEXT_MAX_CHARS: ``parts`` is dropped and no continuation is possible

    def take(self, batch: Batch) -> None:
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    self._keep(content)
                if delta.get("tool_calls"):
                    self.tool_calls = True

    def _keep(self, content: str) -> None:
        self.count += 1
        if self.too_long:
            return
        self.chars += len(content)
        if self.chars > TEXT_MAX_CHARS:
            self.too_long, self.parts = True, []
        else:
            self.parts.append(content)  # one part per content chunk: about one token each

    @property
    def continuable(self) -> bool:
        """Whether another member could finish this answer from a prefill of what was delivered."""
        return bool(self.parts) and not self.tool_calls and not self.too_long

    @property
    def text(self) -> str:
        return "".join(self.parts)


def prefill_of(text: str) -> tuple[str, bool]:
    """The prefill for ``text``, and whether trailing whitespace was trimmed from it."""
    prefill = text.rstrip()
    return prefill, len(prefill) != len(text)


def continued(head: Batch, *, trimmed: bool) -> Batch:
    """The continuation's first chunks, minus the role announcement (the client had it) and, when the
    prefill was trimmed, the whitespace the client already received."""
    out: Batch = []
    strip = trimmed
    for chunk in head:
        choices = chunk.get("choices") or []
        if choices:
            delta = dict(choices[0].get("delta") or {})
            delta.pop("role", None)
            content = delta.get("content")
            if strip and content:
                delta["content"] = content.lstrip()
                strip = not delta["content"]
            chunk = {**chunk, "choices": [{**choices[0], "delta": delta}, *choices[1:]]}
            if not (delta.get("content") or delta.get("tool_calls") or choices[0].get("finish_reason")):
                continue
        out.append(chunk)
    return out


def with_cut_attempt(chunk: openai.ChatChunk, *, delivered_chunks: int) -> openai.ChatChunk:
    """The continuation's usage chunk, made to add up both attempts.

    The cut attempt's usage never arrived, so it is estimated: it generated the delivered chunks (about
    one token each), and its prompt was the continuation's prompt without them (the continuation's
    prompt holds the conversation plus the prefill)."""
    usage = chunk.get("usage")
    if chunk.get("choices") or not isinstance(usage, dict):
        return chunk
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    cut_prompt = max(0, prompt - delivered_chunks)
    summed = {
        **usage,
        "prompt_tokens": prompt + cut_prompt,
        "completion_tokens": completion + delivered_chunks,
        "total_tokens": prompt + cut_prompt + completion + delivered_chunks,
    }
    return {**chunk, "usage": summed}

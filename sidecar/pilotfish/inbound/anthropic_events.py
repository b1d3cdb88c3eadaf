"""Canonical chat chunks → the Anthropic Messages event stream, for ``stream: true`` clients.

One ``EventWriter`` per response; it holds which content block is open. The events are the ones
the Messages API documents: ``message_start``; per block ``content_block_start``, deltas
(``text_delta``, ``input_json_delta``) and ``content_block_stop``; then ``message_delta`` with the
stop reason and usage, and ``message_stop``. Canonical streams carry usage only at their end, so
``message_start`` reports zero tokens and ``message_delta`` the real counts (the SDK takes both).
Pure; ``server.messages`` encodes and writes the events.
"""

from __future__ import annotations

from typing import Any

from pilotfish.inbound import anthropic
from pilotfish.wire import openai

Event = anthropic.Event


class EventWriter:
    """Turns one committed answer's chunks into Anthropic events."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._blocks = 0  # content blocks started so far; the next one's index
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", canonical tool index)
        self._tools: dict[int, int] = {}  # canonical tool-call index → Anthropic block index
        self._stop_reason = "end_turn"
        self._usage = (0, 0)

    def feed(self, chunk: openai.ChatChunk) -> list[Event]:
        out = [] if self._started else [self._message_start(chunk)]
        if chunk.get("usage"):
            self._usage = openai.usage_of(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                out.extend(self._text(text))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool(call))
            if choice.get("finish_reason"):
                self._stop_reason = anthropic.STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[Event]:
        """The closing events, once the canonical stream has ended."""
        out = [] if self._started else [self._message_start({})]
        out.extend(self._close())
        prompt, output = self._usage
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": {"input_tokens": prompt, "output_tokens": output},
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _message_start(self, chunk: openai.ChatChunk) -> Event:
        self._started = True
        message: dict[str, Any] = {
            "id": anthropic.message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return ("message_start", {"type": "message_start", "message": message})

    def _text(self, text: str) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._open[0] != "text":
            out.extend(self._close())
            out.append(self._start({"type": "text", "text": ""}))
            self._open = ("text", -1)
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _tool(self, call: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        if index not in self._tools:
            out.extend(self._close())
            self._tools[index] = self._blocks
            out.append(
                self._start({"type": "tool_use", "id": call.get("id"), "name": function.get("name", ""), "input": {}})
            )
            self._open = ("tool", index)
        arguments = function.get("arguments")
        if arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}, self._tools[index]))
        return out

    def _start(self, block: dict[str, Any]) -> Event:
        self._blocks += 1
        return (
            "content_block_start",
            {"type": "content_block_start", "index": self._blocks - 1, "content_block": block},
        )

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> Event:
        at = self._blocks - 1 if index is None else index
        return ("content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta})

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1})]

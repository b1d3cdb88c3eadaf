"""Chunks → one ``chat.completion``: how a non-streaming client gets an answer that was streamed.

Pure. Content, refusals and tool-call argument fragments are joined per choice and per tool-call
index, as the OpenAI SDK's own stream accumulator does. Text pieces are collected in lists and joined
once, because a long answer has thousands of chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilotfish.wire import openai

_TOP_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


class _Choice:
    __slots__ = ("content", "finish_reason", "logprobs", "refusal", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: list[Any] | None = None

    def merge(self, delta_choice: dict[str, Any]) -> None:
        delta = delta_choice.get("delta") or {}
        piece = delta.get("content")
        if piece:
            self.content.append(piece)
        if delta.get("refusal"):
            self.refusal.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            _merge_tool_call(self.tools, call)
        if delta_choice.get("finish_reason"):
            self.finish_reason = delta_choice["finish_reason"]
        logprobs = delta_choice.get("logprobs")
        if logprobs and logprobs.get("content"):
            self.logprobs = (self.logprobs or []) + logprobs["content"]

    def to_choice(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.tools:
            message["tool_calls"] = [self.tools[i] for i in sorted(self.tools)]
        return {
            "index": index,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": {"content": self.logprobs} if self.logprobs else None,
        }


def assemble(chunks: Iterable[openai.ChatChunk]) -> openai.ChatCompletion:
    completion: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, _Choice] = {}
    for chunk in chunks:
        if "id" not in completion and "id" in chunk:  # every chunk repeats them: take the first's
            completion.update((field, chunk[field]) for field in _TOP_FIELDS if field in chunk)
        if chunk.get("usage"):
            completion["usage"] = chunk["usage"]
        for delta_choice in chunk.get("choices") or ():
            index = delta_choice.get("index") or 0
            choice = choices.get(index)
            if choice is None:
                choice = choices[index] = _Choice()
            choice.merge(delta_choice)
    completion["choices"] = [choices[index].to_choice(index) for index in sorted(choices)]
    completion.setdefault("usage", None)
    return completion


def _merge_tool_call(tools: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
    index = int(call.get("index") or 0)
    tool = tools.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if call.get("id"):
        tool["id"] = call["id"]
    function = call.get("function") or {}
    if function.get("name"):
        tool["function"]["name"] += function["name"]
    if function.get("arguments"):
        tool["function"]["arguments"] += function["arguments"]

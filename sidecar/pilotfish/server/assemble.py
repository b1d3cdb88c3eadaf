"""Chunks → one ``chat.completion``: how a non-streaming client gets an answer that was streamed.

Pure. Content, refusals and tool-call argument fragments are concatenated per choice and per tool
call index, exactly as the OpenAI SDK's own stream accumulator does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilotfish.wire import openai


def assemble(chunks: Iterable[openai.ChatChunk]) -> openai.ChatCompletion:
    completion: dict[str, Any] = {"object": "chat.completion", "choices": []}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if field in chunk and field not in completion:
                completion[field] = chunk[field]
        if chunk.get("usage"):
            completion["usage"] = chunk["usage"]
        for delta_choice in chunk.get("choices") or ():
            _merge_choice(choices, delta_choice)
    completion["choices"] = [_finish(choices[index]) for index in sorted(choices)]
    completion.setdefault("usage", None)
    return completion


def _merge_choice(choices: dict[int, dict[str, Any]], delta_choice: dict[str, Any]) -> None:
    index = int(delta_choice.get("index") or 0)
    choice = choices.setdefault(
        index,
        {
            "index": index,
            "message": {"role": "assistant", "content": None},
            "finish_reason": None,
            "logprobs": None,
            "_tools": {},
        },
    )
    delta = delta_choice.get("delta") or {}
    message = choice["message"]
    for text_field in ("content", "refusal"):
        piece = delta.get(text_field)
        if piece:
            message[text_field] = (message.get(text_field) or "") + piece
    for call in delta.get("tool_calls") or ():
        _merge_tool_call(choice["_tools"], call)
    if delta_choice.get("finish_reason"):
        choice["finish_reason"] = delta_choice["finish_reason"]
    logprobs = delta_choice.get("logprobs")
    if logprobs and logprobs.get("content"):
        merged = choice["logprobs"] or {"content": []}
        merged["content"].extend(logprobs["content"])
        choice["logprobs"] = merged


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


def _finish(choice: dict[str, Any]) -> dict[str, Any]:
    tools = choice.pop("_tools")
    if tools:
        choice["message"]["tool_calls"] = [tools[index] for index in sorted(tools)]
    choice["message"].setdefault("refusal", None)
    return choice

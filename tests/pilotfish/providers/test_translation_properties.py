"""Properties every translator keeps, for any conversation: no text lost, reordered or duplicated;
roles alternate as the vendor requires; tool calls and results stay paired; the input is untouched."""

from __future__ import annotations

import copy
import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotfish.providers import anthropic, gemini
from pilotfish.routes import document
from pilotfish.specs import credential
from pilotfish.wire import openai, sse

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for turn in range(draw(st.integers(1, 6))):
        messages.append({"role": "user", "content": draw(TEXT)})
        if draw(st.booleans()):
            call_id = f"call_{turn}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": f"tool_{turn}", "arguments": '{"n": 1}'},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": draw(TEXT)})
        if draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(TEXT)})
    return messages


def _member(provider: credential.ProviderType) -> document.MemberRoute:
    return document.MemberRoute(
        id="c/m", credential="c", provider=provider, base_url="https://x", model="m", priority=0
    )


def _spoken_texts(messages: list[dict[str, object]]) -> list[str]:
    return [str(m["content"]) for m in messages if m["role"] not in ("system",) and m.get("content")]


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_anthropic_translation_keeps_every_text_in_order_alternates_roles_and_pairs_tools(messages):
    raw = {"model": "w", "messages": messages}
    before = copy.deepcopy(raw)
    body = orjson.loads(
        anthropic.build_request(
            openai.ChatRequest.from_body(raw), _member(credential.ProviderType.ANTHROPIC), api_key=None
        ).body
    )
    assert raw == before
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)) and roles[0] == "user"
    blocks = [b for m in body["messages"] for b in m["content"]]
    texts = [b.get("text") or b.get("content") for b in blocks if b["type"] in ("text", "tool_result")]
    assert texts == _spoken_texts(messages)
    assert [b["id"] for b in blocks if b["type"] == "tool_use"] == [
        b["tool_use_id"] for b in blocks if b["type"] == "tool_result"
    ]
    systems = [str(m["content"]) for m in messages if m["role"] == "system"]
    assert body.get("system", "") == "\n\n".join(systems)


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_gemini_translation_keeps_every_text_in_order_alternates_roles_and_names_results(messages):
    raw = {"model": "w", "messages": messages}
    before = copy.deepcopy(raw)
    body = orjson.loads(
        gemini.build_request(
            openai.ChatRequest.from_body(raw), _member(credential.ProviderType.GEMINI), api_key=None
        ).body
    )
    assert raw == before
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    parts = [p for c in body["contents"] for p in c["parts"]]
    texts = [
        p.get("text") or p.get("functionResponse", {}).get("response", {}).get("content")
        for p in parts
        if "text" in p or "functionResponse" in p
    ]
    assert texts == _spoken_texts(messages)
    calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
    assert calls == [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]


def _content(chunks: list[dict[str, object]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])  # type: ignore[index]


@given(st.lists(TEXT, min_size=1, max_size=12))
def test_an_anthropic_stream_reassembles_to_exactly_the_text_sent(pieces):
    translator = anthropic.new_stream_translator(member=_member(credential.ProviderType.ANTHROPIC))
    events = [
        ("message_start", {"message": {"id": "m", "model": "m", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    events += [
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(pieces)}}),
        ("message_stop", {}),
    ]
    chunks = [
        c
        for name, data in events
        for c in translator.feed(sse.Event(data=orjson.dumps({"type": name, **data}).decode(), event=name))
    ]
    assert _content(chunks) == "".join(pieces) and translator.finished


@given(st.lists(TEXT, min_size=1, max_size=12))
def test_a_gemini_stream_reassembles_to_exactly_the_text_sent(pieces):
    translator = gemini.new_stream_translator(member=_member(credential.ProviderType.GEMINI))
    chunks = []
    for index, piece in enumerate(pieces):
        candidate: dict[str, object] = {"content": {"parts": [{"text": piece}]}}
        if index == len(pieces) - 1:
            candidate["finishReason"] = "STOP"
        chunks += translator.feed(sse.Event(data=orjson.dumps({"candidates": [candidate]}).decode()))
    assert _content(chunks) == "".join(pieces) and translator.finished

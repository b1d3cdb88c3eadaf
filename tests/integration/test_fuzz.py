"""Fuzzing a real sidecar from both sides: hostile client bodies on every inbound endpoint, and hostile
upstream answers in every provider format. The sidecar must never answer 500, never print a traceback,
never cut a stream without saying so, and still be healthy afterwards.

Hypothesis runs derandomized (the same examples on every run, so CI is deterministic) with a bounded
number of examples; ``deadline=None`` because the machine's load, not the sidecar, sets each example's
time. A failure prints the example that caused it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.integration import hostile
from tests.integration.conftest import DEFAULT_CLASS, KEYS, Sidecar

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

CLASSES = "---\n".join(
    [
        DEFAULT_CLASS,
        hostile.class_yaml("via-claude", [("claude", "claude-sonnet-4-5")]),
        hostile.class_yaml("via-gemini", [("gemini", "gemini-2.5-flash")]),
    ]
)

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
classes = st.sampled_from(["workhorse", "via-claude", "via-gemini", "no-such-class", ""]) | json_values


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the field as the API documents it, sometimes anything at all."""
    return st.one_of(strategy, strategy, json_values)


openai_parts = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "image_url", "input_audio"]))},
    optional={"text": maybe(st.text(max_size=20)), "image_url": maybe(st.fixed_dictionaries({"url": st.text()}))},
)
tool = st.fixed_dictionaries(
    {"type": maybe(st.just("function"))},
    optional={
        "function": maybe(
            st.fixed_dictionaries({"name": maybe(st.text(max_size=8))}, optional={"parameters": json_values})
        )
    },
)
chat_bodies = st.fixed_dictionaries(
    {
        "model": classes,
        "messages": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"role": maybe(st.sampled_from(["system", "user", "assistant", "tool", "developer"]))},
                    optional={
                        "content": maybe(st.text(max_size=30) | st.lists(openai_parts, max_size=3)),
                        "tool_call_id": maybe(st.text(max_size=5)),
                        "tool_calls": json_values,
                    },
                ),
                min_size=1,
                max_size=3,
            )
        ),
    },
    optional={
        "stream": maybe(st.booleans()),
        "stream_options": maybe(st.fixed_dictionaries({"include_usage": st.booleans()})),
        "max_tokens": maybe(st.integers(-5, 50)),
        "temperature": maybe(st.floats(-1, 3, allow_nan=False)),
        "tools": maybe(st.lists(tool, max_size=2)),
        "tool_choice": maybe(
            st.sampled_from(["auto", "none", "required"])
            | st.fixed_dictionaries(
                {"type": st.just("function"), "function": maybe(st.fixed_dictionaries({"name": st.text(max_size=5)}))}
            )
        ),
        "stop": maybe(st.lists(st.text(max_size=4), max_size=2)),
        "n": json_values,
        "response_format": json_values,
    },
)
anthropic_blocks = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "image", "tool_use", "tool_result", "document", "thinking"]))},
    optional={
        key: json_values | st.text(max_size=10)
        for key in ("text", "source", "id", "name", "input", "content", "tool_use_id", "is_error")
    },
)
messages_bodies = st.fixed_dictionaries(
    {
        "model": classes,
        "max_tokens": maybe(st.integers(-2, 50)),
        "messages": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": maybe(st.sampled_from(["user", "assistant"])),
                        "content": maybe(st.text(max_size=20) | st.lists(anthropic_blocks, max_size=3)),
                    }
                ),
                min_size=1,
                max_size=3,
            )
        ),
    },
    optional={
        "system": maybe(st.text(max_size=10) | st.lists(anthropic_blocks, max_size=2)),
        "stream": maybe(st.booleans()),
        "tools": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=5)}, optional={"input_schema": json_values, "description": json_values}
                ),
                max_size=2,
            )
        ),
        "tool_choice": maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none"])}, optional={"name": json_values}
            )
        ),
        "metadata": json_values,
        "stop_sequences": maybe(st.lists(st.text(max_size=4), max_size=2)),
    },
)
embeddings_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["workhorse", "via-gemini", "via-claude"]) | classes,
        "input": maybe(
            st.text(max_size=20)
            | st.lists(st.text(max_size=10), max_size=3)
            | st.lists(st.integers(-3, 2**40), max_size=4)
            | st.lists(st.lists(st.integers(0, 100), max_size=3), max_size=2)
        ),
    },
    optional={"encoding_format": maybe(st.sampled_from(["float", "base64"])), "dimensions": maybe(st.integers(-1, 8))},
)


# Well-formed bodies, so that every example run also walks the paths that reach a provider and answer.
served = st.sampled_from(["workhorse", "via-claude", "via-gemini"])
some_text = st.text(min_size=1, max_size=20)
wellformed_chat = st.fixed_dictionaries(
    {
        "model": served,
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": some_text}), min_size=1, max_size=2
        ),
    },
    optional={"stream": st.booleans(), "max_tokens": st.integers(1, 50), "temperature": st.floats(0, 1)},
)
wellformed_messages = st.fixed_dictionaries(
    {
        "model": served,
        "max_tokens": st.integers(1, 50),
        "messages": st.tuples(
            st.fixed_dictionaries(
                {
                    "role": st.just("user"),
                    "content": some_text
                    | st.lists(
                        st.fixed_dictionaries({"type": st.just("text"), "text": some_text}), min_size=1, max_size=2
                    ),
                }
            )
        ).map(list),
    },
    optional={"stream": st.booleans(), "system": some_text},
)
wellformed_embeddings = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["workhorse", "via-gemini"]),
        "input": some_text | st.lists(some_text, min_size=1, max_size=3),
    }
)


def as_bytes(body: Any) -> bytes:
    return json.dumps(body).encode() if not isinstance(body, bytes) else body


@pytest.fixture
async def fuzzed(local_sidecar) -> Sidecar:
    return await local_sidecar(CLASSES)


def _post(url: str, body: bytes) -> tuple[int, str]:
    """A blocking POST: Hypothesis drives examples synchronously, from a worker thread, while the mock
    providers keep answering in the test's event loop."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


async def _healthy_and_quiet(sidecar: Sidecar) -> None:
    async with aiohttp.ClientSession() as session, session.get(sidecar.admin + "/healthz") as response:
        assert response.status == 200
    tracebacks = [line for line in sidecar.stderr_lines + sidecar.stdout_lines if "Traceback" in line]
    assert tracebacks == [], "\n".join(sidecar.stderr_lines[-60:])


def _stream_told_its_end(text: str) -> bool:
    """A streamed answer ends with [DONE] (OpenAI) or message_stop (Anthropic), or carries an error event."""
    return text.rstrip().endswith(("data: [DONE]", '{"type":"message_stop"}')) or '"error"' in text


def _nested(body: dict[str, Any], depth: int) -> bytes:
    """``body`` with an extra field nested ``depth`` deep, as bytes (too deep for Python's json to write)."""
    return json.dumps(body).encode()[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


HI = [{"role": "user", "content": "hi"}]
# The bodies that crashed the sidecar before (issue 15): always tried first, then the fuzzed ones.
KNOWN = {
    "/v1/chat/completions": [
        {"model": "via-claude", "messages": HI, "tool_choice": {"function": "x"}},
        {"model": "via-gemini", "messages": HI, "tools": [{"type": "function", "function": "f"}]},
        _nested({"model": "workhorse", "messages": HI}, 300),
    ],
    "/v1/messages": [
        {
            "model": "workhorse",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}],
        },
        {
            "model": "workhorse",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [1]}]}],
        },
    ],
    "/v1/embeddings": [_nested({"model": "workhorse", "input": "hi"}, 1000)],
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("path", "bodies"),
    [
        ("/v1/chat/completions", wellformed_chat | chat_bodies),
        ("/v1/messages", wellformed_messages | messages_bodies),
        ("/v1/embeddings", wellformed_embeddings | embeddings_bodies),
    ],
    ids=["chat", "messages", "embeddings"],
)
async def test_no_client_body_makes_the_sidecar_answer_500_or_print_a_traceback(fuzzed: Sidecar, path, bodies):
    seen: dict[int, int] = {}

    def one(body: Any) -> None:
        status, text = _post(fuzzed.api + path, as_bytes(body))
        seen[status] = seen.get(status, 0) + 1
        assert status != 500, (body, text)
        if status == 200 and isinstance(body, dict) and body.get("stream") is True:
            assert _stream_told_its_end(text), (body, text)

    fuzz = given(body=bodies | st.binary(max_size=64))(one)
    for known in KNOWN[path]:
        fuzz = example(body=known)(fuzz)
    await asyncio.to_thread(FUZZ(fuzz))
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0  # the fuzz reached both the happy and the refusing paths
    await _healthy_and_quiet(fuzzed)


# ---- the other side: every upstream format answering garbage -------------------------------------------------

FORMATS = {  # format → (credential provider, path prefix)
    "openai": ("openai-compatible", "/openai/v1"),
    "azure": ("azure-openai", "/azure"),
    "anthropic": ("anthropic", "/anthropic"),
    "gemini": ("gemini", "/gemini"),
}
chunk_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "type": maybe(
            st.sampled_from(
                [
                    "message_start",
                    "content_block_start",
                    "content_block_delta",
                    "message_delta",
                    "message_stop",
                    "error",
                ]
            )
        ),
        "choices": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "index": json_values,
                        "delta": maybe(
                            st.fixed_dictionaries({}, optional={"content": json_values, "tool_calls": json_values})
                        ),
                        "finish_reason": maybe(st.sampled_from(["stop", "length", "tool_calls"])),
                    }
                ),
                max_size=2,
            )
        ),
        "usage": json_values,
        "message": json_values,
        "delta": json_values,
        "content_block": json_values,
        "index": json_values,
        "candidates": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "content": maybe(
                            st.fixed_dictionaries(
                                {
                                    "parts": maybe(
                                        st.lists(
                                            st.fixed_dictionaries(
                                                {}, optional={"text": json_values, "functionCall": json_values}
                                            ),
                                            max_size=2,
                                        )
                                    )
                                }
                            )
                        ),
                        "finishReason": json_values,
                    }
                ),
                max_size=2,
            )
        ),
        "usageMetadata": json_values,
        "error": json_values,
        "data": json_values,
        "embedding": json_values,
        "embeddings": json_values,
        "promptFeedback": json_values,
    },
)
sse_events = st.lists(
    st.tuples(
        st.sampled_from(
            [None, "message_start", "content_block_delta", "message_delta", "message_stop", "error", "ping"]
        ),
        chunk_like.map(lambda value: json.dumps(value).encode())
        | st.sampled_from([b"[DONE]", b"{", b""])
        | st.binary(max_size=20),
    ),
    max_size=6,
)
upstream_answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 200, 200, 400, 401, 403, 404, 408, 409, 413, 429, 500, 503, 529]),
        "kind": st.sampled_from(["sse", "json", "bytes"]),
        "json": chunk_like | json_values,
        "sse": sse_events,
        "bytes": st.binary(max_size=64),
        "retry_after": st.none() | st.sampled_from(["inf", "-1", "nan", "1e308", "x", "0", "2"]),
    }
)


def _render(answer: dict[str, Any]) -> web.Response:
    headers = {"Retry-After": answer["retry_after"]} if answer["retry_after"] else {}
    if answer["kind"] == "sse":
        body = b"".join(
            (f"event: {name}\n".encode() if name else b"") + b"data: " + data.replace(b"\n", b" ") + b"\n\n"
            for name, data in answer["sse"]
        )
        return web.Response(status=answer["status"], body=body, content_type="text/event-stream", headers=headers)
    if answer["kind"] == "json":
        return web.Response(
            status=answer["status"],
            body=json.dumps(answer["json"]).encode(),
            content_type="application/json",
            headers=headers,
        )
    return web.Response(
        status=answer["status"], body=answer["bytes"], content_type="application/octet-stream", headers=headers
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(FORMATS))
async def test_no_upstream_answer_in_any_format_makes_the_sidecar_answer_500_or_cut_a_stream_silently(tmp_path, name):
    current: dict[str, Any] = {}

    async def answer(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        return _render(current["answer"])

    provider, prefix = FORMATS[name]
    async with hostile.running(answer) as upstream:
        credential = hostile.Credential(
            name=name, provider=provider, base_url=upstream.origin + prefix, key=KEYS["primary"]
        )
        async with hostile.serving(
            tmp_path / "m", [credential], hostile.class_yaml("fuzzed", [(name, "m-1")])
        ) as sidecar:

            @settings(FUZZ, max_examples=60)
            @given(answer=upstream_answers, stream=st.booleans(), embeddings=st.booleans())
            def one(answer: dict[str, Any], stream: bool, embeddings: bool) -> None:
                current["answer"] = answer
                upstream.received.clear()
                if embeddings and name != "anthropic":
                    body: dict[str, Any] = {"model": "fuzzed", "input": ["a", "b"]}
                    status, text = _post(sidecar.api + "/v1/embeddings", as_bytes(body))
                else:
                    body = {"model": "fuzzed", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
                    status, text = _post(sidecar.api + "/v1/chat/completions", as_bytes(body))
                    if status == 200 and stream:
                        assert _stream_told_its_end(text), (answer, text)
                assert status != 500, (answer, text)

            await asyncio.to_thread(one)
            await _healthy_and_quiet(sidecar)

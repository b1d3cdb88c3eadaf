"""Requests that used to crash a handler (a 500 and a traceback) get a clean 4xx, or are served: each
case found by trying the sidecar as an attacker would. Through a real `pilotfish local`."""

from __future__ import annotations

import asyncio
import gzip
import json
from urllib.parse import urlsplit

import aiohttp
import pytest
from tests.integration import hostile
from tests.integration.conftest import USER, Sidecar, stop_sidecar
from tests.integration.test_canary_routing import _sidecar_at

# Anthropic and Gemini members translate tool_choice; the OpenAI one passes it on
CLAUDE_FIRST = hostile.class_yaml(
    "workhorse", [("claude", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash"), ("primary", "model-a")]
)


async def _post(sidecar: Sidecar, path: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sidecar.api + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        ) as response,
    ):
        return response.status, await response.text()


def _no_traceback(sidecar: Sidecar) -> None:
    assert not [line for line in sidecar.stderr_lines if "Traceback" in line or "Unhandled" in line]


async def test_a_gzip_body_that_does_not_decode_is_a_400(sidecar: Sidecar):
    status, text = await _post(sidecar, "/v1/chat/completions", b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"})
    assert status == 400 and json.loads(text)["error"]["code"] == "invalid_body"
    good = gzip.compress(json.dumps({"model": "workhorse", "messages": USER}).encode())
    status, _ = await _post(sidecar, "/v1/chat/completions", good, {"Content-Encoding": "gzip"})
    assert status == 200  # a body that does decode is still served
    _no_traceback(sidecar)


@pytest.mark.parametrize("depth", [256, 300, 1000])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
async def test_json_nested_deeper_than_it_can_be_written_again_is_a_400(sidecar: Sidecar, depth: int, path: str):
    base = {"model": "workhorse", "messages": USER} if "chat" in path else {"model": "workhorse", "input": "hi"}
    nested = "[" * depth + "]" * depth
    body = json.dumps(base)[:-1] + f', "extra": {nested}}}'
    status, text = await _post(sidecar, path, body.encode())
    assert status == 400, text
    assert "nested too deeply" in json.loads(text)["error"]["message"]
    _no_traceback(sidecar)


MALFORMED_BLOCKS = [
    [{"type": "image", "source": "not-an-object"}],
    [{"type": "tool_result", "tool_use_id": "t1", "content": [1, 2]}],
    [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a"}, None]}],
]


@pytest.mark.parametrize("content", MALFORMED_BLOCKS, ids=range(len(MALFORMED_BLOCKS)))
async def test_malformed_messages_content_blocks_are_a_400_in_anthropics_format(sidecar: Sidecar, content):
    body = {"model": "workhorse", "max_tokens": 10, "messages": [{"role": "user", "content": content}]}
    status, text = await _post(sidecar, "/v1/messages", json.dumps(body).encode())
    assert status == 400, text
    assert json.loads(text)["error"]["type"] == "invalid_request_error"
    _no_traceback(sidecar)


@pytest.mark.parametrize(
    "body",
    [
        {"tool_choice": {"function": "x"}},
        {"tool_choice": {"type": "function", "function": ["x"]}},
        {"tools": [{"type": "function", "function": "get_weather"}]},
    ],
    ids=["tool_choice-function-string", "tool_choice-function-list", "tools-function-string"],
)
async def test_a_named_tool_choice_or_tool_that_is_not_an_object_is_a_400(local_sidecar, body):
    sidecar = await local_sidecar(CLAUDE_FIRST)
    status, text = await _post(
        sidecar, "/v1/chat/completions", json.dumps({"model": "workhorse", "messages": USER, **body}).encode()
    )
    assert status == 400, text
    assert "must be an object with a string 'name'" in json.loads(text)["error"]["message"]
    messages = {"model": "workhorse", "max_tokens": 5, "messages": USER, "tool_choice": {"type": "tool", "name": {}}}
    status, text = await _post(sidecar, "/v1/messages", json.dumps(messages).encode())
    assert status in (200, 400), text  # a name that is not a string is sent as its text, or refused: never a 500
    _no_traceback(sidecar)


async def _raw_post(api: str, path: str, header_lines: bytes, body: bytes) -> int:
    """A request written byte by byte, for header values no HTTP client library will send."""
    url = urlsplit(api)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + header_lines
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def test_a_canary_stickiness_header_with_a_byte_that_is_not_utf8_is_served(tmp_path, mocks):
    sidecar = await _sidecar_at(tmp_path, mocks, 50)
    try:
        body = json.dumps({"model": "workhorse", "messages": USER}).encode()
        for header in (b"x-conversation-id: caf\xe9\r\n", b"x-conversation-id: \xff\xfe\r\n"):
            assert await _raw_post(sidecar.api, "/v1/chat/completions", header, body) == 200
        _no_traceback(sidecar)
    finally:
        await stop_sidecar(sidecar)

"""A hostile upstream cannot turn the sidecar against its pod: no redirect is followed, and no key it
echoes reaches the client, the request log or the traces. Each provider format, through a real sidecar."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.integration import hostile
from tests.integration.conftest import KEYS, Sidecar, answer_of

# One credential per provider format. The keys are what each vendor's look like, except the OpenAI one,
# which looks like nothing: only the scrubber's list of held keys can catch it.
FORMATS = {
    "openai": ("openai-compatible", "/openai/v1", "plain-words-openai-key-0001"),
    "azure": ("azure-openai", "/azure", "0123456789abcdef0123456789abcdef"),
    "anthropic": ("anthropic", "/anthropic", "sk-ant-api03-hostileKey-abcdefgh"),
    "gemini": ("gemini", "/gemini", "AIzaSyHostileKey0123456789abcdefghijklmno"),
}
PROMPT = "the confidential prompt 4242"
FOREIGN_KEY = "sk-proj-someoneElsesKey0123456789abcdef"  # a key-shaped secret the sidecar does not hold


def _credentials(upstream: hostile.Hostile, backup_url: str) -> list[hostile.Credential]:
    hostiles = [
        hostile.Credential(name=name, provider=provider, base_url=upstream.origin + prefix, key=key)
        for name, (provider, prefix, key) in FORMATS.items()
    ]
    return [
        *hostiles,
        hostile.Credential(name="backup", provider="openai-compatible", base_url=backup_url, key=KEYS["backup"]),
    ]


def _classes(*, with_backup: bool) -> str:
    tail = [("backup", "model-b")] if with_backup else []
    return "---\n".join(hostile.class_yaml(f"via-{name}", [(name, "m-1"), *tail]) for name in FORMATS)


async def _chat(api: str, class_name: str, *, stream: bool = False) -> tuple[int, str, dict[str, str]]:
    body = {"model": class_name, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    async with aiohttp.ClientSession() as session, session.post(api + "/v1/chat/completions", json=body) as response:
        return response.status, await response.text(), dict(response.headers)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_followed_in_any_provider_format_and_the_member_fails_over(tmp_path, mocks, status):
    async def redirect(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        # to the recorder (another host), and from the https a real provider would use down to plain http
        return web.Response(status=status, headers={"Location": recorder.origin + request.path_qs})

    async with (
        hostile.running() as recorder,  # where the redirect points: it must hear nothing at all
        hostile.running(redirect) as upstream,
        hostile.serving(
            tmp_path / "m", _credentials(upstream, mocks["backup"].url), _classes(with_backup=True)
        ) as sidecar,
    ):
        for name in FORMATS:
            code, text, headers = await _chat(sidecar.api, f"via-{name}")
            assert code == 200, text
            assert answer_of("backup") in text
            assert headers["x-pilotfish-failover-reason"] == "upstream_redirect"
        assert len(upstream.received) == len(FORMATS)  # each member was tried once, and said "go elsewhere"
        assert recorder.received == []  # no key, no header, no prompt followed the redirect
        line = await sidecar.last_request_line()
        assert line["attempts"][0]["result"] == "upstream_redirect" and line["attempts"][0]["status"] == status


def _presented_key(received: hostile.Received) -> str:
    headers = received.headers
    return (
        headers.get("x-goog-api-key")
        or headers.get("x-api-key")
        or headers.get("api-key")
        or (headers.get("authorization", "").removeprefix("Bearer "))
    )


async def _echo_key(request: web.Request, received: hostile.Received) -> web.StreamResponse:
    """A 400 in the request's own provider format whose message repeats the key it was sent, and another's."""
    echoed = f"invalid request for key {_presented_key(received)} (also tried {FOREIGN_KEY}); prompt was {PROMPT}"
    if request.path.startswith("/anthropic"):
        body: dict[str, object] = {"type": "error", "error": {"type": "invalid_request_error", "message": echoed}}
    elif request.path.startswith("/gemini"):
        body = {"error": {"code": 400, "message": echoed, "status": "INVALID_ARGUMENT"}}
    else:  # OpenAI and Azure OpenAI
        body = {"error": {"message": echoed, "type": "invalid_request_error", "param": None, "code": "bad_key"}}
    return web.json_response(body, status=400)


async def _request_lines(sidecar: Sidecar, *, count: int) -> list[dict[str, Any]]:
    """The request log lines (the console span exporter prints multi-line JSON on the same stdout)."""
    for _ in range(250):
        lines = [json.loads(line) for line in sidecar.stdout_lines if line.startswith('{"ts"')]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} request log lines")


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
async def test_a_key_an_upstream_echoes_reaches_no_client_no_log_and_no_trace(tmp_path, mocks, stream):
    secrets = [key for _, _, key in FORMATS.values()] + [FOREIGN_KEY]
    async with (
        hostile.running(_echo_key) as upstream,
        hostile.serving(
            tmp_path / "m",
            _credentials(upstream, mocks["backup"].url),
            _classes(with_backup=False),
            env={"OTEL_TRACES_EXPORTER": "console"},
        ) as sidecar,
    ):
        for name, (_, _, key) in FORMATS.items():
            code, text, _ = await _chat(sidecar.api, f"via-{name}", stream=stream)
            assert code == 400, text  # the provider refused the request: the client hears why...
            assert "invalid request for key [redacted]" in json.loads(text)["error"]["message"]
            assert not [s for s in secrets if s in text]  # ...but no key, neither ours nor anyone's
            assert upstream.received[-1].carries(key)  # (the upstream did get the key, and echoed it)
        lines = await _request_lines(sidecar, count=len(FORMATS))
        assert all("[redacted]" in line["attempts"][0]["detail"] for line in lines)
        output = "\n".join(sidecar.stdout_lines + sidecar.stderr_lines)
        assert '"name": "chat via-gemini"' in output  # the console exporter printed the traces
        assert not [s for s in secrets if s in output]


@pytest.mark.parametrize("value", ["inf", "1e308", "1e400"])
async def test_a_nonsense_retry_after_is_clamped_and_never_reaches_the_client_as_sent(tmp_path, mocks, value):
    async def limited(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        error = {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}
        return web.json_response(error, status=429, headers={"Retry-After": value})

    only = hostile.class_yaml("only", [("openai", "m-1")])
    async with (
        hostile.running(limited) as upstream,
        hostile.serving(tmp_path / "m", _credentials(upstream, mocks["backup"].url), only) as sidecar,
    ):
        code, text, headers = await _chat(sidecar.api, "only")
        assert code == 429, text
        retry_after = headers.get("Retry-After")
        assert retry_after is None or 1 <= int(retry_after) <= 600
        assert not [line for line in sidecar.stderr_lines if "Traceback" in line]


def _sse(*events: tuple[str | None, object]) -> bytes:
    out = b""
    for name, data in events:
        out += (
            (f"event: {name}\n" if name else "").encode()
            + b"data: "
            + (data if isinstance(data, bytes) else json.dumps(data).encode())
            + b"\n\n"
        )
    return out


BAD_USAGE = {  # a stream in each provider's format whose usage counts are not integers
    "openai": _sse(
        (
            None,
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m-1",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}],
            },
        ),
        (
            None,
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m-1",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            },
        ),
        (
            None,
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m-1",
                "choices": [],
                "usage": {"prompt_tokens": "many", "completion_tokens": [1], "total_tokens": None},
            },
        ),
        (None, b"[DONE]"),
    ),
    "anthropic": _sse(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "m-1",
                    "content": [],
                    "usage": {"input_tokens": "12", "output_tokens": None},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": "x"}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ),
    "gemini": _sse(
        (
            None,
            {
                "candidates": [
                    {"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {"promptTokenCount": "7", "candidatesTokenCount": 1.5e300, "thoughtsTokenCount": {}},
            },
        ),
    ),
}
BAD_USAGE["azure"] = BAD_USAGE["openai"]


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
async def test_usage_counts_that_are_not_integers_neither_crash_nor_cut_the_answer(tmp_path, mocks, stream):
    async def answer(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        name = request.path.split("/")[1]
        return web.Response(body=BAD_USAGE[name], content_type="text/event-stream")

    async with (
        hostile.running(answer) as upstream,
        hostile.serving(
            tmp_path / "m", _credentials(upstream, mocks["backup"].url), _classes(with_backup=False)
        ) as sidecar,
    ):
        for name in FORMATS:
            code, text, _ = await _chat(sidecar.api, f"via-{name}", stream=stream)
            assert code == 200, text
            if stream:
                assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text
                assert '"content":"hi"' in text
            else:
                assert json.loads(text)["choices"][0]["message"]["content"] == "hi"
            line = await sidecar.last_request_line()
            assert line["outcome"] == "success"
            assert isinstance(line["tokens_in"], int) and isinstance(line["tokens_out"], int)
        assert not [line for line in sidecar.stderr_lines if "Traceback" in line]


@pytest.mark.parametrize("encoding", ["br", "zstd"])
@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
async def test_an_encoding_we_never_asked_for_is_a_bad_response_that_fails_over(tmp_path, mocks, encoding, stream):
    """We ask upstreams for gzip and deflate only (what we can inflate in bounded steps); an answer in
    brotli or zstd, whose decoders aiohttp would run on a whole piece at once, is never decoded."""

    async def unasked(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        # what a compressor's frame looks like is irrelevant: no byte of it may be decoded
        body = b"\x28\xb5\x2f\xfd" + b"\x00" * 64 if encoding == "zstd" else b"\x1b\xff\xff" + b"\x00" * 64
        content_type = "text/event-stream" if stream else "application/json"
        return web.Response(body=body, headers={"Content-Encoding": encoding, "Content-Type": content_type})

    async with (
        hostile.running(unasked) as upstream,
        hostile.serving(
            tmp_path / "m", _credentials(upstream, mocks["backup"].url), _classes(with_backup=True)
        ) as sidecar,
    ):
        code, text, headers = await _chat(sidecar.api, "via-openai", stream=stream)
        assert code == 200, text
        assert '"model":"model-b"' in text  # the backup answered
        assert headers["x-pilotfish-failover-reason"] == "bad_response"
        assert [r.headers["accept-encoding"] for r in upstream.received] == ["gzip, deflate"]
        line = await sidecar.last_request_line()
        assert line["attempts"][0]["result"] == "bad_response", line

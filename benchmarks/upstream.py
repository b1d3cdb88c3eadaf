"""The benchmark's upstream: an OpenAI chat-completions server that costs as little as a server can.

Every target in a benchmark calls it, so its own cost must not blur theirs: answers are built once,
as bytes, at start. How it answers is chosen by the request's ``model`` (a class and its member carry
the same name in the benchmark's manifest, so the floor, which forwards the body untouched, and the
sidecar, which sends the member's model, ask for the same thing):

- ``fast``: a 16-word answer at once; streamed, one write per chunk (as a token server writes them);
- ``slow200``: the same after 200 ms, like an LLM's time to first token;
- ``burst128``: 128 content chunks; streamed, all of them in one write (a provider that batches);
- ``paced``: a long stream, one token every ``PACE_SECONDS`` (a model generating at a realistic pace).

It also accepts OTLP trace exports (``POST /v1/traces``), so a traced sidecar has a collector to talk to.

    python -m benchmarks.upstream --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

WORDS = "Hello from bench. This answer is deterministic so that a benchmark can count every word it sends.".split()  # noqa: SIM905
BURST_CHUNKS = 128
SLOW_SECONDS = 0.2  # a fast LLM's time to first token
PACE_SECONDS = 0.05  # 20 tokens a second: a model generating at a realistic pace
PACED_TOKENS = 200  # ten seconds at that pace
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": 12, "completion_tokens": completion, "total_tokens": 12 + completion}


def stream_frames(model: str, tokens: list[str]) -> list[bytes]:
    """An OpenAI stream as the API writes it: role, one chunk per token, finish, usage, [DONE]."""
    frames = [_chunk(model, {"role": "assistant", "content": ""})]
    frames += [_chunk(model, {"content": token}) for token in tokens]
    frames.append(_chunk(model, {}, finish="stop"))
    frames.append(_chunk(model, {}, usage=_usage(len(tokens))))
    frames.append(b"data: [DONE]\n\n")
    return frames


def completion(model: str, tokens: list[str]) -> bytes:
    message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [choice],
            "usage": _usage(len(tokens)),
        }
    )


def _tokens(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] + " " for i in range(count)]


ANSWERS = {  # model → (tokens, seconds before the first byte, seconds between tokens, one write)
    "fast": (_tokens(len(WORDS)), 0.0, 0.0, False),
    "slow200": (_tokens(len(WORDS)), SLOW_SECONDS, 0.0, False),
    "burst128": (_tokens(BURST_CHUNKS), 0.0, 0.0, True),
    "paced": (_tokens(PACED_TOKENS), 0.0, PACE_SECONDS, False),
}
FRAMES = {model: stream_frames(model, spec[0]) for model, spec in ANSWERS.items()}
BURSTS = {model: b"".join(frames) for model, frames in FRAMES.items()}
COMPLETIONS = {model: completion(model, spec[0]) for model, spec in ANSWERS.items()}


async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    model = body.get("model")
    if model not in ANSWERS:
        error = {"error": {"message": f"no model {model!r}", "type": "invalid_request_error", "code": None}}
        return web.Response(status=404, body=orjson.dumps(error), content_type="application/json")
    _, wait, pace, burst = ANSWERS[model]
    if wait:
        await asyncio.sleep(wait)
    if not body.get("stream"):
        return web.Response(body=COMPLETIONS[model], content_type="application/json")
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    if burst:
        await response.write(BURSTS[model])
    else:
        for frame in FRAMES[model]:
            await response.write(frame)
            if pace:
                await asyncio.sleep(pace)
    await response.write_eof()
    return response


async def post_traces(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")


async def get_models(request: web.Request) -> web.Response:
    data = [{"id": model, "object": "model", "created": int(time.time()), "owned_by": "bench"} for model in ANSWERS]
    return web.json_response({"object": "list", "data": data})


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", post_chat_completions)
    app.router.add_post("/v1/traces", post_traces)
    app.router.add_get("/v1/models", get_models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    import uvloop

    web.run_app(build_app(), host=host, port=int(port), access_log=None, print=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()

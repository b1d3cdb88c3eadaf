"""The parsing floor: the least a proxy does that must catch a member slow to its first token.

The floor (``bare_proxy``) forwards bytes and reads a non-streaming answer in one body. A proxy with a
first-token deadline cannot: it asks every member for a stream, and to know when content starts, when it
finishes, how many tokens it used and whether an error came in-band, it parses every event. This one
does only that, with none of Pilotfish's work (no validation, routing, health, failover, recovery's copy,
request log or metrics):

- the request body parsed, ``stream`` and ``stream_options.include_usage`` set, encoded again;
- the upstream's SSE read under a first-token deadline (``asyncio.timeout``, lifted at the first content),
  each read split into events and each event parsed with orjson;
- a streaming client is sent each read as it came, before it is parsed (the most a proxy could spare
  a burst's first content); a non-streaming one gets the content joined into one ``chat.completion``
  (with the usage the stream ended with).

Beside the floor in the same run, it shows what the first-token deadline alone costs any aiohttp proxy,
and beside the sidecar, what Pilotfish's own work costs (docs/benchmarks.md).
Run: python -m benchmarks.parsing_proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT (as ``bare_proxy``)
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from benchmarks import bare_proxy

FIRST_TOKEN_SECONDS = 30.0  # never reached by the bench upstream; what matters is that the deadline is armed
DONE = b"[DONE]"


def events(data: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of the complete ``data:`` events in ``data`` (``[DONE]`` left out)."""
    out = []
    for frame in data.split(b"\n\n"):
        if frame.startswith(b"data: ") and frame[6:] != DONE:
            out.append(orjson.loads(frame[6:]))
    return out


def has_content(event: dict[str, Any]) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in event.get("choices") or ())


async def forward(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    streaming = bool(body.get("stream"))
    body["stream"], body["stream_options"] = True, {"include_usage": True}
    session = request.app[bare_proxy.SESSION]
    async with session.post(
        request.app[bare_proxy.UPSTREAM] + request.path,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    ) as upstream:
        reads = upstream.content.iter_any()
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": upstream.content_type})
        if streaming:
            await response.prepare(request)
        content: list[str] = []
        final: dict[str, Any] = {}
        carry = b""
        started = False
        async with asyncio.timeout(FIRST_TOKEN_SECONDS) as first_token:
            async for data in reads:
                if streaming:  # sent before it is parsed: nothing of a burst waits for the rest of it
                    await response.write(data)
                whole, _, carry = (carry + data).rpartition(b"\n\n")
                for event in events(whole):
                    if not started and has_content(event):
                        started = True
                        first_token.reschedule(None)
                    if streaming:
                        continue
                    for choice in event.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            content.append(piece)
                        if choice.get("finish_reason"):
                            final["finish_reason"] = choice["finish_reason"]
                    if event.get("usage"):
                        final["usage"] = event["usage"]
                    final.setdefault("id", event.get("id"))
                    final.setdefault("model", event.get("model"))
        if streaming:
            await response.write_eof()
            return response
        message = {"role": "assistant", "content": "".join(content)}
        answer = {
            "id": final.get("id"),
            "object": "chat.completion",
            "model": final.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": final.get("finish_reason")}],
            "usage": final.get("usage"),
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")


def build_app(upstream: str) -> web.Application:
    return bare_proxy.build_app(upstream, forward)


if __name__ == "__main__":
    bare_proxy.main(forward)

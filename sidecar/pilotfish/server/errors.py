"""The only producer of OpenAI-style error JSON: ``{"error": {"message", "type", "param", "code"}}``.

Messages are ours, never a stack trace; upstream details are already truncated Failures. In a stream
that has started, the same object goes out as one ``data:`` event and the stream ends without
``[DONE]``, which OpenAI SDKs raise as an error instead of reporting a truncated success.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from pilotfish import failures
from pilotfish.server import replies
from pilotfish.wire import sse


def error_body(
    message: str,
    *,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, object]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(message, error_type=error_type, code=code, param=param)),
        content_type="application/json",
        headers=headers,
    )


def from_rejection(exc: failures.RequestRejected) -> web.Response:
    return error_response(exc.status, exc.message, error_type=exc.error_type, code=exc.code, param=exc.param)


def stream_error_event(message: str, *, error_type: str, code: str | None) -> bytes:
    return sse.encode(orjson.dumps(error_body(message, error_type=error_type, code=code)))


def from_reply(reply: replies.Reply) -> web.Response:
    return error_response(
        reply.status,
        reply.message,
        error_type=reply.error_type,
        code=reply.code,
        param=reply.param,
        headers=reply.headers,
    )

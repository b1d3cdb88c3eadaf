"""POST /v1/embeddings: OpenAI's embeddings API, served by whichever member of the class can embed.

``model`` names a class. Members whose provider has no embeddings API (Anthropic) or cannot take
the input (token ids on Gemini) are skipped as ineligible; if none is left the client gets a 400
saying why. Vectors come back from every provider as floats and are encoded here as the client
asked (``encoding_format``: float, or base64 of little-endian float32 as OpenAI sends it).
"""

from __future__ import annotations

import base64
import struct

import orjson
from aiohttp import web

from pilotfish import failures
from pilotfish.failover import engine, unary
from pilotfish.routes import document
from pilotfish.server import bodies, errors, keys, replies, serving, tiering, validation
from pilotfish.telemetry import records
from pilotfish.wire import openai


async def post_embeddings(request: web.Request) -> web.StreamResponse:
    try:
        raw = await bodies.read_body(request)
        async with bodies.parsing_turn(request, raw):
            embed = validation.parse_body(raw, openai.EmbeddingsRequest)
    except failures.RequestRejected as exc:
        return errors.from_rejection(exc)

    async def handle(
        route: document.ClassRoute, api_keys: engine.Keys, record: records.RequestRecord
    ) -> web.StreamResponse:
        try:
            route, escalation = tiering.route_tiers(request, route, record, facts=None)
            committed = await request.app[keys.ENGINE].open(
                route,
                unary.Embeddings(embed, hold=request[keys.HOLD]),
                keys=api_keys,
                record=record,
                pin_key=serving.pin_key(request, route),
                slice_key=serving.slice_key(request, route),
                escalation=escalation,
            )
        except engine.AllMembersFailed as exc:
            return errors.from_reply(replies.failure_reply(exc, record))
        replies.served_by(committed.member, record, time_to_first_token=committed.time_to_first_token)
        answer = committed.head
        replies.count_usage(
            prompt_tokens=int(answer["usage"]["prompt_tokens"]),
            completion_tokens=0,
            member=committed.member,
            record=record,
        )
        if embed.encoding_format == "base64":
            answer = encode_base64(answer)
        return web.Response(
            body=orjson.dumps(answer), content_type="application/json", headers=replies.route_headers(record)
        )

    return await serving.serve_class(
        request, class_name=embed.model, stream=False, render=errors.from_reply, handle=handle
    )


def encode_base64(answer: openai.EmbeddingsResponse) -> openai.EmbeddingsResponse:
    """Each vector as base64 of little-endian float32, as OpenAI answers ``encoding_format: base64``."""
    data = [
        {**item, "embedding": base64.b64encode(struct.pack(f"<{len(item['embedding'])}f", *item["embedding"])).decode()}
        for item in answer["data"]
    ]
    return {**answer, "data": data}

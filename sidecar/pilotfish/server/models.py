"""GET /v1/models: the classes of this namespace, listed as OpenAI models (apps pick a class)."""

from __future__ import annotations

from aiohttp import web

from pilotfish.server import errors, keys


def _model_object(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "pilotfish"}


async def get_models(request: web.Request) -> web.Response:
    snapshot = request.app[keys.LIVE].snapshot
    names = sorted(snapshot.document.classes) if snapshot else []
    return web.json_response({"object": "list", "data": [_model_object(name) for name in names]})


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    snapshot = request.app[keys.LIVE].snapshot
    if snapshot is None or name not in snapshot.document.classes:
        return errors.error_response(
            404,
            f"The model '{name}' does not exist: it is not a class in this namespace.",
            code="model_not_found",
            param="model",
        )
    return web.json_response(_model_object(name))

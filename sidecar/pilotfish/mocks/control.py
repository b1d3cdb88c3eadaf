"""Run-time control of a mock over HTTP: ``PUT /_mock/fault``, ``GET /_mock/stats``, ``POST /_mock/reset``.

The demo and process-level tests switch faults this way; in-process tests can call
``RunningMock.set_fault`` instead.
"""

from __future__ import annotations

import collections
import dataclasses

import pydantic
from aiohttp import web

from pilotfish.mocks import faults


@dataclasses.dataclass
class Stats:
    requests: int = 0
    by_mode: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    last_model: str | None = None
    last_auth_present: bool = False
    last_body: dict[str, object] | None = None  # the last request body, for tests of translation
    last_traceparent: str | None = None  # the W3C trace context the last request carried

    def reset(self) -> None:
        self.requests, self.last_model, self.last_auth_present, self.last_body = 0, None, False, None
        self.last_traceparent = None
        self.by_mode.clear()

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "byMode": dict(self.by_mode),
            "lastModel": self.last_model,
            "lastAuthPresent": self.last_auth_present,
        }


FAULTS = web.AppKey("faults", faults.FaultState)
STATS = web.AppKey("stats", Stats)
NAME = web.AppKey("name", str)  # the mock's name, which its canonical answer carries
API_KEY = web.AppKey("api_key", str)  # the key it requires; "" accepts any


def new_app(*, name: str, api_key: str | None, fault_state: faults.FaultState, stats: Stats) -> web.Application:
    """The application every mock format starts from: identity, fault state, stats and control routes."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[NAME] = name
    app[API_KEY] = api_key or ""
    app[FAULTS] = fault_state
    app[STATS] = stats
    add_routes(app)
    return app


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_mock/fault", get_fault)
    app.router.add_put("/_mock/fault", put_fault)
    app.router.add_get("/_mock/stats", get_stats)
    app.router.add_post("/_mock/reset", post_reset)


async def get_fault(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].fault.model_dump(mode="json"))


async def put_fault(request: web.Request) -> web.Response:
    try:
        fault = faults.Fault.model_validate_json(await request.read())
    except pydantic.ValidationError as exc:
        return web.json_response({"error": {"message": str(exc), "type": "invalid_request_error"}}, status=400)
    request.app[FAULTS].set(fault)
    return web.json_response(fault.model_dump(mode="json"))


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].to_dict())


async def post_reset(request: web.Request) -> web.Response:
    request.app[STATS].reset()
    return web.json_response({"reset": True})


def draw(app: web.Application, *, tokens: int = 0) -> tuple[faults.Mode, faults.Fault]:
    """The fault for the request that just arrived (which costs ``tokens`` if answered), counted in the stats."""
    mode = app[FAULTS].next_mode(tokens=tokens)
    app[STATS].by_mode[mode.value] += 1
    return mode, app[FAULTS].fault

"""The allowance endpoint over HTTP, with TokenReview and the API server replaced by a fake: it reads what
a sidecar of the previous version sends and answers it in the bytes that version reads, and a malformed
body is a 400 naming the field at fault. (Real tokens and the real API server: tests/kube/test_budgets.py.)
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from pilotfish.api import budget
from pilotfish.budgets import protocol, windows
from pilotfish_operator.budgets import granting

WALL = datetime.datetime(2026, 12, 2, 1, 35, 10, tzinfo=datetime.UTC).timestamp()
MINUTE = windows.window_of(budget.Limit.REQUESTS, budget.Period.DAY, wall=WALL).key
# what a Budget-only sidecar sent before quotas (and before msgspec): no kind, no member
OLD_ASK = {"budget": "team", "limit": "requests", "window": MINUTE, "used": 0, "balance": 0, "want": True}


class Api:
    """TokenReview says every token is the app's of namespace ``ns``; one Budget ``team``."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {"name": "team", "resourceVersion": "1"},
            "spec": {"requestsPerMinute": 100},
        }

    def review_token(self, token: str, *, audience: str) -> tuple[bool, str]:
        return True, "system:serviceaccount:ns:app"

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj) if name == "team" else None

    def patch_status_at(self, namespace: str, plural: str, name: str, *, resource_version: str, status: Any) -> bool:
        self.obj["status"] = copy.deepcopy(status)
        self.obj["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        return True

    def event(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
async def post() -> AsyncIterator[Any]:
    app = web.Application()
    granting.Granting(Api(), wall=lambda: WALL).routes(app)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}" + protocol.PATH.format(namespace="ns")
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session:

        async def send(body: bytes) -> tuple[int, bytes]:
            async with session.post(url, data=body) as response:
                return response.status, await response.read()

        yield send
    await runner.cleanup()


async def test_an_older_sidecars_budget_ask_is_granted_in_the_bytes_it_reads(post):
    status, body = await post(orjson.dumps({"asks": [OLD_ASK]}))
    assert status == 200
    amount = windows.grant_size(100)
    assert body == (
        b'{"grants":[{"budget":"team","limit":"requests","window":"%s","amount":%d,"exhausted":false,'
        b'"retryAfter":50.0}]}' % (MINUTE.encode(), amount)
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (orjson.dumps({"asks": [OLD_ASK | {"used": -1}]}), "asks[0].used"),
        (orjson.dumps({"asks": [OLD_ASK | {"window": "w" * 33}]}), "asks[0].window"),
        (orjson.dumps({"asks": [OLD_ASK] * (protocol.MAX_ASKS + 1)}), "asks: Expected `array` of length <= 256"),
        (orjson.dumps({"asks": "everything"}), "asks: Expected `array`"),
        (b"{", "not an allowance request"),
        (b" " * (protocol.MAX_BODY_BYTES + 1), "body too large"),
    ],
)
async def test_a_malformed_body_is_a_400_naming_the_field(post, body, named):
    status, answer = await post(body)
    assert status == 400
    message = orjson.loads(answer)["error"]["message"]
    assert message.startswith("not an allowance request: ") and named in message

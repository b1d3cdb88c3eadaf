"""`pilotfish local` on a laptop cannot be used by a web page: no CSRF, no DNS rebinding, no open admin port."""

from __future__ import annotations

import aiohttp
from tests.integration.conftest import Sidecar

CHAT = b'{"model": "workhorse", "messages": [{"role": "user", "content": "Say hello."}]}'


async def _post(sidecar: Sidecar, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as session,
        session.post(sidecar.api + "/v1/chat/completions", data=CHAT, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_a_form_post_from_a_web_page_gets_415(sidecar: Sidecar) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, body = await _post(sidecar, {"Content-Type": content_type})
        assert status == 415, content_type
        assert body["error"]["code"] == "unsupported_media_type"  # type: ignore[index]


async def test_a_post_without_content_type_gets_415(sidecar: Sidecar) -> None:
    status, body = await _post(sidecar, {})
    assert status == 415
    assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_a_rebound_host_name_gets_421(sidecar: Sidecar) -> None:
    status, body = await _post(sidecar, {"Content-Type": "application/json", "Host": "attacker.example:4000"})
    assert status == 421
    assert body["error"]["code"] == "host_not_allowed"  # type: ignore[index]


async def test_json_to_the_loopback_by_any_of_its_names_is_served(sidecar: Sidecar) -> None:
    port = sidecar.api.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        status, _ = await _post(sidecar, {"Content-Type": "application/json; charset=utf-8", "Host": host})
        assert status == 200, host

"""While a member's circuit is open, the sidecar probes it itself: no user request is ever sent to a
dead member to find out whether it is back. A real `pilotfish local`; the probed member is an upstream
that records every request it gets, down (503) until the test brings it back."""

from __future__ import annotations

import asyncio
import json
import pathlib
import textwrap

from aiohttp import web
from tests.chat import post_chat
from tests.integration import hostile
from tests.integration.conftest import KEYS, metric_sum, start_sidecar, stop_sidecar
from tests.waiting import eventually

USER_PROMPT = "a user's question 7731"
CHAT = {"model": "workhorse", "messages": [{"role": "user", "content": USER_PROMPT}]}


def manifests(flaky: str, backup: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: keys}}
        stringData: {{flaky: sk-flaky-1, backup: {KEYS["backup"]}}}
        ---
        apiVersion: pilotfish.dev/v1alpha1
        kind: ProviderCredential
        metadata: {{name: flaky}}
        spec:
          provider: openai-compatible
          baseURL: {flaky}/v1
          apiKeySecretRef: {{name: keys, key: flaky}}
          probe: {{kind: generation}}
        ---
        apiVersion: pilotfish.dev/v1alpha1
        kind: ProviderCredential
        metadata: {{name: backup}}
        spec: {{provider: openai-compatible, baseURL: "{backup}", apiKeySecretRef: {{name: keys, key: backup}}}}
        ---
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {{name: workhorse}}
        spec:
          members: [{{credentialRef: flaky, model: model-f}}, {{credentialRef: backup, model: model-b}}]
          routing: {{maxAttempts: 2, retryBudgetPercent: 100, sameMemberRetries: 0}}
          health: {{failureThreshold: 1, cooldownSeconds: 1}}
          timeouts: {{connectSeconds: 2, firstTokenSeconds: 5, totalSeconds: 10}}
        """)


def sse_answer() -> bytes:
    """A one-token OpenAI stream with its usage chunk, as the sidecar asks for."""
    base = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 0, "model": "model-f"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "OK"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}},
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def test_no_user_request_is_ever_the_probe_of_a_dead_member(tmp_path: pathlib.Path, mocks) -> None:  # type: ignore[no-untyped-def]
    up = {"now": False}

    async def flaky(request: web.Request, received: hostile.Received) -> web.StreamResponse:
        if not up["now"]:
            return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
        return web.Response(body=sse_answer(), content_type="text/event-stream")

    async with hostile.running(flaky) as upstream:
        (tmp_path / "all.yaml").write_text(manifests(upstream.origin, mocks["backup"].url))
        sidecar = await start_sidecar(["local", "-f", str(tmp_path)])
        try:
            answer = await post_chat(sidecar.api, CHAT)  # the member fails, the backup answers, the circuit opens
            assert answer.status == 200 and answer.headers["x-pilotfish-member"] == "backup/model-b"

            async def probed_twice() -> bool:
                return metric_sum(await sidecar.metrics(), "pilotfish_probes_total", member="flaky/model-f") >= 2

            served_while_down = []
            async with asyncio.timeout(60):
                while not await probed_twice():  # user traffic all the while the member is down and probed
                    answer = await post_chat(sidecar.api, CHAT)
                    served_while_down.append((answer.status, answer.headers.get("x-pilotfish-member")))
                    sent_to_it = [seen for seen in upstream.received[1:] if USER_PROMPT.encode() in seen.body]
                    assert not sent_to_it, "a user request was the probe of the dead member"
            assert served_while_down and set(served_while_down) == {(200, "backup/model-b")}
            since_open = upstream.received[1:]  # the first request was the user's, before the circuit opened
            assert since_open, "the prober sent nothing"
            for seen in since_open:
                assert USER_PROMPT.encode() not in seen.body, "a user request was sent to the dead member"
                assert json.loads(seen.body)["max_tokens"] == 1 and b"Say OK." in seen.body
            assert seen.headers["authorization"] == "Bearer sk-flaky-1"  # with the member's own key

            up["now"] = True  # the member comes back: a probe finds out, and user traffic returns to it
            await eventually(lambda: _closed(sidecar), timeout=60, what="the member's circuit closed by a probe")
            answer = await post_chat(sidecar.api, CHAT)
            assert answer.status == 200 and answer.headers["x-pilotfish-member"] == "flaky/model-f", answer.body
            text = await sidecar.metrics()
            assert metric_sum(text, "pilotfish_probes_total", member="flaky/model-f", result="success") >= 1
            assert metric_sum(text, "pilotfish_probe_tokens_total", member="flaky/model-f") >= 10
        finally:
            await stop_sidecar(sidecar)


async def _closed(sidecar) -> bool:  # type: ignore[no-untyped-def]
    return (await sidecar.member("workhorse", "flaky/model-f"))["state"] == "closed"

"""The sidecar's canary slice: a bad canary costs failovers, never errors, and every failure is counted."""

from __future__ import annotations

import collections
import pathlib
import random

import aiohttp
from tests.integration.conftest import KEYS, manifests_for, metric_sum, start_sidecar, stop_sidecar
from tests.mounts import kubelet_write
from tests.waiting import eventually

from pilotfish.api import manifests
from pilotfish.failover import canary
from pilotfish.routes import document, render

CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
  canary:
    member: {credentialRef: backup, model: model-next}
    steps: [{setWeight: 50}]
    stickiness: {header: x-conversation-id}
  health: {failureThreshold: 100, cooldownSeconds: 1}
"""
HEALTH = "{failureThreshold: 100, cooldownSeconds: 1}"  # the canary's circuit never opens


def _rendered(mocks, weight: int, *, health: str = HEALTH) -> document.RoutesDocument:
    parsed = manifests.parse_text(manifests_for(mocks, CLASS.replace(HEALTH, health)), source="t", namespace="default")
    assert parsed.errors == []
    result = render.render(
        namespace="default",
        classes=parsed.classes,
        credentials=parsed.credentials,
        canary_weights={"workhorse": weight},
    )
    assert result.document is not None
    return result.document


def _in_canary_slice(route: document.ClassRoute, conversation: str, n: int) -> int:
    """How many of the conversations ``conversation-0`` … ``conversation-<n-1>`` the canary slice holds."""
    assert route.canary is not None
    unused = random.Random(0)  # a keyed request's slice is a hash of its key: no draw is made
    return sum(canary.in_canary_slice(route.canary, f"{conversation}-{i}", unused) for i in range(n))


async def _sidecar_at(tmp_path: pathlib.Path, mocks, weight: int, *, health: str = HEALTH):
    kubelet_write(tmp_path / "routes", {"routes.json": _rendered(mocks, weight, health=health).to_json().decode()}, 1)
    kubelet_write(tmp_path / "secrets" / "test-keys", dict(KEYS), 1)
    return await start_sidecar(
        ["sidecar", "--config-dir", str(tmp_path / "routes"), "--secrets-dir", str(tmp_path / "secrets")]
    )


async def _ask(sidecar, n: int, conversation: str | None = None, *, each: bool = False) -> collections.Counter[str]:
    """``n`` requests; with ``conversation``, all in it, or with ``each``, each in a conversation of its own."""
    served: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            key = f"{conversation}-{i}" if each else conversation
            headers = {"x-conversation-id": key} if key else {}
            body = {"model": "workhorse", "messages": [{"role": "user", "content": f"hi {i}"}]}
            async with session.post(sidecar.api + "/v1/chat/completions", json=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                served[response.headers["x-pilotfish-member"]] += 1
    return served


async def test_half_the_traffic_reaches_a_healthy_canary_and_a_conversation_stays_on_one_slice(tmp_path, mocks):
    sidecar = await _sidecar_at(tmp_path, mocks, 50)
    try:
        # the slice of a keyed request is a hash of its key, not a draw: the split is exact, whatever the seed
        served = await _ask(sidecar, 200, "conversation", each=True)
        route = _rendered(mocks, 50).classes["workhorse"]
        assert route.canary is not None
        canary_keys = _in_canary_slice(route, "conversation", 200)
        assert 60 < canary_keys < 140  # the hash spreads keys: about half, as the weight says
        assert served == {"backup/model-next": canary_keys, "primary/model-a": 200 - canary_keys}
        for conversation in ("c-1", "c-2", "c-3", "c-4"):
            assert len(await _ask(sidecar, 8, conversation)) == 1  # every turn on the same slice
        metrics = await sidecar.metrics()
        assert metric_sum(metrics, "pilotfish_slice_requests_total", slice="canary") >= 60
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="success") >= 60
        assert metric_sum(metrics, "pilotfish_canary_request_duration_seconds_count") >= 60
    finally:
        await stop_sidecar(sidecar)


async def test_a_failing_canary_costs_failovers_not_errors_and_every_failure_is_counted(tmp_path, mocks):
    mocks["backup"].set_fault(mode="status", status=500)
    sidecar = await _sidecar_at(tmp_path, mocks, 50)
    try:
        served = await _ask(sidecar, 100, "conversation", each=True)
        assert served == {"primary/model-a": 100}  # the app never sees the bad canary
        metrics = await sidecar.metrics()
        canary_requests = metric_sum(metrics, "pilotfish_slice_requests_total", slice="canary")
        assert canary_requests == _in_canary_slice(_rendered(mocks, 50).classes["workhorse"], "conversation", 100) > 25
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="server_error") == canary_requests
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="success") == 0

        async def request_lines() -> list[dict[str, object]]:
            return [r for r in sidecar.log_records() if r.get("msg") == "request"]

        logged = await eventually(request_lines, lambda lines: len(lines) == 100, what="a log line per request")
        assert {r["canary_slice"] for r in logged} == {"canary", "stable"}
    finally:
        await stop_sidecar(sidecar)


async def test_a_failing_canary_whose_circuit_opened_still_fails_every_canary_slice_request_it_gets(tmp_path, mocks):
    # two failures open the canary's circuit for a minute: from then on the canary slice skips it, and each of
    # those requests must still count against it, or the analysis would see only the first two failures
    mocks["backup"].set_fault(mode="status", status=500)
    sidecar = await _sidecar_at(tmp_path, mocks, 50, health="{failureThreshold: 2, cooldownSeconds: 60}")
    try:
        served = await _ask(sidecar, 100, "conversation", each=True)
        assert served == {"primary/model-a": 100}
        metrics = await sidecar.metrics()
        canary_requests = metric_sum(metrics, "pilotfish_slice_requests_total", slice="canary")
        assert canary_requests == _in_canary_slice(_rendered(mocks, 50).classes["workhorse"], "conversation", 100)
        assert mocks["backup"].stats.requests == 2  # the open circuit kept the rest away from the canary
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="server_error") == 2
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="circuit_open") == canary_requests - 2
        assert metric_sum(metrics, "pilotfish_canary_attempts_total", result="success") == 0
    finally:
        await stop_sidecar(sidecar)

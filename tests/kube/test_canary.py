"""Canary rollouts end to end: the operator on a real API server, real sidecar processes reading the rendered
routes as the kubelet would mount them, mock providers, and a real Prometheus the analysis queries.

A healthy canary walks every step to Succeeded; a failing one and a slow one are rolled back to weight 0 within their
failure limit while every app request keeps succeeding; abort and promote work from the CLI.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from e2e.testenv import controlplane
from tests import prometheus
from tests.integration.conftest import KEYS, manifests_for, start_sidecar, stop_sidecar
from tests.kube.conftest import ROOT, wait_for
from tests.mounts import kubelet_write
from tests.waiting import eventually

from pilotfish.mocks import runner

pytestmark = pytest.mark.usefixtures("operator")

ROLLOUT = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: {name}}}
spec:
  members: [{{credentialRef: primary, model: stable}}]
  health: {{failureThreshold: 100, cooldownSeconds: 1}}
  canary:
    member: {{credentialRef: {canary}, model: next}}
    steps: {steps}
    analysis:
      interval: 2s
      failureLimit: 2
      metrics:
        - {{name: error-rate, thresholdRange: {{max: 0.1}}}}
        - {{name: p95-latency-seconds, thresholdRange: {{max: 2}}}}
      prometheus: {{address: "{prometheus}"}}
    stickiness: {{header: x-conversation-id}}
"""


def _get(plane: Any, namespace: str, *what: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _canary(plane: Any, namespace: str, name: str) -> dict[str, Any]:
    return ((_get(plane, namespace, "mc", name) or {}).get("status") or {}).get("canary") or {}


def _spec(plane: Any, namespace: str, name: str) -> dict[str, Any]:
    return ((_get(plane, namespace, "mc", name) or {}).get("spec") or {}).get("canary") or {}


def _set_canary_model(plane: Any, namespace: str, name: str, model: str) -> None:
    patch = json.dumps({"spec": {"canary": {"member": {"model": model}}}})
    plane.kubectl("patch", "-n", namespace, "mc", name, "--type=merge", "-p", patch)


def _reasons(plane: Any, namespace: str, name: str) -> list[str]:
    listing = _get(plane, namespace, "events", "--field-selector", f"involvedObject.name={name}") or {"items": []}
    return [e["reason"] for e in sorted(listing["items"], key=lambda e: e["metadata"]["creationTimestamp"])]


async def _mount_configmap(plane: Any, namespace: str, directory: Any, stop: asyncio.Event) -> None:
    """What the kubelet does for a mounted ConfigMap, every half second."""
    seen, generation = None, 0
    while not stop.is_set():
        configmap = await asyncio.to_thread(_get, plane, namespace, "configmap", "pilotfish-routes")
        data = (configmap or {}).get("data")
        if data and data != seen:
            generation += 1
            kubelet_write(directory, data, generation)
            seen = data
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _traffic(api: str, name: str, stop: asyncio.Event, outcomes: collections.Counter[str]) -> None:
    """An app calling one class in a loop (one loop per class: a slow canary must not starve the others)."""
    async with aiohttp.ClientSession() as session:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"model": name, "messages": [{"role": "user", "content": f"hi {n}"}]}
            try:
                async with session.post(api + "/v1/chat/completions", json=body) as response:
                    await response.read()
                    outcomes[str(response.status)] += 1
            except aiohttp.ClientError:
                outcomes["error"] += 1
            await asyncio.sleep(0.03)


@pytest.mark.timeout(300)
async def test_a_healthy_canary_is_promoted_and_a_failing_one_is_rolled_back_without_failed_requests(
    crds_applied, namespace, tmp_path
):
    mocks = {name: await runner.start_mock(name=name, api_key=KEYS[name]) for name in ("primary", "backup", "third")}
    mocks["gemini"] = await runner.start_mock(name="gemini", api_key=KEYS["gemini"], provider="gemini")
    mocks["third"].set_fault(mode="status", status=500)  # the failing canary
    mocks["gemini"].set_fault(mode="latency", delay=2.5)  # the slow canary: answers, but late
    admin_port = controlplane.free_port()
    stop = asyncio.Event()
    outcomes: collections.Counter[str] = collections.Counter()
    sidecar = None
    tasks: list[asyncio.Task[None]] = []
    try:
        targets = {"sidecars": [(f"127.0.0.1:{admin_port}", {"namespace": namespace, "pod": "app-1"})]}
        with prometheus.running(tmp_path, targets) as prom:
            classes = "---\n".join(
                [
                    ROLLOUT.format(
                        name="good",
                        canary="backup",
                        steps="[{setWeight: 30}, {analysis: {}}, {setWeight: 70}, {pause: {duration: 2s}}]",
                        prometheus=prom.url,
                    ),
                    ROLLOUT.format(
                        name="bad",
                        canary="third",
                        steps="[{setWeight: 30}, {analysis: {}}, {setWeight: 100}]",
                        prometheus=prom.url,
                    ),
                    ROLLOUT.format(
                        name="slow",
                        canary="gemini",
                        steps="[{setWeight: 30}, {analysis: {}}, {setWeight: 100}]",
                        prometheus=prom.url,
                    ),
                ]
            )
            crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifests_for(mocks, classes))
            wait_for(lambda: _get(crds_applied, namespace, "configmap", "pilotfish-routes"), what="routes")
            secret = _get(crds_applied, namespace, "secret", "test-keys")
            assert secret is not None
            kubelet_write(tmp_path / "secrets" / "test-keys", dict(KEYS), 1)
            tasks.append(asyncio.create_task(_mount_configmap(crds_applied, namespace, tmp_path / "routes", stop)))
            mounted = tmp_path / "routes" / "routes.json"
            await eventually(lambda: asyncio.to_thread(mounted.exists), what="the routes ConfigMap mounted")
            sidecar = await start_sidecar(
                ["sidecar", "--config-dir", str(tmp_path / "routes"), "--secrets-dir", str(tmp_path / "secrets")],
                admin=f"127.0.0.1:{admin_port}",
            )
            for name in ("good", "bad", "slow"):
                tasks.append(asyncio.create_task(_traffic(sidecar.api, name, stop, outcomes)))

            async def phase(name: str, wanted: str, timeout: float) -> dict[str, Any]:
                def settled(status: dict[str, Any]) -> bool:
                    assert status.get("phase") not in {"Succeeded", "Failed"} - {wanted}, f"{name}: {status}"
                    return status.get("phase") == wanted

                return await eventually(
                    lambda: asyncio.to_thread(_canary, crds_applied, namespace, name),
                    settled,
                    timeout=timeout,
                    what=f"{name} {wanted}",
                )

            bad = await phase("bad", "Failed", 60)
            assert bad["weight"] == 0 and "rolled back after 2 failed checks" in bad["message"]
            assert "error-rate=1" in bad["message"]
            slow = await phase("slow", "Failed", 60)
            assert slow["weight"] == 0 and "p95-latency-seconds=" in slow["message"]
            good = await phase("good", "Succeeded", 120)
            assert good["weight"] == 100 and good["failedChecks"] == 0

            routes = json.loads(_get(crds_applied, namespace, "configmap", "pilotfish-routes")["data"]["routes.json"])
            assert "canary" not in routes["classes"]["bad"]
            assert routes["classes"]["good"]["canary"]["weight"] == 100
            assert prom.query('sum(pilotfish_canary_attempts_total{class="bad",result="server_error"})')
    finally:
        stop.set()
        for task in tasks:
            await task
        if sidecar is not None:
            await stop_sidecar(sidecar)
        for mock in mocks.values():
            await mock.stop()
    assert outcomes["200"] > 100 and set(outcomes) == {"200"}, outcomes  # no app request ever failed
    good_events = [r for r in _reasons(crds_applied, namespace, "good") if r.startswith("Canary")]
    bad_events = _reasons(crds_applied, namespace, "bad")
    # (Event timestamps have one-second resolution: compare what happened, not the order within a second)
    assert {"CanaryStarted", "CanaryWeight", "CanaryPromoting", "CanaryPromoted"} <= set(good_events)
    assert good_events.count("CanaryStep") == 4 and "CanaryCheckFailed" not in good_events
    assert "CanaryCheckFailed" in bad_events and "CanaryRolledBack" in bad_events
    table = crds_applied.kubectl("get", "-n", namespace, "mc", "good", "bad").stdout
    assert "Succeeded" in table and "Failed" in table


MANUAL = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: openai}
spec: {provider: openai, apiKeySecretRef: {name: keys, key: openai}}
---
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {openai: sk-x}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: manual}
spec:
  members: [{credentialRef: openai, model: gpt-5-mini}]
  canary:
    member: {credentialRef: openai, model: gpt-5}
    steps: [{setWeight: 10}, {pause: {}}, {setWeight: 50}, {pause: {}}]
"""


def _pilotfish(plane: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", *args, "--kubeconfig", str(plane.kubeconfig)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT / 'sidecar'}:{ROOT / 'operator'}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_promote_a_step_promote_in_full_and_abort_from_the_cli(crds_applied, namespace):
    crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=MANUAL)
    status = wait_for(
        lambda: (c := _canary(crds_applied, namespace, "manual")).get("phase") == "Paused" and c, what="Paused"
    )
    assert (status["weight"], status["currentStepIndex"]) == (10, 1)

    done = _pilotfish(crds_applied, "canary", "promote", "manual", "-n", namespace)
    assert done.returncode == 0, done.stderr
    assert "spec.canary {'promote': 'Step'}" in done.stdout
    status = wait_for(
        lambda: (c := _canary(crds_applied, namespace, "manual")).get("currentStepIndex") == 3 and c, what="next pause"
    )
    assert (status["phase"], status["weight"]) == ("Paused", 50)
    spec = (_get(crds_applied, namespace, "mc", "manual") or {})["spec"]["canary"]
    assert "promote" not in spec  # consumed by the operator, so the next promote is a new one

    assert _pilotfish(crds_applied, "canary", "promote", "manual", "-n", namespace, "--full").returncode == 0
    status = wait_for(
        lambda: (c := _canary(crds_applied, namespace, "manual")).get("phase") == "Succeeded" and c, what="Succeeded"
    )
    assert status["weight"] == 100
    shown = _pilotfish(crds_applied, "canary", "status", "manual", "-n", namespace)
    assert "Phase:       Succeeded" in shown.stdout and "Weight:      100%" in shown.stdout

    # a new canary member restarts the rollout; abort stops it at weight 0 and keeps the spec
    _set_canary_model(crds_applied, namespace, "manual", "gpt-5.1")
    wait_for(lambda: _canary(crds_applied, namespace, "manual").get("phase") == "Paused", what="restarted")
    assert _pilotfish(crds_applied, "canary", "abort", "manual", "-n", namespace).returncode == 0
    status = wait_for(
        lambda: (c := _canary(crds_applied, namespace, "manual")).get("phase") == "Failed" and c, what="aborted"
    )
    assert status["weight"] == 0 and "aborted" in status["message"]
    assert (_get(crds_applied, namespace, "mc", "manual") or {})["spec"]["canary"]["member"]["model"] == "gpt-5.1"
    routes = json.loads(_get(crds_applied, namespace, "configmap", "pilotfish-routes")["data"]["routes.json"])
    assert "canary" not in routes["classes"]["manual"]
    assert "CanaryAborted" in _reasons(crds_applied, namespace, "manual")
    # consumed by the operator (back to its default, false), so it cannot fail the next canary
    wait_for(lambda: not _spec(crds_applied, namespace, "manual").get("abort"), what="abort consumed")

    # the way back: retry the same canary as it is, or fix the member (a new canary)
    retried = _pilotfish(crds_applied, "canary", "retry", "manual", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    status = wait_for(
        lambda: (c := _canary(crds_applied, namespace, "manual")).get("phase") == "Paused" and c, what="retried"
    )
    assert (status["weight"], status["currentStepIndex"]) == (10, 1)
    assert "CanaryRetried" in _reasons(crds_applied, namespace, "manual")
    wait_for(lambda: not _spec(crds_applied, namespace, "manual").get("retry"), what="retry consumed")
    assert _pilotfish(crds_applied, "canary", "abort", "manual", "-n", namespace).returncode == 0
    wait_for(lambda: _canary(crds_applied, namespace, "manual").get("phase") == "Failed", what="aborted again")
    wait_for(lambda: not _spec(crds_applied, namespace, "manual").get("abort"), what="abort consumed")
    _set_canary_model(crds_applied, namespace, "manual", "gpt-5.2")
    wait_for(lambda: _canary(crds_applied, namespace, "manual").get("phase") == "Paused", what="the fixed canary")


def test_the_cli_says_when_a_class_has_no_canary(crds_applied, namespace):
    crds_applied.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=MANUAL.split("---\napiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass")[0],
    )
    crds_applied.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin="apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: plain}\nspec: {members: [{credentialRef: openai, model: m}]}\n",
    )
    done = _pilotfish(crds_applied, "canary", "abort", "plain", "-n", namespace)
    assert done.returncode == 1 and "has no spec.canary" in done.stderr
    missing = _pilotfish(crds_applied, "canary", "status", "nothing", "-n", namespace)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_the_canary_example_is_accepted_and_bad_canaries_are_refused_with_the_rule_broken(crds_applied, namespace):
    example = (ROOT / "examples" / "canary" / "workhorse-canary.yaml").read_text()
    crds_applied.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=example)
    cases = {
        '[{"setWeight": 5, "pause": {}}]': "exactly one of setWeight, pause, analysis",
        '[{"analysis": {}}]': "a canary analysis step needs canary.analysis.metrics",
    }
    for steps, message in cases.items():
        bad = (
            '{"apiVersion": "pilotfish.dev/v1alpha1", "kind": "ModelClass", "metadata": {"name": "x"}, "spec": '
            '{"members": [{"credentialRef": "a", "model": "m"}], "canary": {"member": {"credentialRef": "a", '
            f'"model": "n"}}, "steps": {steps}}}}}}}'
        )
        done = crds_applied.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=bad, check=False)
        assert done.returncode != 0 and message in done.stderr, done.stderr
    custom = example.replace(
        "{name: error-rate, thresholdRange: {max: 0.02}}", "{name: my-metric, thresholdRange: {max: 1}}"
    )
    done = crds_applied.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=custom, check=False)
    assert done.returncode != 0 and "needs a query" in done.stderr, done.stderr
    same = example.replace("model: gpt-5\n", "model: gpt-5-mini\n", 1)
    done = crds_applied.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=same, check=False)
    assert done.returncode != 0 and "canary.member is already in members" in done.stderr, done.stderr

"""The whole loop: manifests → operator → ConfigMap and Secret, mounted as the kubelet mounts them → a sidecar
process that serves from a mock provider and fails over to another vendor when it goes down; and back: what
the sidecar learns (a rejected key, a member that cannot continue a stream) on the objects' status."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
from typing import Any

from tests.integration.conftest import (
    KEYS,
    manifests_for,
    start_sidecar,
    stop_sidecar,
    streamed,
)
from tests.kube.conftest import wait_for
from tests.mounts import kubelet_write

from pilotfish.mocks import answers, runner

CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: gpt-5-mini}
    - {credentialRef: claude, model: claude-sonnet-4-5}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 2, totalSeconds: 10}
  health: {failureThreshold: 2, cooldownSeconds: 30}
"""


def _get(plane: Any, namespace: str, *what: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {pilotfish.dev/inject: "true"}
  annotations: {pilotfish.dev/status: '{"version":1}'}
spec:
  containers: [{name: app, image: registry.example/app:1}]
"""


def _rejected(plane: Any, namespace: str, credential: str) -> dict[str, Any]:
    """The CredentialRejected condition of a ProviderCredential, or {} while it has none."""
    status = (_get(plane, namespace, "providercredential", credential) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or () if c["type"] == "CredentialRejected"), {})


def _propagation(plane: Any, namespace: str) -> dict[str, Any]:
    return ((_get(plane, namespace, "mc", "workhorse") or {}).get("status") or {}).get("propagation") or {}


def _prefill_mismatch(plane: Any, namespace: str) -> dict[str, Any]:
    """The PrefillMismatch condition of ModelClass workhorse, or {} while it has none."""
    status = (_get(plane, namespace, "mc", "workhorse") or {}).get("status") or {}
    return next((c for c in status.get("conditions") or () if c["type"] == "PrefillMismatch"), {})


def _operator_output(plane: Any, namespace: str, tmp_path: pathlib.Path) -> tuple[dict[str, Any], list[str]]:
    """The routes ConfigMap with workhorse, and the Secret, written as the kubelet mounts them: the ConfigMap
    and the sidecar arguments that read both."""
    configmap = wait_for(
        lambda: (
            (cm := _get(plane, namespace, "configmap", "pilotfish-routes"))
            and "workhorse" in json.loads(cm["data"]["routes.json"])["classes"]
            and cm
        ),
        what="pilotfish-routes with workhorse",
    )
    secret = _get(plane, namespace, "secret", "test-keys")
    assert secret is not None
    config_dir, secrets_dir = tmp_path / "routes", tmp_path / "secrets"
    kubelet_write(config_dir, configmap["data"], 1)
    kubelet_write(secrets_dir / "test-keys", {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}, 1)
    return configmap, ["sidecar", "--config-dir", str(config_dir), "--secrets-dir", str(secrets_dir)]


def _running_injected_pod(plane: Any, namespace: str) -> None:
    """An injected pod whose sidecar the operator's sweep reads: the pod's IP is this machine's loopback, as
    the test control plane has no kubelet to give it a real one."""
    plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=POD)
    running = '{"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}'
    plane.kubectl("patch", "-n", namespace, "pod", "app", "--subresource=status", "--type=merge", "-p", running)


async def test_a_sidecar_on_the_operators_output_serves_and_fails_over_across_vendors(
    crds_applied, namespace, tmp_path, operator
):
    mocks = {
        "primary": await runner.start_mock(name="primary", api_key=KEYS["primary"]),
        "claude": await runner.start_mock(name="claude", api_key=KEYS["claude"], provider="anthropic"),
    }
    sidecar = None
    try:
        crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifests_for(mocks, CLASS))
        configmap, args = _operator_output(crds_applied, namespace, tmp_path)
        config_dir = tmp_path / "routes"
        sidecar = await start_sidecar(args, admin=f"127.0.0.1:{operator.sidecar_admin_port}")
        client = sidecar.client()
        messages = [{"role": "user", "content": "Say hello."}]

        served = await client.chat.completions.with_raw_response.create(model="workhorse", messages=messages)
        assert served.headers["x-pilotfish-member"] == "primary/gpt-5-mini"
        assert "primary" in served.parse().choices[0].message.content

        mocks["primary"].set_fault(mode="status", status=503)
        served = await client.chat.completions.with_raw_response.create(model="workhorse", messages=messages)
        assert served.headers["x-pilotfish-member"] == "claude/claude-sonnet-4-5"
        assert served.headers["x-pilotfish-failover-reason"] == "overloaded"  # OpenAI: 503 = overloaded
        assert "claude" in served.parse().choices[0].message.content
        assert mocks["claude"].stats.last_auth_present

        info = await sidecar.get_json("/readyz")
        digest = configmap["metadata"]["annotations"]["pilotfish.dev/routes-digest"]
        assert info["digest"] == digest

        # how far a change got: the operator reads each running sidecar's digest
        _running_injected_pod(crds_applied, namespace)
        await asyncio.to_thread(
            wait_for, lambda: _propagation(crds_applied, namespace).get("current") == 1, what="one current sidecar"
        )
        crds_applied.kubectl(
            "patch",
            "-n",
            namespace,
            "mc",
            "workhorse",
            "--type=merge",
            "-p",
            '{"spec": {"timeouts": {"totalSeconds": 11}}}',
        )
        stale = await asyncio.to_thread(
            wait_for, lambda: (p := _propagation(crds_applied, namespace)).get("stale") == 1 and p, what="stale"
        )
        assert stale == {"sidecars": 1, "current": 0, "stale": 1, "unreachable": 0}
        updated = _get(crds_applied, namespace, "configmap", "pilotfish-routes")
        assert updated is not None
        kubelet_write(config_dir, updated["data"], 2)  # what the kubelet does a minute later
        await asyncio.to_thread(
            wait_for, lambda: _propagation(crds_applied, namespace).get("current") == 1, what="current again"
        )
        new_digest = updated["metadata"]["annotations"]["pilotfish.dev/routes-digest"]
        assert f'pilotfish_operator_sidecars{{digest="{new_digest}",namespace="{namespace}"}} 1.0' in operator.metrics()

        # primary's key is revoked: the sidecar fails over, and the operator's sweep puts it on the credential
        await asyncio.to_thread(
            wait_for,
            lambda: _rejected(crds_applied, namespace, "primary").get("status") == "False",
            what="CredentialRejected False while the key is accepted",
        )
        mocks["primary"].set_fault(mode="status", status=401)
        served = await client.chat.completions.with_raw_response.create(model="workhorse", messages=messages)
        assert served.headers["x-pilotfish-member"] == "claude/claude-sonnet-4-5"
        rejected = await asyncio.to_thread(
            wait_for,
            lambda: (c := _rejected(crds_applied, namespace, "primary")).get("status") == "True" and c,
            what="CredentialRejected on ProviderCredential primary",
        )
        assert rejected["reason"] == "InvalidKey" and rejected["lastTransitionTime"]
        assert KEYS["primary"] not in json.dumps(_get(crds_applied, namespace, "providercredential", "primary"))
        assert _rejected(crds_applied, namespace, "claude")["status"] == "False"
    finally:
        if sidecar is not None:
            await stop_sidecar(sidecar)
        for mock in mocks.values():
            await mock.stop()


LEARNING_CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: gpt-5-mini}
    - {credentialRef: gemini, model: gemini-2.5-pro}
    - {credentialRef: claude, model: claude-sonnet-4-5}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 5, totalSeconds: 20}
"""


def _class_events(plane: Any, namespace: str, reason: str) -> list[dict[str, Any]]:
    """The Events with this reason on ModelClass workhorse."""
    events = _get(plane, namespace, "events", "--field-selector", f"reason={reason}") or {"items": []}
    return [e for e in events["items"] if e["involvedObject"].get("kind") == "ModelClass"]


async def test_a_member_a_sidecar_learns_unable_to_continue_shows_on_its_model_class_until_no_sidecar_reports_it(
    crds_applied, namespace, tmp_path, operator
):
    mocks = {
        "primary": await runner.start_mock(name="primary", api_key=KEYS["primary"]),
        "gemini": await runner.start_mock(name="gemini", api_key=KEYS["gemini"], provider="gemini"),
        "claude": await runner.start_mock(name="claude", api_key=KEYS["claude"], provider="anthropic"),
    }
    sidecar = None
    admin = f"127.0.0.1:{operator.sidecar_admin_port}"
    try:
        crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifests_for(mocks, LEARNING_CLASS))
        _, args = _operator_output(crds_applied, namespace, tmp_path)
        sidecar = await start_sidecar(args, admin=admin)
        _running_injected_pod(crds_applied, namespace)
        await asyncio.to_thread(
            wait_for,
            lambda: _prefill_mismatch(crds_applied, namespace).get("status") == "False",
            timeout=60,
            what="PrefillMismatch False while every member behaves as declared",
        )

        # Gemini is declared able to continue (its provider's default) but this model rejects the prefill
        mocks["primary"].set_fault(mode="cut", after_chunks=4)
        mocks["gemini"].set_fault(mode="no-prefill")
        received = await streamed(sidecar)
        assert (received.text, received.error) == (answers.ANSWER.format(name="primary"), None)
        mismatch = await asyncio.to_thread(
            wait_for,
            lambda: (c := _prefill_mismatch(crds_applied, namespace)).get("status") == "True" and c,
            timeout=60,
            what="PrefillMismatch on ModelClass workhorse",
        )
        assert mismatch["reason"] == "PrefillRejected" and mismatch["lastTransitionTime"]
        assert "gemini/gemini-2.5-pro rejected the prefill" in mismatch["message"]
        assert "primary/" not in mismatch["message"] and "claude/" not in mismatch["message"]
        warned = await asyncio.to_thread(
            wait_for, lambda: _class_events(crds_applied, namespace, "PrefillRejected"), what="a PrefillRejected Event"
        )
        assert warned[0]["type"] == "Warning" and "gemini/gemini-2.5-pro" in warned[0]["message"]

        # a sidecar that has not learned it (a restart forgets): no running sidecar reports it any more
        await stop_sidecar(sidecar)
        sidecar = await start_sidecar(args, admin=admin)
        cleared = await asyncio.to_thread(
            wait_for,
            lambda: (c := _prefill_mismatch(crds_applied, namespace)).get("status") == "False" and c,
            timeout=60,
            what="PrefillMismatch False once no sidecar reports the member",
        )
        assert cleared["reason"] == "AsDeclared"
    finally:
        crds_applied.kubectl("delete", "-n", namespace, "pod", "app", "--wait=false", check=False)
        if sidecar is not None:
            await stop_sidecar(sidecar)
        for mock in mocks.values():
            await mock.stop()

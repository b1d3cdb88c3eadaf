"""The whole loop: manifests → operator → ConfigMap and Secret, mounted as the kubelet mounts them → a sidecar
process that serves from a mock provider and fails over to another vendor when it goes down."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tests.integration.conftest import KEYS, manifests_for, start_sidecar, stop_sidecar
from tests.kube.conftest import wait_for
from tests.mounts import kubelet_write

from pilotfish.mocks import runner

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
        configmap = wait_for(
            lambda: (
                (cm := _get(crds_applied, namespace, "configmap", "pilotfish-routes"))
                and "workhorse" in json.loads(cm["data"]["routes.json"])["classes"]
                and cm
            ),
            what="pilotfish-routes with workhorse",
        )
        secret = _get(crds_applied, namespace, "secret", "test-keys")
        assert secret is not None
        config_dir, secrets_dir = tmp_path / "routes", tmp_path / "secrets"
        kubelet_write(config_dir, configmap["data"], 1)
        kubelet_write(
            secrets_dir / "test-keys", {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}, 1
        )
        sidecar = await start_sidecar(
            ["sidecar", "--config-dir", str(config_dir), "--secrets-dir", str(secrets_dir)],
            admin=f"127.0.0.1:{operator.sidecar_admin_port}",
        )
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

        # how far a change got: the operator reads each running sidecar's digest (the pod's IP is this
        # machine's loopback, as the test control plane has no kubelet to give it a real one)
        crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=POD)
        running = '{"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}'
        crds_applied.kubectl(
            "patch", "-n", namespace, "pod", "app", "--subresource=status", "--type=merge", "-p", running
        )
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

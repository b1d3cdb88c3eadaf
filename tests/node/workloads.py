"""What the node tests run on the node: mock-provider pods, credentials and classes, and app pods that
call the injected sidecar with the official openai SDK, one JSON line per call on stdout."""

from __future__ import annotations

import json
import time
from typing import Any

from e2e.testenv import images, node
from tests.node.conftest import get_json, wait_for

MOCK_PORT = 9101
# The app: a user's program. Its first call is made the moment the container starts, so a sidecar
# that was not ready yet would make call 1 fail. Every call's outcome is one JSON line.
APP = """
import json, os, signal, sys, time
import openai
stopping = []  # SIGTERM: finish the call in flight, then exit, as a well-behaved app does
signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.time()))
client = openai.OpenAI(api_key="unused-the-sidecar-holds-the-keys", max_retries=0, timeout=60)
stream = os.environ.get("APP_STREAM") == "1"
n = 0
while not stopping:
    n += 1
    started = time.time()
    try:
        if stream:
            chunks = client.chat.completions.create(
                model="workhorse", messages=[{"role": "user", "content": "hi"}], stream=True)
            text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
            model = ""
        else:
            reply = client.chat.completions.create(model="workhorse", messages=[{"role": "user", "content": "hi"}])
            text, model = reply.choices[0].message.content, reply.model
        print(json.dumps({"n": n, "ok": True, "text": text, "model": model, "t": started}), flush=True)
    except Exception as exc:
        print(json.dumps({"n": n, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "t": started}),
              flush=True)
    if not stopping:
        time.sleep(float(os.environ.get("APP_INTERVAL", "0.5")))
print(json.dumps({"stopped": True, "sigterm": stopping[0], "t": time.time()}), flush=True)
"""


def answer_of(name: str) -> str:
    from pilotfish.mocks import answers

    return answers.ANSWER.format(name=name)


def apply(cluster: node.Node, namespace: str, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))


def start_mock(
    cluster: node.Node, namespace: str, name: str, *, fault: str | None = None, api_key: str | None = None
) -> str:
    """A mock OpenAI provider pod from the sidecar image (``api_key``: the bearer key it requires);
    returns its pod IP once it is Ready."""
    args = ["mock-provider", "--provider=openai", f"--listen=0.0.0.0:{MOCK_PORT}", f"--name={name}"]
    args += [f"--api-key={api_key}"] if api_key else []
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, "pilotfish.dev/inject": "false"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "mock",
                    "image": images.SIDECAR,
                    "imagePullPolicy": "Never",
                    "command": ["pilotfish"],
                    "args": [*args, *([f"--fault={fault}"] if fault else [])],
                    "readinessProbe": {"tcpSocket": {"port": MOCK_PORT}, "periodSeconds": 1},
                }
            ],
        },
    }
    apply(cluster, namespace, [pod])
    return str(wait_for(lambda: ready_ip(cluster, namespace, name), what=f"mock {name} Ready"))


def ready_ip(cluster: node.Node, namespace: str, pod: str) -> str | None:
    found = get_json(cluster, "pod", pod, "-n", namespace)
    if not found:
        return None
    conditions = found.get("status", {}).get("conditions") or []
    if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
        return str(found["status"]["podIP"])
    return None


def credential(name: str, ip: str, *, key_in: str | None = None) -> dict[str, Any]:
    """Keyless (the mocks take any key) unless ``key_in`` names the Secret holding key ``name``."""
    spec: dict[str, Any] = {"provider": "openai", "baseURL": f"http://{ip}:{MOCK_PORT}/v1"}
    if key_in:
        # the mock pod serves plain http inside the node's own network namespace: a key may go there
        # only with the explicit opt-in (a key never travels in plain text beyond the loopback otherwise)
        spec |= {"apiKeySecretRef": {"name": key_in, "key": name}, "allowPlainHTTP": True}
    return {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ProviderCredential",
        "metadata": {"name": name},
        "spec": spec,
    }


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def model_class(*members: str, name: str = "workhorse", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": name},
        "spec": {"members": [{"credentialRef": m, "model": f"model-{m}"} for m in members], **spec},
    }


def app_pod(name: str, *, env: dict[str, str] | None = None, grace: int = 30) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {
                    "name": "app",
                    "image": images.APP,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", APP],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ],
        },
    }


def calls(cluster: node.Node, namespace: str, pod: str, *, previous: bool = False) -> list[dict[str, Any]]:
    """The app's calls so far, from its log."""
    done = cluster.kubectl(
        "logs", "-n", namespace, pod, "-c", "app", *(["--previous"] if previous else []), check=False
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "n" in line]


def sidecar_readyz(cluster: node.Node, namespace: str, pod: str) -> dict[str, Any]:
    """The sidecar's /readyz through the API server's pod proxy (as the operator's sweep reads it)."""
    done = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:4001/proxy/readyz", check=False)
    return dict(json.loads(done.stdout)) if done.stdout.startswith("{") else {}


def seconds_since(stamp: float) -> float:
    return time.time() - stamp

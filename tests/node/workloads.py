"""What the node tests run on the node: mock-provider pods, credentials and classes, and app pods that
call the injected sidecar with the official openai SDK, one JSON line per call on stdout."""

from __future__ import annotations

import json
import time
from typing import Any

from e2e.testenv import images, node
from prometheus_client import parser
from tests.node.conftest import RELEASE, RELEASE_NAMESPACE, get_json, wait_for

MOCK_PORT = 9101
# The app: a user's program. Its first call is made the moment the container starts, so a sidecar
# that was not ready yet would make call 1 fail. Every call's outcome is one JSON line: with the HTTP
# status, the error code and the headers a user can see (the sidecar's x-pilotfish-*, Retry-After,
# Date) for non-streaming calls. APP_MODEL names the class; APP_BURST=K makes K calls back to back at
# the start of each UTC minute (from its second second, while 30 s are left) and none in between, so a
# per-minute limit is seen whole inside one window.
APP = """
import json, os, signal, sys, time
import openai
stopping = []  # SIGTERM: finish the call in flight, then exit, as a well-behaved app does
signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.time()))
client = openai.OpenAI(api_key="unused-the-sidecar-holds-the-keys", max_retries=0, timeout=60)
stream = os.environ.get("APP_STREAM") == "1"
model = os.environ.get("APP_MODEL", "workhorse")
burst = int(os.environ.get("APP_BURST", "0"))
messages = [{"role": "user", "content": "hi"}]
def seen(headers):
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-pilotfish-") or k.lower() in ("retry-after", "date")}
def call(n):
    started = time.time()
    try:
        if stream:
            chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
            text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
            outcome = {"ok": True, "text": text, "model": ""}
        else:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
            reply = raw.parse()
            outcome = {"ok": True, "text": reply.choices[0].message.content, "model": reply.model,
                       "status": raw.status_code, "headers": seen(raw.headers)}
    except openai.APIStatusError as exc:
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "status": exc.status_code,
                   "code": exc.code, "headers": seen(exc.response.headers)}
    except Exception as exc:
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    print(json.dumps({"n": n, **outcome, "t": started, "end": time.time()}), flush=True)
def pause(seconds):
    until = time.time() + seconds
    while not stopping and time.time() < until:
        time.sleep(min(0.2, max(0.0, until - time.time())))
n, burst_minute = 0, None
while not stopping:
    if burst:
        now = time.time()
        if int(now // 60) == burst_minute or not 1 <= now % 60 <= 30:
            pause(0.2)
            continue
        burst_minute = int(now // 60)
        for _ in range(burst):
            if not stopping:
                n += 1
                call(n)
        continue
    n += 1
    call(n)
    pause(float(os.environ.get("APP_INTERVAL", "0.5")))
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
    """A mock OpenAI provider pod from the sidecar image (``api_key``: the bearer key it requires; ``fault``:
    its initial fault as JSON, ``pilotfish.mocks.faults.Fault``); returns its pod IP once it is Ready."""
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


def app_pod(
    name: str,
    *,
    env: dict[str, str] | None = None,
    grace: int = 30,
    labels: dict[str, str] | None = None,
    hosts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``hosts``: the pod's ``hostAliases`` (its /etc/hosts, which the injected sidecar shares)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            **({"hostAliases": hosts} if hosts else {}),
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


def operator_hosts(cluster: node.Node) -> tuple[str, list[dict[str, Any]]]:
    """A Ready operator pod, and the host alias that gives an app pod (and so its sidecar) the operator
    Service's DNS name at that pod's address: this node has no cluster DNS and no kube-proxy. The name
    is the one in the injected allowance URL and in the operator's certificate, so TLS is checked as in
    any cluster; only the name-to-address step differs."""

    def ready() -> tuple[str, str] | None:
        pods = get_json(cluster, "pods", "-n", RELEASE_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")
        for pod in (pods or {}).get("items", []):
            conditions = pod["status"].get("conditions") or []
            if not pod["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conditions
            ):
                return pod["metadata"]["name"], pod["status"]["podIP"]
        return None

    name, ip = wait_for(ready, what="a Ready operator pod")
    return name, [{"ip": ip, "hostnames": [f"{RELEASE}-operator.{RELEASE_NAMESPACE}.svc"]}]


def pod_metric(cluster: node.Node, namespace: str, pod_port: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` carrying ``labels`` on a pod's /metrics (``pod_port``:
    ``pod:port``), read through the API server's pod proxy."""
    done = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod_port}/proxy/metrics")
    return sum(
        sample.value
        for family in parser.text_string_to_metric_families(done.stdout)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def mock_stats(cluster: node.Node, namespace: str, pod: str) -> dict[str, Any]:
    """A mock provider pod's ``GET /_mock/stats`` (requests served, by fault mode) through the pod proxy."""
    done = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:{MOCK_PORT}/proxy/_mock/stats")
    return dict(json.loads(done.stdout))


def sidecar_readyz(cluster: node.Node, namespace: str, pod: str) -> dict[str, Any]:
    """The sidecar's /readyz through the API server's pod proxy (as the operator's sweep reads it)."""
    done = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:4001/proxy/readyz", check=False)
    return dict(json.loads(done.stdout)) if done.stdout.startswith("{") else {}


def seconds_since(stamp: float) -> float:
    return time.time() - stamp

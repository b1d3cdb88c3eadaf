"""Pod and release lifecycles on the real node: deletion under streaming traffic, the memory limit under
load, `helm upgrade` without dropping admission, `helm uninstall` leaving nothing behind."""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import threading
import time

from e2e.testenv import hoststate, images, node
from tests.node import workloads
from tests.node.conftest import CHART, RELEASE, RELEASE_NAMESPACE, get_json, wait_for

LOAD = """
import concurrent.futures, json, os, time
import openai
client = openai.OpenAI(api_key="unused", max_retries=0, timeout=60)
def one(i):
    try:
        chunks = client.chat.completions.create(model="workhorse", messages=[{"role": "user", "content": "x" * 20000}],
                                                stream=True)
        return "ok" if "".join((c.choices[0].delta.content or "") for c in chunks if c.choices) else "empty"
    except Exception as exc:
        return type(exc).__name__
with concurrent.futures.ThreadPoolExecutor(int(os.environ["THREADS"])) as pool:
    outcomes = list(pool.map(one, range(int(os.environ["REQUESTS"]))))
print(json.dumps({"n": 1, "ok": True, "outcomes": {o: outcomes.count(o) for o in set(outcomes)}}), flush=True)
time.sleep(3600)
"""


def test_deleting_a_pod_under_streaming_traffic_stops_the_app_first_and_cuts_no_stream(
    release: node.Node, app_namespace: str
):
    ip = workloads.start_mock(release, app_namespace, "slow", fault='{"mode": "latency", "delay": 2}')
    workloads.apply(release, app_namespace, [workloads.credential("slow", ip), workloads.model_class("slow")])
    wait_for(lambda: get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace), what="routes ConfigMap")
    pod = workloads.app_pod("app", env={"APP_STREAM": "1", "APP_INTERVAL": "0"})
    workloads.apply(release, app_namespace, [pod])
    wait_for(lambda: workloads.ready_ip(release, app_namespace, "app"), what="app pod Ready", timeout=180)
    wait_for(lambda: len(workloads.calls(release, app_namespace, "app")) >= 2, what="streaming traffic", timeout=60)
    app_lines, sidecar_lines, gone = delete_observed(release, app_namespace, "app")
    stopped = [line for _, line in app_lines if line.get("stopped")]
    calls = [line for _, line in app_lines if "n" in line]
    assert stopped, f"the app never saw SIGTERM: {app_lines[-20:]}"
    assert calls and all(call["ok"] for call in calls), [call for call in calls if not call["ok"]]
    # The app got SIGTERM first (a native sidecar is stopped only after the app containers exit) and
    # its stream under way then still completed through the sidecar: nothing was cut.
    in_flight = [call for call in calls if call["t"] < stopped[0]["sigterm"]][-1]
    assert in_flight["text"] == workloads.answer_of("slow")
    # The order, as the node's container runtime recorded it (its log timestamps): the app's last line
    # (written as it exits) before the sidecar's SIGTERM ("stopping"), then the sidecar's drain ending
    # in "stopped", written as serve() returns: it exited on its own, not killed at the grace period's end.
    app_exit = next(stamp for stamp, line in app_lines if line.get("stopped"))
    drain = {line["msg"]: stamp for stamp, line in sidecar_lines if line.get("msg") in ("stopping", "stopped")}
    assert set(drain) == {"stopping", "stopped"}, sidecar_lines[-5:]
    assert app_exit < drain["stopping"] <= drain["stopped"], (app_exit, drain)
    drained = stopped[0]["t"] - stopped[0]["sigterm"]
    print(
        f"\nFIGURE deletion under streaming traffic: the stream in flight at SIGTERM finished {drained:.1f}s later, "
        f"uncut; the sidecar got SIGTERM {drain['stopping'] - app_exit:.2f}s after the app exited and drained in "
        f"{drain['stopped'] - drain['stopping']:.2f}s; pod gone {gone:.1f}s after kubectl delete"
    )


def delete_observed(release: node.Node, namespace: str, pod: str) -> tuple[list, list, float]:
    """``kubectl delete pod`` while following both containers' logs (with the runtime's timestamps): the
    app's and the sidecar's stamped lines, and the seconds until the pod was gone."""
    logs = ("logs", "-f", "--timestamps", "-n", namespace, pod, "-c")
    app, sidecar = Follower(release, *logs, "app"), Follower(release, *logs, "pilotfish")
    wait_for(lambda: app.lines and sidecar.lines, what="both log followers attached")
    deleted = time.monotonic()
    release.kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")
    wait_for(lambda: get_json(release, "pod", pod, "-n", namespace) is None, what="the pod to be gone", every=0.2)
    gone = time.monotonic() - deleted
    app_lines, sidecar_lines = stamped_lines(app.output()), stamped_lines(sidecar.output())
    return app_lines, sidecar_lines, gone


class Follower:
    """``kubectl logs -f``, its output collected line by line as it comes (read before the container ends)."""

    def __init__(self, cluster: node.Node, *args: str) -> None:
        self.process = background(cluster, cluster.bins.kubectl, *args)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        """Everything it printed, once it ends (a log follower ends with its container)."""
        self.process.wait(timeout=60)
        self._reader.join(timeout=30)
        return "\n".join(self.lines)


def stamped_lines(output: str) -> list[tuple[float, dict]]:
    """``kubectl logs --timestamps`` output: (the runtime's timestamp, the JSON line) for each JSON line."""
    found = []
    for line in output.splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("{"):
            found.append((log_time(stamp), json.loads(text)))
    return found


def log_time(stamp: str) -> float:
    """An RFC 3339 timestamp with up to nanoseconds (the CRI log's) as seconds since the epoch."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    return seconds + int(fraction.ljust(9, "0")[:9]) / 1e9


def test_the_sidecar_stays_inside_its_memory_limit_under_load(release: node.Node, app_namespace: str):
    ip = workloads.start_mock(release, app_namespace, "bulk")
    workloads.apply(release, app_namespace, [workloads.credential("bulk", ip), workloads.model_class("bulk")])
    wait_for(lambda: get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace), what="routes ConfigMap")
    pod = workloads.app_pod("load", env={"THREADS": "32", "REQUESTS": "600"})
    pod["spec"]["containers"][0]["command"] = ["python", "-c", LOAD]
    workloads.apply(release, app_namespace, [pod])
    result = wait_for(
        lambda: workloads.calls(release, app_namespace, "load"), what="the load to finish", timeout=600, every=2
    )[0]
    found = get_json(release, "pod", "load", "-n", app_namespace)
    assert found is not None
    sidecar = next(s for s in found["status"]["initContainerStatuses"] if s["name"] == "pilotfish")
    assert sidecar["restartCount"] == 0 and "lastState" not in json.dumps(sidecar.get("lastState") or {})
    assert result["outcomes"] == {"ok": 600}, result
    peak = sidecar_peak_memory(found)
    print(f"\nFIGURE sidecar memory under 32 concurrent streams x 600 (20 kB prompts): peak {peak / 2**20:.0f} MiB")


def background(cluster: node.Node, binary: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    """kubectl or helm running beside the test (a log follower, an upgrade under way)."""
    return subprocess.Popen(
        [str(binary), *args], env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def sidecar_peak_memory(pod: dict) -> int:
    """The sidecar container's peak memory, from its cgroup (v1 memory controller) on the host."""
    uid = pod["metadata"]["uid"].replace("-", "_")
    container = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "pilotfish")
    cid = container["containerID"].split("//")[1]
    base = pathlib.Path("/sys/fs/cgroup/memory") / hoststate.CGROUP_ROOT / "kubepods"
    for path in base.rglob(f"{cid}/memory.max_usage_in_bytes"):
        return int(path.read_text())
    raise AssertionError(f"no cgroup for container {cid} of pod {uid} under {base}")


def test_helm_upgrade_rolls_the_operator_without_dropping_admission_and_uninstall_leaves_nothing(
    release: node.Node, app_namespace: str, tmp_path: pathlib.Path
):
    before = {p["metadata"]["name"] for p in get_json(release, "pods", "-n", RELEASE_NAMESPACE)["items"]}
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps({"operator": {"podAnnotations": {"test/upgraded": str(time.time())}}}))
    upgrade = background(
        release,
        release.bins.helm,
        *("upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--reuse-values", "-f", str(values), "--wait"),
    )
    admitted = 0
    while upgrade.poll() is None:
        # --dry-run=server: admission (the webhook included) runs, nothing is stored, no pod piles up
        probe = release.kubectl(
            *("run", f"probe-{admitted}", "-n", app_namespace, f"--image={images.APP}", "--restart=Never"),
            *("--dry-run=server", "-o", "json", "--command", "--", "true"),
        )
        injected = json.loads(probe.stdout)
        assert injected["spec"]["initContainers"][0]["name"] == "pilotfish"
        admitted += 1
    assert upgrade.returncode == 0, upgrade.communicate()[0]
    assert admitted > 0

    def rolled() -> bool:
        after = {p["metadata"]["name"] for p in get_json(release, "pods", "-n", RELEASE_NAMESPACE)["items"]}
        return len(after) == 2 and not (before & after)

    wait_for(rolled, what="both operator pods replaced")

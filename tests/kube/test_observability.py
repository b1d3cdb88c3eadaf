"""The chart's dashboards and alerts, proven against a real Prometheus scraping real sidecars and the operator.

Every panel query and every alert expression must return data once the faults they are about have
happened, the alerts must stay quiet while everything is healthy, and no query may name a metric
the code does not export.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from typing import Any

import aiohttp
import yaml
from tests import prometheus
from tests.integration.conftest import KEYS, manifests_for, start_sidecar, stop_sidecar
from tests.kube.budget_fleet import token_file
from tests.kube.conftest import ROOT, RunningOperator
from tests.mounts import kubelet_write

from pilotfish.api import budget, manifests
from pilotfish.mocks import runner
from pilotfish.routes import render
from pilotfish.telemetry import metrics as sidecar_metrics
from pilotfish_operator import metrics as operator_metrics

DASHBOARDS = sorted((ROOT / "charts" / "pilotfish" / "files" / "dashboards").glob("*.json"))
ALERTS = ROOT / "charts" / "pilotfish" / "files" / "alerts.yaml"
CLASSES = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: gpt-5-mini, pricing: {inputPerMillionTokens: 0.25, outputPerMillionTokens: 2.0}}
    - {credentialRef: claude, model: claude-sonnet-4-5, pricing: {inputPerMillionTokens: 3.0, outputPerMillionTokens: 15.0}}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 2, totalSeconds: 10}
  health: {failureThreshold: 2, cooldownSeconds: 60}
  canary:
    member: {credentialRef: gemini, model: gemini-2.5-flash}
    steps: [{setWeight: 30}]
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: doomed}
spec:
  members:
    - {credentialRef: backup, model: model-b}
    - {credentialRef: third, model: model-c}
  routing: {maxAttempts: 2, retryBudgetPercent: 0}
  health: {failureThreshold: 100, cooldownSeconds: 1}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: metered}
spec:
  members: [{credentialRef: gemini, model: gemini-2.5-flash}]
"""


def panel_queries() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            found += [(f"{path.name}: {panel['title']}", target["expr"]) for target in panel["targets"]]
    return found


def alert_rules() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def concrete(expr: str) -> str:
    """Grafana's variables as the dashboard's "All" selection and a short test window would set them."""
    return expr.replace("$namespace", ".*").replace("$class", ".*").replace("$__rate_interval", "1m")


def exported_metric_names() -> set[str]:
    """Every series name the code can expose, labelled children or not."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for registry in (sidecar_metrics.Metrics().registry, operator_metrics.REGISTRY):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def test_every_metric_a_dashboard_or_alert_names_is_exported_by_the_code():
    exported = exported_metric_names()
    named = {m for _, expr in panel_queries() for m in re.findall(r"\bpilotfish_[a-z_]+", expr)}
    named |= {m for expr in alert_rules().values() for m in re.findall(r"\bpilotfish_[a-z_]+", expr)}
    assert named, "no queries found"
    assert sorted(named - exported) == []


def test_promtool_accepts_the_alert_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian's prometheus package; `make test` installs it)"
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


async def _traffic(api: str, seconds: float, *, doomed: bool = True) -> int:
    """Requests for ``seconds`` (a quarter of them for the class that always fails, if ``doomed``); how many."""

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        body = {
            "model": "doomed" if doomed and n % 4 == 3 else "workhorse",
            "stream": n % 2 == 0,
            "stream_options": {"include_usage": True} if n % 2 == 0 else None,
            "messages": [{"role": "user", "content": f"hello {n}"}],
        }
        body = {k: v for k, v in body.items() if v is not None}
        async with session.post(api + "/v1/chat/completions", json=body) as response:
            await response.read()

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        n = 0
        while time.monotonic() < deadline:
            await asyncio.gather(*(one(session, n + i) for i in range(4)))
            n += 4
    return n


async def _until_refused(api: str, model: str) -> None:
    """Requests for ``model`` until its Budget refuses one (once the sidecar has loaded the Budget)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            async with session.post(api + "/v1/chat/completions", json=body) as response:
                await response.read()
                if response.status == 429:
                    return
    raise AssertionError(f"no request for {model} was refused by its Budget")


def _requests_scraped(prom: prometheus.Prometheus, *, pod: str) -> float:
    samples = prom.query(f'sum(pilotfish_requests_total{{pod="{pod}"}})')
    return float(samples[0]["value"][1]) if samples else 0.0


async def _eventually(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what}: still nothing after {timeout}s"
            return value
        await asyncio.sleep(0.5)


async def test_every_panel_and_alert_returns_data_and_alerts_fire_only_on_their_faults(
    crds_applied, namespace, operator: RunningOperator, tmp_path
):
    mocks = {name: await runner.start_mock(name=name, api_key=KEYS[name]) for name in ("primary", "backup", "third")}
    mocks["claude"] = await runner.start_mock(name="claude", api_key=KEYS["claude"], provider="anthropic")
    mocks["gemini"] = await runner.start_mock(name="gemini", api_key=KEYS["gemini"], provider="gemini")
    text = manifests_for(mocks, CLASSES)
    broken = tmp_path / "broken" / "all.yaml"
    broken.parent.mkdir()
    broken.write_text(text)
    # the app's sidecar serves what the operator would write mid-rollout: workhorse's canary at 30%
    parsed = manifests.parse_text(text, source="test", namespace="team-a")
    rendered = render.render(
        namespace="team-a", classes=parsed.classes, credentials=parsed.credentials, canary_weights={"workhorse": 30}
    )
    kubelet_write(tmp_path / "routes", {"routes.json": rendered.document.to_json().decode()}, 1)
    kubelet_write(tmp_path / "secrets" / "test-keys", dict(KEYS), 1)
    assert crds_applied.pki is not None
    budget_flags = [  # the app's Budget allowances come from the operator, as its namespace's ServiceAccount
        *("--budget-url", operator.webhook_url, "--budget-ca-file", str(crds_applied.pki.ca_cert)),
        *("--budget-token-file", str(token_file(crds_applied, namespace, tmp_path)), "--namespace", namespace),
    ]
    app = await start_sidecar(
        ["sidecar", "--config-dir", str(tmp_path / "routes"), "--secrets-dir", str(tmp_path / "secrets"), *budget_flags]
    )
    other = await start_sidecar(["local", "-f", str(broken.parent)])
    sidecars = [app, other]
    try:
        targets = {
            "pilotfish-sidecars": [
                (app.admin.removeprefix("http://"), {"namespace": "team-a", "pod": "chat-1"}),
                (other.admin.removeprefix("http://"), {"namespace": "team-a", "pod": "chat-2"}),
            ],
            "pilotfish-operator": [(operator.metrics_url.removeprefix("http://"), {"namespace": "pilotfish-system"})],
        }
        with prometheus.running(tmp_path, targets, [ALERTS]) as prom:
            await _eventually(lambda: prom.targets_up() == 3, "every target scraped")

            # healthy: every member answers and traffic flows; once Prometheus has scraped all of it, no alert's
            # condition holds, not a single one
            sent = await _traffic(app.api, 3, doomed=False)
            await _eventually(
                lambda: _requests_scraped(prom, pod="chat-1") >= sent, f"the {sent} healthy requests scraped"
            )
            for name, expr in sorted(alert_rules().items()):
                assert prom.query(expr) == [], f"{name} fires while its fault is absent"

            # the faults: primary overloaded (circuit opens, failovers), backup's key revoked and third failing
            # (the doomed class fails on every member), a config broken, a pod missing injection
            mocks["third"].set_fault(mode="status", status=500)
            mocks["primary"].set_fault(mode="status", status=503)
            mocks["backup"].set_fault(mode="status", status=401)
            broken.write_text(
                "apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: x}\nspec: {members: []}\n"
            )
            # and a team Budget spent: 5 requests a minute for the class metered (its own traffic, below)
            team = "apiVersion: pilotfish.dev/v1alpha1\nkind: Budget\nmetadata: {name: team}\n"
            team += "spec: {requestsPerMinute: 5, classes: [metered]}\n"
            crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=team)
            with_budget = render.render(
                namespace="team-a",
                classes=parsed.classes,
                credentials=parsed.credentials,
                canary_weights={"workhorse": 30},
                budgets=[budget.Budget.model_validate(yaml.safe_load(team))],
            )
            kubelet_write(tmp_path / "routes", {"routes.json": with_budget.document.to_json().decode()}, 2)
            crds_applied.kubectl("label", "namespace", namespace, "pilotfish.dev/injection=enabled")
            crds_applied.kubectl(
                "run", "-n", namespace, "uninjected", "--image=registry.example/app:1", "--restart=Never"
            )
            await _traffic(app.api, 5)
            await _until_refused(app.api, "metered")

            for title, expr in panel_queries():
                await _eventually(lambda e=expr: prom.query(concrete(e)), f"panel {title!r} ({expr})")
            for name, expr in alert_rules().items():
                await _eventually(lambda e=expr: prom.query(e), f"alert {name} ({expr})")

            down = prom.query(alert_rules()["PilotfishMemberDown"])
            assert {s["metric"]["member"] for s in down} >= {"primary/gpt-5-mini"}
            failing = prom.query(alert_rules()["PilotfishClassFailing"])
            assert {s["metric"]["class"] for s in failing} == {"doomed"}
            revoked = prom.query(alert_rules()["PilotfishCredentialRejected"])
            assert {(s["metric"]["credential"], s["metric"]["reason"]) for s in revoked} == {("backup", "invalid_key")}
            spent = prom.query(alert_rules()["PilotfishBudgetSpent"])  # the Budget's own namespace, honoured
            assert (namespace, "team", "requests") in {
                (s["metric"]["namespace"], s["metric"]["budget"], s["metric"]["limit"]) for s in spent
            }
            rejected = prom.query(alert_rules()["PilotfishConfigRejected"])
            assert {s["metric"]["pod"] for s in rejected} == {"chat-2"}
            # Prometheus' own rule evaluation agrees: the alerts are pending (their `for` has not run out)
            await _eventually(
                lambda: (
                    {"PilotfishMemberDown", "PilotfishClassFailing"}
                    <= {s["metric"]["alertname"] for s in prom.query("ALERTS")}
                ),
                "ALERTS series for the firing rules",
            )
    finally:
        for sidecar in sidecars:
            await stop_sidecar(sidecar)
        for mock in mocks.values():
            await mock.stop()

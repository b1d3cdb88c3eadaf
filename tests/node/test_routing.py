"""Routing beyond resilience on a real node (issue 12), as a user sees it: a Budget and a member quota
enforced through the operator's allowance endpoint, reached by the injected sidecar with its pod's
projected ServiceAccount token and the CA the injector gave it; tiers chosen by the calling pod's labels,
which only a real pod's downward API gives the sidecar; an open circuit found closed again by a probe.

The app pods call with the openai SDK and print each call's status, error code and headers. The
per-minute tests make their calls in a burst at the start of each UTC minute (``APP_BURST``), so a
window is judged whole: no assertion depends on where a minute boundary falls.
"""

from __future__ import annotations

import collections
import json
import re
from typing import Any

from e2e.testenv import node
from tests.node import workloads
from tests.node.conftest import OPERATOR_PORT, RELEASE_NAMESPACE, get_json, wait_for

LIMIT = 3  # requests per minute, for the Budget and the member quota
BURST = LIMIT + 2  # the app's calls at the start of each minute: the limit, then two past it
ALLOWANCE = "pilotfish_operator_allowance_requests_total"
METRICS_PORT = 8080  # the operator pod's metrics port (the chart's containerPort)
SIDECAR_ADMIN_PORT = 4001  # the injected sidecar's /metrics (the chart's sidecar.adminPort)


def windows(calls: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The app's calls by the UTC minute they were made in; a call that ended in another minute (it
    could have been counted in either) is left out, and with it the burst it belongs to."""
    by_minute: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    straddled = set()
    for call in calls:
        minute = int(call["t"] // 60)
        by_minute[minute].append(call)
        if int(call["end"] // 60) != minute:
            straddled.add(minute)
    return {minute: found for minute, found in by_minute.items() if minute not in straddled}


def whole_bursts(cluster: node.Node, namespace: str, pod: str, count: int) -> list[list[dict[str, Any]]]:
    """The first ``count`` bursts of ``BURST`` calls, each made and answered inside one minute."""

    def bursts() -> list[list[dict[str, Any]]] | None:
        whole = [found for _, found in sorted(windows(workloads.calls(cluster, namespace, pod)).items())]
        whole = [found for found in whole if len(found) == BURST]
        return whole[:count] if len(whole) >= count else None

    found = wait_for(bursts, what=f"{count} whole bursts of the app's calls", timeout=60 * (count + 2), every=2)
    return list(found)


def ready_routes(cluster: node.Node, namespace: str, kind: str, name: str) -> None:
    def ready() -> bool:
        found = get_json(cluster, kind, name, "-n", namespace) or {}
        conditions = found.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(ready, what=f"{kind} {name} Ready")
    wait_for(lambda: get_json(cluster, "configmap", "pilotfish-routes", "-n", namespace), what="routes ConfigMap")


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pilotfish.dev/v1alpha1", "kind": "Budget", "metadata": {"name": name}, "spec": spec}


def printed(cluster: node.Node, namespace: str, kind: str, name: str) -> dict[str, str]:
    """``kubectl get KIND NAME`` as the user reads it: column header -> value."""
    header, row = cluster.kubectl("get", kind, name, "-n", namespace).stdout.splitlines()[:2]
    starts = [match.start() for match in re.finditer(r"\S+", header)]  # aligned columns; a value may be blank
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def operator_allowances(cluster: node.Node, operator: str) -> dict[str, float]:
    pod_port = f"{operator}:{METRICS_PORT}"
    return {
        result: workloads.pod_metric(cluster, RELEASE_NAMESPACE, pod_port, ALLOWANCE, result=result)
        for result in ("granted", "unauthenticated", "forbidden", "invalid")
    }


def sidecar_metric(cluster: node.Node, namespace: str, pod: str, name: str, **labels: str) -> float:
    return workloads.pod_metric(cluster, namespace, f"{pod}:{SIDECAR_ADMIN_PORT}", name, **labels)


def serve_workhorse_under_a_reject_budget(cluster: node.Node, namespace: str) -> None:
    """Class ``workhorse`` on one mock, and Budget ``team`` refusing past ``LIMIT`` calls a minute; its routes
    rendered before the app pod starts."""
    ip = workloads.start_mock(cluster, namespace, "primary")
    workloads.apply(
        cluster,
        namespace,
        [
            workloads.credential("primary", ip),
            workloads.model_class("primary"),
            budget("team", classes=["workhorse"], requestsPerMinute=LIMIT, action="reject"),
        ],
    )
    ready_routes(cluster, namespace, "modelclass", "workhorse")


def test_a_budget_of_three_requests_a_minute_serves_three_calls_then_429_with_retry_after_through_the_operator(
    release: node.Node, app_namespace: str
):
    serve_workhorse_under_a_reject_budget(release, app_namespace)
    operator, hosts = workloads.operator_hosts(release)
    before = operator_allowances(release, operator)
    app = workloads.app_pod("app", env={"APP_BURST": str(BURST)}, hosts=hosts)
    workloads.apply(release, app_namespace, [app])
    found = get_json(release, "pod", "app", "-n", app_namespace) or {}
    sidecar = found["spec"]["initContainers"][0]
    mounts = {m["mountPath"] for m in sidecar["volumeMounts"]}
    assert "/var/run/secrets/pilotfish" in mounts  # the projected token, audience pilotfish
    assert f"https://pilotfish-operator.{RELEASE_NAMESPACE}.svc:{OPERATOR_PORT}" in sidecar["args"]
    assert any(e["name"] == "PILOTFISH_BUDGET_CA_PEM" and "BEGIN CERTIFICATE" in e["value"] for e in sidecar["env"])

    bursts = whole_bursts(release, app_namespace, "app", 2)
    for calls in bursts:
        outcomes = [(c["n"], c.get("status"), c.get("code")) for c in calls]
        print(f"\nFIGURE budget burst at {calls[0]['t'] % 60:.1f}s into its minute: {outcomes}")
        served, refused = calls[:LIMIT], calls[LIMIT:]
        assert all(c["ok"] and c["text"] == workloads.answer_of("primary") for c in served), outcomes
        assert all((c.get("status"), c.get("code")) == (429, "budget_exceeded") for c in refused), outcomes
        for call in refused:
            retry_after = float(call["headers"]["retry-after"])
            left = 60 - call["t"] % 60  # seconds left in the window when the call was made
            assert 0 < retry_after <= left + 1, (retry_after, left)
            assert call["headers"].get("x-pilotfish-budget") == "team"
        first_refused = refused[0]
        print(
            f"FIGURE call {first_refused['n']} refused {first_refused['end'] - calls[0]['t']:.2f}s after the burst "
            f"began, Retry-After {first_refused['headers']['retry-after']}"
        )

    # the sidecar reached the operator: no request was admitted on the fail-open allowance
    assert (
        sidecar_metric(release, app_namespace, "app", "pilotfish_budget_decisions_total", decision="failed_open") == 0
    )
    assert sidecar_metric(release, app_namespace, "app", "pilotfish_budget_decisions_total", decision="rejected") >= 4
    after = operator_allowances(release, operator)
    print(f"FIGURE operator {operator} allowance calls before/after: {before} / {after}")
    assert after["granted"] > before["granted"]
    assert {k: after[k] - before[k] for k in ("unauthenticated", "forbidden", "invalid")} == {
        "unauthenticated": 0,
        "forbidden": 0,
        "invalid": 0,
    }
    columns = wait_for(
        lambda: (row := printed(release, app_namespace, "budget", "team"))["REQUESTS"] == str(LIMIT) and row,
        what="kubectl get budget to show the minute's requests spent",
    )
    assert columns["RPM"] == str(LIMIT) and columns["USED%"] == "100", columns
    reasons = wait_for(
        lambda: (
            {"BudgetNearlySpent", "BudgetSpent"} <= set(budget_events(release, app_namespace, "team"))
            and budget_events(release, app_namespace, "team")
        ),
        what="the Budget's 80% and 100% Events",
    )
    print(f"FIGURE kubectl get budget: {columns}; events: {reasons}")


def budget_events(cluster: node.Node, namespace: str, name: str) -> list[str]:
    """The reasons of the Events on a Budget, as ``kubectl get events`` lists them."""
    found = get_json(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}") or {}
    return [event["reason"] for event in found.get("items", []) if event["involvedObject"]["kind"] == "Budget"]


def test_a_budget_with_action_downgrade_sends_the_calls_past_its_limit_to_the_cheaper_class(
    release: node.Node, app_namespace: str
):
    ips = {name: workloads.start_mock(release, app_namespace, name) for name in ("primary", "cheap")}
    workloads.apply(
        release,
        app_namespace,
        [
            *(workloads.credential(name, ip) for name, ip in ips.items()),
            workloads.model_class("primary"),
            workloads.model_class("cheap", name="cheap"),
            budget("team", classes=["workhorse"], requestsPerMinute=LIMIT, action="downgrade", downgradeTo="cheap"),
        ],
    )
    ready_routes(release, app_namespace, "modelclass", "workhorse")
    _, hosts = workloads.operator_hosts(release)
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_BURST": str(BURST)}, hosts=hosts)])
    for calls in whole_bursts(release, app_namespace, "app", 2):
        answers = [
            (c["n"], c.get("text", c.get("error"))[:18], c.get("headers", {}).get("x-pilotfish-downgraded-to"))
            for c in calls
        ]
        print(f"\nFIGURE downgrade burst at {calls[0]['t'] % 60:.1f}s into its minute: {answers}")
        assert all(c["ok"] for c in calls), answers
        assert [c["text"] for c in calls[:LIMIT]] == [workloads.answer_of("primary")] * LIMIT, answers
        for call in calls[LIMIT:]:
            assert call["text"] == workloads.answer_of("cheap"), answers
            assert call["headers"].get("x-pilotfish-downgraded-to") == "cheap", answers
            assert call["headers"].get("x-pilotfish-budget") == "team", answers
            assert call["headers"].get("x-pilotfish-class") == "workhorse", answers  # the class asked for


def test_a_pod_that_cannot_reach_the_operator_fails_open_by_one_grant_a_minute_and_no_more(
    release: node.Node, app_namespace: str
):
    """The same Budget, but the app pod has no way to the operator's Service name (as when the operator
    or DNS is down): each minute the sidecar admits its one fail-open grant (a fiftieth of 3: one
    request), then refuses with the Budget's 429; traffic is never blocked for longer than the minute."""
    serve_workhorse_under_a_reject_budget(release, app_namespace)
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_BURST": str(BURST)})])
    for calls in whole_bursts(release, app_namespace, "app", 2):
        outcomes = [(c["n"], c.get("status"), c.get("code")) for c in calls]
        print(
            f"\nFIGURE fail-open burst at {calls[0]['t'] % 60:.1f}s into its minute: {outcomes}; the first call "
            f"answered after {calls[0]['end'] - calls[0]['t']:.2f}s"
        )
        assert calls[0]["ok"] and calls[0]["text"] == workloads.answer_of("primary"), outcomes
        assert all((c.get("status"), c.get("code")) == (429, "budget_exceeded") for c in calls[1:]), outcomes
        assert all(0 < float(c["headers"]["retry-after"]) <= 60 - c["t"] % 60 + 1 for c in calls[1:]), outcomes
    answered_before = sum(c["ok"] for c in workloads.calls(release, app_namespace, "app"))
    failed_open = sidecar_metric(
        release, app_namespace, "app", "pilotfish_budget_decisions_total", decision="failed_open"
    )
    answered_after = sum(c["ok"] for c in workloads.calls(release, app_namespace, "app"))
    assert answered_before <= failed_open <= answered_after  # every answer was a fail-open admission


def test_a_member_quota_moves_calls_to_the_next_member_before_the_provider_says_429(
    release: node.Node, app_namespace: str
):
    limited = workloads.start_mock(release, app_namespace, "limited", fault=json.dumps({"rpm": LIMIT}))
    backup = workloads.start_mock(release, app_namespace, "backup")
    workhorse = workloads.model_class("limited", "backup")
    workhorse["spec"]["members"][0]["rpm"] = LIMIT  # the provider's own quota, declared
    workloads.apply(
        release,
        app_namespace,
        [workloads.credential("limited", limited), workloads.credential("backup", backup), workhorse],
    )
    ready_routes(release, app_namespace, "modelclass", "workhorse")
    _, hosts = workloads.operator_hosts(release)
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_BURST": str(BURST)}, hosts=hosts)])

    for calls in whole_bursts(release, app_namespace, "app", 2):
        answers = [
            (c["n"], c.get("text", c.get("error")), c.get("headers", {}).get("x-pilotfish-failover-reason"))
            for c in calls
        ]
        print(f"\nFIGURE quota burst at {calls[0]['t'] % 60:.1f}s into its minute: {answers}")
        assert all(c["ok"] for c in calls), answers
        assert [c["text"] for c in calls[:LIMIT]] == [workloads.answer_of("limited")] * LIMIT, answers
        for call in calls[LIMIT:]:
            assert call["text"] == workloads.answer_of("backup"), answers
            assert call["headers"].get("x-pilotfish-failover-reason") == "quota_spent", answers
    stats = workloads.mock_stats(release, app_namespace, "limited")
    print(f"FIGURE the limited provider's own counts: {stats}")
    assert stats["byMode"].get("rate-limit", 0) == 0  # it never had to refuse one
    assert stats["requests"] >= 2 * LIMIT
    assert sidecar_metric(release, app_namespace, "app", "pilotfish_failovers_total", reason="quota_spent") >= 4
    columns = wait_for(
        lambda: (row := printed(release, app_namespace, "modelclass", "workhorse"))["QUOTA%"] == "100" and row,
        what="kubectl get modelclass to show the member's quota spent",
    )
    print(f"FIGURE kubectl get modelclass: {columns}")


def test_the_calling_pods_labels_choose_its_tier(release: node.Node, app_namespace: str):
    ips = {name: workloads.start_mock(release, app_namespace, name) for name in ("cheap", "frontier")}
    assistant = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": "assistant"},
        "spec": {
            "tiers": {
                "ladder": ["cheap", "frontier"],
                "default": "cheap",
                "rules": [{"tier": "frontier", "when": {"podLabels": {"team": "research"}}}],
            }
        },
    }
    workloads.apply(
        release,
        app_namespace,
        [
            *(workloads.credential(name, ip) for name, ip in ips.items()),
            *(workloads.model_class(name, name=name) for name in ips),
            assistant,
        ],
    )
    ready_routes(release, app_namespace, "modelclass", "assistant")
    assert printed(release, app_namespace, "modelclass", "assistant")["TIERS"] == '["cheap","frontier"]'
    env = {"APP_MODEL": "assistant", "APP_INTERVAL": "1"}
    workloads.apply(
        release,
        app_namespace,
        [
            workloads.app_pod("research", env=env, labels={"team": "research"}),
            workloads.app_pod("support", env=env, labels={"team": "support"}),
        ],
    )
    expected = {"research": ("frontier", "rules[0]"), "support": ("cheap", "default")}
    for pod, (tier, reason) in expected.items():
        calls = wait_for(
            lambda pod=pod: (found := workloads.calls(release, app_namespace, pod)) and len(found) >= 3 and found,
            what=f"three calls from {pod}",
        )
        seen = [
            (
                c["ok"],
                c.get("text"),
                c.get("headers", {}).get("x-pilotfish-tier"),
                c.get("headers", {}).get("x-pilotfish-tier-reason"),
            )
            for c in calls
        ]
        print(f"\nFIGURE pod {pod} (team={pod}): {seen[:3]}")
        assert seen == [(True, workloads.answer_of(tier), tier, reason)] * len(seen), seen


def test_a_member_back_up_is_found_by_a_probe_not_by_a_user_request(release: node.Node, app_namespace: str):
    flaky = workloads.start_mock(release, app_namespace, "flaky", fault=json.dumps({"mode": "status", "status": 503}))
    backup = workloads.start_mock(release, app_namespace, "backup")
    probed = workloads.credential("flaky", flaky)
    probed["spec"]["probe"] = {"kind": "generation", "share": 1}
    workhorse = workloads.model_class(
        "flaky", "backup", health={"failureThreshold": 1, "cooldownSeconds": 2}, routing={"maxAttempts": 2}
    )
    workloads.apply(release, app_namespace, [probed, workloads.credential("backup", backup), workhorse])
    ready_routes(release, app_namespace, "modelclass", "workhorse")
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_INTERVAL": "0.5"})])
    wait_for(lambda: workloads.ready_ip(release, app_namespace, "app"), what="app pod Ready")  # /metrics served

    def probes(result: str | None = None) -> float:
        labels = {"result": result} if result else {}
        return sidecar_metric(release, app_namespace, "app", "pilotfish_probes_total", **labels)

    wait_for(lambda: probes() - probes("success") >= 2, what="two failed probes of the member that is down")
    down = workloads.calls(release, app_namespace, "app")
    # the fault is lifted from outside, through the API server's pod proxy (PUT /_mock/fault)
    path = f"/api/v1/namespaces/{app_namespace}/pods/flaky:{workloads.MOCK_PORT}/proxy/_mock/fault"
    release.kubectl("replace", "--raw", path, "-f", "-", stdin=json.dumps({"mode": "ok"}))
    lifted = len(workloads.calls(release, app_namespace, "app"))
    wait_for(lambda: probes("success") >= 1, what="a probe to find the member back up")
    back = wait_for(
        lambda: [
            c
            for c in workloads.calls(release, app_namespace, "app")[lifted:]
            if c.get("text") == workloads.answer_of("flaky")
        ],
        what="the app's calls to reach the member again",
    )
    calls = workloads.calls(release, app_namespace, "app")
    assert all(c["ok"] for c in calls), [c for c in calls if not c["ok"]]
    # after the first call opened the circuit, no user call was sent to the dead member: each was
    # answered by the backup with the member skipped, until the probe closed the circuit
    opened = [c for c in down if c.get("headers", {}).get("x-pilotfish-failover-reason") != "circuit_open"]
    skipped = [c for c in down if c.get("headers", {}).get("x-pilotfish-failover-reason") == "circuit_open"]
    print(
        f"\nFIGURE probes: {probes():.0f} sent, {probes('success'):.0f} success; calls while down: "
        f"{len(down)} ({len(skipped)} skipped the open circuit); first answer from the member again: call "
        f"{back[0]['n']}"
    )
    assert [c["n"] for c in opened] == [1], opened  # only the very first call tried it
    assert all(c["text"] == workloads.answer_of("backup") for c in down)
    assert len(skipped) >= 2

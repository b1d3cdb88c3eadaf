"""Tiers on the real control plane: the schema's CEL rules with their exact messages, kubectl's TIERS
column, and the operator routing a class of classes into the routes ConfigMap with a Ready condition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.kube.conftest import wait_for

CLASSES = """\
apiVersion: v1
kind: Secret
metadata: {name: vendor-keys}
stringData: {openai: sk-test-openai-1111}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: vendor}
spec: {provider: openai, apiKeySecretRef: {name: vendor-keys, key: openai}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: cheap}
spec: {members: [{credentialRef: vendor, model: gpt-5-mini}]}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: frontier}
spec: {members: [{credentialRef: vendor, model: gpt-5}]}
"""
ASSISTANT = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: assistant}
spec:
  tiers:
    ladder: [cheap, frontier]
    default: cheap
    rules:
      - {tier: frontier, when: {hasTools: true}}
      - {tier: frontier, when: {header: {name: x-pilotfish-tier, values: [frontier]}}}
"""


def apply(plane: Any, namespace: str, text: str, *, check: bool = True) -> Any:
    return plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=text, check=check)


def test_a_class_of_classes_is_accepted_and_kubectl_shows_its_tiers(crds_applied, namespace):
    apply(crds_applied, namespace, ASSISTANT)
    table = crds_applied.kubectl("get", "mc", "assistant", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert row[header.index("TIERS") :].split()[0] == '["cheap","frontier"]'
    stored = json.loads(crds_applied.kubectl("get", "mc", "assistant", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["tiers"]["escalate"] is True  # the schema's default, applied by the API server


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("spec:\n", "spec:\n  members: [{credentialRef: vendor, model: x}]\n"),
            "set exactly one of members (a class of models) and tiers (a class of classes)",
        ),
        (lambda t: t.replace("default: cheap", "default: mid"), "tiers.default must be on tiers.ladder"),
        (
            lambda t: t.replace("{tier: frontier, when: {hasTools", "{tier: mid, when: {hasTools"),
            "every tiers.rules[].tier must be on tiers.ladder",
        ),
        (
            lambda t: t.replace("when: {hasTools: true}", "when: {}"),
            "every tiers.rules[].when needs at least one condition",
        ),
        (
            lambda t: t.replace("ladder: [cheap, frontier]", "ladder: [cheap, cheap]"),
            'spec.tiers.ladder[1]: Duplicate value: "cheap"',
        ),
        (lambda t: t.replace("    default: cheap\n", ""), "spec.tiers.default: Required value"),
    ],
    ids=["members-and-tiers", "default-off-ladder", "rule-off-ladder", "empty-when", "duplicate-tier", "no-default"],
)
def test_tier_mistakes_are_refused_by_the_api_server_naming_the_field(crds_applied, namespace, edit, message):
    result = apply(crds_applied, namespace, edit(ASSISTANT), check=False)
    assert result.returncode != 0 and 'The ModelClass "assistant" is invalid' in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.usefixtures("operator")
def test_the_operator_routes_the_class_of_classes_and_reports_its_tiers_ready(crds_applied, namespace):
    apply(
        crds_applied,
        namespace,
        CLASSES + "---\n" + ASSISTANT.replace("ladder: [cheap, frontier]", "ladder: [cheap, frontier, gone]"),
    )

    def ready() -> dict[str, Any] | None:
        done = crds_applied.kubectl("get", "mc", "assistant", "-n", namespace, "-o", "json", check=False)
        obj = json.loads(done.stdout) if done.returncode == 0 else {}
        conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        return conditions if conditions.get("Ready", {}).get("status") == "True" else None

    conditions = wait_for(ready, what="assistant Ready")
    assert (conditions["Ready"]["reason"], conditions["Ready"]["message"]) == (
        "TiersAvailable",
        "tiers cheap, frontier can serve",
    )
    assert (conditions["Degraded"]["reason"], conditions["Degraded"]["message"]) == (
        "TierUnavailable",
        'tier "gone" is not a class that can serve',
    )
    configmap = json.loads(crds_applied.kubectl("get", "cm", "pilotfish-routes", "-n", namespace, "-o", "json").stdout)
    route = json.loads(configmap["data"]["routes.json"])["classes"]["assistant"]
    assert route["members"] == [] and route["tiers"]["ladder"] == ["cheap", "frontier"]

"""The operator on a real API server: ConfigMap, status, events, re-render on change, cleanup, no hot loop."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from tests.kube.conftest import ROOT, RunningOperator, wait_for

pytestmark = pytest.mark.usefixtures("operator")
EXAMPLES = ROOT / "examples"
SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: vendor-keys}
stringData: {openai: sk-test-openai-1111, backup: sk-test-backup-2222}
"""


def apply(plane: Any, namespace: str, manifest: str) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest)


def get(plane: Any, namespace: str, *what: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def routes(plane: Any, namespace: str) -> dict[str, Any] | None:
    configmap = get(plane, namespace, "configmap", "pilotfish-routes")
    return json.loads(configmap["data"]["routes.json"]) if configmap else None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def events(plane: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    listing = get(plane, namespace, "events", "--field-selector", f"involvedObject.name={name}") or {"items": []}
    return [(event["type"], event["reason"]) for event in listing["items"]]


def test_the_example_renders_into_the_same_configmap_pilotfish_render_prints(crds_applied, namespace):
    apply(crds_applied, namespace, SECRET)
    apply(crds_applied, namespace, (EXAMPLES / "workhorse.yaml").read_text())
    mc = wait_for(
        lambda: (
            (o := get(crds_applied, namespace, "mc", "workhorse"))
            and condition(o, "Ready").get("status") == "True"
            and o
        ),
        what="workhorse Ready",
    )
    expected = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "render", "-n", namespace, "-f", str(EXAMPLES / "workhorse.yaml")],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "sidecar"), "PATH": "/usr/bin:/bin"},
    )
    assert routes(crds_applied, namespace) == json.loads(expected.stdout)
    assert mc["status"]["observedGeneration"] == mc["metadata"]["generation"]
    assert (mc["status"]["memberCount"], mc["status"]["eligibleCount"]) == (2, 2)
    assert condition(mc, "Degraded")["status"] == "False"
    configmap = get(crds_applied, namespace, "configmap", "pilotfish-routes")
    assert configmap is not None
    assert "sk-test" not in json.dumps(configmap)  # names Secrets, never their values
    owners = configmap["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("ModelClass", "workhorse", mc["metadata"]["uid"])]
    assert configmap["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pilotfish-operator"
    assert mc["status"]["routesDigest"] == configmap["metadata"]["annotations"]["pilotfish.dev/routes-digest"]
    row = columns(crds_applied.kubectl("get", "-n", namespace, "mc").stdout)
    assert list(row) == ["NAME", "READY", "MEMBERS", "ELIGIBLE", "TIERS", "CANARY", "WEIGHT", "QUOTA%", "AGE"]
    assert (row["NAME"], row["READY"], row["MEMBERS"], row["ELIGIBLE"], row["CANARY"], row["WEIGHT"]) == (
        "workhorse",
        "True",
        "2",
        "2",
        "",
        "",
    )
    assert row["QUOTA%"] == ""  # no member declares rpm/tpm
    table = columns(crds_applied.kubectl("get", "-n", namespace, "pcred", "openai-prod").stdout)
    assert (table["NAME"], table["PROVIDER"], table["READY"]) == ("openai-prod", "openai", "True")
    assert list(table) == ["NAME", "PROVIDER", "READY", "AGE"]


def columns(table: str) -> dict[str, str]:
    """The first row of `kubectl get` output by column (cells may be empty, so split by header position)."""
    header, row = table.splitlines()[:2]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, bounds, strict=True)}


def test_a_missing_secret_key_a_missing_credential_and_a_compliance_exclusion_are_reported(crds_applied, namespace):
    apply(
        crds_applied,
        namespace,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vendor-keys}\nstringData: {openai: sk-x}\n",
    )
    apply(
        crds_applied,
        namespace,
        """
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: openai-prod}
spec: {provider: openai, apiKeySecretRef: {name: vendor-keys, key: openai}, compliance: {dpa: signed}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: backup}
spec: {provider: openai, apiKeySecretRef: {name: vendor-keys, key: backup}, compliance: {dpa: signed}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: unsigned}
spec: {provider: anthropic, apiKeySecretRef: {name: vendor-keys, key: openai}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: openai-prod, model: gpt-5-mini}
    - {credentialRef: backup, model: gpt-5-nano}
    - {credentialRef: unsigned, model: claude-sonnet-4-5}
    - {credentialRef: nowhere, model: gpt-5}
  compliance: {require: {dpa: signed}}
""",
    )

    def degraded() -> dict[str, Any] | None:
        mc = get(crds_applied, namespace, "mc", "workhorse")
        return mc if mc and mc.get("status", {}).get("eligibleCount") == 1 else None

    mc = wait_for(degraded, what="one eligible member")
    reasons = {m["credentialRef"]: m.get("reason", "") for m in mc["status"]["members"]}
    assert reasons == {
        "openai-prod": "",
        "backup": "SecretKeyMissing",
        "unsigned": "ComplianceExcluded",
        "nowhere": "CredentialNotFound",
    }
    assert condition(mc, "Ready")["status"] == "True"
    assert condition(mc, "Degraded")["status"] == "True"
    assert "backup/gpt-5-nano: SecretKeyMissing" in condition(mc, "Degraded")["message"]
    backup = get(crds_applied, namespace, "pcred", "backup")
    assert condition(backup, "Ready")["reason"] == "SecretKeyMissing"
    document = routes(crds_applied, namespace)
    assert [m["id"] for m in document["classes"]["workhorse"]["members"]] == ["openai-prod/gpt-5-mini"]
    wait_for(lambda: ("Warning", "SecretKeyMissing") in events(crds_applied, namespace, "backup"), what="an Event")
    assert ("Warning", "SecretKeyMissing") in events(crds_applied, namespace, "workhorse")

    # the key arrives: the member comes back without anyone touching the class
    apply(
        crds_applied,
        namespace,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vendor-keys}\nstringData: {openai: sk-x, backup: sk-y}\n",
    )
    wait_for(
        lambda: (
            len((routes(crds_applied, namespace) or {}).get("classes", {}).get("workhorse", {}).get("members", [])) == 2
        ),
        what="backup re-rendered after the Secret gained its key",
    )
    mc = get(crds_applied, namespace, "mc", "workhorse")
    assert condition(mc, "Degraded")["reason"] in {"ComplianceExcluded", "CredentialNotFound"}


def test_a_deleted_secret_leaves_no_eligible_member_and_the_class_out_of_the_document(crds_applied, namespace):
    apply(crds_applied, namespace, SECRET)
    apply(crds_applied, namespace, (EXAMPLES / "workhorse.yaml").read_text())
    wait_for(lambda: "workhorse" in (routes(crds_applied, namespace) or {}).get("classes", {}), what="rendered")
    crds_applied.kubectl("delete", "-n", namespace, "secret", "vendor-keys")
    mc = wait_for(
        lambda: (
            (o := get(crds_applied, namespace, "mc", "workhorse"))
            and condition(o, "Ready").get("status") == "False"
            and o
        ),
        what="Ready=False",
    )
    assert condition(mc, "Ready")["reason"] == "NoEligibleMembers"
    assert routes(crds_applied, namespace)["classes"] == {}
    wait_for(lambda: ("Warning", "NoEligibleMembers") in events(crds_applied, namespace, "workhorse"), what="Event")


def test_deleting_the_last_class_removes_the_configmap_and_an_edited_configmap_is_put_back(crds_applied, namespace):
    apply(crds_applied, namespace, SECRET)
    apply(crds_applied, namespace, (EXAMPLES / "workhorse.yaml").read_text())
    wait_for(lambda: routes(crds_applied, namespace), what="ConfigMap")
    crds_applied.kubectl(
        "patch",
        "-n",
        namespace,
        "configmap",
        "pilotfish-routes",
        "--type=merge",
        "-p",
        '{"data": {"routes.json": "{}"}}',
    )
    wait_for(lambda: (routes(crds_applied, namespace) or {}).get("classes"), what="ConfigMap restored after an edit")
    crds_applied.kubectl("delete", "-n", namespace, "configmap", "pilotfish-routes")
    wait_for(lambda: routes(crds_applied, namespace), what="ConfigMap recreated after a delete")
    crds_applied.kubectl("delete", "-n", namespace, "mc", "workhorse")
    wait_for(lambda: get(crds_applied, namespace, "configmap", "pilotfish-routes") is None, what="ConfigMap deleted")


def test_a_settled_namespace_causes_no_writes(crds_applied, namespace, operator: RunningOperator):
    apply(crds_applied, namespace, SECRET)
    apply(crds_applied, namespace, (EXAMPLES / "workhorse.yaml").read_text())
    wait_for(
        lambda: condition(get(crds_applied, namespace, "mc", "workhorse"), "Ready").get("status") == "True",
        what="Ready",
    )

    def versions() -> tuple[str, ...]:
        objects = [
            get(crds_applied, namespace, kind, name)
            for kind, name in (
                ("configmap", "pilotfish-routes"),
                ("mc", "workhorse"),
                ("pcred", "openai-prod"),
                ("pcred", "llm-backup"),
            )
        ]
        return tuple(o["metadata"]["resourceVersion"] for o in objects if o)

    def passes() -> float:
        return operator.metric('pilotfish_operator_reconciles_total{result="ok"}')

    def nudge(n: int) -> None:
        """A change that makes the operator re-read the namespace and change nothing: an annotation on the
        Secret its credentials reference. Waited on: the pass counter moves once the pass is over."""
        before = passes()
        crds_applied.kubectl(
            "annotate", "-n", namespace, "secret", "vendor-keys", f"test.pilotfish.dev/nudge={n}", "--overwrite"
        )
        wait_for(lambda: passes() > before, what=f"the reconcile pass after nudge {n}")

    nudge(0)  # the pass that wrote the status is over, and its own watch events are what come next
    before, writes = versions(), operator.metric("pilotfish_operator_routes_writes_total")
    for n in range(1, 4):
        nudge(n)
    # three full passes over a settled namespace, and not one write: nothing for a hot loop to feed on
    # (passes are level-triggered by watch events, so only a write could make one cause the next)
    assert versions() == before
    assert operator.metric("pilotfish_operator_routes_writes_total") == writes


def test_the_operator_log_never_carries_a_key(crds_applied, namespace, operator: RunningOperator):
    apply(crds_applied, namespace, SECRET)
    apply(crds_applied, namespace, (EXAMPLES / "workhorse.yaml").read_text())
    wait_for(lambda: routes(crds_applied, namespace), what="ConfigMap")
    assert "sk-test-openai-1111" not in pathlib.Path(operator.log).read_text()

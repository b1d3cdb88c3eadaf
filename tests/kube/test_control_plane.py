"""Proof that the test control plane is a real one: our CRDs, schema validation, kubectl, watches, helm."""

from __future__ import annotations

import json
import pathlib
import subprocess
import textwrap
import threading

import kubernetes
import pytest
from e2e.testenv import binaries, versions

VALID = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: openai-prod, model: gpt-5-mini}
"""

CREDENTIAL = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: local}
spec: {provider: %s, apiKeySecretRef: {name: keys, key: k}}
"""


def _apply(plane, namespace: str, text: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=text, check=check)


def test_our_crds_are_established_with_their_names_accepted(crds_applied):
    for name in ("modelclasses.pilotfish.dev", "providercredentials.pilotfish.dev"):
        crd = json.loads(crds_applied.kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True", conditions
        assert crd["spec"]["scope"] == "Namespaced"
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
    resources = crds_applied.kubectl("api-resources", "--api-group=pilotfish.dev", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()}
    assert rows["modelclasses"][1] == "mc" and rows["modelclasses"][-1] == "ModelClass"
    assert rows["providercredentials"][1] == "pcred" and rows["providercredentials"][-1] == "ProviderCredential"


def test_a_valid_modelclass_is_stored_with_server_side_defaults(crds_applied, namespace):
    _apply(crds_applied, namespace, VALID)
    stored = json.loads(crds_applied.kubectl("get", "modelclass", "workhorse", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["members"][0]["model"] == "gpt-5-mini"
    assert stored["spec"]["members"][0]["weight"] == 1  # the schema's default, applied by the API server
    for name in ("modelclasses", "mc"):
        table = crds_applied.kubectl("get", name, "-n", namespace).stdout
        assert table.split()[:9] == [
            "NAME",
            "READY",
            "MEMBERS",
            "ELIGIBLE",
            "TIERS",
            "CANARY",
            "WEIGHT",
            "QUOTA%",
            "AGE",
        ], table
        assert table.splitlines()[1].split()[0] == "workhorse"


def test_recovery_settings_are_stored_with_their_defaults_and_nonsense_is_rejected(crds_applied, namespace):
    tuned = VALID.replace("model: gpt-5-mini}", "model: gpt-5-mini, prefill: false}") + (
        "  timeouts: {adaptiveFirstToken: {multiple: 3}}\n  streaming: {splice: {enabled: true}}\n"
    )
    _apply(crds_applied, namespace, tuned)
    stored = json.loads(crds_applied.kubectl("get", "mc", "workhorse", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored["members"][0]["prefill"] is False
    assert stored["timeouts"]["adaptiveFirstToken"] == {
        "enabled": True,
        "multiple": 3,
        "floorSeconds": 2,
        "minSamples": 20,
    }
    assert stored["streaming"]["splice"] == {"enabled": True, "maxSeconds": 30, "maxTokens": 1024}
    shorter = _apply(crds_applied, namespace, tuned.replace("multiple: 3", "multiple: 0.5"), check=False)
    assert shorter.returncode != 0 and "spec.timeouts.adaptiveFirstToken.multiple" in shorter.stderr


def test_a_member_without_a_model_is_rejected_by_schema_validation_with_a_readable_message(crds_applied, namespace):
    missing = VALID.replace(", model: gpt-5-mini", "")
    result = _apply(crds_applied, namespace, missing, check=False)
    assert result.returncode != 0
    assert 'The ModelClass "workhorse" is invalid' in result.stderr
    assert "spec.members[0].model: Required value" in result.stderr
    misspelled = VALID.replace("model: gpt-5-mini", "model: gpt-5-mini, modle: x")
    strict = _apply(crds_applied, namespace, misspelled, check=False)
    assert 'unknown field "spec.members[0].modle"' in strict.stderr
    assert crds_applied.kubectl("get", "mc", "-n", namespace, "-o", "name").stdout == ""


def test_duplicate_members_are_rejected_by_the_cel_rule(crds_applied, namespace):
    duplicated = VALID + "    - {credentialRef: openai-prod, model: gpt-5-mini}\n"
    result = _apply(crds_applied, namespace, duplicated, check=False)
    assert result.returncode != 0
    assert "members must be unique by credentialRef and model" in result.stderr


def test_an_unknown_provider_and_a_missing_base_url_are_rejected(crds_applied, namespace):
    bogus = _apply(crds_applied, namespace, CREDENTIAL % "bogus", check=False)
    assert bogus.returncode != 0
    assert 'spec.provider: Unsupported value: "bogus": supported values: "openai", "openai-compatible"' in bogus.stderr
    no_url = _apply(crds_applied, namespace, CREDENTIAL % "openai-compatible", check=False)
    assert "baseURL is required when provider is openai-compatible or azure-openai" in no_url.stderr
    _apply(crds_applied, namespace, CREDENTIAL % "openai")
    for name in ("providercredentials", "pcred"):
        listed = crds_applied.kubectl("get", name, "-n", namespace).stdout
        assert listed.split()[:4] == ["NAME", "PROVIDER", "READY", "AGE"]
        assert listed.splitlines()[1].split()[:2] == ["local", "openai"]


def test_a_watch_sees_added_modified_and_deleted(crds_applied, namespace, api_client):
    """Watching from the list's resourceVersion: every later event arrives, however late the thread starts."""
    api = kubernetes.client.CustomObjectsApi(api_client)
    where = ("pilotfish.dev", "v1alpha1", namespace, "modelclasses")
    since = api.list_namespaced_custom_object(*where)["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []
    done = threading.Event()
    watch = kubernetes.watch.Watch()

    def consume() -> None:
        stream = watch.stream(api.list_namespaced_custom_object, *where, resource_version=since, timeout_seconds=30)
        for event in stream:
            seen = (event["type"], event["object"]["spec"]["members"][0]["model"])
            if events and seen[0] == "MODIFIED" and seen[1] == events[-1][1]:
                continue  # a status write (the operator, when it runs in this session), not a spec change
            events.append(seen)
            if event["type"] == "DELETED":
                watch.stop()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    _apply(crds_applied, namespace, VALID)
    _apply(crds_applied, namespace, VALID.replace("gpt-5-mini", "gpt-5"))
    crds_applied.kubectl("delete", "mc", "workhorse", "-n", namespace)
    assert done.wait(30), f"no DELETED event within 30s; saw {events}"
    assert events == [("ADDED", "gpt-5-mini"), ("MODIFIED", "gpt-5"), ("DELETED", "gpt-5")]


def _probe_chart(directory: pathlib.Path) -> pathlib.Path:
    chart = directory / "probe"
    (chart / "templates").mkdir(parents=True)
    # kubeVersion: helm refuses the chart unless kube-apiserver reports a real version (it is stamped)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: '>=1.26.0-0'\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        textwrap.dedent("""\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}
              labels: {app.kubernetes.io/managed-by: {{ .Release.Service }}}
            data:
              greeting: {{ .Values.greeting | quote }}
            """)
    )
    return chart


def test_helm_runs(control_plane):
    assert control_plane.helm("version", "--short").stdout.startswith("v3.")


def test_helm_templates_a_chart(control_plane, tmp_path: pathlib.Path):
    rendered = control_plane.helm("template", "probe", str(_probe_chart(tmp_path)), "--set", "greeting=hi").stdout
    assert "kind: ConfigMap" in rendered and 'greeting: "hi"' in rendered


def test_helm_installs_a_chart_into_the_control_plane(control_plane, namespace, tmp_path: pathlib.Path):
    chart = _probe_chart(tmp_path)
    control_plane.helm("install", "probe", str(chart), "-n", namespace)  # no --wait: there are no nodes
    stored = control_plane.kubectl("get", "configmap", "probe", "-n", namespace, "-o", "jsonpath={.data.greeting}")
    assert stored.stdout == "hello"
    releases = json.loads(control_plane.helm("list", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("probe", "deployed")]


@pytest.mark.parametrize("binary", ["kube-apiserver", "etcd", "kubectl", "helm"])
def test_the_binaries_are_the_pinned_versions(control_plane, binary):
    path = control_plane.bins.paths()[binary]
    if path.parent != binaries.bin_dir():
        pytest.skip(f"{binary} comes from {path.parent} (KUBEBUILDER_ASSETS or PATH), not from this project's build")
    flag = {"kubectl": ["version", "--client"], "helm": ["version", "--short"]}.get(binary, ["--version"])
    out = subprocess.run([str(path), *flag], capture_output=True, text=True, timeout=30).stdout
    expected = {"kube-apiserver": versions.KUBERNETES, "kubectl": versions.KUBERNETES, "etcd": versions.ETCD}
    assert f"{expected.get(binary, versions.HELM)}" in out


def test_the_api_server_reports_the_pinned_version(control_plane, api_client):
    if control_plane.bins.kube_apiserver.parent != binaries.bin_dir():
        pytest.skip("kube-apiserver comes from KUBEBUILDER_ASSETS, not from this project's build")
    info = kubernetes.client.VersionApi(api_client).get_code()
    assert info.git_version == f"v{versions.KUBERNETES}"


PLAIN_HTTP = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: %s}
spec: {provider: openai-compatible, baseURL: "%s", apiKeySecretRef: {name: keys, key: k}%s}
"""


def test_a_key_over_plain_http_beyond_the_loopback_is_refused_by_the_api_server(crds_applied, namespace):
    refused = _apply(crds_applied, namespace, PLAIN_HTTP % ("plain", "http://vllm.internal:8000/v1", ""), check=False)
    assert refused.returncode != 0
    assert "baseURL would send the API key in plain text (http) to a host other than the loopback" in refused.stderr
    trick = _apply(crds_applied, namespace, PLAIN_HTTP % ("trick", "http://127.0.0.1@evil.example/v1", ""), check=False)
    assert trick.returncode != 0 and "plain text" in trick.stderr
    _apply(crds_applied, namespace, PLAIN_HTTP % ("beside", "http://127.0.0.1:8000/v1", ""))
    _apply(crds_applied, namespace, PLAIN_HTTP % ("meshed", "http://vllm.internal:8000/v1", ", allowPlainHTTP: true"))
    # a change that would downgrade an accepted credential is refused the same way
    downgrade = _apply(
        crds_applied, namespace, PLAIN_HTTP % ("beside", "http://vllm.internal:8000/v1", ""), check=False
    )
    assert downgrade.returncode != 0 and "plain text" in downgrade.stderr


PROBED = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: %s}
spec: {provider: openai, apiKeySecretRef: {name: keys, key: k}, probe: %s}
"""


def test_an_active_probe_is_declared_on_the_credential_and_nonsense_is_refused(crds_applied, namespace):
    _apply(crds_applied, namespace, PROBED % ("probed", "{kind: models, share: 0.5}"))
    stored = json.loads(crds_applied.kubectl("get", "pcred", "probed", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["probe"] == {"kind": "models", "share": 0.5}
    no_share = _apply(crds_applied, namespace, PROBED % ("never", "{share: 0}"), check=False)
    assert no_share.returncode != 0 and "spec.probe.share" in no_share.stderr
    unknown = _apply(crds_applied, namespace, PROBED % ("ping", "{kind: ping}"), check=False)
    assert unknown.returncode != 0 and 'spec.probe.kind: Unsupported value: "ping"' in unknown.stderr

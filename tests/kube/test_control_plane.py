"""Proof that the test control plane is a real one: our CRDs, schema validation, kubectl, watches, helm."""

from __future__ import annotations

import pathlib
import subprocess
import textwrap
import threading

import kubernetes
import pytest

VALID = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: openai-prod, model: gpt-5-mini}
"""


def _apply(plane, namespace: str, text: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=text, check=check)


def test_our_crds_are_established_with_short_names(crds_applied):
    names = crds_applied.kubectl("api-resources", "--api-group=pilotfish.dev", "-o", "wide").stdout
    assert "modelclasses" in names and " mc " in f" {names} ".replace("\t", " ")
    assert "providercredentials" in names


def test_a_valid_modelclass_is_stored_with_server_side_defaults(crds_applied, namespace):
    _apply(crds_applied, namespace, VALID)
    stored = crds_applied.kubectl("get", "mc", "workhorse", "-n", namespace, "-o", "jsonpath={.spec}").stdout
    assert '"model":"gpt-5-mini"' in stored
    assert '"weight":1' in stored  # the schema's default, applied by the API server
    table = crds_applied.kubectl("get", "modelclasses", "-n", namespace).stdout
    assert table.split()[:5] == ["NAME", "READY", "MEMBERS", "ELIGIBLE", "AGE"]
    assert "workhorse" in table


def test_an_invalid_modelclass_is_rejected_by_schema_validation_with_a_readable_message(crds_applied, namespace):
    missing = VALID.replace(", model: gpt-5-mini", "")
    result = _apply(crds_applied, namespace, missing, check=False)
    assert result.returncode != 0
    assert "spec.members[0].model: Required value" in result.stderr
    misspelled = VALID.replace("model: gpt-5-mini", "model: gpt-5-mini, modle: x")
    strict = _apply(crds_applied, namespace, misspelled, check=False)
    assert 'unknown field "spec.members[0].modle"' in strict.stderr


def test_duplicate_members_are_rejected_by_the_cel_rule(crds_applied, namespace):
    duplicated = VALID + "    - {credentialRef: openai-prod, model: gpt-5-mini}\n"
    result = _apply(crds_applied, namespace, duplicated, check=False)
    assert result.returncode != 0
    assert "members must be unique by credentialRef and model" in result.stderr


def test_an_unknown_provider_and_a_missing_base_url_are_rejected(crds_applied, namespace):
    credential = textwrap.dedent("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ProviderCredential
        metadata: {name: local}
        spec: {provider: %s, apiKeySecretRef: {name: keys, key: k}}
        """)
    bogus = _apply(crds_applied, namespace, credential % "bogus", check=False)
    assert 'spec.provider: Unsupported value: "bogus"' in bogus.stderr
    no_url = _apply(crds_applied, namespace, credential % "openai-compatible", check=False)
    assert "baseURL is required when provider is openai-compatible or azure-openai" in no_url.stderr
    table = _apply(crds_applied, namespace, credential % "openai")
    assert table.returncode == 0
    listed = crds_applied.kubectl("get", "pcred", "-n", namespace)
    assert listed.stdout.split()[:4] == ["NAME", "PROVIDER", "READY", "AGE"]
    assert "local" in listed.stdout and "openai" in listed.stdout


def test_a_watch_sees_added_modified_and_deleted(crds_applied, namespace):
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(crds_applied.kubeconfig)))
    events: list[str] = []
    watch = kubernetes.watch.Watch()
    seen_delete = threading.Event()

    def consume() -> None:
        for event in watch.stream(
            api.list_namespaced_custom_object,
            "pilotfish.dev",
            "v1alpha1",
            namespace,
            "modelclasses",
            timeout_seconds=30,
        ):
            events.append(event["type"])
            if event["type"] == "DELETED":
                seen_delete.set()
                watch.stop()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    _apply(crds_applied, namespace, VALID)
    _apply(crds_applied, namespace, VALID.replace("gpt-5-mini", "gpt-5"))
    crds_applied.kubectl("delete", "mc", "workhorse", "-n", namespace)
    assert seen_delete.wait(30)
    assert events[0] == "ADDED" and "MODIFIED" in events and events[-1] == "DELETED"


def test_helm_templates_and_installs_a_chart_into_the_control_plane(control_plane, namespace, tmp_path: pathlib.Path):
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {greeting: {{ .Values.greeting | quote }}}\n"
    )
    assert "v3." in control_plane.helm("version", "--short").stdout
    rendered = control_plane.helm("template", "probe", str(chart), "--set", "greeting=hi").stdout
    assert 'greeting: "hi"' in rendered
    control_plane.helm("install", "probe", str(chart), "-n", namespace)
    stored = control_plane.kubectl("get", "configmap", "probe", "-n", namespace, "-o", "jsonpath={.data.greeting}")
    assert stored.stdout == "hello"


@pytest.mark.parametrize("binary", ["kube_apiserver", "etcd", "kubectl", "helm"])
def test_the_binaries_are_the_pinned_versions(control_plane, binary):
    from e2e.testenv import versions

    path = getattr(control_plane.bins, binary)
    flag = {"kubectl": ["version", "--client"], "helm": ["version", "--short"]}.get(binary, ["--version"])
    out = subprocess.run([str(path), *flag], capture_output=True, text=True, timeout=30).stdout
    expected = {
        "kube_apiserver": versions.KUBERNETES,
        "kubectl": versions.KUBERNETES,
        "etcd": versions.ETCD,
        "helm": versions.HELM,
    }[binary]
    assert expected in out

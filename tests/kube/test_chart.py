"""charts/pilotfish: lint, what it renders, and install / upgrade / uninstall on the real control plane.

Rendering tests parse `helm template` output and assert the fields the issue asks for. The install
tests put cluster-scoped webhook configurations into the session's shared control plane, so each one
limits every webhook to namespaces it created (an extra namespaceSelector) and uninstalls in
``finally``; the one that uses ``failurePolicy: Fail`` does so only for its own namespaces.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import pathlib
import ssl
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import yaml
from cryptography import x509
from e2e.testenv import certs, controlplane
from tests.kube.conftest import delete_namespace, start_operator, stop_operator, wait_for

from pilotfish_operator import inject, injector_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pilotfish"
EXAMPLES = ROOT / "examples"
SYSTEM_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]
INJECTOR = "pilotfish-sidecar-injector"

# The contract with `pilotfish operator` (RBAC it needs), exactly: resource → verbs.
EXPECTED_RULES = {
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
    ("pilotfish.dev", "modelclasses"): {"get", "list", "watch", "patch"},
    ("pilotfish.dev", "providercredentials"): {"get", "list", "watch", "patch"},
    ("pilotfish.dev", "modelclasses/status"): {"get", "patch", "update"},
    ("pilotfish.dev", "providercredentials/status"): {"get", "patch", "update"},
    ("pilotfish.dev", "budgets"): {"get", "list", "watch"},
    ("pilotfish.dev", "budgets/status"): {"get", "patch"},  # the counters (docs/budgets.md)
    ("authentication.k8s.io", "tokenreviews"): {"create"},  # whose token a sidecar's allowance call carries
    ("", "configmaps"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    # no Secrets cluster-wide: the operator binds itself to the Secret reader where credentials are
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create", "delete"},
    ("rbac.authorization.k8s.io", "clusterroles"): {"bind", "get"},
}
SECRETS = {("", "secrets"): {"get", "list", "watch"}}  # each watched namespace's Role (kopf watches Secrets there)
SECRET_READER = {("", "secrets"): {"get"}}  # the reader bound per namespace: referenced Secrets, by name
# Writes the operator may make only to the ConfigMap it owns (resourceNames), never to anyone else's.
OWN_CONFIGMAP_ONLY = {"get", "update", "patch", "delete"}


# ---------------------------------------------------------------------------------------------- helpers


def render(
    plane: controlplane.ControlPlane, *args: str, release: str = "pilotfish", namespace: str = "pilotfish-system"
) -> list[dict[str, Any]]:
    out = plane.helm("template", release, str(CHART), "-n", namespace, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(plane: controlplane.ControlPlane, *args: str) -> str:
    done = plane.helm("template", "pilotfish", str(CHART), *args, check=False)
    assert done.returncode != 0, f"expected helm template to fail; it rendered:\n{done.stdout[:2000]}"
    return done.stderr


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return [d["kind"] for d in docs]


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def webhooks_by_name(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in config["webhooks"]}


def expressions(selector: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {e["key"]: (e["operator"], e.get("values", [])) for e in selector["matchExpressions"]}


def write_values(path: pathlib.Path, values: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


# ---------------------------------------------------------------------------------------------- lint, CRDs


@pytest.mark.parametrize(
    "values", [None, EXAMPLES / "helm" / "values-production.yaml", EXAMPLES / "helm" / "values-development.yaml"]
)
def test_helm_lint_strict_is_clean(control_plane, values):
    extra = ["-f", str(values)] if values else []
    done = control_plane.helm("lint", "--strict", str(CHART), *extra, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_the_charts_pilotfish_crds_are_the_generated_ones_byte_for_byte():
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("pilotfish.dev_*.yaml")}
    assert generated, "crds/ is empty"
    assert sorted(in_chart) == sorted(generated)
    drifted = [name for name in generated if in_chart[name] != generated[name]]
    assert not drifted, (
        f"charts/pilotfish/crds drifted from crds/: {drifted}; run: cp crds/*.yaml charts/pilotfish/crds/"
    )


@pytest.mark.parametrize(
    ("name", "scope"), [("clusterkopfpeerings.kopf.dev", "Cluster"), ("kopfpeerings.kopf.dev", "Namespaced")]
)
def test_the_chart_ships_kopfs_peering_crds_with_a_free_form_status(name, scope):
    crd = yaml.safe_load((CHART / "crds" / f"kopf.dev_{name.split('.')[0]}.yaml").read_text())
    assert crd["metadata"]["name"] == name and crd["spec"]["scope"] == scope and crd["spec"]["group"] == "kopf.dev"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1" and version["served"] and version["storage"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


# ---------------------------------------------------------------------------------------------- webhooks


def test_the_injector_has_a_namespace_entry_and_a_pod_entry_with_opposite_selectors(control_plane):
    injector = one(render(control_plane), "MutatingWebhookConfiguration", INJECTOR)
    hooks = webhooks_by_name(injector)
    assert sorted(hooks) == ["namespace.sidecar-injector.pilotfish.dev", "pod.sidecar-injector.pilotfish.dev"]
    by_namespace, by_pod = (
        hooks["namespace.sidecar-injector.pilotfish.dev"],
        hooks["pod.sidecar-injector.pilotfish.dev"],
    )

    assert expressions(by_namespace["namespaceSelector"])["pilotfish.dev/injection"] == ("In", ["enabled"])
    assert by_namespace["objectSelector"] == {
        "matchExpressions": [{"key": "pilotfish.dev/inject", "operator": "NotIn", "values": ["false"]}]
    }
    assert expressions(by_pod["namespaceSelector"])["pilotfish.dev/injection"] == ("NotIn", ["enabled"])
    assert by_pod["objectSelector"] == {"matchLabels": {"pilotfish.dev/inject": "true"}}

    for hook in hooks.values():
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] == 5
        assert hook["reinvocationPolicy"] == "IfNeeded"
        assert hook["failurePolicy"] == "Ignore"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["rules"] == [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "operations": ["CREATE"],
                "scope": "Namespaced",
            }
        ]
        assert hook["clientConfig"]["service"] == {
            "name": "pilotfish-operator",
            "namespace": "pilotfish-system",
            "path": "/mutate-pods",
            "port": 443,
        }


def test_system_namespaces_the_release_namespace_and_extras_are_never_injected(control_plane):
    docs = render(control_plane, "--set", "webhook.excludeNamespaces={monitoring,kube-system}", namespace="platform")
    for hook in one(docs, "MutatingWebhookConfiguration").get("webhooks"):
        operator, values = expressions(hook["namespaceSelector"])["kubernetes.io/metadata.name"]
        assert operator == "NotIn"
        assert values == [*SYSTEM_NAMESPACES, "platform", "monitoring"]  # duplicates dropped


def test_failure_policy_defaults_to_ignore_and_follows_the_values(control_plane):
    docs = render(control_plane, "--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=3")
    for hook in one(docs, "MutatingWebhookConfiguration")["webhooks"]:
        assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Fail", 3)
    (validate,) = one(docs, "ValidatingWebhookConfiguration")["webhooks"]
    assert validate["failurePolicy"] == "Ignore"  # its own value
    docs = render(control_plane, "--set", "webhook.validation.failurePolicy=Fail")
    assert one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"
    assert {h["failurePolicy"] for h in one(docs, "MutatingWebhookConfiguration")["webhooks"]} == {"Ignore"}


def test_the_validating_webhook_covers_every_kind_on_create_and_update(control_plane):
    docs = render(control_plane)
    (hook,) = one(docs, "ValidatingWebhookConfiguration", "pilotfish-validator")["webhooks"]
    assert hook["rules"] == [
        {
            "apiGroups": ["pilotfish.dev"],
            "apiVersions": ["v1alpha1"],
            "resources": ["modelclasses", "providercredentials", "budgets"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert hook["clientConfig"]["service"]["path"] == "/validate" and hook["sideEffects"] == "None"
    assert "ValidatingWebhookConfiguration" not in kinds(
        render(control_plane, "--set", "webhook.validation.enabled=false")
    )


def test_webhook_url_mode_points_both_configurations_at_the_url_with_the_given_ca(control_plane):
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n").decode()
    docs = render(control_plane, "--set", "webhook.url=https://127.0.0.1:18443/", "--set", f"webhook.caBundle={ca}")
    configs = [one(docs, "MutatingWebhookConfiguration"), one(docs, "ValidatingWebhookConfiguration")]
    urls = [w["clientConfig"] for c in configs for w in c["webhooks"]]
    assert urls == [
        {"url": "https://127.0.0.1:18443/mutate-pods", "caBundle": ca},
        {"url": "https://127.0.0.1:18443/mutate-pods", "caBundle": ca},
        {"url": "https://127.0.0.1:18443/validate", "caBundle": ca},
    ]


def test_an_extra_namespace_selector_is_anded_into_every_webhook(control_plane, tmp_path):
    extra = {"key": "team", "operator": "In", "values": ["ml"]}
    values = write_values(tmp_path / "v.yaml", {"webhook": {"namespaceSelector": {"matchExpressions": [extra]}}})
    docs = render(control_plane, "-f", values)
    hooks = (
        one(docs, "MutatingWebhookConfiguration")["webhooks"] + one(docs, "ValidatingWebhookConfiguration")["webhooks"]
    )
    assert len(hooks) == 3
    for hook in hooks:
        assert extra in hook["namespaceSelector"]["matchExpressions"]


# ---------------------------------------------------------------------------------------------- TLS


def _certificates(docs: list[dict[str, Any]]) -> tuple[x509.Certificate, x509.Certificate, str]:
    secret = one(docs, "Secret", "pilotfish-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls" and sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    return ca, serving, secret["data"]["ca.crt"]


def test_the_generated_ca_signs_a_serving_certificate_for_the_service_and_is_every_ca_bundle(control_plane):
    docs = render(control_plane)
    ca, serving, ca_b64 = _certificates(docs)
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert "pilotfish-operator.pilotfish-system.svc" in names
    bundles = {
        w["clientConfig"]["caBundle"]
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        for w in one(docs, kind)["webhooks"]
    }
    assert bundles == {ca_b64}


def test_without_a_cluster_every_render_makes_a_new_ca_so_reuse_must_come_from_lookup(control_plane):
    first, second = _certificates(render(control_plane))[2], _certificates(render(control_plane))[2]
    assert first != second


def test_a_users_own_secret_needs_a_ca_bundle_and_replaces_the_generated_one(control_plane):
    assert "webhook.tls.existingSecret needs webhook.caBundle" in render_error(
        control_plane, "--set", "webhook.tls.existingSecret=mine"
    )
    docs = render(control_plane, "--set", "webhook.tls.existingSecret=mine", "--set", "webhook.caBundle=Q0E=")
    assert "Secret" not in kinds(docs)
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == "mine"
    assert {w["clientConfig"]["caBundle"] for w in one(docs, "MutatingWebhookConfiguration")["webhooks"]} == {"Q0E="}


def test_cert_manager_mode_issues_the_certificate_and_injects_the_ca(control_plane):
    docs = render(control_plane, "--set", "webhook.certManager.enabled=true")
    assert "Secret" not in kinds(docs)
    certificate = one(docs, "Certificate", "pilotfish-webhook")
    assert certificate["spec"]["secretName"] == "pilotfish-webhook-tls"
    assert "pilotfish-operator.pilotfish-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "pilotfish-webhook-ca"
    assert one(docs, "Certificate", "pilotfish-webhook-ca")["spec"]["isCA"] is True
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = one(docs, kind)
        assert (
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "pilotfish-system/pilotfish-webhook"
        )
        assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    docs = render(
        control_plane,
        "--set",
        "webhook.certManager.enabled=true",
        *(a for k, v in issuer.items() for a in ("--set", f"webhook.certManager.issuerRef.{k}={v}")),
    )
    assert kinds(docs).count("Certificate") == 1 and "Issuer" not in kinds(docs)
    assert one(docs, "Certificate")["spec"]["issuerRef"] == issuer


# ---------------------------------------------------------------------------------------------- operator


def test_the_deployment_runs_pilotfish_operator_with_the_contracts_flags_and_mounts(control_plane):
    docs = render(control_plane)
    deployment = one(docs, "Deployment", "pilotfish-operator")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/pilotfish-dev/pilotfish-operator:0.1.0"  # tag = appVersion
    assert container["command"] == ["pilotfish", "operator"]
    assert container["args"] == [
        "--peering=pilotfish",
        "--webhook-listen=0.0.0.0:9443",
        "--webhook-cert=/etc/pilotfish/webhook-tls/tls.crt",
        "--webhook-key=/etc/pilotfish/webhook-tls/tls.key",
        "--metrics-listen=0.0.0.0:8080",
        "--injector-config=/etc/pilotfish/injector/config.yaml",
        "--secret-reader-role=pilotfish-operator-secret-reader",
        "--service-account=pilotfish-system/pilotfish-operator",
    ]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"webhook": 9443, "metrics": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    startup = container["startupProbe"]  # a slow start is not a dead operator
    assert startup["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in container["env"]
    # kopf's peering identity; without it kopf calls getpass.getuser(), which fails for a numeric user
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {
        "webhook-tls": "/etc/pilotfish/webhook-tls",
        "injector-config": "/etc/pilotfish/injector",
        "tmp": "/tmp",
    }
    assert all("subPath" not in m for m in container["volumeMounts"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == one(docs, "Secret")["metadata"]["name"]
    assert volumes["injector-config"]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "pilotfish"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_every_flag_the_chart_passes_is_one_pilotfish_operator_takes(control_plane):
    docs = render(
        control_plane, "--set", "operator.watchNamespaces={a}", "--set", "operator.extraArgs={--sweep-interval=30}"
    )
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    flags = {arg.split("=", 1)[0] for arg in container["args"]}
    assert flags >= {
        "--namespace",
        "--peering",
        "--webhook-cert",
        "--webhook-key",
        "--injector-config",
        "--sweep-interval",
    }
    usage = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "operator", "--help"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 0, usage.stderr
    assert not [flag for flag in flags if flag not in usage.stdout], usage.stdout
    standalone = render(control_plane, "--set", "operator.replicas=1", "--set", "operator.peering.enabled=false")
    assert "--standalone" in one(standalone, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in usage.stdout


def test_watch_namespaces_become_namespace_flags_roles_and_namespaced_peerings(control_plane):
    docs = render(control_plane, "--set", "operator.watchNamespaces={team-a,team-b}", "--set", "operator.image.tag=dev")
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":dev")
    assert container["args"][:3] == ["--namespace=team-a", "--namespace=team-b", "--peering=pilotfish"]
    assert "ClusterKopfPeering" not in kinds(docs)
    assert sorted(p["metadata"]["namespace"] for p in docs if p["kind"] == "KopfPeering") == ["team-a", "team-b"]
    cluster = rules_of(one(docs, "ClusterRole"))
    assert ("", "secrets") not in cluster and ("pilotfish.dev", "modelclasses") not in cluster
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == {k: v for k, v in {**EXPECTED_RULES, **SECRETS}.items() if k in rules_of(role)}
        assert rules_of(role)[("", "secrets")] == {"get", "list", "watch"}
    assert "--secret-reader-role" not in " ".join(container["args"])  # the Roles grant Secrets there
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert all(b["subjects"][0]["namespace"] == "pilotfish-system" for b in bindings)


def test_cluster_wide_rbac_grants_exactly_the_contracts_verbs(control_plane):
    docs = render(control_plane)
    role = one(docs, "ClusterRole", "pilotfish-operator")
    assert rules_of(role) == EXPECTED_RULES
    for rule in role["rules"]:
        if "configmaps" in rule["resources"] and set(rule["verbs"]) & OWN_CONFIGMAP_ONLY:
            assert rule.get("resourceNames") == ["pilotfish-routes"], rule
        if "clusterroles" in rule["resources"]:
            assert rule["resourceNames"] == ["pilotfish-operator-secret-reader"], rule
    reader = one(docs, "ClusterRole", "pilotfish-operator-secret-reader")
    assert rules_of(reader) == SECRET_READER
    assert "resourceNames" not in reader["rules"][0]  # any Secret of a credentialed namespace, by name
    assert [b["roleRef"]["name"] for b in docs if b["kind"] == "ClusterRoleBinding"] == ["pilotfish-operator"]
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--secret-reader-role=pilotfish-operator-secret-reader" in container["args"]
    assert "--service-account=pilotfish-system/pilotfish-operator" in container["args"]
    binding = one(docs, "ClusterRoleBinding", "pilotfish-operator")
    assert binding["roleRef"]["name"] == "pilotfish-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pilotfish-operator", "namespace": "pilotfish-system"}
    ]
    assert "Role" not in kinds(docs)


def test_secret_names_limit_the_secret_reader_to_those_names(control_plane):
    docs = render(control_plane, "--set", "operator.secretNames={vendor-keys,llm-keys}")
    (rule,) = one(docs, "ClusterRole", "pilotfish-operator-secret-reader")["rules"]
    assert (rule["resources"], rule["verbs"], rule["resourceNames"]) == (
        ["secrets"],
        ["get"],
        ["vendor-keys", "llm-keys"],
    )


def test_one_replica_without_peering_runs_standalone_and_two_without_peering_is_refused(control_plane):
    docs = render(control_plane, "--set", "operator.replicas=1", "--set", "operator.peering.enabled=false")
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "--standalone" and not any(a.startswith("--peering") for a in container["args"])
    assert "ClusterKopfPeering" not in kinds(docs) and "PodDisruptionBudget" not in kinds(docs)
    assert "without peering every replica would reconcile" in render_error(
        control_plane, "--set", "operator.peering.enabled=false"
    )


def test_the_injector_config_is_what_the_operator_reads(control_plane):
    from pilotfish_operator import injector_config

    docs = render(control_plane, "--set", "sidecar.image.tag=1.2.3", "--set", "sidecar.resources.limits.memory=300Mi")
    text = one(docs, "ConfigMap", "pilotfish-injector")["data"]["config.yaml"]
    assert set(yaml.safe_load(text)) == {"image", "imagePullPolicy", "resources", "listenPort", "adminPort", "budgets"}
    path = pathlib.Path(control_plane.workdir) / f"injector-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    config = injector_config.load(path)
    assert config.image == "ghcr.io/pilotfish-dev/pilotfish-sidecar:1.2.3"
    assert config.image_pull_policy == "IfNotPresent"
    assert config.resources.requests == {"cpu": "50m", "memory": "64Mi"} and config.resources.limits == {
        "memory": "300Mi"
    }
    assert (config.listen_port, config.admin_port) == (4000, 4001)
    # sidecars ask the operator's Service for Budget allowances, on the webhook's port
    assert config.budgets is not None and config.budgets.url == "https://pilotfish-operator.pilotfish-system.svc:443"
    off = render(control_plane, "--set", "budgets.enabled=false")
    assert "budgets" not in yaml.safe_load(one(off, "ConfigMap", "pilotfish-injector")["data"]["config.yaml"])
    # a changed injector config rolls the operator's pods
    before = one(render(control_plane), "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "checksum/injector-config"
    ]
    after = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/injector-config"]
    assert before != after


def test_the_service_exposes_the_webhook_on_443_and_metrics_on_8080(control_plane):
    docs = render(control_plane)
    service = one(docs, "Service", "pilotfish-operator")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("https-webhook", 443, "webhook"),
        ("http-metrics", 8080, "metrics"),
    ]
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert (
            labels["app.kubernetes.io/name"] == "pilotfish" and labels["app.kubernetes.io/instance"] == "pilotfish"
        ), doc["kind"]


def test_the_values_schema_rejects_typos_and_bad_policies(control_plane):
    assert "additional properties 'failurepolicy' not allowed" in render_error(
        control_plane, "--set", "webhook.failurepolicy=Fail"
    )
    assert "value must be one of 'Ignore', 'Fail'" in render_error(
        control_plane, "--set", "webhook.failurePolicy=Never"
    )
    assert "webhook/url" in render_error(control_plane, "--set", "webhook.url=http://insecure:80")


def test_sidecar_tracing_values_become_the_injected_sidecars_otel_variables(control_plane):
    docs = render(control_plane, "--set", "sidecar.tracing.otlpEndpoint=http://otel.observability:4318")
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-injector"))
    (text,) = configmap["data"].values()
    config = injector_config.InjectorConfig.model_validate(yaml.safe_load(text))
    assert [(e.name, e.value) for e in config.env] == [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel.observability:4318"),
        ("OTEL_SERVICE_NAME", "pilotfish-sidecar"),
    ]
    off = next(
        d for d in render(control_plane) if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-injector")
    )
    assert "env" not in yaml.safe_load(next(iter(off["data"].values())))


def test_monitoring_is_off_by_default_so_clusters_without_the_prometheus_operator_install_cleanly(control_plane):
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & set(kinds(render(control_plane)))


def test_monitoring_renders_the_tested_dashboard_and_alerts_and_selects_what_the_operator_labels(control_plane):
    docs = render(
        control_plane,
        "--set",
        "metrics.dashboards.enabled=true,metrics.prometheusRule.enabled=true,"
        "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true",
    )
    files = CHART / "files"
    dashboards = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards"))
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboards["data"]["pilotfish.json"]) == json.loads(
        (files / "dashboards" / "pilotfish.json").read_text()
    )
    rule = one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((files / "alerts.yaml").read_text())["groups"]
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    pods = one(docs, "PodMonitor")
    decision = inject.decide(
        {"metadata": {}, "spec": {"containers": [{"name": "a"}]}}, secrets=[], config=injector_config.InjectorConfig()
    )
    labels = next(op["value"] for op in decision.patch if op["path"] == "/metadata/labels")
    sidecar = next(op["value"][0] for op in decision.patch if op["path"] == "/spec/initContainers")
    assert pods["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in sidecar["ports"]}


# ---------------------------------------------------------------------------------------------- examples


def test_the_example_manifests_render_and_are_accepted_by_the_api_server(crds_applied, namespace):
    for name in (
        "namespace-injection.yaml",
        "pod-injection.yaml",
        "workhorse.yaml",
        "budget.yaml",
        "demo/budgets.yaml",
    ):
        docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
        for doc in docs:
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["labels"] == {"pilotfish.dev/injection": "enabled"}
                continue
            doc["metadata"]["namespace"] = namespace
        text = yaml.safe_dump_all([d for d in docs if d["kind"] != "Namespace"])
        crds_applied.kubectl("apply", "--dry-run=server", "-f", "-", stdin=text)
    opted_out = yaml.safe_load_all((EXAMPLES / "namespace-injection.yaml").read_text())
    job = next(d for d in opted_out if d and d["kind"] == "Job")
    assert job["spec"]["template"]["metadata"]["labels"] == {"pilotfish.dev/inject": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "render", "-f", str(EXAMPLES / "namespace-injection.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'sidecar'}:{ROOT / 'operator'}"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "workhorse" in done.stdout


# ---------------------------------------------------------------------------------------------- install


class Release:
    """`helm install` into a namespace of the session's control plane; uninstalled on exit, always."""

    def __init__(self, plane: controlplane.ControlPlane, namespace: str, values: pathlib.Path) -> None:
        self.plane, self.namespace, self.values = plane, namespace, values
        self.name = f"pf-{uuid.uuid4().hex[:6]}"
        self.fullname = f"{self.name}-pilotfish"

    def install(self, *args: str) -> str:
        return self.plane.helm(
            "install", self.name, str(CHART), "-n", self.namespace, "-f", str(self.values), *args
        ).stdout

    def upgrade(self, *args: str) -> str:
        return self.plane.helm(
            "upgrade", self.name, str(CHART), "-n", self.namespace, "-f", str(self.values), *args
        ).stdout

    def uninstall(self) -> None:
        self.plane.helm("uninstall", self.name, "-n", self.namespace, check=False)
        # belt and braces: never leave a webhook behind for the rest of the session
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            self.plane.kubectl(
                "delete", kind, "-l", f"app.kubernetes.io/instance={self.name}", "--ignore-not-found", check=False
            )

    def get(self, kind: str, name: str, *, namespaced: bool = True) -> dict[str, Any] | None:
        where = ["-n", self.namespace] if namespaced else []
        done = self.plane.kubectl("get", kind, name, *where, "-o", "json", check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        return dict(json.loads(done.stdout))


@pytest.fixture
def release(control_plane, namespace, tmp_path) -> Iterator[Release]:
    # Every webhook limited to a namespace that does not exist: installing cannot touch other tests.
    nowhere = [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [f"{namespace}-nowhere"]}]
    values = {
        "webhook": {
            "failurePolicy": "Ignore",
            "validation": {"failurePolicy": "Ignore"},
            "namespaceSelector": {"matchExpressions": nowhere},
        }
    }
    installed = Release(control_plane, namespace, pathlib.Path(write_values(tmp_path / "values.yaml", values)))
    try:
        yield installed
    finally:
        installed.uninstall()


def chart_operator_kubeconfig(control_plane, release: Release, tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig holding a token of the chart's operator ServiceAccount: the operator as installed."""
    token = control_plane.kubectl(
        "create", "token", f"{release.fullname}-operator", "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    assert control_plane.pki is not None
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.pki.ca_cert),
                        },
                    }
                ],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "operator"}}],
                "current-context": "c",
            }
        )
    )
    return kubeconfig


def start_chart_operator(control_plane, release: Release, tmp_path: pathlib.Path) -> Any:
    """``pilotfish operator`` with the chart's ServiceAccount, flags and peering."""
    return start_operator(
        control_plane,
        tmp_path,
        f"--peering={release.fullname}",
        f"--secret-reader-role={release.fullname}-operator-secret-reader",
        f"--service-account={release.namespace}/{release.fullname}-operator",
        kubeconfig=chart_operator_kubeconfig(control_plane, release, tmp_path),
        standalone=False,
    )


def test_an_operator_with_only_the_installed_service_account_and_peering_reconciles(control_plane, release, tmp_path):
    """The operator as the chart runs it: the chart's ServiceAccount token, its RBAC and its ClusterKopfPeering,
    with its Secret reader limited to the Secret the credentials name (operator.secretNames)."""
    release.install("--set", "operator.secretNames={vendor-keys}")
    app = f"app-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", app)
    operator = f"system:serviceaccount:{release.namespace}:{release.fullname}-operator"

    def may(verb: str, what: str, namespace: str) -> bool:
        done = control_plane.kubectl("auth", "can-i", verb, what, "-n", namespace, f"--as={operator}", check=False)
        return done.stdout.strip() == "yes"

    elsewhere = f"other-{uuid.uuid4().hex[:6]}"  # a namespace with Secrets but no ProviderCredential
    control_plane.kubectl("create", "namespace", elsewhere)
    control_plane.kubectl("create", "secret", "generic", "unrelated", "-n", elsewhere, "--from-literal=k=v")
    control_plane.kubectl("create", "secret", "generic", "neighbours", "-n", app, "--from-literal=k=v")
    running = start_chart_operator(control_plane, release, tmp_path)
    try:
        control_plane.kubectl(
            "create",
            "secret",
            "generic",
            "vendor-keys",
            "-n",
            app,
            "--from-literal=openai=sk-a",
            "--from-literal=backup=sk-b",
        )
        control_plane.kubectl("apply", "-n", app, "-f", str(EXAMPLES / "workhorse.yaml"))

        def ready() -> bool:
            done = control_plane.kubectl("get", "mc", "workhorse", "-n", app, "-o", "json", check=False)
            conditions = json.loads(done.stdout).get("status", {}).get("conditions", []) if done.returncode == 0 else []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(ready, what="workhorse Ready")
        assert control_plane.kubectl("get", "configmap", "pilotfish-routes", "-n", app, check=False).returncode == 0
        assert may("update", "configmaps/pilotfish-routes", app) and may("delete", "configmaps/pilotfish-routes", app)
        assert not may("update", "configmaps/someone-elses", app) and not may("delete", "configmaps/someone-elses", app)
        assert not may("patch", "configmaps/kube-root-ca.crt", app)
        # Secrets: readable where credentials reference them (the operator bound itself there), nowhere else
        assert may("get", "secrets/vendor-keys", app)
        assert not may("get", "secrets/unrelated", elsewhere) and not may("list", "secrets", elsewhere)
        # and where it may, only the named Secret, and only by name
        assert not may("get", "secrets/neighbours", app) and not may("list", "secrets", app)
        assert not may("watch", "secrets", app)
        read = control_plane.kubectl("get", "secret", "unrelated", "-n", elsewhere, f"--as={operator}", check=False)
        assert read.returncode != 0 and "forbidden" in read.stderr.lower()
        # a Secret that loses a key is noticed without a watch on Secrets (the operator passes over it)
        control_plane.kubectl(
            "patch",
            "secret",
            "vendor-keys",
            "-n",
            app,
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/data/backup"}]',
        )

        def backup_reason() -> str:
            done = control_plane.kubectl("get", "providercredential", "llm-backup", "-n", app, "-o", "json")
            found = json.loads(done.stdout).get("status", {}).get("conditions", [])
            return next((c["reason"] for c in found if c["type"] == "Ready"), "")

        wait_for(lambda: backup_reason() == "SecretKeyMissing", timeout=60, what="the missing key reported")
        # with the last credential gone, the operator gives its Secret access back
        control_plane.kubectl("delete", "providercredential", "--all", "-n", app)
        wait_for(
            lambda: not may("get", "secrets/vendor-keys", app),
            what="the Secret reader unbound with the last credential",
        )
        wait_for(lambda: running.metric('pilotfish_operator_reconciles_total{result="ok"}') >= 1, what="a pass")
        log = running.log.read_text()
        # a 403 shows as "(403)" and "Forbidden" in the client's errors; a bare "403" can be part of the
        # randomly drawn peering priority the operator logs
        assert "Forbidden" not in log and "(403)" not in log, log[-2000:]
        # the session's own operator may reconcile the same namespace: a write conflict between the two is
        # retried and fine; any other failed pass is not
        failures = [line for line in log.splitlines() if "reconcile of namespace" in line and "failed" in line]
        assert all("409" in line or "Conflict" in line for line in failures), failures
        assert "kopf._core.engines.peering" in log  # it took part in the chart's ClusterKopfPeering
    finally:
        stop_operator(running)
        delete_namespace(control_plane, app)
        delete_namespace(control_plane, elsewhere)


def _ca_bundles(release: Release) -> set[str]:
    injector = release.get("mutatingwebhookconfiguration", f"{release.fullname}-sidecar-injector", namespaced=False)
    validator = release.get("validatingwebhookconfiguration", f"{release.fullname}-validator", namespaced=False)
    assert injector and validator
    return {w["clientConfig"]["caBundle"] for w in injector["webhooks"] + validator["webhooks"]}


def test_helm_install_creates_everything_upgrade_keeps_the_ca_and_uninstall_removes_it(control_plane, release):
    notes = release.install()
    assert "kubectl label namespace my-app pilotfish.dev/injection=enabled" in notes
    assert (
        "kubectl -n my-app get mc" in notes and "kind: ProviderCredential" in notes and "create secret generic" in notes
    )

    name, ns = release.fullname, release.namespace
    deployment = release.get("deployment", f"{name}-operator")
    assert deployment and deployment["spec"]["replicas"] == 2
    assert f"--peering={name}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    service = release.get("service", f"{name}-operator")
    assert service and {p["port"] for p in service["spec"]["ports"]} == {443, 8080}
    assert release.get("serviceaccount", f"{name}-operator")
    assert release.get("configmap", f"{name}-injector")
    assert release.get("poddisruptionbudget", f"{name}-operator")
    assert release.get("clusterkopfpeering", name, namespaced=False)
    assert release.get("clusterrole", f"{name}-operator", namespaced=False)
    assert release.get("clusterrolebinding", f"{name}-operator", namespaced=False)
    secret = release.get("secret", f"{name}-webhook-tls")
    assert secret and secret["type"] == "kubernetes.io/tls"
    bundles = _ca_bundles(release)
    assert bundles == {secret["data"]["ca.crt"]} and base64.b64decode(secret["data"]["ca.crt"]).startswith(
        b"-----BEGIN CERTIFICATE-----"
    )

    # the installed RBAC, as the API server's authorizer sees it
    who = f"--as=system:serviceaccount:{ns}:{name}-operator"

    def can(*args: str) -> bool:
        return control_plane.kubectl("auth", "can-i", *args, who, check=False).stdout.strip() == "yes"

    # no Secret at all until the operator binds itself to the reader where credentials are
    assert not can("list", "secrets", "-A") and not can("get", "secrets", "-A") and not can("create", "secrets", "-A")
    assert can("create", "rolebindings", "-A") and can(
        "bind", f"clusterroles/{release.fullname}-operator-secret-reader"
    )
    assert not can("bind", "clusterroles/cluster-admin")
    assert can("patch", "modelclasses.pilotfish.dev", "--subresource=status", "-A")
    assert can("delete", "configmaps/pilotfish-routes", "-A") and not can("delete", "configmaps", "-A")
    assert can("patch", "clusterkopfpeerings.kopf.dev")
    assert not can("create", "pods", "-A") and not can("delete", "modelclasses.pilotfish.dev", "-A")

    # upgrade: the Secret is found with `lookup`, so the CA and the caBundles stay the same
    release.upgrade("--set", "webhook.timeoutSeconds=7")
    injector = release.get("mutatingwebhookconfiguration", f"{name}-sidecar-injector", namespaced=False)
    assert injector and {w["timeoutSeconds"] for w in injector["webhooks"]} == {7}  # the upgrade did apply
    after = release.get("secret", f"{name}-webhook-tls")
    assert after and after["data"] == secret["data"]
    assert _ca_bundles(release) == bundles

    control_plane.helm("uninstall", release.name, "-n", ns)
    for kind, obj, namespaced in [
        ("deployment", f"{name}-operator", True),
        ("service", f"{name}-operator", True),
        ("secret", f"{name}-webhook-tls", True),
        ("serviceaccount", f"{name}-operator", True),
        ("configmap", f"{name}-injector", True),
        ("mutatingwebhookconfiguration", f"{name}-sidecar-injector", False),
        ("validatingwebhookconfiguration", f"{name}-validator", False),
        ("clusterrole", f"{name}-operator", False),
        ("clusterrolebinding", f"{name}-operator", False),
        ("clusterkopfpeering", name, False),
    ]:
        assert release.get(kind, obj, namespaced=namespaced) is None, f"{kind}/{obj} survived helm uninstall"
    # CRDs from crds/ stay (Helm never deletes them): other releases and tests keep working
    assert release.get("crd", "clusterkopfpeerings.kopf.dev", namespaced=False)


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {labels}
spec:
  containers: [{{name: app, image: "registry.k8s.io/pause:3.10"}}]
"""


def test_the_installed_injector_is_called_for_exactly_the_opted_in_pods(control_plane, namespace, tmp_path):
    """failurePolicy Fail and no operator running: a pod the webhook selects is refused (naming the
    webhook), one it does not select is created. Limited to this test's own namespaces."""
    opted, plain = f"{namespace}-opted", f"{namespace}-plain"
    for ns in (opted, plain):
        control_plane.kubectl("create", "namespace", ns)
    for ns in (opted, namespace):  # the release namespace is labelled too, and must still be skipped
        control_plane.kubectl("label", "namespace", ns, "pilotfish.dev/injection=enabled")
    mine = [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [opted, plain, namespace]}]
    values = {
        "webhook": {
            "failurePolicy": "Fail",
            "timeoutSeconds": 2,
            "validation": {"enabled": False},
            "namespaceSelector": {"matchExpressions": mine},
        }
    }
    installed = Release(control_plane, namespace, pathlib.Path(write_values(tmp_path / "values.yaml", values)))
    try:
        installed.install()

        def create(ns: str, labels: dict[str, str]) -> subprocess.CompletedProcess[str]:
            pod = POD.format(name=f"p-{uuid.uuid4().hex[:6]}", labels=json.dumps(labels))
            return control_plane.kubectl("create", "-n", ns, "-f", "-", stdin=pod, check=False, timeout=30)

        # the API server picks up new webhook configurations from a watch: wait until it calls this one
        refused = wait_for(
            lambda: (done := create(opted, {})).returncode != 0 and done, what="the injector to be called"
        )
        assert 'failed calling webhook "namespace.sidecar-injector.pilotfish.dev"' in refused.stderr, refused.stderr
        assert create(opted, {"pilotfish.dev/inject": "false"}).returncode == 0
        assert create(plain, {}).returncode == 0
        refused = create(plain, {"pilotfish.dev/inject": "true"})
        assert (
            refused.returncode != 0 and 'failed calling webhook "pod.sidecar-injector.pilotfish.dev"' in refused.stderr
        ), refused.stderr
        assert create(namespace, {}).returncode == 0
        assert create(namespace, {"pilotfish.dev/inject": "true"}).returncode == 0
        installed.uninstall()
        # uninstalled: nothing calls the webhook any more
        wait_for(lambda: create(opted, {}).returncode == 0, what="pod creation to succeed after uninstall")
    finally:
        installed.uninstall()
        for ns in (opted, plain):
            delete_namespace(control_plane, ns)  # and the `namespace` fixture deletes the release's


# ---------------------------------------------------------------------------------------------- webhook.url


class StubAdmission(http.server.BaseHTTPRequestHandler):
    """Answers as the operator would be asked: a patch on /mutate-pods, a denial on /validate."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = urllib.parse.urlsplit(self.path).path  # the API server appends ?timeout=5s
        self.calls.append(path)
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if path == "/mutate-pods":
            patch = [{"op": "add", "path": "/metadata/annotations", "value": {"stub.pilotfish.dev/path": path}}]
            response |= {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}
        elif path == "/validate":
            response |= {"allowed": False, "status": {"code": 422, "message": "stub says spec.provider is wrong"}}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def stub_admission(control_plane, tmp_path) -> Iterator[str]:
    """An HTTPS admission server on loopback, its certificate signed by the control plane's CA."""
    assert control_plane.pki is not None
    cert, key = certs.serving_pair(
        tmp_path, ca_cert=control_plane.pki.ca_cert, ca_key=control_plane.pki.ca_key, name="stub"
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubAdmission)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    StubAdmission.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_url_mode_is_called_by_the_api_server_at_both_paths_over_tls(
    crds_applied, namespace, stub_admission, tmp_path
):
    """The chart's own configurations, rendered for an out-of-cluster operator and registered as they
    are: the API server trusts webhook.caBundle, posts to <url>/mutate-pods and <url>/validate, and
    applies the answers."""
    assert crds_applied.pki is not None
    ca = base64.b64encode(crds_applied.pki.ca_cert.read_bytes()).decode()
    mine = [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}]
    values = {
        "webhook": {
            "url": stub_admission,
            "caBundle": ca,
            "failurePolicy": "Fail",
            "namespaceSelector": {"matchExpressions": mine},
        }
    }
    release = f"url-{uuid.uuid4().hex[:6]}"
    docs = render(
        crds_applied,
        "-f",
        write_values(tmp_path / "v.yaml", values),
        "--show-only",
        "templates/webhook.yaml",
        release=release,
    )
    configs = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    assert len(configs) == 2
    crds_applied.kubectl("label", "namespace", namespace, "pilotfish.dev/injection=enabled")
    try:
        crds_applied.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(configs))

        def create_pod() -> dict[str, Any]:
            pod = POD.format(name=f"app-{uuid.uuid4().hex[:6]}", labels="{}")
            created = crds_applied.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", stdin=pod)
            return dict(json.loads(created.stdout))

        # the API server picks up new webhook configurations from a watch: the first pods may miss it
        created = wait_for(
            lambda: (pod := create_pod())["metadata"].get("annotations") and pod, what="the stub's patch"
        )
        assert created["metadata"]["annotations"]["stub.pilotfish.dev/path"] == "/mutate-pods"

        def create_credential() -> subprocess.CompletedProcess[str]:
            credential = f"apiVersion: pilotfish.dev/v1alpha1\nkind: ProviderCredential\nmetadata: {{name: c-{uuid.uuid4().hex[:6]}}}\nspec: {{provider: openai, apiKeySecretRef: {{name: k, key: k}}}}\n"
            return crds_applied.kubectl("create", "-n", namespace, "-f", "-", stdin=credential, check=False)

        refused = wait_for(lambda: (done := create_credential()).returncode != 0 and done, what="the stub's denial")
        assert "stub says spec.provider is wrong" in refused.stderr, refused.stderr
        assert StubAdmission.calls[0] == "/mutate-pods" and set(StubAdmission.calls) == {"/mutate-pods", "/validate"}
    finally:
        crds_applied.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false", check=False)
        for config in configs:
            crds_applied.kubectl(
                "delete", config["kind"].lower(), config["metadata"]["name"], "--ignore-not-found", check=False
            )

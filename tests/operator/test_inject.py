"""The injection patch, decided without a cluster: what a Pod gets, and when it gets nothing."""

from __future__ import annotations

import copy
import json
from typing import Any

from pilotfish_operator import inject, injector_config

CONFIG = injector_config.InjectorConfig(image="registry.example/pilotfish-sidecar:1.2.3")


def pod(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "labels": {"app": "chat"}},
        "spec": {
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "LOG", "value": "1"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value}
    return base


def applied(original: dict[str, Any], decision: inject.Decision) -> dict[str, Any]:
    """RFC 6902 'add' on an object member replaces it: the only operation the patch uses."""
    result = copy.deepcopy(original)
    for op in decision.patch:
        assert op["op"] == "add"
        *parents, leaf = op["path"].strip("/").split("/")
        target = result
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = op["value"]
    return result


def test_the_sidecar_is_a_native_sidecar_that_gates_the_app_on_its_readiness():
    decision = inject.decide(pod(), secrets=["vendor-keys"], config=CONFIG)
    assert decision.injected and decision.reason == "Injected"
    result = applied(pod(), decision)
    sidecar = result["spec"]["initContainers"][0]
    assert sidecar["name"] == "pilotfish" and sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "registry.example/pilotfish-sidecar:1.2.3"
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 4001}
    assert "--listen" in sidecar["args"] and "127.0.0.1:4000" in sidecar["args"]
    assert sidecar["securityContext"]["runAsNonRoot"] and sidecar["securityContext"]["readOnlyRootFilesystem"]


def test_routes_are_mounted_as_a_directory_and_only_referenced_secrets_into_the_sidecar_alone():
    result = applied(pod(), inject.decide(pod(), secrets=["vendor-keys", "other-keys"], config=CONFIG))
    sidecar, app = result["spec"]["initContainers"][0], result["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert set(mounts) == {
        "/etc/pilotfish/routes",
        "/etc/pilotfish/podinfo",
        "/etc/pilotfish/secrets/other-keys",
        "/etc/pilotfish/secrets/vendor-keys",
        "/etc/pilotfish/secrets/pilotfish-keys",
    }
    assert all("subPath" not in m and m["readOnly"] for m in mounts.values())
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["pilotfish-routes"]["configMap"] == {"name": "pilotfish-routes", "optional": True}
    assert volumes["pilotfish-secret-vendor-keys"]["secret"] == {"secretName": "vendor-keys", "optional": True}
    assert "data" in volumes  # the app's own volume is kept
    assert "volumeMounts" not in app


def test_the_late_keys_secret_is_always_mounted_optional_so_a_key_added_after_the_pod_started_arrives():
    result = applied(pod(), inject.decide(pod(), secrets=[], config=CONFIG))
    sidecar = result["spec"]["initContainers"][0]
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["pilotfish-secret-pilotfish-keys"]["secret"] == {"secretName": "pilotfish-keys", "optional": True}
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "pilotfish-secret-pilotfish-keys")
    assert mount["mountPath"] == "/etc/pilotfish/secrets/pilotfish-keys" and "subPath" not in mount
    named = applied(pod(), inject.decide(pod(), secrets=["pilotfish-keys"], config=CONFIG))
    assert [v["name"] for v in named["spec"]["volumes"]].count("pilotfish-secret-pilotfish-keys") == 1


def test_the_sidecar_reads_its_pods_labels_through_the_downward_api_for_tier_rules():
    result = applied(pod(), inject.decide(pod(), secrets=[], config=CONFIG))
    sidecar = result["spec"]["initContainers"][0]
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["pilotfish-podinfo"]["downwardAPI"] == {
        "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
    }
    flag = sidecar["args"].index("--pod-labels-file")
    assert sidecar["args"][flag + 1] == "/etc/pilotfish/podinfo/labels"


def test_app_containers_are_pointed_at_the_sidecar_unless_they_chose_an_endpoint():
    mine = pod(
        spec={
            "containers": [{"name": "app", "image": "a", "env": [{"name": "OPENAI_BASE_URL", "value": "http://x/v1"}]}]
        }
    )
    result = applied(mine, inject.decide(mine, secrets=[], config=CONFIG))
    env = {e["name"]: e["value"] for e in result["spec"]["containers"][0]["env"]}
    assert env == {"OPENAI_BASE_URL": "http://x/v1", "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000"}


def test_a_second_invocation_adds_nothing():
    once = applied(pod(), inject.decide(pod(), secrets=["vendor-keys"], config=CONFIG))
    again = inject.decide(once, secrets=["vendor-keys"], config=CONFIG)
    assert not again.injected and again.reason == "AlreadyInjected"
    status = json.loads(once["metadata"]["annotations"][inject.STATUS_ANNOTATION])
    assert status["secrets"] == ["pilotfish-keys", "vendor-keys"] and status["image"] == CONFIG.image
    assert once["metadata"]["labels"] == {"app": "chat", inject.SIDECAR_LABEL: "injected"}


def test_opted_out_and_host_network_pods_are_left_alone():
    out = pod(metadata={"labels": {"pilotfish.dev/inject": "false"}})
    assert inject.decide(out, secrets=[], config=CONFIG).reason == "OptedOut"
    host = pod(spec={"hostNetwork": True, "containers": [{"name": "a", "image": "a"}]})
    assert inject.decide(host, secrets=[], config=CONFIG).reason == "HostNetwork"


def test_a_user_container_named_like_ours_overrides_our_template():
    mine = pod(
        spec={"containers": [{"name": "app", "image": "a"}, {"name": "pilotfish", "image": "mirror.local/pf:9"}]}
    )
    result = applied(mine, inject.decide(mine, secrets=[], config=CONFIG))
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]
    sidecar = result["spec"]["initContainers"][0]
    assert sidecar["image"] == "mirror.local/pf:9" and sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]  # fields the user did not set come from the template


def test_annotations_override_resources_and_a_bad_quantity_is_a_warning_not_a_failure():
    mine = pod(metadata={"annotations": {"pilotfish.dev/sidecar-cpu": "200m", "pilotfish.dev/sidecar-memory": "lots"}})
    decision = inject.decide(mine, secrets=[], config=CONFIG)
    resources = applied(mine, decision)["spec"]["initContainers"][0]["resources"]
    assert resources["requests"] == {"cpu": "200m", "memory": "64Mi"}
    assert resources["limits"] == {"memory": "128Mi"}
    assert decision.warnings and "pilotfish.dev/sidecar-memory" in decision.warnings[0]


def test_existing_init_containers_run_after_the_sidecar():
    mine = pod(
        spec={"initContainers": [{"name": "migrate", "image": "m"}], "containers": [{"name": "a", "image": "a"}]}
    )
    result = applied(mine, inject.decide(mine, secrets=[], config=CONFIG))
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["pilotfish", "migrate"]


def test_long_secret_names_get_a_valid_volume_name():
    name = inject.secret_volume_name("a" * 60)
    assert len(name) <= 63 and name.startswith("pilotfish-secret-")
    assert inject.secret_volume_name("a" * 60) == name
    assert inject.secret_volume_name("keys.v2") != "pilotfish-secret-keys.v2"


def test_the_injector_configs_environment_reaches_the_sidecar_only():
    config = injector_config.InjectorConfig(env=[{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"}])
    result = applied(pod(), inject.decide(pod(), secrets=[], config=config))
    assert result["spec"]["initContainers"][0]["env"] == [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"}
    ]
    assert all(e["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT" for e in result["spec"]["containers"][0]["env"])


def test_with_budgets_the_sidecar_gets_a_pilotfish_audience_token_the_endpoint_and_its_ca_and_the_app_none():
    config = CONFIG.model_copy(
        update={"budgets": injector_config.BudgetsConfig(url="https://op.pf.svc:443", ca_pem="-----BEGIN CERT")}
    )
    result = applied(pod(), inject.decide(pod(), secrets=["vendor-keys"], config=config))
    sidecar, app = result["spec"]["initContainers"][0], result["spec"]["containers"][0]
    token = next(v for v in result["spec"]["volumes"] if v["name"] == inject.TOKEN_VOLUME)
    [source] = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pilotfish"  # useless against the API server itself
    assert {"name": inject.TOKEN_VOLUME, "mountPath": inject.TOKEN_DIR, "readOnly": True} in sidecar["volumeMounts"]
    assert all(m["name"] != inject.TOKEN_VOLUME for m in app.get("volumeMounts", []))
    args = sidecar["args"]
    assert args[args.index("--budget-url") + 1] == "https://op.pf.svc:443"
    assert args[args.index("--budget-token-file") + 1] == f"{inject.TOKEN_DIR}/token"
    env = {e["name"]: e for e in sidecar["env"]}
    assert env[inject.BUDGET_CA_ENV]["value"] == "-----BEGIN CERT"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_without_budgets_there_is_no_token_and_no_endpoint():
    result = applied(pod(), inject.decide(pod(), secrets=[], config=CONFIG))
    sidecar = result["spec"]["initContainers"][0]
    assert all(v["name"] != inject.TOKEN_VOLUME for v in result["spec"]["volumes"])
    assert "--budget-url" not in sidecar["args"] and "env" not in sidecar

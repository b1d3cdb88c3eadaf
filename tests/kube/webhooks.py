"""The webhook configurations the tests register: the chart's, rendered with ``webhook.url`` at the operator."""

from __future__ import annotations

import json

from tests.kube.conftest import RunningOperator

EXCLUDED = ["kube-system", "kube-public", "kube-node-lease"]


def render(operator: RunningOperator, *, url: str | None = None) -> str:
    base = url or operator.webhook_url
    not_excluded = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": EXCLUDED}
    common = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "failurePolicy": "Ignore",
    }
    pod_rule = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
    client = {"url": f"{base}/mutate-pods", "caBundle": operator.ca_bundle}
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "pilotfish-test-injector"},
        "webhooks": [
            {
                **common,
                "name": "namespace.inject.pilotfish.dev",
                "reinvocationPolicy": "IfNeeded",
                "clientConfig": client,
                "rules": pod_rule,
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "pilotfish.dev/injection", "operator": "In", "values": ["enabled"]},
                        not_excluded,
                    ]
                },
                "objectSelector": {
                    "matchExpressions": [{"key": "pilotfish.dev/inject", "operator": "NotIn", "values": ["false"]}]
                },
            },
            {
                **common,
                "name": "pod.inject.pilotfish.dev",
                "reinvocationPolicy": "IfNeeded",
                "clientConfig": client,
                "rules": pod_rule,
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "pilotfish.dev/injection", "operator": "NotIn", "values": ["enabled"]},
                        not_excluded,
                    ]
                },
                "objectSelector": {"matchLabels": {"pilotfish.dev/inject": "true"}},
            },
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "pilotfish-test-validator"},
        "webhooks": [
            {
                **common,
                "name": "validate.pilotfish.dev",
                "clientConfig": {"url": f"{base}/validate", "caBundle": operator.ca_bundle},
                "rules": [
                    {
                        "apiGroups": ["pilotfish.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["modelclasses", "providercredentials"],
                    }
                ],
            }
        ],
    }
    return "\n---\n".join(json.dumps(doc) for doc in (mutating, validating))

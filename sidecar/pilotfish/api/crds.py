"""CRD YAML generated from the pydantic models, so the API server validates exactly what we parse.

Pydantic's JSON Schema is turned into a Kubernetes *structural* schema: ``$ref`` inlined, optional
unions collapsed, ``exclusiveMinimum`` in OpenAPI v3.0 form, titles dropped. Rules that span fields
(the models' validators) are restated as CEL ``x-kubernetes-validations`` with readable messages.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pydantic
import yaml

from pilotfish import api
from pilotfish.api import budget, canary, credential, modelclass

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "format",
    "maxProperties",
    "x-kubernetes-list-type",
}

MODELCLASS_RULES = [
    {
        "rule": "!has(self.members) || self.members.all(m, self.members.exists_one(n, n.credentialRef =="
        " m.credentialRef && n.model == m.model))",
        "message": "members must be unique by credentialRef and model",
    },
    {
        "rule": "!has(self.canary) || !has(self.members) || !self.members.exists(m, m.credentialRef =="
        " self.canary.member.credentialRef"
        " && m.model == self.canary.member.model)",
        "message": "canary.member is already in members",
    },
    {
        "rule": "!has(self.canary) || self.canary.steps.all(s, (has(s.setWeight) ? 1 : 0) + (has(s.pause) ? 1 : 0)"
        " + (has(s.analysis) ? 1 : 0) == 1)",
        "message": "each canary step has exactly one of setWeight, pause, analysis",
    },
    {
        "rule": "!has(self.canary) || !has(self.canary.analysis) || !has(self.canary.analysis.metrics)"
        " || self.canary.analysis.metrics.all(m, (has(m.query) || m.name in "
        + repr(list(canary.BUILT_IN_METRICS))
        + ") && (has(m.thresholdRange.min) || has(m.thresholdRange.max)))",
        "message": "a canary metric that is not built in needs a query, and every thresholdRange needs min or max",
    },
    {
        "rule": "!has(self.canary) || !self.canary.steps.exists(s, has(s.analysis)) || (has(self.canary.analysis)"
        " && has(self.canary.analysis.metrics) && size(self.canary.analysis.metrics) > 0)",
        "message": "a canary analysis step needs canary.analysis.metrics",
    },
    {
        "rule": "!has(self.canary) || !has(self.canary.analysis) || !has(self.canary.analysis.metrics)"
        " || size(self.canary.analysis.metrics) == 0 || has(self.canary.analysis.prometheus)",
        "message": "canary.analysis.metrics need canary.analysis.prometheus.address",
    },
]
_WHEN = ("promptTokensAtLeast", "promptTokensBelow", "hasTools", "hasResponseFormat", "maxTokensAtLeast", "header")
TIER_RULES = [
    {
        "rule": "has(self.tiers) != (has(self.members) && size(self.members) > 0)",
        "message": "set exactly one of members (a class of models) and tiers (a class of classes)",
    },
    {
        "rule": "!has(self.tiers) || !has(self.canary)",
        "message": "canary needs members: a class with tiers rolls out canaries in its tier classes",
    },
    {
        "rule": "!has(self.tiers) || self.tiers.default in self.tiers.ladder",
        "message": "tiers.default must be on tiers.ladder",
    },
    {
        "rule": "!has(self.tiers) || !has(self.tiers.rules) || self.tiers.rules.all(r, r.tier in self.tiers.ladder)",
        "message": "every tiers.rules[].tier must be on tiers.ladder",
    },
    {
        "rule": "!has(self.tiers) || !has(self.tiers.rules) || self.tiers.rules.all(r, "
        + " || ".join(f"has(r.when.{name})" for name in _WHEN)
        + " || (has(r.when.podLabels) && size(r.when.podLabels) > 0))",
        "message": "every tiers.rules[].when needs at least one condition",
    },
]
MODELCLASS_RULES += TIER_RULES
CREDENTIAL_RULES = [
    {
        "rule": "!(self.provider in ['openai-compatible', 'azure-openai']) || has(self.baseURL)",
        "message": "baseURL is required when provider is openai-compatible or azure-openai",
    },
    {
        "rule": "!has(self.apiKeySecretRef) || !has(self.baseURL) || !self.baseURL.startsWith('http://')"
        " || (has(self.allowPlainHTTP) && self.allowPlainHTTP)"
        f" || self.baseURL.matches(r'{credential.LOOPBACK_HTTP}')",
        "message": credential.PLAIN_HTTP_REFUSED,
    },
]
BUDGET_RULES = [
    {
        "rule": "has(self.requestsPerMinute) || has(self.tokensPerMinute) || has(self.spend)",
        "message": "set at least one of requestsPerMinute, tokensPerMinute, spend",
    },
    {
        "rule": "(has(self.action) && self.action == 'downgrade') == has(self.downgradeTo)",
        "message": "downgradeTo is required with action downgrade, and only then",
    },
    {
        "rule": "!has(self.downgradeTo) || !has(self.classes) || !(self.downgradeTo in self.classes)",
        "message": "downgradeTo must not be one of the classes this budget covers",
    },
]


def structural(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema as a Kubernetes structural schema."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        resolved = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        resolved.update({k: v for k, v in node.items() if k != "$ref"})
        return _convert(resolved, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        merged = (
            {**_convert(branches[0], defs), **{k: v for k, v in node.items() if k in _KEEP}}
            if len(branches) == 1
            else {}
        )
        if len(branches) != 1:  # str | list[str] and friends: accept any JSON, the sidecar validates
            merged = {"x-kubernetes-preserve-unknown-fields": True}
        if merged.get("default", 0) is None:
            merged.pop("default")
        return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "properties":
            out["properties"] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        elif key in _KEEP and key != "additionalProperties":
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def _crd(
    *,
    kind: str,
    description: str,
    plural: str,
    short_names: tuple[str, ...],
    spec_model: type[pydantic.BaseModel],
    rules: list[dict[str, str]],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    spec_schema = structural(spec_model)
    spec_schema["x-kubernetes-validations"] = rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{api.GROUP}", "labels": {"app.kubernetes.io/part-of": "pilotfish"}},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(short_names),
                "categories": ["pilotfish"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


_READY = {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def render_crds() -> dict[str, str]:
    """File name → YAML text, as `crds/` holds them."""
    crds = {
        f"{api.GROUP}_{modelclass.PLURAL}.yaml": _crd(
            kind=modelclass.KIND,
            description="An equivalence class of models that apps ask for by name.",
            plural=modelclass.PLURAL,
            short_names=modelclass.SHORT_NAMES,
            spec_model=modelclass.ModelClassSpec,
            rules=MODELCLASS_RULES,
            columns=[
                _READY,
                {"name": "Members", "type": "integer", "jsonPath": ".status.memberCount"},
                {"name": "Eligible", "type": "integer", "jsonPath": ".status.eligibleCount"},
                {"name": "Tiers", "type": "string", "jsonPath": ".spec.tiers.ladder"},
                {"name": "Canary", "type": "string", "jsonPath": ".status.canary.phase"},
                {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
                {
                    "name": "Quota%",
                    "type": "integer",
                    "jsonPath": ".status.quotaUsedPercent",
                    "description": "The highest share of its rpm/tpm quota any member used this minute.",
                },
                _AGE,
            ],
        ),
        f"{api.GROUP}_{credential.PLURAL}.yaml": _crd(
            kind=credential.KIND,
            description="Where a provider lives, which Secret holds its API key, and its compliance labels.",
            plural=credential.PLURAL,
            short_names=credential.SHORT_NAMES,
            spec_model=credential.ProviderCredentialSpec,
            rules=CREDENTIAL_RULES,
            columns=[{"name": "Provider", "type": "string", "jsonPath": ".spec.provider"}, _READY, _AGE],
        ),
        f"{api.GROUP}_{budget.PLURAL}.yaml": _crd(
            kind=budget.KIND,
            description="A team's spend budget and rate limits, enforced together by every sidecar of the namespace.",
            plural=budget.PLURAL,
            short_names=budget.SHORT_NAMES,
            spec_model=budget.BudgetSpec,
            rules=BUDGET_RULES,
            columns=[
                {"name": "Requests", "type": "integer", "jsonPath": ".status.requests.used"},
                {"name": "RPM", "type": "integer", "jsonPath": ".spec.requestsPerMinute"},
                {"name": "Tokens", "type": "integer", "jsonPath": ".status.tokens.used"},
                {"name": "TPM", "type": "integer", "jsonPath": ".spec.tokensPerMinute"},
                {"name": "Spent", "type": "number", "jsonPath": ".status.spend.usedUSD"},
                {"name": "USD", "type": "number", "jsonPath": ".spec.spend.usd"},
                {"name": "Used%", "type": "integer", "jsonPath": ".status.usedPercent"},
                {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
                _AGE,
            ],
        ),
    }
    header = "# Generated by `pilotfish crds` from sidecar/pilotfish/api; do not edit by hand.\n"
    return {name: header + yaml.safe_dump(crd, sort_keys=False, width=120) for name, crd in crds.items()}


DEFAULT_OUTS = ("crds", "charts/pilotfish/crds")  # the plain manifests, and the Helm chart's copy


def main_write(*, outs: list[str], check: bool) -> int:
    stale = []
    for out in outs:
        directory = pathlib.Path(out)
        for name, text in render_crds().items():
            path = directory / name
            if check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                sys.stdout.write(f"wrote {path}\n")
    if stale:
        sys.stderr.write("CRDs differ from the API models: " + ", ".join(stale) + "; run `pilotfish crds`\n")
        return 1
    return 0

"""What a namespace should look like: the routes ConfigMap and every object's status. Pure.

One call per namespace, from the objects as the API server returns them. It uses the same
``routes.render`` as ``pilotfish render`` and ``pilotfish local``, so what a developer sees on a laptop
is what the operator writes. A ModelClass or ProviderCredential that fails validation is reported on
its own status and left out; it never breaks the other classes of the namespace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence, Set
from typing import Any

import pydantic

from pilotfish import failures
from pilotfish.api import budget, credential, manifests, modelclass
from pilotfish.routes import document, render
from pilotfish_operator import conditions

GROUP_VERSION = "pilotfish.dev/v1alpha1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pilotfish-operator", "app.kubernetes.io/part-of": "pilotfish"}
DIGEST_ANNOTATION = "pilotfish.dev/routes-digest"
INVALID_SPEC = "InvalidSpec"
ACTIVE_PHASES = ("Progressing", "Paused", "Promoting")
ROUTED_PHASES = (*ACTIVE_PHASES, "Succeeded")  # a failed canary is at weight 0 and out of the routes
CREDENTIAL_INVALID = "CredentialInvalid"
CREDENTIAL_REJECTED = "CredentialRejected"  # a ProviderCredential condition: its provider refuses the key
PREFILL_MISMATCH = "PrefillMismatch"  # a ModelClass condition: a member declared able to continue is not
# How each reason a sidecar reports (failures.ContinuationProblem) reads in the condition's message.
_CANNOT_CONTINUE_WORDS: dict[str, str] = {
    failures.ContinuationProblem.PREFILL_REJECTED: "rejected the prefill",
    failures.ContinuationProblem.RESTARTED: "started the answer over instead of continuing it",
    failures.ContinuationProblem.DIVERGED: "wrote an answer that contradicts the delivered text",
}

Object = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Event:
    kind: str  # ModelClass | ProviderCredential
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class NamespacePlan:
    configmap: dict[str, Any] | None  # None: no ModelClass left, the ConfigMap should not exist
    class_status: dict[str, dict[str, Any]]  # ModelClass name → full status
    credential_status: dict[str, dict[str, Any]]  # ProviderCredential name → full status
    events: list[Event]
    digest: str | None


def plan(
    namespace: str,
    *,
    classes: Sequence[Object],
    credentials: Sequence[Object],
    secrets: Mapping[str, Set[str]],
    at: str,
    canaries: Mapping[str, Mapping[str, Any]] | None = None,
    sidecars: Mapping[str, int] | None = None,
    rejected: Mapping[str, str] | None = None,
    cannot_continue: Mapping[str, Mapping[str, str]] | None = None,
    budgets: Sequence[Object] = (),
) -> NamespacePlan:
    """``secrets`` maps each Secret of the namespace to its key names (never values); ``canaries`` maps a
    class to the canary status the stepper just computed for it; ``rejected`` maps a credential to why
    its provider rejects it, and ``cannot_continue`` a class to its members learned unable to continue a
    stream (member id → why), as the running sidecars report (None: no sidecar was read)."""
    canaries = canaries or {}
    good_classes, bad_classes = _parse(classes, modelclass.ModelClass)
    good_creds, bad_creds = _parse(credentials, credential.ProviderCredential)
    weights = {name: int(c.get("weight", 0)) for name, c in canaries.items() if c.get("phase") in ROUTED_PHASES}
    result = render.render(
        namespace=namespace,
        classes=good_classes,
        credentials=good_creds,
        secrets_present=secrets,
        canary_weights=weights,
        budgets=_parse(budgets, budget.Budget)[0],  # an invalid Budget the webhook let through is left out
    )
    digest = result.document.digest() if classes else None
    events: list[Event] = []

    class_status = {}
    reports = {report.name: report for report in result.reports}
    for obj in classes:
        name = obj["metadata"]["name"]
        if name in bad_classes:
            wanted = _invalid_status(obj, bad_classes[name])
        else:
            wanted = _class_status(obj, _with_invalid_credentials(reports[name], bad_creds), digest)
            if sidecars and digest:
                wanted["propagation"] = _propagation(sidecars, digest)
            if name in canaries:
                _add_canary(wanted, canaries[name], reports[name].canary_problem, obj["metadata"].get("generation"))
            if cannot_continue is not None:
                learned = _routed(result.document.classes.get(name), cannot_continue.get(name) or {})
                wanted["conditions"].append(prefill_mismatch(learned, generation=obj["metadata"].get("generation")))
        class_status[name] = _finish(obj, wanted, "ModelClass", at, events)

    credential_status = {}
    for obj in credentials:
        name = obj["metadata"]["name"]
        wanted = _invalid_status(obj, bad_creds[name]) if name in bad_creds else _credential_status(obj, secrets)
        if rejected is not None and name not in bad_creds:
            wanted["conditions"].append(_rejection(obj, rejected.get(name)))
        credential_status[name] = _finish(obj, wanted, "ProviderCredential", at, events)

    configmap = _configmap(namespace, result.document, classes) if classes else None
    return NamespacePlan(configmap, class_status, credential_status, events, digest)


def _parse(objects: Sequence[Object], model: type[pydantic.BaseModel]) -> tuple[list[Any], dict[str, str]]:
    good, bad = [], {}
    for obj in objects:
        try:
            good.append(model.model_validate(obj))
        except pydantic.ValidationError as exc:
            bad[obj["metadata"]["name"]] = "; ".join(manifests.validation_lines(exc)[:5])
    return good, bad


def _with_invalid_credentials(report: render.ClassReport, bad_creds: Mapping[str, str]) -> render.ClassReport:
    """A member whose credential exists but is invalid says so, rather than "does not exist"."""
    members = tuple(
        member.model_copy(
            update={
                "reason": CREDENTIAL_INVALID,
                "message": f'ProviderCredential "{member.credential_ref}" is invalid: '
                f"{bad_creds[member.credential_ref]}",
            }
        )
        if member.reason == render.CREDENTIAL_NOT_FOUND and member.credential_ref in bad_creds
        else member
        for member in report.members
    )
    return dataclasses.replace(report, members=members)


def _class_status(obj: Object, report: render.ClassReport, digest: str | None) -> dict[str, Any]:
    generation = obj["metadata"].get("generation")
    if report.tiers is not None:
        ready, degraded = _tier_conditions(report, generation)
    else:
        ready, degraded = _member_conditions(report, generation)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "memberCount": len(report.members),
        "eligibleCount": report.eligible,
        "members": [m.to_wire() for m in report.members],
        "conditions": [ready, degraded],
    }
    if digest and report.serves:
        status["routesDigest"] = digest
    return status


def _member_conditions(report: render.ClassReport, generation: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ready and Degraded of a class with members: whether any member can serve, and why one cannot."""
    excluded = [m for m in report.members if not m.eligible]
    total, eligible = len(report.members), report.eligible
    if eligible:
        ready = conditions.condition(
            "Ready", True, "MembersEligible", f"{eligible} of {total} members can serve", generation=generation
        )
    else:
        ready = conditions.condition(
            "Ready", False, render.NO_ELIGIBLE_MEMBERS, "no member can serve this class", generation=generation
        )
    if excluded:
        detail = "; ".join(f"{m.credential_ref}/{m.model}: {m.reason}: {m.message}" for m in excluded)
        degraded = conditions.condition("Degraded", True, excluded[0].reason, detail, generation=generation)
    else:
        degraded = conditions.condition(
            "Degraded", False, "AllMembersEligible", "every member can serve", generation=generation
        )
    return ready, degraded


def _tier_conditions(report: render.ClassReport, generation: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ready and Degraded of a class with tiers: whether any tier of its ladder serves, and why one cannot."""
    assert report.tiers is not None
    if report.tiers:
        message = f"tiers {', '.join(report.tiers)} can serve"
        ready = conditions.condition("Ready", True, "TiersAvailable", message, generation=generation)
    else:
        message = "no tier can serve this class"
        ready = conditions.condition("Ready", False, render.NO_AVAILABLE_TIERS, message, generation=generation)
    if report.tier_problems:
        detail = "; ".join(report.tier_problems)
        degraded = conditions.condition("Degraded", True, render.TIER_UNAVAILABLE, detail, generation=generation)
    else:
        degraded = conditions.condition(
            "Degraded", False, "AllTiersAvailable", "every tier can serve", generation=generation
        )
    return ready, degraded


def _propagation(sidecars: Mapping[str, int], digest: str) -> dict[str, int]:
    """How many running sidecars of the namespace serve the current routes, an older one, or cannot be read."""
    unreachable = sidecars.get("unreachable", 0)
    current = sidecars.get(digest, 0)
    return {
        "sidecars": sum(sidecars.values()),
        "current": current,
        "stale": sum(sidecars.values()) - current - unreachable,
        "unreachable": unreachable,
    }


def _add_canary(status: dict[str, Any], canary: Mapping[str, Any], problem: str, generation: int | None) -> None:
    """status.canary and the CanaryProgressing condition (absent while the class has no canary)."""
    if not canary.get("revision"):
        status["canary"] = None  # a merge patch removes it
        return
    phase = canary.get("phase", "Idle")
    message = f"{canary.get('message', '')}; {problem}" if problem else str(canary.get("message", ""))
    status["canary"] = {**canary, "message": message.strip("; ")}
    status["conditions"].append(
        conditions.condition("CanaryProgressing", phase in ACTIVE_PHASES, phase, message, generation=generation)
    )


def _credential_status(obj: Object, secrets: Mapping[str, Set[str]]) -> dict[str, Any]:
    generation = obj["metadata"].get("generation")
    ref = obj.get("spec", {}).get("apiKeySecretRef")
    if ref is None:
        ready = conditions.condition("Ready", True, "NoKeyNeeded", "no apiKeySecretRef", generation=generation)
    elif ref["name"] not in secrets:
        ready = conditions.condition(
            "Ready", False, render.SECRET_NOT_FOUND, f'Secret "{ref["name"]}" does not exist', generation=generation
        )
    elif ref["key"] not in secrets[ref["name"]]:
        ready = conditions.condition(
            "Ready",
            False,
            render.SECRET_KEY_MISSING,
            f'Secret "{ref["name"]}" has no key "{ref["key"]}"',
            generation=generation,
        )
    else:
        ready = conditions.condition(
            "Ready", True, "SecretFound", f'Secret "{ref["name"]}" key "{ref["key"]}" present', generation=generation
        )
    return {"observedGeneration": generation, "conditions": [ready]}


def _rejection(obj: Object, reason: str | None) -> dict[str, Any]:
    """CredentialRejected: whether a running sidecar's provider refuses this credential's key, and why (a
    closed set from the sidecar's /readyz, never key text); lastTransitionTime says since when."""
    generation = obj["metadata"].get("generation")
    if reason is None:
        message = "no running sidecar reports this credential rejected"
        return conditions.condition(CREDENTIAL_REJECTED, False, "NotRejected", message, generation=generation)
    ref = obj.get("spec", {}).get("apiKeySecretRef") or {}
    where = f'Secret "{ref.get("name")}" key "{ref.get("key")}"' if ref else "its Secret"
    message = (
        f"a running sidecar's provider rejects this credential ({reason.replace('_', ' ')}); its members are "
        f"skipped for minutes at a time and their classes fail over. Fix or rotate the key in {where}."
    )
    camel = "".join(word.capitalize() for word in reason.split("_"))
    return conditions.condition(CREDENTIAL_REJECTED, True, camel, message, generation=generation)


def _routed(route: document.ClassRoute | None, learned: Mapping[str, str]) -> dict[str, str]:
    """What the sidecars learned about members this class routes to now (its members and its canary): a
    member since removed, a name no member has, or a reason no sidecar gives, says nothing about this class."""
    if route is None:
        return {}
    members = [*route.members, *([route.canary.member] if route.canary else [])]
    known = {member.id for member in members}
    return {
        member_id: reason
        for member_id, reason in sorted(learned.items())
        if member_id in known and reason in _CANNOT_CONTINUE_WORDS
    }


def prefill_mismatch(learned: Mapping[str, str], *, generation: int | None) -> dict[str, Any]:
    """PrefillMismatch: whether a running sidecar found a member declared able to continue a stream (prefill,
    the member's or its credential's) unable to, and how; a wrong declaration made visible. Pure."""
    if not learned:
        message = "no running sidecar found a member unable to continue a stream as declared"
        return conditions.condition(PREFILL_MISMATCH, False, "AsDeclared", message, generation=generation)
    found = "; ".join(f"{member_id} {_CANNOT_CONTINUE_WORDS[reason]}" for member_id, reason in learned.items())
    message = (
        f"declared able to continue a broken stream (prefill), but a running sidecar found: {found}. "
        "Continuations skip them for up to an hour at a time; if the model always does this, set prefill: false "
        "on the member (or capabilities.prefill on its ProviderCredential)."
    )
    reason = "".join(word.capitalize() for word in next(iter(learned.values())).split("_"))
    return conditions.condition(PREFILL_MISMATCH, True, reason, message, generation=generation)


def _invalid_status(obj: Object, problem: str) -> dict[str, Any]:
    generation = obj["metadata"].get("generation")
    ready = conditions.condition("Ready", False, INVALID_SPEC, problem, generation=generation)
    return {"observedGeneration": generation, "conditions": [ready]}


def _finish(obj: Object, wanted: dict[str, Any], kind: str, at: str, events: list[Event]) -> dict[str, Any]:
    """Carry transition times over and queue an Event for each condition that changed."""
    previous = (obj.get("status") or {}).get("conditions") or []
    wanted["conditions"] = conditions.merge(previous, wanted["conditions"], at=at)
    for cond in conditions.changed(previous, wanted["conditions"]):
        if cond["type"] not in ("Ready", "Degraded", CREDENTIAL_REJECTED, PREFILL_MISMATCH):
            continue  # the canary stepper posts its own, more specific Events
        good = (cond["type"] == "Ready") == (cond["status"] == "True")
        events.append(
            Event(kind, obj["metadata"]["name"], "Normal" if good else "Warning", cond["reason"], cond["message"])
        )
    return wanted


def _configmap(namespace: str, routes: document.RoutesDocument, classes: Sequence[Object]) -> dict[str, Any]:
    owners = sorted(
        (
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ModelClass",
                "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"],
            }
            for obj in classes
            if obj["metadata"].get("uid")
        ),
        key=lambda owner: owner["name"],
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": document.CONFIGMAP_NAME,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {DIGEST_ANNOTATION: routes.digest()},
            "ownerReferences": owners,
        },
        "data": {document.DOCUMENT_KEY: routes.to_json().decode()},
    }


def configmap_differs(current: Object | None, desired: Object) -> bool:
    """Whether a write is needed: data, our labels, the digest annotation or the owners differ."""
    if current is None:
        return True
    meta, want = current.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    owners = sorted(
        ({k: o.get(k) for k in ("apiVersion", "kind", "name", "uid")} for o in meta.get("ownerReferences") or []),
        key=lambda owner: str(owner["name"]),
    )
    return (
        (current.get("data") or {}) != desired["data"]
        or any(labels.get(k) != v for k, v in want["labels"].items())
        or (meta.get("annotations") or {}).get(DIGEST_ANNOTATION) != want["annotations"][DIGEST_ANNOTATION]
        or owners != want["ownerReferences"]
    )


def status_differs(current: Object | None, desired: Object) -> bool:
    current = current or {}
    return any(current.get(key) != value for key, value in desired.items())

"""desired.plan: the ConfigMap and statuses one namespace should have, from the objects as the API returns them."""

from __future__ import annotations

from typing import Any

from pilotfish import failures
from pilotfish_operator import conditions, desired

AT = "2026-11-25T00:00:00Z"


def credential(name: str, *, secret: str = "keys", key: str = "k", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ProviderCredential",
        "metadata": {"name": name, "generation": 1, "uid": f"uid-{name}"},
        "spec": {"provider": "openai", "apiKeySecretRef": {"name": secret, "key": key}, **spec},
    }


def model_class(name: str, *refs: str, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": name, "generation": 3, "uid": f"uid-{name}"},
        "spec": {"members": [{"credentialRef": r, "model": f"m-{r}"} for r in refs], **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def test_a_healthy_namespace_renders_owned_labelled_configmap_and_ready_status():
    plan = desired.plan(
        "team",
        classes=[model_class("b", "c1"), model_class("a", "c1")],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
    )
    assert plan.configmap is not None
    assert [o["name"] for o in plan.configmap["metadata"]["ownerReferences"]] == ["a", "b"]
    assert plan.configmap["metadata"]["annotations"][desired.DIGEST_ANNOTATION] == plan.digest
    status = plan.class_status["a"]
    assert status["observedGeneration"] == 3 and status["routesDigest"] == plan.digest
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "True", "MembersEligible"),
        ("Degraded", "False", "AllMembersEligible"),
    ]
    assert plan.credential_status["c1"]["conditions"][0]["reason"] == "SecretFound"


def test_an_invalid_class_is_reported_and_the_others_still_render():
    broken = model_class("broken", "c1")
    broken["spec"]["members"][0]["weight"] = 0
    plan = desired.plan(
        "team",
        classes=[broken, model_class("good", "c1")],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
    )
    assert plan.configmap is not None and '"good"' in plan.configmap["data"]["routes.json"]
    assert '"broken"' not in plan.configmap["data"]["routes.json"]
    ready = plan.class_status["broken"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.members[0].weight" in ready["message"]


def test_a_member_of_an_invalid_credential_says_invalid_not_missing():
    bad = credential("c1")
    bad["spec"]["provider"] = "azure-openai"  # requires a baseURL
    plan = desired.plan("team", classes=[model_class("a", "c1")], credentials=[bad], secrets={"keys": {"k"}}, at=AT)
    member = plan.class_status["a"]["members"][0]
    assert member["reason"] == "CredentialInvalid" and "baseURL" in member["message"]
    assert plan.credential_status["c1"]["conditions"][0]["reason"] == "InvalidSpec"


def test_no_class_means_no_configmap():
    plan = desired.plan("team", classes=[], credentials=[credential("c1")], secrets={}, at=AT)
    assert plan.configmap is None
    assert plan.credential_status["c1"]["conditions"][0]["reason"] == "SecretNotFound"


def test_transition_times_hold_while_the_status_holds_and_events_fire_only_on_change():
    first = desired.plan("team", classes=[model_class("a", "c1")], credentials=[credential("c1")], secrets={}, at=AT)
    assert {(e.name, e.reason) for e in first.events} >= {("a", "NoEligibleMembers"), ("c1", "SecretNotFound")}
    again = desired.plan(
        "team",
        classes=[model_class("a", "c1", status=first.class_status["a"])],
        credentials=[credential("c1")],
        secrets={},
        at="2026-11-25T01:00:00Z",
    )
    assert not [e for e in again.events if e.kind == "ModelClass"]
    assert not desired.status_differs(first.class_status["a"], again.class_status["a"])
    healed = desired.plan(
        "team",
        classes=[model_class("a", "c1", status=first.class_status["a"])],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at="2026-11-25T02:00:00Z",
    )
    ready = healed.class_status["a"]["conditions"][0]
    assert ready["lastTransitionTime"] == "2026-11-25T02:00:00Z"
    assert ("a", "MembersEligible", "Normal") in {(e.name, e.reason, e.type) for e in healed.events}


def test_configmap_differs_ignores_what_others_add_but_not_our_data_or_owners():
    plan = desired.plan(
        "team", classes=[model_class("a", "c1")], credentials=[credential("c1")], secrets={"keys": {"k"}}, at=AT
    )
    assert plan.configmap is not None
    current = {
        **plan.configmap,
        "metadata": {
            **plan.configmap["metadata"],
            "resourceVersion": "7",
            "labels": {**plan.configmap["metadata"]["labels"], "team": "x"},
            "ownerReferences": [
                {**o, "blockOwnerDeletion": False} for o in plan.configmap["metadata"]["ownerReferences"]
            ],
        },
    }
    assert not desired.configmap_differs(current, plan.configmap)
    assert desired.configmap_differs({**current, "data": {"routes.json": "{}"}}, plan.configmap)
    assert desired.configmap_differs(
        {**current, "metadata": {**current["metadata"], "ownerReferences": []}}, plan.configmap
    )
    assert desired.configmap_differs(None, plan.configmap)


def test_conditions_merge_keeps_time_only_for_unchanged_status():
    old = [{"type": "Ready", "status": "True", "reason": "A", "lastTransitionTime": "t0"}]
    same = conditions.merge(old, [conditions.condition("Ready", True, "B", "", generation=1)], at="t1")
    flipped = conditions.merge(old, [conditions.condition("Ready", False, "C", "", generation=1)], at="t1")
    assert same[0]["lastTransitionTime"] == "t0" and flipped[0]["lastTransitionTime"] == "t1"


def test_a_canary_status_is_written_with_its_condition_and_its_weight_reaches_the_routes():
    cls = model_class(
        "a", "c1", canary={"member": {"credentialRef": "c1", "model": "next"}, "steps": [{"setWeight": 20}]}
    )
    progressing = {"phase": "Progressing", "weight": 20, "revision": "r1", "message": "step 1/1: waiting"}
    plan = desired.plan(
        "team",
        classes=[cls],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
        canaries={"a": progressing},
    )
    status = plan.class_status["a"]
    assert status["canary"]["weight"] == 20
    canary_condition = next(c for c in status["conditions"] if c["type"] == "CanaryProgressing")
    assert (canary_condition["status"], canary_condition["reason"]) == ("True", "Progressing")
    assert plan.configmap is not None and '"weight": 20' in plan.configmap["data"]["routes.json"]
    failed = desired.plan(
        "team",
        classes=[cls],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
        canaries={"a": {**progressing, "phase": "Failed", "weight": 0}},
    )
    assert failed.configmap is not None and '"canary"' not in failed.configmap["data"]["routes.json"]
    removed = desired.plan(
        "team",
        classes=[model_class("a", "c1")],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
        canaries={"a": {"phase": "Idle", "weight": 0}},
    )
    assert removed.class_status["a"]["canary"] is None  # a merge patch deletes the old status.canary


def test_a_class_with_tiers_is_ready_while_a_tier_serves_and_degraded_naming_the_tier_that_cannot():
    tiered = model_class("assistant", tiers={"ladder": ["cheap", "gone"], "default": "cheap"})
    del tiered["spec"]["members"]
    plan = desired.plan(
        "team",
        classes=[model_class("cheap", "c1"), tiered],
        credentials=[credential("c1")],
        secrets={"keys": {"k"}},
        at=AT,
    )
    status = plan.class_status["assistant"]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("Ready", "True", "TiersAvailable", "tiers cheap can serve"),
        ("Degraded", "True", "TierUnavailable", 'tier "gone" is not a class that can serve'),
    ]
    assert status["routesDigest"] == plan.digest and status["memberCount"] == 0
    assert plan.configmap is not None and '"assistant"' in plan.configmap["data"]["routes.json"]


def _rejected_condition(plan: desired.NamespacePlan, name: str) -> dict[str, Any]:
    return next(c for c in plan.credential_status[name]["conditions"] if c["type"] == desired.CREDENTIAL_REJECTED)


def test_a_credential_a_running_sidecar_reports_rejected_gets_credential_rejected_with_reason_and_time():
    creds = [credential("c1"), credential("c2")]
    plan = desired.plan(
        "team",
        classes=[model_class("a", "c1", "c2")],
        credentials=creds,
        secrets={"keys": {"k"}},
        at=AT,
        rejected={"c1": "region_not_supported"},
    )
    rejected = _rejected_condition(plan, "c1")
    assert (rejected["status"], rejected["reason"], rejected["lastTransitionTime"]) == (
        "True",
        "RegionNotSupported",
        AT,
    )
    assert 'Secret "keys" key "k"' in rejected["message"]
    assert _rejected_condition(plan, "c2")["status"] == "False"
    warning = next(e for e in plan.events if e.name == "c1" and e.reason == "RegionNotSupported")
    assert warning.type == "Warning"


def test_without_any_sidecar_report_no_credential_rejected_condition_is_claimed():
    plan = desired.plan("team", classes=[], credentials=[credential("c1")], secrets={"keys": {"k"}}, at=AT)
    assert [c["type"] for c in plan.credential_status["c1"]["conditions"]] == ["Ready"]


def _mismatch(plan: desired.NamespacePlan, name: str) -> dict[str, Any] | None:
    return next((c for c in plan.class_status[name]["conditions"] if c["type"] == desired.PREFILL_MISMATCH), None)


def _learned_plan(learned: dict[str, dict[str, str]] | None, *, status: dict[str, Any] | None = None):
    return desired.plan(
        "team",
        classes=[model_class("a", "c1", "c2", status=status), model_class("b", "c1")],
        credentials=[credential("c1"), credential("c2")],
        secrets={"keys": {"k"}},
        at=AT,
        cannot_continue=learned,
    )


def test_a_member_a_sidecar_learned_unable_to_continue_puts_prefill_mismatch_on_its_class_naming_it_and_why():
    plan = _learned_plan({"a": {"c2/m-c2": "prefill_rejected", "c1/m-c1": "restarted"}})
    mismatch = _mismatch(plan, "a")
    assert mismatch is not None
    assert (mismatch["status"], mismatch["reason"], mismatch["lastTransitionTime"]) == ("True", "Restarted", AT)
    assert "c1/m-c1 started the answer over instead of continuing it" in mismatch["message"]
    assert "c2/m-c2 rejected the prefill" in mismatch["message"]
    assert "prefill: false" in mismatch["message"]
    warning = next(e for e in plan.events if e.name == "a" and e.reason == "Restarted")
    assert (warning.kind, warning.type) == ("ModelClass", "Warning")
    other = _mismatch(plan, "b")
    assert other is not None and (other["status"], other["reason"]) == ("False", "AsDeclared")


def test_prefill_mismatch_turns_false_once_no_sidecar_reports_the_member_and_says_so_in_an_event():
    before = _learned_plan({"a": {"c2/m-c2": "diverged"}})
    after = _learned_plan({}, status=before.class_status["a"])
    mismatch = _mismatch(after, "a")
    assert mismatch is not None and (mismatch["status"], mismatch["reason"]) == ("False", "AsDeclared")
    assert any(e.name == "a" and e.reason == "AsDeclared" and e.type == "Normal" for e in after.events)


def test_prefill_mismatch_names_only_members_the_class_routes_to_and_reasons_a_sidecar_can_give():
    plan = _learned_plan({"a": {"gone/m-gone": "restarted", "c1/m-c1": "sk-leaked-key-text", "c2/m-c2": "diverged"}})
    mismatch = _mismatch(plan, "a")
    assert mismatch is not None and mismatch["reason"] == "Diverged"
    assert "gone" not in mismatch["message"] and "sk-leaked" not in mismatch["message"]
    assert "c1/m-c1" not in mismatch["message"]


def test_without_any_sidecar_report_no_prefill_mismatch_condition_is_claimed():
    assert _mismatch(_learned_plan(None), "a") is None


def test_every_reason_a_sidecar_can_give_reads_as_words_in_the_condition():
    for problem in failures.ContinuationProblem:
        mismatch = desired.prefill_mismatch({"c1/m": problem.value}, generation=1)
        assert mismatch["status"] == "True" and problem.value not in mismatch["message"]

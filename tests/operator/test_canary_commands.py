"""`pilotfish canary status` says what its figures mean; `retry` is the way back after a rollback or an abort."""

from __future__ import annotations

from pilotfish_operator.canary import commands


def _class(status: dict[str, object], interval: str = "1m", prometheus: bool = True) -> dict[str, object]:
    spec = {"member": {"credentialRef": "openai", "model": "gpt-5"}, "steps": [{"setWeight": 50}]}
    analysis = {"interval": interval, **({"prometheus": {"address": "http://prom:9090"}} if prometheus else {})}
    return {"metadata": {"name": "workhorse"}, "spec": {"canary": {**spec, "analysis": analysis}},
            "status": {"canary": status}}  # fmt: skip


def test_a_promoted_canary_below_100_percent_observed_is_explained_as_a_trailing_average():
    text = commands.describe(_class({"phase": "Succeeded", "weight": 100, "observedWeight": 74.8}))
    assert "Weight:      100% (observed 74.8% of requests over the last 60s)" in text
    assert "a trailing average: it reaches 100% one window after the last weight change" in text


def test_an_observed_weight_that_matches_needs_no_explanation_and_unknown_says_why():
    caught_up = commands.describe(_class({"phase": "Progressing", "weight": 50, "observedWeight": 49.6}, "10s"))
    assert "observed 49.6% of requests over the last 30s" in caught_up and "trailing" not in caught_up
    unknown = commands.describe(_class({"phase": "Progressing", "weight": 50}))
    assert "observed: unknown, no slice series in Prometheus for this class yet" in unknown
    unmeasured = commands.describe(_class({"phase": "Succeeded", "weight": 100}, prometheus=False))
    assert "Weight:      100% (not observed: no analysis.prometheus to observe with)" in unmeasured


def test_retry_clears_abort_and_asks_for_a_new_start():
    assert commands.PATCHES["retry"] == {"abort": None, "retry": True}

"""The canary stepper, tick by tick: every phase transition, deadlines, abort, promote, inconclusive checks."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from pilotfish.api import canary
from pilotfish_operator.canary import stepper

T0 = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)
PROM = {"prometheus": {"address": "http://prometheus:9090"}}
METRICS = {"metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.02}}], "failureLimit": 2, "interval": "1m"}


def spec(steps: list[dict[str, Any]] | None = None, **fields: Any) -> canary.CanarySpec:
    body: dict[str, Any] = {
        "member": {"credentialRef": "openai", "model": "gpt-5"},
        "steps": steps or [{"setWeight": 10}, {"pause": {"duration": "5m"}}, {"setWeight": 50}, {"analysis": {}}],
        "analysis": {**METRICS, **PROM},
    }
    body.update(fields)
    return canary.CanarySpec.model_validate(body)


def at(minutes: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def passing(minutes: float) -> stepper.Checks:
    return stepper.Checks(at=at(minutes))


def failing(minutes: float) -> stepper.Checks:
    return stepper.Checks(at=at(minutes), failed=("error-rate=0.3 (max 0.02)",))


def reasons(result: stepper.Tick) -> list[str]:
    return [event.reason for event in result.events]


def test_no_canary_is_idle_and_removing_one_says_so():
    assert stepper.tick(None, None, now=T0).status.phase == "Idle"
    removed = stepper.tick(None, canary.CanaryStatus(phase="Progressing", weight=10), now=T0)
    assert removed.status.weight == 0 and reasons(removed) == ["CanaryRemoved"]


def test_a_healthy_canary_walks_every_step_to_succeeded():
    s = spec()
    first = stepper.tick(s, None, now=at(0), observed_weight=None)
    assert (first.status.phase, first.status.weight, first.status.current_step_index) == ("Progressing", 10, 0)
    assert reasons(first) == ["CanaryStarted", "CanaryWeight"]
    assert "observed unknown" in first.status.message

    caught = stepper.tick(s, first.status, now=at(1), observed_weight=9.0)  # ≥ half of 10%: on to the pause
    assert caught.status.current_step_index == 1 and "pausing for 5m" in caught.status.message
    still = stepper.tick(s, caught.status, now=at(4), observed_weight=10.0)
    assert still.status.current_step_index == 1
    after_pause = stepper.tick(s, still.status, now=at(6.5), observed_weight=10.0)
    assert (after_pause.status.weight, after_pause.status.current_step_index) == (50, 2)

    analysis = stepper.tick(s, after_pause.status, now=at(7), observed_weight=48.0)
    assert analysis.status.current_step_index == 3 and "waiting for a passing analysis" in analysis.status.message
    stale = stepper.tick(s, analysis.status, now=at(7.5), checks=passing(6.9), observed_weight=48.0)
    assert stale.status.current_step_index == 3  # a check that began before the step does not count

    promoting = stepper.tick(s, stale.status, now=at(8.5), checks=passing(8.5), observed_weight=49.0)
    assert (promoting.status.phase, promoting.status.weight) == ("Promoting", 100)
    done = stepper.tick(s, promoting.status, now=at(9), observed_weight=97.0)
    assert done.status.phase == "Succeeded" and reasons(done) == ["CanaryPromoted"]
    assert stepper.tick(s, done.status, now=at(60), observed_weight=0.0).status.phase == "Succeeded"  # final


def test_failed_checks_roll_back_at_the_failure_limit():
    s = spec()
    live = stepper.tick(s, None, now=at(0), observed_weight=10.0).status
    once = stepper.tick(s, live, now=at(1), checks=failing(1), observed_weight=10.0)
    assert once.status.failed_checks == 1 and once.status.phase == "Progressing"
    assert reasons(once) == ["CanaryCheckFailed"]
    twice = stepper.tick(s, once.status, now=at(2), checks=failing(2), observed_weight=10.0)
    assert (twice.status.phase, twice.status.weight) == ("Failed", 0)
    assert reasons(twice) == ["CanaryCheckFailed", "CanaryRolledBack"]
    assert "rolled back after 2 failed checks" in twice.status.message


def test_an_inconclusive_check_holds_an_analysis_step_but_never_rolls_back():
    s = spec(steps=[{"setWeight": 20}, {"analysis": {}}])
    live = stepper.tick(s, None, now=at(0), observed_weight=20.0).status
    assert live.current_step_index == 1
    unsure = stepper.Checks(at=at(1), inconclusive=("error-rate: no data",))
    for minute in range(1, 6):
        result = stepper.tick(
            s, live, now=at(minute), checks=stepper.Checks(at=at(minute), inconclusive=unsure.inconclusive)
        )
        live = result.status
        assert live.phase == "Progressing" and live.failed_checks == 0
    assert "inconclusive: error-rate: no data" in live.message
    assert reasons(result) == ["CanaryAnalysisInconclusive"]


def test_abort_sets_weight_zero_and_keeps_failed_until_the_spec_changes():
    s = spec()
    live = stepper.tick(s, None, now=at(0), observed_weight=10.0).status
    aborted = stepper.tick(spec(abort=True), live, now=at(1))
    assert (aborted.status.phase, aborted.status.weight) == ("Failed", 0) and reasons(aborted) == ["CanaryAborted"]
    assert stepper.tick(s, aborted.status, now=at(2)).status.phase == "Failed"
    fixed = spec(member={"credentialRef": "openai", "model": "gpt-5.1"})
    restarted = stepper.tick(fixed, aborted.status, now=at(3), observed_weight=0.0)
    assert restarted.status.phase == "Progressing" and restarted.status.revision != aborted.status.revision
    assert reasons(restarted)[0] == "CanaryStarted"


def test_a_new_member_mid_rollout_restarts_from_the_first_step():
    live = stepper.tick(spec(), None, now=at(0), observed_weight=10.0).status
    live = stepper.tick(spec(), live, now=at(6), observed_weight=10.0).status
    assert live.current_step_index == 2
    other = spec(member={"credentialRef": "anthropic", "model": "claude-opus-4-1"})
    restarted = stepper.tick(other, live, now=at(7), observed_weight=None)
    assert (restarted.status.current_step_index, restarted.status.weight, restarted.status.failed_checks) == (0, 10, 0)


def test_an_indefinite_pause_waits_for_promote_step_and_promote_is_consumed():
    s = spec(steps=[{"setWeight": 5}, {"pause": {}}, {"setWeight": 30}])
    paused = stepper.tick(s, None, now=at(0), observed_weight=5.0)
    assert paused.status.phase == "Paused" and paused.status.current_step_index == 1
    assert stepper.tick(s, paused.status, now=at(600), observed_weight=5.0).status.phase == "Paused"  # no deadline
    promoted = stepper.tick(
        spec(steps=s.model_dump(by_alias=True)["steps"], promote="Step"),
        paused.status,
        now=at(601),
        observed_weight=5.0,
    )
    assert promoted.clear_promote and promoted.status.weight == 30 and promoted.status.current_step_index == 2
    assert "CanaryStepPromoted" in reasons(promoted)


def test_promote_full_goes_to_100_and_succeeds_once_observed():
    live = stepper.tick(spec(), None, now=at(0), observed_weight=10.0).status
    full = spec(promote="Full")
    promoting = stepper.tick(full, live, now=at(1), observed_weight=10.0)
    assert (promoting.status.phase, promoting.status.weight, promoting.clear_promote) == ("Promoting", 100, True)
    done = stepper.tick(spec(), promoting.status, now=at(2), observed_weight=80.0)
    assert done.status.phase == "Succeeded"


def test_paused_holds_everything():
    live = stepper.tick(spec(), None, now=at(0), observed_weight=10.0).status
    held = stepper.tick(spec(paused=True), live, now=at(30), observed_weight=10.0)
    assert held.status.phase == "Paused" and held.status.current_step_index == live.current_step_index
    resumed = stepper.tick(spec(), held.status, now=at(31), observed_weight=10.0)
    assert resumed.status.phase == "Progressing"


def test_time_spent_paused_longer_than_the_progress_deadline_does_not_fail_the_step_on_resume():
    s = spec(progressDeadlineSeconds=600)
    live = stepper.tick(s, None, now=at(0), observed_weight=0.0).status  # step 1 waits for traffic
    held = stepper.tick(spec(progressDeadlineSeconds=600, paused=True), live, now=at(1), observed_weight=0.0)
    still = stepper.tick(spec(progressDeadlineSeconds=600, paused=True), held.status, now=at(20), observed_weight=0.0)
    assert still.status.phase == "Paused"
    resumed = stepper.tick(s, still.status, now=at(31), observed_weight=0.0)  # a 30-minute pause, 10-minute deadline
    assert resumed.status.phase == "Progressing" and reasons(resumed) == []
    assert still.status.paused_at == held.status.paused_at == stepper._format(at(1)) and not resumed.status.paused_at
    # the minute before the pause still counts: 9 more minutes of no progress, and the step is overdue
    assert stepper.tick(s, resumed.status, now=at(39.5), observed_weight=0.0).status.phase == "Progressing"
    late = stepper.tick(s, resumed.status, now=at(41.5), observed_weight=0.0)
    assert late.status.phase == "Failed" and reasons(late) == ["ProgressDeadlineExceeded"]


def test_a_pause_step_does_not_run_its_timer_while_the_rollout_is_paused():
    s = spec()  # 10%, then pause 5m
    on_pause = stepper.tick(
        s, stepper.tick(s, None, now=at(0), observed_weight=10.0).status, now=at(1), observed_weight=10.0
    )
    assert on_pause.status.current_step_index == 1
    held = stepper.tick(spec(paused=True), on_pause.status, now=at(2), observed_weight=10.0)
    resumed = stepper.tick(s, held.status, now=at(12), observed_weight=10.0)  # 1 min of pause done, 4 to go
    assert resumed.status.current_step_index == 1 and "pausing for 5m" in resumed.status.message
    done = stepper.tick(s, resumed.status, now=at(16.5), observed_weight=10.0)
    assert done.status.current_step_index == 2


def test_a_step_that_never_completes_hits_the_progress_deadline():
    s = spec(progressDeadlineSeconds=600)
    live = stepper.tick(s, None, now=at(0), observed_weight=0.0).status  # no traffic reaches the canary
    assert stepper.tick(s, live, now=at(9), observed_weight=0.0).status.phase == "Progressing"
    late = stepper.tick(s, live, now=at(11), observed_weight=0.0)
    assert (late.status.phase, late.status.weight) == ("Failed", 0) and reasons(late) == ["ProgressDeadlineExceeded"]


def test_without_prometheus_weights_are_trusted_and_no_analysis_runs():
    s = canary.CanarySpec.model_validate(
        {"member": {"credentialRef": "o", "model": "m"}, "steps": [{"setWeight": 25}, {"setWeight": 75}]}
    )
    result = stepper.tick(s, None, now=at(0))
    assert (result.status.phase, result.status.weight) == ("Succeeded", 100)
    assert reasons(result) == [
        "CanaryStarted",
        "CanaryWeight",
        "CanaryStep",
        "CanaryWeight",
        "CanaryStep",
        "CanaryPromoting",
        "CanaryPromoted",
    ]
    assert not stepper.analysis_due(s, result.status, at(10))


@pytest.mark.parametrize(
    ("phase", "weight", "last", "due"),
    [
        ("Progressing", 10, None, True),
        ("Progressing", 10, 0.5, False),
        ("Progressing", 10, 1.0, True),
        ("Paused", 10, 2.0, True),
        ("Progressing", 0, None, False),
        ("Failed", 0, None, False),
        ("Succeeded", 100, None, False),
    ],
)
def test_analysis_is_due_every_interval_while_traffic_flows(phase, weight, last, due):
    status = canary.CanaryStatus(
        phase=phase, weight=weight, last_check_at=None if last is None else stepper._format(at(0))
    )
    now = at(last if last is not None else 0)
    assert stepper.analysis_due(spec(), status, now) is due


def test_the_revision_ignores_knobs_but_not_member_or_steps():
    assert stepper.revision(spec()) == stepper.revision(spec(paused=True, abort=True))
    assert stepper.revision(spec()) != stepper.revision(spec(steps=[{"setWeight": 1}]))


def test_abort_is_consumed_so_fixing_the_member_starts_the_new_canary():
    live = stepper.tick(spec(), None, now=at(0), observed_weight=10.0).status
    aborted = stepper.tick(spec(abort=True), live, now=at(1), observed_weight=10.0)
    assert (aborted.status.phase, aborted.status.weight, aborted.consumed) == ("Failed", 0, ("abort",))
    fixed = spec(member={"credentialRef": "openai", "model": "gpt-5.1"})  # the operator cleared abort
    restarted = stepper.tick(fixed, aborted.status, now=at(2), observed_weight=0.0)
    assert restarted.status.phase == "Progressing" and reasons(restarted) == ["CanaryStarted", "CanaryWeight"]


def test_an_abort_left_on_a_finished_rollout_is_consumed_and_changes_nothing():
    rolled_back = canary.CanaryStatus(phase="Failed", revision=stepper.revision(spec()), message="rolled back")
    result = stepper.tick(spec(abort=True), rolled_back, now=at(5))
    assert result.status.phase == "Failed" and result.consumed == ("abort",) and reasons(result) == []


def test_retry_starts_a_failed_canary_over_and_does_nothing_to_a_live_one():
    live = stepper.tick(spec(), None, now=at(0), observed_weight=10.0).status
    rolled_back = stepper.tick(spec(), live, now=at(1), checks=failing(1), observed_weight=10.0).status
    rolled_back = stepper.tick(spec(), rolled_back, now=at(2), checks=failing(2), observed_weight=10.0).status
    assert rolled_back.phase == "Failed"
    assert stepper.tick(spec(), rolled_back, now=at(3), observed_weight=0.0).status.phase == "Failed"  # final
    again = stepper.tick(spec(retry=True), rolled_back, now=at(4), observed_weight=0.0)
    assert (again.status.phase, again.status.weight, again.status.current_step_index) == ("Progressing", 10, 0)
    assert again.status.failed_checks == 0 and reasons(again) == ["CanaryRetried", "CanaryWeight"]
    assert again.consumed == ("retry",)
    untouched = stepper.tick(spec(retry=True), again.status, now=at(5), observed_weight=10.0)
    assert untouched.status.started_at == again.status.started_at and untouched.consumed == ("retry",)

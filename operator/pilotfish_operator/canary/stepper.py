"""One tick of a canary rollout. Pure: (spec, status, checks, observed weight, now) → new status and actions.

A tick walks as far as it can: a step that is already satisfied is passed in the same tick, so a
rollout never waits a timer interval for nothing. Every transition queues an Event.

Rules, in order of precedence:
1. No canary: Idle at weight 0. A canary whose member or steps changed (a new revision) starts over.
2. Succeeded and Failed are final for a revision, until ``retry`` starts a Failed one over. ``abort`` fails
   it at weight 0 and keeps the rest of the spec. Both are one-shot commands, like ``promote``: the
   operator clears them once acted on (``Tick.consumed``), so a stale ``abort`` never fails the next canary.
3. Failed checks count up; at ``failureLimit`` the canary is rolled back (Failed, weight 0). An
   inconclusive check (query error, no data) never rolls back: it only holds an analysis step.
4. A step that does not complete within ``progressDeadlineSeconds`` fails the rollout; a pause that
   waits for promote, and ``paused``, are not counted: on resume the step's start moves on by the time
   spent paused (``status.pausedAt`` to now), which also stops a pause step's timer while paused.
5. ``paused`` holds everything. ``promote: Full`` goes to 100%; ``promote: Step`` skips the current
   step; both are consumed (the operator clears spec.promote). At 100% the rollout is Promoting until
   the sidecars are seen sending it, then Succeeded: the canary is the class's first member.
6. setWeight waits until the sidecars are seen sending at least half the weight; pause waits its
   duration (or for promote); analysis waits for a passing check that began after the step did.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json

from pilotfish.api import canary

CAUGHT_UP_SHARE = 0.5  # observed ≥ half the set weight: traffic is reaching the canary slice
# what "observed unknown" means, where a platform engineer will read it (the status message)
UNKNOWN = "unknown: no pilotfish_slice_requests_total for this namespace and class in Prometheus yet"


@dataclasses.dataclass(frozen=True)
class Checks:
    """One analysis run: metric name → value, and which failed or were inconclusive."""

    at: datetime.datetime
    failed: tuple[str, ...] = ()  # "error-rate=0.31 (max 0.02)"
    inconclusive: tuple[str, ...] = ()  # "p95-latency-seconds: no data"

    @property
    def passed(self) -> bool:
        return not self.failed and not self.inconclusive


@dataclasses.dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Tick:
    status: canary.CanaryStatus
    events: tuple[Event, ...]
    clear_promote: bool = False
    consumed: tuple[str, ...] = ()  # other one-shot spec.canary commands acted on, for the operator to clear


def tick(
    spec: canary.CanarySpec | None,
    status: canary.CanaryStatus | None,
    *,
    now: datetime.datetime,
    checks: Checks | None = None,
    observed_weight: float | None = None,
) -> Tick:
    """The next status; ``abort`` and ``retry`` are acted on in every phase (a no-op where there is nothing to
    do), so they are always consumed."""
    result = _walk(spec, status, now=now, checks=checks, observed_weight=observed_weight)
    commands = tuple(name for name, on in (("abort", spec.abort), ("retry", spec.retry)) if on) if spec else ()
    return dataclasses.replace(result, consumed=commands) if commands else result


def revision(spec: canary.CanarySpec) -> str:
    """What identifies a rollout: the member and the steps. Changing either restarts it."""
    identity = {"member": spec.member.to_wire(), "steps": [step.to_wire() for step in spec.steps]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def analysis_due(spec: canary.CanarySpec | None, status: canary.CanaryStatus | None, now: datetime.datetime) -> bool:
    """Whether an analysis run is due: metrics are declared, the rollout is live, the interval has passed."""
    if spec is None or not spec.analysis.metrics or status is None:
        return False
    if status.phase not in ("Progressing", "Paused") or status.weight == 0:
        return False
    if status.last_check_at is None:
        return True
    return now - _parse(status.last_check_at) >= datetime.timedelta(seconds=canary.seconds(spec.analysis.interval))


def _walk(
    spec: canary.CanarySpec | None,
    status: canary.CanaryStatus | None,
    *,
    now: datetime.datetime,
    checks: Checks | None,
    observed_weight: float | None,
) -> Tick:
    events: list[Event] = []
    at = _format(now)
    if spec is None:
        if status is not None and status.phase != "Idle":
            events.append(Event("Normal", "CanaryRemoved", "spec.canary removed; the class is back to its members"))
        return Tick(canary.CanaryStatus(), tuple(events))

    current = status or canary.CanaryStatus()
    wanted = revision(spec)
    retried = spec.retry and not spec.abort and current.revision == wanted and current.phase == "Failed"
    if current.revision != wanted or retried:
        current = canary.CanaryStatus(
            phase="Progressing", revision=wanted, started_at=at, step_started_at=at, message="started"
        )
        rolling = f"{spec.member.credential_ref}/{spec.member.model} in {len(spec.steps)} steps"
        if retried:
            events.append(Event("Normal", "CanaryRetried", f"spec.canary.retry: rolling out {rolling} again"))
        else:
            events.append(Event("Normal", "CanaryStarted", f"rolling out {rolling}"))
    current = current.model_copy(update={"observed_weight": observed_weight})
    if current.phase in ("Succeeded", "Failed"):
        return Tick(current, tuple(events))
    if spec.abort:
        events.append(
            Event("Warning", "CanaryAborted", "spec.canary.abort: weight set to 0; fix the member, or retry as it is")
        )
        return Tick(_failed(current, "aborted by spec.canary.abort"), tuple(events))

    if checks is not None:
        current = current.model_copy(update={"last_check_at": _format(checks.at)})
        if checks.failed:
            failed = current.failed_checks + 1
            current = current.model_copy(update={"failed_checks": failed})
            detail = ", ".join(checks.failed)
            events.append(Event("Warning", "CanaryCheckFailed", f"{detail} ({failed}/{spec.analysis.failure_limit})"))
            if failed >= spec.analysis.failure_limit:
                events.append(Event("Warning", "CanaryRolledBack", f"{failed} failed checks: weight set to 0"))
                return Tick(_failed(current, f"rolled back after {failed} failed checks: {detail}"), tuple(events))
        if checks.inconclusive:
            events.append(Event("Warning", "CanaryAnalysisInconclusive", ", ".join(checks.inconclusive)))

    if spec.paused:
        held = {"phase": "Paused", "message": "paused by spec.canary.paused", "paused_at": current.paused_at or at}
        return Tick(current.model_copy(update=held), tuple(events))
    if current.paused_at is not None:
        current = _resumed(current, now)

    clear_promote = spec.promote is not None
    if current.phase == "Promoting" or spec.promote is canary.Promote.FULL:
        if current.phase != "Promoting":
            events.append(Event("Normal", "CanaryPromoting", "promoted in full by spec.canary.promote"))
        return _promote(current, spec, observed_weight, events, clear_promote)
    if spec.promote is canary.Promote.STEP and current.current_step_index < len(spec.steps):
        events.append(
            Event("Normal", "CanaryStepPromoted", f"step {current.current_step_index + 1} skipped by promote")
        )
        current = _next(current, at)

    if _overdue(spec, current, now):
        events.append(Event("Warning", "ProgressDeadlineExceeded", "a step did not complete in time: weight set to 0"))
        return Tick(_failed(current, "progress deadline exceeded"), tuple(events), clear_promote=clear_promote)

    while current.current_step_index < len(spec.steps):
        step = spec.steps[current.current_step_index]
        number = f"step {current.current_step_index + 1}/{len(spec.steps)}"
        if step.set_weight is not None:
            if current.weight != step.set_weight:
                events.append(Event("Normal", "CanaryWeight", f"{number}: weight {step.set_weight}%"))
                current = current.model_copy(update={"weight": step.set_weight, "step_started_at": at})
            if not _caught_up(step.set_weight, observed_weight, spec):
                seen = UNKNOWN if observed_weight is None else f"{observed_weight:.1f}%"
                message = f"{number}: waiting for the sidecars to send {step.set_weight}% (observed {seen})"
                return Tick(_progressing(current, message), tuple(events), clear_promote)
        elif step.pause is not None:
            if step.pause.duration is None:
                message = f"{number}: paused until promoted (spec.canary.promote: Step or Full)"
                return Tick(
                    current.model_copy(update={"phase": "Paused", "message": message}), tuple(events), clear_promote
                )
            waited = now - _parse(current.step_started_at or at)
            if waited < datetime.timedelta(seconds=canary.seconds(step.pause.duration)):
                message = f"{number}: pausing for {step.pause.duration}"
                return Tick(_progressing(current, message), tuple(events), clear_promote)
        elif step.analysis is not None:
            started = _parse(current.step_started_at or at)
            if checks is None or checks.at < started or not checks.passed:
                message = f"{number}: waiting for a passing analysis"
                if checks is not None and checks.inconclusive:
                    message += f" (inconclusive: {', '.join(checks.inconclusive)})"
                return Tick(_progressing(current, message), tuple(events), clear_promote)
        events.append(Event("Normal", "CanaryStep", f"{number} done"))
        current = _next(current, at)

    events.append(Event("Normal", "CanaryPromoting", "every step passed: sending the canary all traffic"))
    return _promote(current, spec, observed_weight, events, clear_promote)


def _promote(
    current: canary.CanaryStatus,
    spec: canary.CanarySpec,
    observed: float | None,
    events: list[Event],
    clear_promote: bool,
) -> Tick:
    """Promoting at 100% until the sidecars are seen sending it, then Succeeded: a regular first member."""
    current = current.model_copy(update={"weight": 100})
    if not _caught_up(100, observed, spec):
        seen = UNKNOWN if observed is None else f"{observed:.1f}%"
        message = f"promoting: waiting for the sidecars to send 100% (observed {seen})"
        return Tick(current.model_copy(update={"phase": "Promoting", "message": message}), tuple(events), clear_promote)
    events.append(
        Event(
            "Normal", "CanaryPromoted", f"{spec.member.credential_ref}/{spec.member.model} serves the class first now"
        )
    )
    message = "promoted: move the canary member into spec.members and remove spec.canary when convenient"
    return Tick(current.model_copy(update={"phase": "Succeeded", "message": message}), tuple(events), clear_promote)


def _caught_up(weight: int, observed: float | None, spec: canary.CanarySpec) -> bool:
    if spec.analysis.prometheus is None:
        return True  # nothing to observe with: trust the ConfigMap (the docs say so)
    if observed is None:
        return False
    return observed >= weight * CAUGHT_UP_SHARE if weight else observed <= 1.0


def _overdue(spec: canary.CanarySpec, status: canary.CanaryStatus, now: datetime.datetime) -> bool:
    if status.current_step_index >= len(spec.steps) or status.step_started_at is None:
        return False
    step = spec.steps[status.current_step_index]
    if step.pause is not None and step.pause.duration is None:
        return False
    limit = spec.progress_deadline_seconds
    if step.pause is not None and step.pause.duration is not None:
        limit += int(canary.seconds(step.pause.duration))
    return now - _parse(status.step_started_at) > datetime.timedelta(seconds=limit)


def _resumed(status: canary.CanaryStatus, now: datetime.datetime) -> canary.CanaryStatus:
    """Back from ``paused``: the step's clock moves on by the time spent paused, as if it had stood still."""
    assert status.paused_at is not None
    started = status.step_started_at
    if started is not None:
        started = _format(_parse(started) + (now - _parse(status.paused_at)))
    return status.model_copy(update={"step_started_at": started, "paused_at": None})


def _next(status: canary.CanaryStatus, at: str) -> canary.CanaryStatus:
    return status.model_copy(update={"current_step_index": status.current_step_index + 1, "step_started_at": at})


def _progressing(status: canary.CanaryStatus, message: str) -> canary.CanaryStatus:
    return status.model_copy(update={"phase": "Progressing", "message": message})


def _failed(status: canary.CanaryStatus, message: str) -> canary.CanaryStatus:
    return status.model_copy(update={"phase": "Failed", "weight": 0, "message": message})


def _format(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))

"""ModelClass.spec.canary: roll a new model out to a class by weight, judged by live metrics.

The shape follows Argo Rollouts (steps; abort; promote) and Flagger (metric checks with threshold
ranges; failed checks against a limit). What LLM traffic adds: a failed canary attempt falls back to
the stable members (users see no error, the analysis still counts it), conversations stay on one
slice (``stickiness``), and a step only advances once the sidecars actually send the weight.
"""

from __future__ import annotations

import enum
import re
from typing import Literal

import pydantic

from pilotfish.api import base, refs

DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?)(ms|s|m|h)$")
DURATION_PATTERN = DURATION.pattern
BUILT_IN_METRICS = ("error-rate", "p95-latency-seconds", "time-to-first-token-p95-seconds")


def seconds(duration: str) -> float:
    """``"90s"``, ``"10m"``, ``"1.5h"``, ``"250ms"`` → seconds."""
    match = DURATION.match(duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r} (use e.g. 30s, 10m, 1h)")
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(3)]


class CanaryMember(base.ApiModel):
    """The new member, written as in spec.members minus priority and weight (the canary has its own)."""

    credential_ref: str = pydantic.Field(min_length=1, max_length=253)
    model: str = pydantic.Field(min_length=1, max_length=256)
    context_window: int | None = pydantic.Field(default=None, ge=1)
    max_output_tokens: int | None = pydantic.Field(default=None, ge=1)
    pricing: refs.Pricing | None = None


class PauseStep(base.ApiModel):
    duration: str | None = pydantic.Field(
        default=None, pattern=DURATION_PATTERN, description="How long to wait; absent: wait for promote."
    )


class AnalysisStep(base.ApiModel):
    """Wait for one analysis interval in which every metric passes."""


class Step(base.ApiModel):
    """Exactly one of setWeight, pause, analysis."""

    set_weight: int | None = pydantic.Field(default=None, ge=0, le=100, description="Percent of the class's traffic.")
    pause: PauseStep | None = None
    analysis: AnalysisStep | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [name for name in ("set_weight", "pause", "analysis") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a step has exactly one of setWeight, pause, analysis")
        return self


class ThresholdRange(base.ApiModel):
    min: float | None = None
    max: float | None = None

    @pydantic.model_validator(mode="after")
    def _bounded(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("thresholdRange needs min, max or both")
        return self

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Metric(base.ApiModel):
    name: str = pydantic.Field(
        min_length=1,
        max_length=63,
        description="error-rate, p95-latency-seconds, time-to-first-token-p95-seconds, or any name with a query.",
    )
    query: str | None = pydantic.Field(default=None, max_length=4096, description="PromQL returning one number.")
    threshold_range: ThresholdRange

    @pydantic.model_validator(mode="after")
    def _query_where_needed(self) -> Metric:
        if self.query is None and self.name not in BUILT_IN_METRICS:
            raise ValueError(f"metric {self.name!r} is not built in ({', '.join(BUILT_IN_METRICS)}): give a query")
        return self


class PrometheusRef(base.ApiModel):
    address: str = pydantic.Field(pattern=r"^https?://", description="Base URL of the Prometheus HTTP API.")


class Analysis(base.ApiModel):
    interval: str = pydantic.Field(default="1m", pattern=DURATION_PATTERN)
    failure_limit: int = pydantic.Field(default=3, ge=1, le=100, description="Failed checks before rollback.")
    metrics: list[Metric] = pydantic.Field(default_factory=list, max_length=16)
    prometheus: PrometheusRef | None = None


class Stickiness(base.ApiModel):
    header: str = pydantic.Field(default="x-conversation-id", min_length=1, max_length=128)


class Promote(enum.StrEnum):
    STEP = "Step"
    FULL = "Full"


class CanarySpec(base.ApiModel):
    member: CanaryMember
    steps: list[Step] = pydantic.Field(min_length=1, max_length=32)
    analysis: Analysis = pydantic.Field(default_factory=Analysis)
    stickiness: Stickiness | None = None
    paused: bool = False
    abort: bool = pydantic.Field(
        default=False,
        description="Roll the canary back now (weight 0, phase Failed). The operator clears it once it has acted: "
        "a new canary (another member or other steps) then starts over, and retry starts this one over.",
    )
    retry: bool = pydantic.Field(
        default=False,
        description="Start a Failed canary (rolled back or aborted) over from step 1, same member and steps "
        "(pilotfish canary retry). The operator clears it once it has acted; on a live rollout it does nothing.",
    )
    promote: Promote | None = None
    progress_deadline_seconds: int = pydantic.Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="A step that does not complete within this many seconds (at least 60) fails the rollout; "
        "a pause step adds its duration, and time spent paused does not count.",
    )

    @pydantic.model_validator(mode="after")
    def _analysis_has_metrics(self) -> CanarySpec:
        if any(step.analysis is not None for step in self.steps) and not self.analysis.metrics:
            raise ValueError("an analysis step needs analysis.metrics")
        if self.analysis.metrics and self.analysis.prometheus is None:
            raise ValueError("analysis.metrics need analysis.prometheus.address")
        return self


Phase = Literal["Idle", "Progressing", "Paused", "Promoting", "Succeeded", "Failed"]


class CanaryStatus(base.ApiModel):
    """status.canary, written by the operator."""

    model_config = pydantic.ConfigDict(extra="ignore")
    phase: Phase = "Idle"
    current_step_index: int = 0
    weight: int = 0
    observed_weight: float | None = None
    failed_checks: int = 0
    started_at: str | None = None
    step_started_at: str | None = None
    # when the operator first saw spec.canary.paused; on resume the pause is added to step_started_at, so time
    # spent paused counts against neither progressDeadlineSeconds nor a pause step's duration
    paused_at: str | None = None
    last_check_at: str | None = None
    revision: str | None = None
    message: str = ""

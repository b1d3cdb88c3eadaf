"""One canary tick for one ModelClass, inside a namespace reconcile pass: checks, observed weight, stepper.

Blocking (Prometheus over HTTP), like the rest of a reconcile pass, which runs in a thread.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pydantic

from pilotfish.api import canary, modelclass
from pilotfish_operator.canary import analysis, stepper

ACTIVE = ("Progressing", "Paused", "Promoting")


def tick_class(obj: Mapping[str, Any], *, namespace: str, now: datetime.datetime) -> stepper.Tick | None:
    """The class's next canary status; None when it has no canary and never had one."""
    raw = (obj.get("spec") or {}).get("canary")
    previous = ((obj.get("status") or {}).get("canary")) or None
    if raw is None and previous is None:
        return None
    try:
        spec = modelclass.ModelClass.model_validate(obj).spec.canary
    except pydantic.ValidationError:
        return None  # the class's own status reports InvalidSpec; leave the rollout where it is
    status = canary.CanaryStatus.model_validate(previous) if previous else None
    name = obj["metadata"]["name"]
    checks = (
        analysis.run_checks(spec, namespace=namespace, class_name=name, now=now)
        if spec is not None and stepper.analysis_due(spec, status, now)
        else None
    )
    observed = analysis.observed_weight(spec, namespace=namespace, class_name=name) if spec is not None else None
    return stepper.tick(spec, status, now=now, checks=checks, observed_weight=observed)


def is_active(status: Mapping[str, Any] | None) -> bool:
    return bool(status) and (status or {}).get("phase") in ACTIVE

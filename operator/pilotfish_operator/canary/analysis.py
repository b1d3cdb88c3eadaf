"""The canary's checks: PromQL over the sidecars' canary series, and one number per query from Prometheus.

The built-in metrics read the series the sidecars keep for canary attempts only, so the stable
members' traffic never dilutes them; ``observed_weight`` is the share of the class's requests the
sidecars actually put in the canary slice. A query that errors, or returns nothing or NaN (no
traffic yet), is inconclusive: it never counts as a failed check.
"""

from __future__ import annotations

import datetime
import json
import math
import urllib.error
import urllib.parse
import urllib.request

from pilotfish.api import canary
from pilotfish_operator.canary import stepper


def _selector(namespace: str, class_name: str, extra: str = "") -> str:
    return f'namespace="{namespace}",class="{class_name}"' + (f",{extra}" if extra else "")


def builtin_query(name: str, *, namespace: str, class_name: str, window: str) -> str:
    sel = _selector(namespace, class_name)
    if name == "error-rate":
        failed = _selector(namespace, class_name, 'result!="success"')
        # `or vector(0)`: a canary that never failed has no failed series at all, and that is a rate of 0,
        # not "no data"; no attempts at all still divides by nothing and stays inconclusive
        return (
            f"(sum(rate(pilotfish_canary_attempts_total{{{failed}}}[{window}])) or vector(0))"
            f" / sum(rate(pilotfish_canary_attempts_total{{{sel}}}[{window}]))"
        )
    series = {
        "p95-latency-seconds": "pilotfish_canary_request_duration_seconds_bucket",
        "time-to-first-token-p95-seconds": "pilotfish_canary_time_to_first_token_seconds_bucket",
    }[name]
    return f"histogram_quantile(0.95, sum by (le) (rate({series}{{{sel}}}[{window}])))"


def observed_weight_query(*, namespace: str, class_name: str, window: str) -> str:
    canary_slice = _selector(namespace, class_name, 'slice="canary"')
    every = _selector(namespace, class_name)
    return (
        f"100 * sum(rate(pilotfish_slice_requests_total{{{canary_slice}}}[{window}]))"
        f" / sum(rate(pilotfish_slice_requests_total{{{every}}}[{window}]))"
    )


def window(spec: canary.CanarySpec) -> str:
    """The range each query looks back over: the analysis interval, at least 30 s so rate() has samples."""
    return f"{max(30, int(canary.seconds(spec.analysis.interval)))}s"


def query_number(address: str, promql: str, *, timeout: float = 5.0) -> float | str:
    """The query's single value, or a short reason it has none. Blocking: the reconciler runs in a thread."""
    url = f"{address.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            return f"query error: {json.load(exc).get('error', exc.reason)}"
        except ValueError:
            return f"query error: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"Prometheus unreachable ({type(exc).__name__})"
    if body.get("status") != "success":
        return f"query error: {body.get('error', 'unknown')}"
    result = body["data"]["result"]
    if body["data"].get("resultType") == "scalar":
        value = float(result[1])
    elif len(result) == 1:
        value = float(result[0]["value"][1])
    elif not result:
        return "no data"
    else:
        return f"{len(result)} series (a check needs one number)"
    return "no data" if math.isnan(value) else value


def run_checks(spec: canary.CanarySpec, *, namespace: str, class_name: str, now: datetime.datetime) -> stepper.Checks:
    assert spec.analysis.prometheus is not None
    address, span = spec.analysis.prometheus.address, window(spec)
    failed, inconclusive = [], []
    for metric in spec.analysis.metrics:
        promql = metric.query or builtin_query(metric.name, namespace=namespace, class_name=class_name, window=span)
        value = query_number(address, promql)
        if isinstance(value, str):
            inconclusive.append(f"{metric.name}: {value}")
        elif not metric.threshold_range.holds(value):
            failed.append(f"{metric.name}={value:.4g} ({_bounds(metric.threshold_range)})")
    return stepper.Checks(at=now, failed=tuple(failed), inconclusive=tuple(inconclusive))


def observed_weight(spec: canary.CanarySpec, *, namespace: str, class_name: str) -> float | None:
    if spec.analysis.prometheus is None:
        return None
    promql = observed_weight_query(namespace=namespace, class_name=class_name, window=window(spec))
    value = query_number(spec.analysis.prometheus.address, promql)
    return None if isinstance(value, str) else value


def _bounds(threshold: canary.ThresholdRange) -> str:
    parts = [
        f"min {threshold.min:g}" if threshold.min is not None else "",
        f"max {threshold.max:g}" if threshold.max is not None else "",
    ]
    return ", ".join(part for part in parts if part)

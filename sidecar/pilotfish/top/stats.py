"""From two scrapes of sidecar metrics to one row per class member. Pure: text in, numbers out.

Rates are the difference between two scrapes divided by the time between them, as Prometheus'
``rate`` would compute over that window; quantiles come from the difference of histogram buckets,
as ``histogram_quantile`` would. Several sidecars (pods) are summed before anything is divided.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import parser

Labels = tuple[tuple[str, str], ...]
Series = dict[tuple[str, Labels], float]  # (sample name, sorted labels) → value


@dataclasses.dataclass(frozen=True)
class Scrape:
    at: float  # seconds, monotonic
    series: Series
    members: Mapping[str, Sequence[Mapping[str, object]]]  # class → /debug/members entries, merged over pods


@dataclasses.dataclass(frozen=True)
class Row:
    class_name: str
    member: str
    provider: str
    state: str  # circuit state; several pods that disagree show e.g. "open 1/3"
    attempts_per_second: float
    served_per_second: float
    error_ratio: float | None  # failed attempts / attempts; None without attempts
    failovers_per_second: float
    p95_seconds: float | None
    ttft_p95_seconds: float | None


def parse(text: str) -> Series:
    series: Series = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            series[key] = series.get(key, 0.0) + sample.value
    return series


def merge(many: Iterable[Series]) -> Series:
    """Sum the same series over pods."""
    total: Series = collections.defaultdict(float)
    for series in many:
        for key, value in series.items():
            total[key] += value
    return dict(total)


def rows(before: Scrape | None, after: Scrape) -> list[Row]:
    """One row per member of every class; rates are zero until there are two scrapes."""
    seconds = after.at - before.at if before else 0.0

    def rate(name: str, **match: str) -> float:
        if before is None or seconds <= 0:
            return 0.0
        return max(0.0, _sum(after.series, name, match) - _sum(before.series, name, match)) / seconds

    result = []
    for cls, members in sorted(after.members.items()):
        for member in members:
            provider, model = str(member["provider"]), str(member["model"])
            attempts = rate("pilotfish_attempts_total", **{"class": cls, "provider": provider, "model": model})
            ok = rate(
                "pilotfish_attempts_total", **{"class": cls, "provider": provider, "model": model, "result": "success"}
            )
            served = rate(
                "pilotfish_requests_total",
                **{"class": cls, "provider": provider, "model": model, "outcome": "success"},
            )
            result.append(
                Row(
                    class_name=cls,
                    member=str(member["id"]),
                    provider=provider,
                    state=str(member.get("state", "closed")),
                    attempts_per_second=attempts,
                    served_per_second=served,
                    error_ratio=(attempts - ok) / attempts if attempts else None,
                    failovers_per_second=rate("pilotfish_failovers_total", **{"class": cls, "from_provider": provider}),
                    p95_seconds=_quantile(
                        0.95, before, after, "pilotfish_request_duration_seconds_bucket", cls, provider
                    ),
                    ttft_p95_seconds=_quantile(
                        0.95, before, after, "pilotfish_time_to_first_token_seconds_bucket", cls, provider
                    ),
                )
            )
    return result


def canary_shares(before: Scrape | None, after: Scrape) -> dict[str, float]:
    """Per class with a canary: the share of requests the sidecars put in the canary slice (0-1)."""
    if before is None:
        return {}
    shares = {}
    classes = {dict(labels)["class"] for (name, labels) in after.series if name == "pilotfish_slice_requests_total"}
    for cls in sorted(classes):

        def grown(**match: str) -> float:
            assert before is not None
            name = "pilotfish_slice_requests_total"
            return max(0.0, _sum(after.series, name, match) - _sum(before.series, name, match))

        every = grown(**{"class": cls})
        if every:
            shares[cls] = grown(**{"class": cls, "slice": "canary"}) / every
    return shares


def _sum(series: Series, name: str, match: Mapping[str, str]) -> float:
    return sum(v for (n, labels), v in series.items() if n == name and _matches(labels, match))


def _matches(labels: Labels, match: Mapping[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in match.items())


def _quantile(q: float, before: Scrape | None, after: Scrape, name: str, cls: str, provider: str) -> float | None:
    """histogram_quantile over the buckets' increase between the scrapes (linear within a bucket)."""
    if before is None:
        return None
    match = {"class": cls, "provider": provider}
    buckets: dict[float, float] = collections.defaultdict(float)
    for (n, labels), value in after.series.items():
        if n == name and _matches(labels, match):
            bound = float(dict(labels)["le"])
            buckets[bound] += value - before.series.get((n, labels), 0.0)
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all that is known
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def merge_members(
    per_pod: Iterable[Mapping[str, Sequence[Mapping[str, object]]]],
) -> dict[str, list[dict[str, object]]]:
    """Members of each class across pods; a state several pods disagree on becomes e.g. "open 1/3"."""
    seen: dict[str, dict[str, dict[str, object]]] = collections.defaultdict(dict)
    states: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for classes in per_pod:
        for cls, listed in classes.items():
            for member in listed:
                member_id = str(member["id"])
                seen[cls].setdefault(member_id, dict(member))
                states[(cls, member_id)].append(str(member.get("state", "closed")))
    merged: dict[str, list[dict[str, object]]] = {}
    for cls, by_id in seen.items():
        merged[cls] = []
        for member_id, member in by_id.items():
            pods = states[(cls, member_id)]
            worst = next((s for s in ("open", "half_open") if s in pods), "closed")
            member["state"] = worst if len(set(pods)) == 1 else f"{worst} {pods.count(worst)}/{len(pods)}"
            merged[cls].append(member)
    return merged

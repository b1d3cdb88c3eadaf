"""Failover counting: a member skipped ahead of the one that served counts as a failover from its provider."""

from __future__ import annotations

import prometheus_client

from pilotfish import failures
from pilotfish.routes import document
from pilotfish.specs import credential as credential_specs  # `credential` names a parameter below
from pilotfish.specs import refs
from pilotfish.telemetry import metrics, records


def _routes() -> document.RoutesDocument:
    def member(credential: str, provider: str, priority: int) -> document.MemberRoute:
        return document.MemberRoute(
            id=f"{credential}/m",
            credential=credential,
            provider=credential_specs.ProviderType(provider),
            base_url="https://x",
            api_key_ref=refs.SecretKeyRef(name="k", key=credential),
            model="m",
            priority=priority,
        )

    members = (member("a", "anthropic", 0), member("b", "openai", 1), member("c", "gemini", 2))
    return document.RoutesDocument(namespace="ns", classes={"w": document.ClassRoute(name="w", members=members)})


def _failovers(registry: metrics.Metrics) -> dict[tuple[str, str], float]:
    found = {}
    for family in registry.registry.collect():
        if family.name == "pilotfish_failovers":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[(sample.labels["from_provider"], sample.labels["reason"])] = sample.value
    return found


def test_an_open_circuit_ahead_of_the_server_is_a_failover_and_one_behind_it_is_not():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.skipped = [("a/m", "circuit_open"), ("c/m", "circuit_open")]
    registry.observe(record)
    assert _failovers(registry) == {("anthropic", "circuit_open"): 1.0}


def test_a_failed_attempt_followed_by_another_is_a_failover():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    failure = failures.Failure(kind=failures.FailureKind.OVERLOADED, status=529)
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.attempts = [
        records.AttemptRecord("a/m", "anthropic", "m", 0.1, failure),
        records.AttemptRecord("b/m", "openai", "m", 0.1),
    ]
    registry.observe(record)
    assert _failovers(registry) == {("anthropic", "overloaded"): 1.0}


def _counted(registry: metrics.Metrics, family_name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """A counter's values by the given labels."""
    return {
        tuple(sample.labels[label] for label in labels): sample.value
        for family in registry.registry.collect()
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def _retries(registry: metrics.Metrics) -> dict[tuple[str, ...], float]:
    return _counted(registry, "pilotfish_retries", "provider", "reason")


def test_a_member_asked_again_after_a_short_retry_after_is_a_retry_not_a_failover():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    limited = failures.Failure(kind=failures.FailureKind.RATE_LIMITED, status=429, retry_after=0.2)
    record = records.RequestRecord(class_name="w", stream=False, provider="anthropic", model="m", member_id="a/m")
    record.attempts = [
        records.AttemptRecord("a/m", "anthropic", "m", 0.1, limited),
        records.AttemptRecord("a/m", "anthropic", "m", 0.1),
    ]
    registry.observe(record)
    assert _failovers(registry) == {}
    assert _retries(registry) == {("anthropic", "rate_limited"): 1.0}
    assert record.failover_reason() is None and record.retry_reason() == "rate_limited"


def test_a_retry_that_failed_again_and_then_moved_counts_once_as_each():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    reset = failures.Failure(kind=failures.FailureKind.CONNECT)
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.attempts = [
        records.AttemptRecord("a/m", "anthropic", "m", 0.1, reset),
        records.AttemptRecord("a/m", "anthropic", "m", 0.1, reset),
        records.AttemptRecord("b/m", "openai", "m", 0.1),
    ]
    registry.observe(record)
    assert _failovers(registry) == {("anthropic", "connect_error"): 1.0}
    assert _retries(registry) == {("anthropic", "connect_error"): 1.0}


def _canary_attempts(registry: metrics.Metrics) -> dict[tuple[str, ...], float]:
    return _counted(registry, "pilotfish_canary_attempts", "result")


def test_a_canary_slice_request_that_skipped_the_open_canary_counts_as_a_failed_canary_attempt():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.canary_slice, record.canary_member = "canary", "a/m"
    record.skipped = [("a/m", "circuit_open")]
    record.attempts = [records.AttemptRecord("b/m", "openai", "m", 0.1)]
    registry.observe(record)
    assert _canary_attempts(registry) == {("circuit_open",): 1.0}


def test_requests_are_counted_right_past_the_bound_of_cached_children(monkeypatch):
    monkeypatch.setattr(metrics, "CHILDREN_CACHED", 2)
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    for _ in range(2):
        for name in ("x", "y", "z"):
            registry.observe(records.RequestRecord(class_name=name, stream=False, provider="openai", model="m"))
    assert len(registry._children) <= 2
    counted = _counted(registry, "pilotfish_requests", "class")
    assert counted == {("x",): 2.0, ("y",): 2.0, ("z",): 2.0}


def test_an_attempt_admitted_on_a_quota_fail_open_share_is_counted_by_class_and_member():
    registry = metrics.Metrics(prometheus_client.CollectorRegistry())
    registry.set_routes(_routes(), digest="d")
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.quotas_failed_open = ["b/m"]
    registry.observe(record)
    registry.observe(records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m"))
    value = registry.registry.get_sample_value("pilotfish_quota_failed_open_total", {"class": "w", "member": "b/m"})
    assert value == 1.0  # the second request was admitted by the operator's grant: not counted

"""Active probes, decided without the network: a half-open circuit the prober probes admits no caller,
the prober takes the one probe slot, and a sidecar whose turn it is not waits another cooldown."""

from __future__ import annotations

import random

import msgspec
from tests.pilotfish.failover.builders import FakeClock, member

from pilotfish.failover import breaker, health, probing
from pilotfish.routes import document
from pilotfish.specs import credential, modelclass, refs
from pilotfish.telemetry import metrics

HEALTH = modelclass.HealthSpec(failure_threshold=1, cooldown_seconds=10)


def probed(name: str, *, share: float = 1.0, kind: str = "generation") -> document.MemberRoute:
    return msgspec.structs.replace(
        member(name), probe=credential.ProbeSpec(kind=credential.ProbeKind(kind), share=share)
    )


def registry_with(*members: document.MemberRoute, clock: FakeClock) -> health.HealthRegistry:
    registry = health.HealthRegistry(now=clock.now, rng=random.Random(1))
    route = document.ClassRoute(name="c", members=members, health=HEALTH)
    registry.reconcile(document.RoutesDocument(namespace="ns", classes={"c": route}))
    return registry


def opened(registry: health.HealthRegistry, target: document.MemberRoute, clock: FakeClock) -> breaker.CircuitBreaker:
    found = registry.member("c", target).breaker
    found.record_failure()
    clock.advance(20)  # past the jittered cooldown: half-open
    return found


class Rng(random.Random):
    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw


def test_a_half_open_circuit_that_is_actively_probed_admits_no_caller_only_the_prober():
    clock = FakeClock()
    target = probed("a")
    registry = registry_with(target, clock=clock)
    circuit = opened(registry, target, clock)
    assert circuit.state is breaker.CircuitState.HALF_OPEN
    assert not circuit.allow()  # a user request is never the probe
    assert circuit.lease_probe() and not circuit.lease_probe()  # one probe at a time
    assert [m.id for _, m, _ in registry.probes_due()] == ["a/m"]


def test_without_a_probe_spec_the_first_caller_is_the_probe_as_before():
    clock = FakeClock()
    target = member("b")
    registry = registry_with(target, clock=clock)
    circuit = opened(registry, target, clock)
    assert circuit.allow() and not circuit.allow()
    assert registry.probes_due() == []


def test_a_sidecar_whose_turn_it_is_not_waits_another_cooldown_without_counting_a_failure():
    clock = FakeClock()
    target = probed("a", share=0.25)
    registry = registry_with(target, clock=clock)
    circuit = opened(registry, target, clock)
    failures_before = circuit.consecutive_failures
    counted = metrics.Metrics()
    prober = probing.Prober(
        registry_=registry,
        sessions=None,
        keys_of=dict,
        observe=counted,
        rng=Rng(0.9),
        now=clock.now,  # type: ignore[arg-type]
    )
    prober.tick()  # 0.9 >= share 0.25: not this sidecar's turn
    assert circuit.state is breaker.CircuitState.OPEN
    assert 9 <= circuit.cooldown_left() <= 11  # another jittered cooldown
    assert circuit.consecutive_failures == failures_before
    value = counted.registry.get_sample_value
    assert value("pilotfish_probes_total", {"class": "c", "member": "a/m", "result": "postponed"}) == 1


def test_a_models_probe_asks_the_vendors_model_list_with_the_members_own_key_header():
    target = msgspec.structs.replace(probed("a", kind="models"), base_url="https://api.example/v1")
    request = probing.probe_request(target, refs.ApiKey("sk-probe"))
    assert (request.method, request.url, request.body) == ("GET", "https://api.example/v1/models", b"")
    assert request.headers["Authorization"] == "Bearer sk-probe"


def test_a_generation_probe_is_one_fixed_prompt_with_a_one_token_limit():
    request = probing.probe_request(probed("a"), None)
    assert b'"max_tokens":1' in request.body and b"Say OK." in request.body and request.method == "POST"

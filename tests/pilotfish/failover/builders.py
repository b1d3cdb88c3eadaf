"""Small builders for the pure failover tests: a fake clock, members, routes, health views and an engine."""

import random
from collections.abc import Callable

from pilotfish import upstream
from pilotfish.failover import breaker, engine, health, pinning
from pilotfish.routes import document
from pilotfish.specs import credential, modelclass


class FakeClock:
    """Monotonic seconds that move only when a test says so; pass ``clock.now`` as ``now``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def member(
    name: str,
    priority: int = 0,
    weight: int = 1,
    window: int | None = None,
    base_url: str = "https://x",
) -> document.MemberRoute:
    return document.MemberRoute(
        id=f"{name}/m",
        credential=name,
        provider=credential.ProviderType.OPENAI,
        base_url=base_url,
        model="m",
        priority=priority,
        weight=weight,
        context_window=window,
    )


def route(
    *members: document.MemberRoute,
    strategy: modelclass.Strategy = modelclass.Strategy.PRIORITY,
    name: str = "c",
) -> document.ClassRoute:
    return document.ClassRoute(name=name, members=tuple(members), routing=modelclass.RoutingSpec(strategy=strategy))


def view(
    state: breaker.CircuitState = breaker.CircuitState.CLOSED,
    cooldown: float = 0.0,
    latency: float | None = None,
) -> health.MemberView:
    return health.MemberView(
        state=state,
        consecutive_failures=0,
        cooldown_left=cooldown,
        latency_ewma=latency,
        ttft_ewma=None,
        error_rate=0.0,
        requests=0,
    )


def opened(cooldown: float = 5.0) -> health.MemberView:
    return view(breaker.CircuitState.OPEN, cooldown)


def engine_on(clock: FakeClock) -> engine.Engine:
    """The failover engine on a fake clock; its exchanges are scripted, so its sessions are never used."""
    return engine_at(clock.now, sessions=upstream.Sessions())


def engine_at(now: Callable[[], float], *, sessions: upstream.Sessions) -> engine.Engine:
    """The failover engine on clock ``now`` (a fake one, or the running loop's for real upstreams)."""
    rng = random.Random(0)
    return engine.Engine(
        sessions=sessions,
        health_registry=health.HealthRegistry(now=now, rng=rng),
        pins=pinning.PinStore(now=now),
        now=now,
        rng=rng,
    )


def class_route(
    *names: str, budget: float = 0.0, timeouts: modelclass.TimeoutsSpec | None = None, **routing: object
) -> document.ClassRoute:
    """Class ``c`` with members ``<name>/m`` in priority order."""
    spec = modelclass.RoutingSpec(retry_budget_percent=budget, **routing)
    members = tuple(member(n, priority=position) for position, n in enumerate(names))
    return document.ClassRoute(name="c", members=members, routing=spec, timeouts=timeouts or modelclass.TimeoutsSpec())


class ScriptedExchange:
    """What every scripted exchange of the engine tests shares: a chat exchange of one prompt token that
    every member can serve and none can resume; subclasses script ``attempt``."""

    operation = "chat"

    def prompt_tokens(self) -> int:
        return 1

    def skip_reason(self, member: document.MemberRoute) -> None:
        return None

    def resumer(self, head: object) -> None:
        return None

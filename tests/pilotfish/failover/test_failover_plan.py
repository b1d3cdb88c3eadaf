import collections
import random

from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import member

from pilotfish.api import modelclass
from pilotfish.failover import breaker, health, plan
from pilotfish.routes import document


def _route(*members, strategy=modelclass.Strategy.PRIORITY):
    return document.ClassRoute(name="c", members=tuple(members), routing=modelclass.RoutingSpec(strategy=strategy))


def _view(state=breaker.CircuitState.CLOSED, cooldown=0.0, latency=None):
    return health.MemberView(
        state=state,
        consecutive_failures=0,
        cooldown_left=cooldown,
        latency_ewma=latency,
        ttft_ewma=None,
        error_rate=0.0,
        attempts=0,
    )


def _ids(p):
    return [m.credential for m in p.members]


def test_members_are_tried_in_priority_order():
    route = _route(member("a", 0), member("b", 1), member("c", 2))
    assert _ids(plan.plan_attempts(route, {}, prompt_tokens=10, pinned=None, rng=random.Random(0))) == [
        "a",
        "b",
        "c",
    ]


def test_equal_priorities_split_traffic_by_weight():
    route = _route(member("a", 0, weight=3), member("b", 0, weight=1), member("z", 1))
    firsts = collections.Counter(
        plan.plan_attempts(route, {}, prompt_tokens=1, pinned=None, rng=random.Random(seed)).members[0].credential
        for seed in range(4000)
    )
    assert 0.70 < firsts["a"] / 4000 < 0.80
    assert firsts["z"] == 0


def test_least_latency_prefers_the_fastest_and_samples_unmeasured_members():
    route = _route(member("slow"), member("fast"), member("new"), strategy=modelclass.Strategy.LEAST_LATENCY)
    views = {"slow/m": _view(latency=2.0), "fast/m": _view(latency=0.5)}
    assert _ids(plan.plan_attempts(route, views, prompt_tokens=1, pinned=None, rng=random.Random(0))) == [
        "new",
        "fast",
        "slow",
    ]


def test_members_too_small_for_the_prompt_are_skipped():
    route = _route(member("small", 0, window=100), member("big", 1, window=10_000))
    p = plan.plan_attempts(route, {}, prompt_tokens=500, pinned=None, rng=random.Random(0))
    assert _ids(p) == ["big"]
    assert p.skipped == (plan.Skip("small/m", plan.SkipReason.CONTEXT_WINDOW),)


def test_open_members_are_skipped_but_one_is_kept_as_last_resort():
    route = _route(member("a"), member("b", 1))
    open_a = {"a/m": _view(breaker.CircuitState.OPEN, 5.0)}
    p = plan.plan_attempts(route, open_a, prompt_tokens=1, pinned=None, rng=random.Random(0))
    assert _ids(p) == ["b"] and p.skipped == (plan.Skip("a/m", plan.SkipReason.CIRCUIT_OPEN),)
    all_open = {"a/m": _view(breaker.CircuitState.OPEN, 5.0), "b/m": _view(breaker.CircuitState.OPEN, 1.0)}
    assert _ids(plan.plan_attempts(route, all_open, prompt_tokens=1, pinned=None, rng=random.Random(0))) == ["b"]


def test_a_pinned_member_goes_first_unless_its_circuit_is_open():
    route = _route(member("a"), member("b", 1))
    assert _ids(plan.plan_attempts(route, {}, prompt_tokens=1, pinned="b/m", rng=random.Random(0))) == [
        "b",
        "a",
    ]
    open_b = {"b/m": _view(breaker.CircuitState.OPEN, 5.0)}
    assert _ids(plan.plan_attempts(route, open_b, prompt_tokens=1, pinned="b/m", rng=random.Random(0))) == ["a"]


def test_after_context_length_only_larger_windows_remain():
    failed = member("a", window=8000)
    rest = [member("same", window=8000), member("none"), member("big", window=100_000)]
    assert [m.credential for m in plan.after_context_length(rest, failed)] == ["big"]
    assert len(plan.after_context_length(rest, member("unknown"))) == 3


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5), st.booleans()), min_size=1, max_size=8),
    st.integers(0, 10**6),
)
def test_the_plan_is_a_permutation_of_the_usable_members(specs, seed):
    members = [member(f"m{i}", priority, weight) for i, (priority, weight, _) in enumerate(specs)]
    views = {
        m.id: _view(breaker.CircuitState.OPEN, 1.0)
        for m, (_, _, is_open) in zip(members, specs, strict=False)
        if is_open
    }
    p = plan.plan_attempts(_route(*members), views, prompt_tokens=1, pinned=None, rng=random.Random(seed))
    usable = {m.id for m in members if m.id not in views}
    if usable:
        assert {m.id for m in p.members} == usable and len(p.members) == len(usable)
        priorities = [m.priority for m in p.members]
        assert priorities == sorted(priorities)
    else:
        assert len(p.members) == 1

import collections
import copy
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import member, opened, route, view

from pilotfish.failover import breaker, plan
from pilotfish.specs import modelclass

S = breaker.CircuitState
STRATEGIES = list(modelclass.Strategy)


def _plan(class_route, views=None, prompt_tokens=1, pinned=None, seed=0):
    return plan.plan_attempts(
        class_route, views or {}, prompt_tokens=prompt_tokens, pinned=pinned, rng=random.Random(seed)
    )


def _ids(p):
    return [m.credential for m in p.members]


def _firsts(class_route, runs=4000, position=0):
    return collections.Counter(_plan(class_route, seed=seed).members[position].credential for seed in range(runs))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_members_are_tried_in_priority_order_whatever_their_list_order(strategy):
    class_route = route(member("c", 2), member("a", 0), member("b", 1), strategy=strategy)
    assert _ids(_plan(class_route)) == ["a", "b", "c"]


def test_an_empty_class_gives_an_empty_plan():
    assert _plan(route()) == plan.Plan(members=(), skipped=())


def test_equal_priorities_split_traffic_by_weight():
    firsts = _firsts(route(member("a", 0, weight=3), member("b", 0, weight=1), member("z", 1)))
    assert 0.72 < firsts["a"] / 4000 < 0.78
    assert firsts["z"] == 0


def test_equal_priorities_and_weights_split_traffic_evenly():
    firsts = _firsts(route(member("a"), member("b"), member("c")), runs=6000)
    assert all(1800 < firsts[name] < 2200 for name in "abc")


def test_the_weighted_strategy_splits_within_a_priority_and_keeps_priorities_apart():
    class_route = route(
        member("a", 0, weight=1), member("b", 0, weight=4), member("z", 1), strategy=modelclass.Strategy.WEIGHTED
    )
    firsts = _firsts(class_route)
    assert 0.77 < firsts["b"] / 4000 < 0.83 and firsts["z"] == 0
    assert all(_ids(_plan(class_route, seed=seed))[2] == "z" for seed in range(200))


def test_the_runner_up_of_a_weighted_group_is_drawn_from_the_members_left():
    class_route = route(member("a", weight=6), member("b", weight=3), member("c", weight=1))
    seconds = _firsts(class_route, runs=6000, position=1)
    # P(b second) = P(a first)·3/4 + P(c first)·3/9 = 0.6·0.75 + 0.1·(1/3) ≈ 0.483
    assert 0.45 < seconds["b"] / 6000 < 0.52


def test_the_same_seed_gives_the_same_plan():
    class_route = route(*(member(f"m{i}", weight=i + 1) for i in range(6)))
    assert _ids(_plan(class_route, seed=42)) == _ids(_plan(class_route, seed=42))


def test_least_latency_prefers_the_fastest_and_samples_unmeasured_members_first():
    class_route = route(
        member("slow"), member("fast"), member("new"), member("newer"), strategy=modelclass.Strategy.LEAST_LATENCY
    )
    views = {"slow/m": view(latency=2.0), "fast/m": view(latency=0.5), "newer/m": view()}
    assert _ids(_plan(class_route, views)) == ["new", "newer", "fast", "slow"]


def test_least_latency_orders_within_a_priority_only():
    class_route = route(
        member("slow", 0), member("slower", 0), member("fastest", 1), strategy=modelclass.Strategy.LEAST_LATENCY
    )
    views = {"slow/m": view(latency=2.0), "slower/m": view(latency=3.0), "fastest/m": view(latency=0.1)}
    assert _ids(_plan(class_route, views)) == ["slow", "slower", "fastest"]


def test_least_latency_keeps_list_order_on_equal_latency():
    class_route = route(member("b"), member("a"), strategy=modelclass.Strategy.LEAST_LATENCY)
    views = {"a/m": view(latency=1.0), "b/m": view(latency=1.0)}
    assert _ids(_plan(class_route, views)) == ["b", "a"]


def test_members_too_small_for_the_prompt_are_skipped():
    class_route = route(member("small", 0, window=100), member("big", 1, window=10_000), member("unknown", 2))
    p = _plan(class_route, prompt_tokens=500)
    assert _ids(p) == ["big", "unknown"]
    assert p.skipped == (plan.Skip("small/m", plan.SkipReason.CONTEXT_WINDOW),)


def test_a_prompt_exactly_the_size_of_the_window_fits():
    assert _ids(_plan(route(member("a", window=500)), prompt_tokens=500)) == ["a"]


def test_when_no_member_fits_the_prompt_nothing_is_tried():
    p = _plan(route(member("a", window=10), member("b", 1, window=20)), prompt_tokens=500)
    assert p.members == () and not p.last_resort
    assert [s.reason for s in p.skipped] == [plan.SkipReason.CONTEXT_WINDOW] * 2


def test_open_members_are_skipped():
    p = _plan(route(member("a"), member("b", 1)), {"a/m": opened()})
    assert _ids(p) == ["b"] and not p.last_resort
    assert p.skipped == (plan.Skip("a/m", plan.SkipReason.CIRCUIT_OPEN),)


def test_when_every_circuit_is_open_the_one_closest_to_recovery_is_the_last_resort():
    class_route = route(member("a"), member("b", 1), member("c", 2))
    p = _plan(class_route, {"a/m": opened(5.0), "b/m": opened(1.0), "c/m": opened(3.0)})
    assert _ids(p) == ["b"] and p.last_resort
    assert {s.member_id for s in p.skipped} == {"a/m", "b/m", "c/m"}


def test_a_member_too_small_for_the_prompt_is_never_the_last_resort():
    class_route = route(member("tiny", window=10), member("big", 1))
    p = _plan(class_route, {"tiny/m": opened(0.1), "big/m": opened(50.0)}, prompt_tokens=100)
    assert _ids(p) == ["big"] and p.last_resort


def test_half_open_members_keep_their_place():
    class_route = route(member("a"), member("b", 1))
    p = _plan(class_route, {"a/m": view(S.HALF_OPEN)})
    assert _ids(p) == ["a", "b"] and p.skipped == ()


def test_skips_list_context_windows_first_then_open_circuits():
    class_route = route(member("open", 0), member("tiny", 1, window=5), member("ok", 2))
    p = _plan(class_route, {"open/m": opened()}, prompt_tokens=50)
    assert p.skipped == (
        plan.Skip("tiny/m", plan.SkipReason.CONTEXT_WINDOW),
        plan.Skip("open/m", plan.SkipReason.CIRCUIT_OPEN),
    )


def test_skip_reasons_are_the_strings_headers_and_metrics_show():
    assert {r.value for r in plan.SkipReason} == {
        "context_window_too_small",
        "circuit_open",
        "operation_not_supported",
        "input_not_supported",
        "quota_spent",  # the engine's, not the plan's: a member's provider quota share is spent (docs/quotas.md)
    }


def test_a_member_the_exchange_cannot_use_is_skipped_with_its_reason_and_never_a_last_resort():
    class_route = route(member("a"), member("b", 1), member("c", 2))
    unsupported = {"a": plan.SkipReason.OPERATION_NOT_SUPPORTED, "c": plan.SkipReason.INPUT_NOT_SUPPORTED}
    p = plan.plan_attempts(
        class_route,
        {"b/m": opened()},
        prompt_tokens=1,
        pinned=None,
        rng=random.Random(0),
        skip_reason=lambda m: unsupported.get(m.credential),
    )
    assert _ids(p) == ["b"] and p.last_resort  # b is open: the last resort is b, never a or c
    assert [(s.member_id, s.reason) for s in p.skipped] == [
        ("a/m", plan.SkipReason.OPERATION_NOT_SUPPORTED),
        ("c/m", plan.SkipReason.INPUT_NOT_SUPPORTED),
        ("b/m", plan.SkipReason.CIRCUIT_OPEN),
    ]


@pytest.mark.parametrize("state", [S.CLOSED, S.HALF_OPEN])
def test_a_pinned_member_goes_first(state):
    class_route = route(member("a"), member("b", 1), member("c", 2))
    assert _ids(_plan(class_route, {"c/m": view(state)}, pinned="c/m")) == ["c", "a", "b"]


def test_a_pin_to_an_open_member_is_ignored():
    class_route = route(member("a"), member("b", 1))
    assert _ids(_plan(class_route, {"b/m": opened()}, pinned="b/m")) == ["a"]


def test_a_pin_to_a_member_too_small_for_the_prompt_is_ignored():
    class_route = route(member("a"), member("small", 1, window=10))
    assert _ids(_plan(class_route, prompt_tokens=100, pinned="small/m")) == ["a"]


def test_a_pin_to_a_member_no_longer_in_the_class_is_ignored():
    assert _ids(_plan(route(member("a"), member("b", 1)), pinned="gone/m")) == ["a", "b"]


def test_planning_does_not_change_its_inputs():
    class_route = route(member("a"), member("b"), member("c", 1))
    before = copy.deepcopy(class_route)
    views = {"c/m": opened()}
    _plan(class_route, views, pinned="b/m")
    assert class_route == before and views == {"c/m": opened()}


def test_after_context_length_only_larger_declared_windows_remain_in_order():
    failed = member("a", window=8000)
    rest = [member("bigger", window=9000), member("same", window=8000), member("none"), member("big", window=100_000)]
    assert [m.credential for m in plan.after_context_length(rest, failed)] == ["bigger", "big"]


def test_after_context_length_of_a_member_without_a_declared_window_everything_remains():
    rest = (member("small", window=10), member("none"))
    assert plan.after_context_length(rest, member("unknown")) == rest


def test_after_context_length_of_nothing_is_nothing():
    assert plan.after_context_length((), member("a", window=10)) == ()


MEMBER_SPECS = st.lists(
    st.tuples(
        st.integers(0, 3),  # priority
        st.integers(1, 5),  # weight
        st.sampled_from([None, 50, 500]),  # context window
        st.sampled_from([S.CLOSED, S.OPEN, S.HALF_OPEN, None]),  # None: no view yet
        st.one_of(st.none(), st.floats(0.01, 10.0)),  # latency
    ),
    max_size=8,
)


@given(MEMBER_SPECS, st.sampled_from(STRATEGIES), st.integers(0, 10**6), st.integers(0, 9), st.integers(1, 600))
def test_the_plan_is_a_permutation_of_the_usable_members_in_priority_order(specs, strategy, seed, pin, tokens):
    members = [member(f"m{i}", priority, weight, window) for i, (priority, weight, window, _, _) in enumerate(specs)]
    views = {
        m.id: view(state, 1.0 if state is S.OPEN else 0.0, latency)
        for m, (_, _, _, state, latency) in zip(members, specs, strict=True)
        if state is not None
    }
    pinned = f"m{pin}/m"
    p = _plan(route(*members, strategy=strategy), views, prompt_tokens=tokens, pinned=pinned, seed=seed)
    fitting = {m.id for m in members if m.context_window is None or m.context_window >= tokens}
    usable = {i for i in fitting if i not in views or views[i].state is not S.OPEN}
    ids = [m.id for m in p.members]
    assert len(ids) == len(set(ids))
    assert {s.member_id for s in p.skipped} | usable == {m.id for m in members}
    if usable:
        assert set(ids) == usable and not p.last_resort
        assert pinned not in usable or ids[0] == pinned
        priorities = [m.priority for m in p.members if m.id != pinned]
        assert priorities == sorted(priorities)
    else:
        assert len(ids) == (1 if fitting else 0) and p.last_resort == bool(fitting)
        assert set(ids) <= fitting

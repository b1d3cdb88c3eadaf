"""The adaptive first-token deadline: shorter only for a member far slower than its own normal."""

import math
import random

import pytest
from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import deadlines
from pilotfish.specs import modelclass

DEFAULTS = modelclass.TimeoutsSpec()  # firstTokenSeconds 15, adaptive: x4 the p95, floor 2 s, 20 samples


def _times(clock, *samples):
    times = deadlines.FirstTokenTimes(now=clock.now)
    for seconds in samples:
        times.add(seconds)
    return times


def test_a_usually_fast_member_is_given_the_floor_well_under_three_seconds():
    times = _times(FakeClock(), *[0.3] * 20)
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=True) == 2.0


def test_a_member_that_usually_thinks_for_ten_seconds_keeps_the_configured_deadline():
    times = _times(FakeClock(), *[10.0] * 30)
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=True) == 15.0


def test_the_deadline_is_a_multiple_of_the_recent_p95_between_floor_and_configured():
    times = _times(FakeClock(), *[0.5] * 60, *[1.0] * 4)  # p95 of 64 samples: the 61st smallest
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=True) == 4.0


def test_too_few_samples_leave_the_configured_deadline():
    times = _times(FakeClock(), *[0.3] * 19)
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=True) == 15.0


def test_the_only_member_left_is_never_cut_short():
    times = _times(FakeClock(), *[0.3] * 30)
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=False) == 15.0


def test_a_class_can_turn_it_off():
    off = modelclass.TimeoutsSpec(adaptive_first_token=modelclass.AdaptiveFirstTokenSpec(enabled=False))
    times = _times(FakeClock(), *[0.3] * 30)
    assert deadlines.first_token_seconds(timeouts=off, times=times, fallback=True) == 15.0


def test_old_samples_expire_so_a_member_that_became_slower_for_good_is_relearned():
    clock = FakeClock()
    times = _times(clock, *[0.3] * 30)
    clock.advance(deadlines.SAMPLE_MAX_AGE_SECONDS + 1)
    assert times.count() == 0
    assert deadlines.first_token_seconds(timeouts=DEFAULTS, times=times, fallback=True) == 15.0


def test_only_the_most_recent_samples_are_kept():
    times = _times(FakeClock(), *[9.0] * 100, *[0.1] * deadlines.SAMPLES_KEPT)
    assert times.count() == deadlines.SAMPLES_KEPT and times.high(min_samples=1) == 0.1


@pytest.mark.parametrize("nonsense", [-1.0, float("nan"), float("inf")])
def test_nonsense_samples_are_ignored(nonsense):
    times = _times(FakeClock(), nonsense)
    assert times.count() == 0


def test_the_configured_deadline_caps_a_large_multiple():
    shorter = modelclass.TimeoutsSpec(first_token_seconds=3.0)
    times = _times(FakeClock(), *[1.0] * 30)
    assert deadlines.first_token_seconds(timeouts=shorter, times=times, fallback=True) == 3.0


def test_the_p95_follows_each_new_sample_and_each_expiry_after_it_was_read():
    clock = FakeClock()
    times = _times(clock, *[0.1] * 20)
    assert times.high(min_samples=1) == 0.1
    clock.advance(deadlines.SAMPLE_MAX_AGE_SECONDS / 2)
    for _ in range(20):
        times.add(5.0)
    assert times.high(min_samples=1) == 5.0  # read again after new samples: not the p95 read before
    clock.advance(deadlines.SAMPLE_MAX_AGE_SECONDS / 2 + 1)  # the first 20 expire
    for _ in range(19):
        times.add(0.2)
    assert times.high(min_samples=1) == 5.0
    clock.advance(deadlines.SAMPLE_MAX_AGE_SECONDS / 2)  # the 5 s samples expire, the 0.2 s ones stay
    assert times.high(min_samples=1) == 0.2


def test_the_p95_is_that_of_the_samples_kept_through_any_mix_of_adds_evictions_and_expiries():
    rng = random.Random(7)
    clock = FakeClock()
    times = deadlines.FirstTokenTimes(now=clock.now)
    kept: list[tuple[float, float]] = []  # (when, seconds): what the member should be judged by
    for _ in range(2000):
        clock.advance(rng.choice([0.0, 1.0, 30.0, 200.0]))
        seconds = rng.choice([0.1, 0.2, 0.3, round(rng.uniform(0, 3), 2)])  # many equal values
        times.add(seconds)
        kept = [
            (when, s)
            for when, s in [*kept, (clock.now(), seconds)]
            if when >= clock.now() - deadlines.SAMPLE_MAX_AGE_SECONDS
        ]
        kept = kept[-deadlines.SAMPLES_KEPT :]
        ordered = sorted(s for _, s in kept)
        assert times.count() == len(ordered)
        assert times.high(min_samples=1) == ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

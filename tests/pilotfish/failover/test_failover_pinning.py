import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import pinning


def _pins(clock=None, max_entries=100):
    return pinning.PinStore(now=(clock or FakeClock()).now, max_entries=max_entries)


def test_an_unknown_conversation_has_no_pin():
    assert _pins().get("c", "conv") is None


def test_a_pin_is_remembered_per_class():
    pins = _pins()
    pins.set("c", "conv", "a/m", ttl=10)
    assert pins.get("c", "conv") == "a/m"
    assert pins.get("other-class", "conv") is None


def test_a_pin_expires_exactly_at_its_ttl_and_is_then_dropped():
    clock = FakeClock()
    pins = _pins(clock)
    pins.set("c", "conv", "a/m", ttl=10)
    clock.advance(9.999)
    assert pins.get("c", "conv") == "a/m"
    clock.advance(0.001)
    assert pins.get("c", "conv") is None and len(pins) == 0


def test_each_pin_has_its_own_ttl():
    clock = FakeClock()
    pins = _pins(clock)
    pins.set("short", "conv", "a/m", ttl=5)
    pins.set("long", "conv", "b/m", ttl=3600)
    clock.advance(60)
    assert pins.get("short", "conv") is None and pins.get("long", "conv") == "b/m"


def test_setting_again_moves_the_pin_and_renews_its_ttl():
    clock = FakeClock()
    pins = _pins(clock)
    pins.set("c", "conv", "a/m", ttl=10)
    clock.advance(8)
    pins.set("c", "conv", "b/m", ttl=10)
    clock.advance(8)
    assert pins.get("c", "conv") == "b/m" and len(pins) == 1


def test_reading_a_pin_does_not_renew_its_ttl():
    clock = FakeClock()
    pins = _pins(clock)
    pins.set("c", "conv", "a/m", ttl=10)
    clock.advance(6)
    assert pins.get("c", "conv") == "a/m"
    clock.advance(6)
    assert pins.get("c", "conv") is None


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_pin_without_a_positive_ttl_unpins(ttl):
    pins = _pins()
    pins.set("c", "conv", "a/m", ttl=10)
    pins.set("c", "conv", "b/m", ttl=ttl)
    assert pins.get("c", "conv") is None and len(pins) == 0


def test_a_forgotten_pin_is_gone_and_forgetting_an_unknown_one_is_harmless():
    pins = _pins()
    pins.set("c", "conv", "a/m", ttl=10)
    pins.forget("c", "conv")
    pins.forget("c", "never-pinned")
    assert pins.get("c", "conv") is None and len(pins) == 0


def test_the_store_stays_bounded_by_evicting_the_least_recently_set():
    pins = _pins(max_entries=3)
    for n in range(5):
        pins.set("c", f"conv-{n}", "a/m", ttl=100)
    assert len(pins) == 3
    assert [pins.get("c", f"conv-{n}") for n in range(5)] == [None, None, "a/m", "a/m", "a/m"]


def test_reading_a_pin_protects_it_from_eviction():
    pins = _pins(max_entries=2)
    pins.set("c", "old", "a/m", ttl=100)
    pins.set("c", "new", "a/m", ttl=100)
    assert pins.get("c", "old") == "a/m"
    pins.set("c", "newest", "a/m", ttl=100)
    assert pins.get("c", "old") == "a/m" and pins.get("c", "new") is None


def test_long_keys_are_kept_as_digests_and_still_found():
    pins = _pins()
    long_a = "a" * 8000
    long_b = "a" * 7999 + "b"
    pins.set("c", long_a, "a/m", ttl=10)
    pins.set("c", long_b, "b/m", ttl=10)
    assert pins.get("c", long_a) == "a/m" and pins.get("c", long_b) == "b/m"
    assert all(len(slot[2]) <= pinning.MAX_KEY_CHARS for slot in pins._pins)


def test_a_short_key_that_looks_like_a_digest_does_not_collide_with_a_long_key():
    pins = _pins()
    long_key = "x" * 500
    pins.set("c", long_key, "a/m", ttl=10)
    assert pins.get("c", hashlib.sha256(long_key.encode()).hexdigest()) is None


def test_a_store_must_hold_at_least_one_pin():
    with pytest.raises(ValueError):
        pinning.PinStore(now=FakeClock().now, max_entries=0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["set", "get", "forget", "tick"]), st.integers(0, 20), st.integers(1, 30)),
        max_size=150,
    ),
    st.integers(1, 8),
)
def test_the_store_never_exceeds_its_bound_and_never_returns_an_expired_pin(operations, bound):
    clock = FakeClock()
    pins = _pins(clock, max_entries=bound)
    expiries: dict[str, float] = {}
    for op, key_number, seconds in operations:
        key = f"conv-{key_number}"
        if op == "set":
            pins.set("c", key, f"m{key_number}/m", ttl=seconds)
            expiries[key] = clock.t + seconds
        elif op == "get":
            found = pins.get("c", key)
            assert found is None or (found == f"m{key_number}/m" and clock.t < expiries[key])
        elif op == "forget":
            pins.forget("c", key)
            expiries.pop(key, None)
        else:
            clock.advance(seconds)
        assert len(pins) <= bound

"""A usage count as an upstream sent it is made sane before anyone adds it up or prices it."""

import pytest

from pilotfish.wire import openai

MAX = openai.TOKEN_COUNT_MAX


@pytest.mark.parametrize(
    ("sent", "counted"),
    [
        (0, 0),
        (16, 16),
        (MAX, MAX),
        (MAX + 1, MAX),
        (-3, 0),
        (12.7, 12),
        (-0.5, 0),
        (1e300, MAX),
        (float("nan"), 0),
        (float("inf"), 0),
        (True, 0),
        (False, 0),
        ("16", 0),
        (None, 0),
        ([16], 0),
    ],
)
def test_a_count_is_a_non_negative_int_up_to_the_cap_and_anything_else_counts_zero(sent, counted):
    count = openai.token_count(sent)
    assert count == counted and type(count) is int


def test_an_int_subclass_that_is_not_a_bool_is_counted_as_its_value():
    class Count(int):
        pass

    assert openai.token_count(Count(7)) == 7 and type(openai.token_count(Count(7))) is int

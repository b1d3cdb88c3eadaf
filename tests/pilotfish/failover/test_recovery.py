"""The seam of a recovered stream: prefill without trailing whitespace, and no character twice."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish.failover import recovery


def _chunk(content=None, role=None, finish=None, tool_calls=None):
    delta = {k: v for k, v in {"content": content, "role": role, "tool_calls": tool_calls}.items() if v is not None}
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_delivered_text_and_tool_calls_are_tracked():
    seen = recovery.Delivered()
    seen.take([_chunk(role="assistant", content=""), _chunk("Hello "), _chunk("from ")])
    assert seen.text == "Hello from " and not seen.tool_calls
    seen.take([_chunk(tool_calls=[{"index": 0}])])
    assert seen.tool_calls


def test_the_prefill_drops_trailing_whitespace():
    assert recovery.prefill_of("Hello from ") == ("Hello from", True)
    assert recovery.prefill_of("Hello from") == ("Hello from", False)


def test_the_seam_drops_the_role_and_the_whitespace_the_client_already_has():
    seam = recovery.Seam("Hello from ", trimmed=True, splice=False)
    out = seam.feed([_chunk(role="assistant", content=""), _chunk(" claude."), _chunk(" Bye")])
    assert [c["choices"][0]["delta"] for c in out] == [{"content": "claude."}, {"content": " Bye"}]
    untouched = recovery.Seam("Hello from", trimmed=False, splice=False)
    out = untouched.feed([_chunk(role="assistant", content=""), _chunk(" claude."), _chunk(" Bye")])
    assert [c["choices"][0]["delta"] for c in out] == [{"content": " claude."}, {"content": " Bye"}]


def test_a_finish_chunk_survives_the_seam():
    seam = recovery.Seam("Hello", trimmed=True, splice=False)
    out = seam.feed([_chunk(role="assistant"), _chunk(finish="stop")])
    assert len(out) == 1 and out[0]["choices"][0]["finish_reason"] == "stop"


def test_the_usage_chunk_adds_the_cut_attempt_and_other_chunks_pass_unchanged():
    usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}}
    summed = recovery.with_cut_attempt(usage, delivered_chunks=4)
    assert summed["usage"] == {"prompt_tokens": 16, "completion_tokens": 11, "total_tokens": 27}
    content = _chunk("x")
    assert recovery.with_cut_attempt(content, delivered_chunks=4) is content


def test_an_endless_answer_stops_being_kept_past_the_cap_and_can_no_longer_be_continued():
    seen = recovery.Delivered()
    piece = "x" * 1000
    for _ in range(recovery.TEXT_MAX_CHARS // 1000 + 10):
        seen.take([_chunk(piece)])
    assert seen.too_long and not seen.continuable
    assert seen.parts == [] and seen.recent == [] and seen.text == ""  # nothing more is held, however long it goes on
    assert seen.count == recovery.TEXT_MAX_CHARS // 1000 + 10


def test_the_delivered_text_is_kept_in_pieces_not_a_str_per_token():
    seen = recovery.Delivered()
    tokens = [f"t{i} " for i in range(recovery.JOIN_EVERY * 2 + 3)]
    for token in tokens:
        seen.take([_chunk(token)])
    assert seen.text == "".join(tokens) and seen.count == len(tokens)
    assert len(seen.parts) == 2 and len(seen.recent) == 3  # two joined pieces, and the three tokens since
    many = [f"u{i} " for i in range(recovery.JOIN_EVERY**2 * 3)]
    for token in many:
        seen.take([_chunk(token)])
    assert seen.text == "".join(tokens + many) and seen.count == len(tokens + many)
    assert len(seen.parts) < recovery.JOIN_EVERY and len(seen.recent) < recovery.JOIN_EVERY  # the pieces are joined too


def test_a_short_answer_is_continuable():
    seen = recovery.Delivered()
    seen.take([_chunk("Hello ")])
    assert seen.continuable and seen.count == 1


# The seam: what a resuming member sends is checked against what the client already has.

DELIVERED = "The quick brown "


def _texts(batch):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in batch if c.get("choices"))


def _feed_all(seam, pieces, *, finish=True):
    out = []
    for piece in pieces:
        out += seam.feed([_chunk(piece)])
    if finish:
        out += seam.feed([_chunk(finish="stop")])
    out += seam.end()
    return out


def test_a_continuation_is_forwarded_without_the_whitespace_the_client_already_has():
    seam = recovery.Seam(DELIVERED, trimmed=True, splice=False)
    out = _feed_all(seam, [" fox", " jumps."])
    assert _texts(out) == "fox jumps." and not seam.restarted
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_member_that_starts_over_has_the_repeated_start_dropped_when_it_matches_exactly():
    seam = recovery.Seam(DELIVERED, trimmed=True, splice=False)
    out = _feed_all(seam, ["The ", "quick ", "brown ", "fox ", "jumps."])
    assert _texts(out) == "fox jumps." and seam.restarted


def test_nothing_is_forwarded_while_a_restart_is_still_inside_the_delivered_text():
    seam = recovery.Seam(DELIVERED, trimmed=True, splice=False)
    assert seam.feed([_chunk(role="assistant", content=""), _chunk("The "), _chunk("quick ")]) == []
    assert _texts(seam.feed([_chunk("brown fox")])) == "fox"


def test_a_restart_that_says_it_differently_is_refused_whole():
    seam = recovery.Seam("Hello from primary. This ", trimmed=True, splice=False)
    seam.feed([_chunk("Hello from primary. ")])
    with pytest.raises(recovery.DivergenceError):
        seam.feed([_chunk("Here is another answer")])


def test_a_restart_that_stops_inside_the_delivered_text_is_refused():
    seam = recovery.Seam(DELIVERED, trimmed=True, splice=False)
    with pytest.raises(recovery.DivergenceError):
        _feed_all(seam, ["The ", "quick"])


def test_a_continuation_that_ends_at_once_forwards_only_its_finish():
    seam = recovery.Seam(DELIVERED, trimmed=True, splice=False)
    out = _feed_all(seam, [])
    assert _texts(out) == "" and out[0]["choices"][0]["finish_reason"] == "stop"


def test_a_splice_forwards_only_what_follows_the_reproduced_text():
    seam = recovery.Seam(DELIVERED, trimmed=False, splice=True)
    out = _feed_all(seam, ["The quick", " brown fox", " jumps."])
    assert _texts(out) == "fox jumps."


@pytest.mark.parametrize("pieces", [[" fox jumps."], ["The quick red fox"], ["The quick"], []])
def test_a_splice_that_does_not_reproduce_the_delivered_text_exactly_is_refused(pieces):
    seam = recovery.Seam(DELIVERED, trimmed=False, splice=True)
    with pytest.raises(recovery.DivergenceError):
        _feed_all(seam, pieces)


@given(
    delivered=st.text(alphabet="ab .", min_size=1, max_size=12),
    resumed=st.lists(st.text(alphabet="ab .", max_size=5), max_size=6),
    splice=st.booleans(),
)
def test_the_client_never_gets_the_delivered_text_twice_or_a_contradiction(delivered, resumed, splice):
    seam = recovery.Seam(delivered, trimmed=False, splice=splice)
    try:
        out = _texts(_feed_all(seam, resumed))
    except recovery.DivergenceError:
        return
    whole = "".join(resumed)
    if seam.restarted or splice:
        assert whole.startswith(delivered) and delivered + out == whole  # only what follows the repeat
    else:
        assert out == whole  # a continuation, passed on as it came
        assert not (whole and delivered.startswith(whole))  # never a piece of what the client already has

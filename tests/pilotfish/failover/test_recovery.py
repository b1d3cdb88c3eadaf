"""The seam of a recovered stream: prefill without trailing whitespace, and no character twice."""

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


def test_the_prefill_drops_trailing_whitespace_and_the_seam_drops_it_from_the_continuation():
    assert recovery.prefill_of("Hello from ") == ("Hello from", True)
    assert recovery.prefill_of("Hello from") == ("Hello from", False)
    head = [_chunk(role="assistant", content=""), _chunk(" claude."), _chunk(" Bye", finish=None)]
    seam = recovery.continued(head, trimmed=True)
    assert [c["choices"][0]["delta"] for c in seam] == [{"content": "claude."}, {"content": " Bye"}]
    untouched = recovery.continued(head, trimmed=False)
    assert [c["choices"][0]["delta"] for c in untouched] == [{"content": " claude."}, {"content": " Bye"}]


def test_a_finish_chunk_survives_the_seam():
    seam = recovery.continued([_chunk(role="assistant"), _chunk(finish="stop")], trimmed=True)
    assert len(seam) == 1 and seam[0]["choices"][0]["finish_reason"] == "stop"


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
    assert seen.parts == []  # nothing more is held, however long the stream goes on
    assert seen.count == recovery.TEXT_MAX_CHARS // 1000 + 10


def test_a_short_answer_is_continuable():
    seen = recovery.Delivered()
    seen.take([_chunk("Hello ")])
    assert seen.continuable and seen.count == 1

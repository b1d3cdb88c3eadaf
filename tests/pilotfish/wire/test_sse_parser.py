import pytest

from pilotfish.wire import sse


def test_events_split_across_reads_are_reassembled():
    parser = sse.SSEParser()
    assert parser.feed(b'data: {"a"') == []
    assert parser.feed(b": 1}\n") == []
    assert parser.feed(b"\ndata: [DONE]\n\n") == [sse.Event(data='{"a": 1}'), sse.Event(data="[DONE]")]


def test_named_events_comments_and_crlf_are_understood():
    parser = sse.SSEParser()
    events = parser.feed(b": ping\r\n\r\nevent: message_start\r\ndata: {}\r\n\r\n")
    assert events == [sse.Event(data="{}", event="message_start")]


def test_multi_line_data_is_joined_with_newlines():
    assert sse.SSEParser().feed(b"data: a\ndata: b\n\n") == [sse.Event(data="a\nb")]


def test_a_final_event_without_blank_line_is_flushed():
    parser = sse.SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.flush() == [sse.Event(data="[DONE]")]


def test_encode_round_trips_through_the_parser():
    frame = sse.encode(b'{"x":1}', event="delta")
    assert frame == b'event: delta\ndata: {"x":1}\n\n'
    assert sse.SSEParser().feed(frame) == [sse.Event(data='{"x":1}', event="delta")]


def test_a_blank_line_split_across_two_reads_ends_the_event():
    parser = sse.SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b\n\n") == [sse.Event(data="a"), sse.Event(data="b")]


def test_an_event_that_never_ends_is_refused_at_the_limit():
    parser = sse.SSEParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"a" * 500)
    with pytest.raises(sse.EventTooLarge):
        parser.feed(b"a" * 600)


def test_bad_utf8_is_replaced_within_its_own_event_and_spares_its_neighbours():
    # the events of one read are decoded together: a truncated sequence must not swallow the blank line
    events = sse.SSEParser().feed(b"data: a\xff\n\ndata: \xe2\x82\n\ndata: b\n\n")
    assert events == [sse.Event(data="a\ufffd"), sse.Event(data="\ufffd"), sse.Event(data="b")]


def test_encode_data_writes_one_frame_per_payload():
    assert sse.encode_data([]) == b""
    joined = sse.encode_data([b'{"x":1}', b'{"y":2}'])
    assert joined == sse.encode(b'{"x":1}') + sse.encode(b'{"y":2}')
    assert sse.SSEParser().feed(joined) == [sse.Event(data='{"x":1}'), sse.Event(data='{"y":2}')]

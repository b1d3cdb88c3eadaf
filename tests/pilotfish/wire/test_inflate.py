"""Bounded-step decoding of gzip and deflate bodies."""

import gzip
import zlib

import pytest

from pilotfish.wire import inflate


def test_a_bomb_comes_out_one_bounded_step_at_a_time():
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024))
    steps = inflate.Inflater("gzip").feed(bomb)
    first = next(steps)
    assert len(first) <= inflate.STEP_BYTES  # the caller can stop here without inflating the rest


def test_several_gzip_members_decode_as_one_body():
    body = gzip.compress(b"hello ") + gzip.compress(b"world")
    inflater = inflate.Inflater("gzip")
    assert b"".join(inflater.feed(body)) == b"hello world"
    inflater.finish()


def test_deflate_decodes_and_a_truncated_body_is_corrupt():
    body = zlib.compress(b"x" * 1000)
    assert b"".join(inflate.Inflater("deflate").feed(body)) == b"x" * 1000
    truncated = inflate.Inflater("deflate")
    list(truncated.feed(body[:-6]))
    with pytest.raises(inflate.CorruptBody):
        truncated.finish()


def test_garbage_is_corrupt_and_unknown_encodings_are_refused():
    with pytest.raises(inflate.CorruptBody):
        list(inflate.Inflater("gzip").feed(b"not gzip at all"))
    with pytest.raises(inflate.UnsupportedEncoding):
        inflate.Inflater("br")

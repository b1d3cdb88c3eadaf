"""Content-Encoding decoding in bounded steps, for bodies nobody has vouched for.

A few KiB of gzip can inflate to gigabytes. Decoding a piece all at once would hold the event loop
(and the memory) for as long as that takes, so ``Inflater.feed`` yields the output ``STEP_BYTES``
at a time; its callers (``upstream`` for answers, ``server.bodies`` for requests) count what comes
out against their cap and give the loop a turn between steps. Only gzip and deflate are decoded:
they are all we ask upstreams for (``ACCEPT_ENCODING``); anything else is refused, not buffered.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

# Output per step: small enough that one step is a fraction of a millisecond, large enough that a
# normal answer needs few steps.
STEP_BYTES = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"  # what we can decode in bounded steps (no br: see the module doc)
IDENTITY = frozenset({"", "identity"})


class UnsupportedEncoding(ValueError):
    """A Content-Encoding we did not ask for and cannot decode in bounded steps."""


class CorruptBody(ValueError):
    """The body does not decode as its Content-Encoding says."""


class Inflater:
    """Decodes one body; ``feed`` each piece as it arrives, then ``finish``."""

    __slots__ = ("_decoder", "_wbits")

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS
        else:
            raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported (send gzip or deflate)")
        self._decoder = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, at most ``STEP_BYTES`` per item."""
        pending = data
        try:
            while pending:
                out = self._decoder.decompress(pending, STEP_BYTES)
                pending = self._decoder.unconsumed_tail
                if out:
                    yield out
                if self._decoder.eof:
                    # gzip allows several members one after another (RFC 1952 2.2): go on with the next
                    pending = self._decoder.unused_data
                    if pending:
                        self._decoder = zlib.decompressobj(self._wbits)
        except zlib.error as exc:
            raise CorruptBody(f"the body does not decode: {exc}") from None

    def finish(self) -> None:
        """The body ended: it must have ended where its encoding says."""
        if not self._decoder.eof:
            raise CorruptBody("the compressed body ended before its end")


def is_identity(encoding: str | None) -> bool:
    return (encoding or "").strip().lower() in IDENTITY

"""Server-sent events: an incremental parser and the one encoder, per the WHATWG spec.

Upstream bytes arrive in arbitrary pieces; ``SSEParser.feed`` returns only complete events and
keeps the rest buffered. Comments (``: ping``) are dropped, multi-line ``data:`` fields are joined.

An upstream is not trusted to end its events: an incomplete event is kept as the list of pieces it
arrived in (joined once, when its blank line comes, so a long event costs linear time, not
quadratic), and one that grows past ``max_event_bytes`` raises ``EventTooLarge``.
"""

from __future__ import annotations

import dataclasses

DONE = "[DONE]"  # OpenAI's end-of-stream sentinel
# The longest single event accepted. Real events are a few KB (a token, a tool-call fragment, a
# Gemini candidate); the largest legitimate ones (inline image data) stay well under this. One line
# that never ends must not grow until the pod is OOM-killed.
EVENT_MAX_BYTES = 4 * 1024 * 1024


class EventTooLarge(ValueError):
    """One event grew past the parser's limit without ending."""


@dataclasses.dataclass(slots=True)
class Event:
    """One event. Not frozen, though never changed: a frozen dataclass's ``__init__`` costs about twice as
    much, and one is built per upstream event."""

    data: str
    event: str | None = None  # the `event:` field; Anthropic names every event, OpenAI none


class SSEParser:
    """Turns a byte stream into events; one per upstream response."""

    __slots__ = ("_max_event_bytes", "_pending", "_pieces")

    def __init__(self, *, max_event_bytes: int = EVENT_MAX_BYTES) -> None:
        self._pieces: list[bytes] = []  # the incomplete event, as it arrived
        self._pending = 0  # bytes in ``_pieces``
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[Event]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        straddles = bool(self._pieces) and self._pieces[-1].endswith(b"\n") and chunk.startswith(b"\n")
        if b"\n\n" not in chunk and not straddles:
            self._pieces.append(chunk)
            self._pending += len(chunk)
            if self._pending > self._max_event_bytes:
                self._pieces, self._pending = [], 0
                raise EventTooLarge(f"an event grew past {self._max_event_bytes} bytes without ending")
            return []
        complete, _, tail = b"".join((*self._pieces, chunk)).rpartition(b"\n\n")  # tail: the incomplete rest
        self._pieces, self._pending = ([tail], len(tail)) if tail else ([], 0)
        events: list[Event] = []
        # Decoded once for all its events, not one by one: UTF-8 resynchronises at every ASCII byte, so a
        # bad sequence is replaced alike either way and can never swallow the blank line after it.
        for block in complete.decode("utf-8", errors="replace").split("\n\n"):
            # Fast path: one `data:` line, the shape of nearly every event OpenAI-format servers send.
            if block.startswith("data: ") and "\n" not in block:
                events.append(Event(block[6:]))
                continue
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """Whatever complete-looking event is left when the stream ends without a blank line."""
        rest = b"".join(self._pieces)
        self._pieces, self._pending = [], 0
        event = _parse_block(rest.decode("utf-8", errors="replace").strip("\n"))
        return [event] if event is not None else []


def _parse_block(block: str) -> Event | None:
    data_lines: list[str] = []
    name: str | None = None
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data_lines.append(value)
        elif field == "event":
            name = value
    if not data_lines:
        return None
    return Event(data="\n".join(data_lines), event=name)


def encode_data(payloads: list[bytes]) -> bytes:
    """One ``data:`` frame per payload, joined: a batch of chunks in one write, built in one join. Each
    payload must be a single line (JSON from orjson always is)."""
    return b"data: " + b"\n\ndata: ".join(payloads) + b"\n\n" if payloads else b""


def encode(data: bytes | str, *, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must be a single line (JSON from orjson always is)."""
    payload = data.encode() if isinstance(data, str) else data
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"

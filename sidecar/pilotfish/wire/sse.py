"""Server-sent events: an incremental parser and the one encoder, per the WHATWG spec.

Upstream bytes arrive in arbitrary pieces; ``SSEParser.feed`` returns only complete events and
keeps the rest buffered. Comments (``: ping``) are dropped, multi-line ``data:`` fields are joined.
"""

from __future__ import annotations

import dataclasses

DONE = "[DONE]"  # OpenAI's end-of-stream sentinel


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    data: str
    event: str | None = None  # the `event:` field; Anthropic names every event, OpenAI none


class SSEParser:
    """Turns a byte stream into events; one per upstream response."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        blocks = (self._buffer + chunk).split(b"\n\n")
        self._buffer = blocks.pop()  # the incomplete tail, often b""
        events: list[Event] = []
        for block in blocks:
            # Fast path: one `data:` line, the shape of nearly every event OpenAI-format servers send.
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append(Event(data=block[6:].decode("utf-8", errors="replace")))
                continue
            event = _parse_block(block.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """Whatever complete-looking event is left when the stream ends without a blank line."""
        rest, self._buffer = self._buffer, b""
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


def encode(data: bytes | str, *, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must be a single line (JSON from orjson always is)."""
    payload = data.encode() if isinstance(data, str) else data
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"

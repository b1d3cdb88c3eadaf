"""The canonical answers every mock gives, whatever its wire format, so a test can tell which mock
answered and check that every word arrived exactly once."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

ANSWER = "Hello from {name}. This answer is deterministic so that tests can check every word arrived once."
TOOL_ARGUMENTS = '{"city": "Paris"}'


def words(name: str) -> list[str]:
    """The answer as stream pieces: one word each, spaces kept, so joining them gives ANSWER."""
    parts = ANSWER.format(name=name).split(" ")
    return [word + " " for word in parts[:-1]] + [parts[-1]]


def prompt_tokens(texts: list[str]) -> int:
    """A deterministic token count: words in the prompt."""
    return sum(len(text.split()) for text in texts)


def tool_call_id(conversation: Any) -> str:
    """A stable id for the tool call a conversation gets."""
    return hashlib.sha256(orjson.dumps(conversation)).hexdigest()[:24]


EMBEDDING_DIMENSIONS = 8  # small: the tests check exact vectors, not semantics


def embedding(name: str, text: str, dimensions: int | None = None) -> list[float]:
    """A deterministic vector for (mock, text): values k/128, exact in float32 so base64 round-trips."""
    size = dimensions or EMBEDDING_DIMENSIONS
    digest = b""
    while len(digest) < size:
        digest += hashlib.sha256(f"{name}:{text}:{len(digest)}".encode()).digest()
    return [(byte - 128) / 128 for byte in digest[:size]]

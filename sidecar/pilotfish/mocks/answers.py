"""The canonical answers every mock gives, whatever its wire format, so a test can tell which mock
answered and check that every word arrived exactly once."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

ANSWER = "Hello from {name}. This answer is deterministic so that tests can check every word arrived once."
# What a member that ignores a prefill and answers afresh, at a temperature above 0, may say instead: the
# same opening, then other words.
DIVERGED = "Hello from {name}. Here is another answer altogether, worded unlike the first one."
TOOL_ARGUMENTS = '{"city": "Paris"}'


def words(name: str) -> list[str]:
    """The answer as stream pieces: one word each, spaces kept, so joining them gives ANSWER."""
    parts = ANSWER.format(name=name).split(" ")
    return [word + " " for word in parts[:-1]] + [parts[-1]]


def continuation(name: str, prefill: str | None) -> list[str] | None:
    """The rest of an answer after ``prefill``, as stream pieces, when ``prefill`` is how a canonical answer
    begins: what a provider that honours prefill does. The prefill may be another mock's answer (a stream
    another member cut): it is continued as written, as a model would. None when it is no such prefix."""
    if not prefill:
        return None
    started_by = re.match(r"^Hello from ([^.\s]+)\.", prefill)
    for author in (started_by.group(1) if started_by else name, name):
        full = ANSWER.format(name=author)
        if full.startswith(prefill):
            return re.findall(r"\s*\S+", full[len(prefill) :]) or [""]
    return None


def reply(name: str, prefill: str | None, *, restart: bool = False, diverge: bool = False) -> list[str]:
    """The stream pieces a mock answers with: the canonical answer, or only its remainder after a prefill of
    it. ``restart``: a server that takes the prefill but starts the answer it began over, word for word;
    ``diverge``: one that starts over and says something else after the same opening."""
    if prefill and (restart or diverge):
        started_by = re.match(r"^Hello from ([^.\s]+)\.", prefill)
        author = started_by.group(1) if started_by else name
        parts = (DIVERGED if diverge else ANSWER).format(name=author).split(" ")
        return [word + " " for word in parts[:-1]] + [parts[-1]]
    return continuation(name, prefill) or words(name)


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

"""OpenAI chat-completions wire types: the canonical request every translator starts from.

The request structs validate what the sidecar relies on (model, messages, stream, token limits); the
client's object is kept as sent (``raw``) so that OpenAI-format members receive options we do not
know about yet. Responses and chunks stay plain dicts: they are built by translators and
serialised once, and a model layer there would only cost time on the hot path.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

from pilotfish.wire import structs

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]

ChatCompletion = dict[str, Any]  # an OpenAI `chat.completion` object
ChatChunk = dict[str, Any]  # an OpenAI `chat.completion.chunk` object

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class FunctionCall(structs.Wire, frozen=True, kw_only=True):
    name: str
    arguments: str


class ToolCall(structs.Wire, frozen=True, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(structs.Wire, frozen=True, kw_only=True):
    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None


class Message(structs.Wire, frozen=True, kw_only=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if self.content is None and self.role in ("system", "developer", "user", "tool"):
            raise ValueError(f"content is required for role '{self.role}'")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("tool_call_id is required for role 'tool'")

    def text(self) -> str:
        """All text of this message, parts joined: for token estimates and translators."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class StreamOptions(structs.Wire, frozen=True, kw_only=True):
    include_usage: bool = False


class ChatRequest(structs.KeepsRaw, frozen=True, kw_only=True):
    """POST /v1/chat/completions body. ``model`` names a class, not a vendor model.

    ``raw`` keeps the body exactly as the client sent it.
    """

    model: NonEmpty
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Positive | None = None
    max_completion_tokens: Positive | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        """Named tools and a named tool_choice name their function in an object: every translator relies
        on it."""
        choice = self.tool_choice
        if isinstance(choice, dict) and "function" in choice and not _is_named(choice["function"]):
            raise structs.FieldError("tool_choice", "tool_choice.function must be an object with a string 'name'")
        if any("function" in tool and not _is_named(tool["function"]) for tool in self.tools or ()):
            raise structs.FieldError("tools", "each tool's 'function' must be an object with a string 'name'")

    @property
    def include_usage(self) -> bool:
        """Whether the client asked for the final usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def output_token_limit(self) -> int | None:
        """The client's cap on generated tokens, whichever field it used."""
        return self.max_completion_tokens or self.max_tokens

    def estimate_prompt_tokens(self) -> int:
        """A cheap upper-ish estimate (4 chars a token) for the context-window pre-check."""
        chars = sum(len(message.text()) for message in self.messages)
        return chars // 4 + 4 * len(self.messages)


def _is_named(function: object) -> bool:
    return isinstance(function, dict) and isinstance(function.get("name"), str)


class EmbeddingsRequest(structs.KeepsRaw, frozen=True, kw_only=True):
    """POST /v1/embeddings body. ``model`` names a class; ``raw`` keeps the client's object, as for chat.

    ``input`` is one text, a list of texts, or token ids (one array or a list of arrays), which only
    OpenAI-format members accept. (msgspec cannot decode a union of list types, so the list's items are
    checked here, in ``__post_init__``.)
    """

    model: NonEmpty
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Positive | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if not self.input or (isinstance(self.input, list) and not _one_kind(self.input)):
            raise structs.FieldError("input", _INPUT_RULE)

    @property
    def is_tokens(self) -> bool:
        """Token ids rather than text: a Gemini member cannot embed them."""
        return isinstance(self.input, list) and not isinstance(self.input[0], str)

    def texts(self) -> list[str]:
        """The texts to embed, in order (token ids rendered as text only for estimates)."""
        if isinstance(self.input, str):
            return [self.input]
        if self.is_tokens:
            arrays = self.input if isinstance(self.input[0], list) else [self.input]
            return [" ".join(map(str, array)) for array in arrays]
        return [str(item) for item in self.input]

    def estimate_prompt_tokens(self) -> int:
        return sum(len(text) for text in self.texts()) // 4 + len(self.texts())


_INPUT_RULE = "input must be a non-empty string, array of non-empty strings, or token arrays"


def _one_kind(items: list[Any]) -> bool:
    """Non-empty texts, token ids, or non-empty arrays of token ids: all items the same kind."""
    if isinstance(items[0], str):
        return all(isinstance(item, str) and item for item in items)
    if isinstance(items[0], list):
        return all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in items)
    return all(_is_token(item) for item in items)


def _is_token(item: object) -> bool:
    return type(item) is int


EmbeddingsResponse = dict[str, Any]  # OpenAI's `list` of `embedding` objects, floats: the canonical form


# No single request uses more tokens than this; a larger count from an upstream is nonsense, capped so
# that cost arithmetic and the metrics stay finite.
TOKEN_COUNT_MAX = 100_000_000


def token_count(value: object) -> int:
    """A usage count as an upstream sent it, made sane: a non-negative int up to TOKEN_COUNT_MAX; a
    string, a bool, null, NaN or anything else that is not a number counts 0 (never a 500)."""
    if type(value) is int and 0 <= value <= TOKEN_COUNT_MAX:
        return value  # what upstreams send: already sane (a third of the checks below, four times a request)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return min(max(int(value), 0), TOKEN_COUNT_MAX)


def clean_usage(usage: object) -> dict[str, Any] | None:
    """An OpenAI ``usage`` object with sane counts (``token_count``), or None when it is not an object."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def usage_of(body: ChatCompletion | ChatChunk) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of a response or chunk, 0 when absent or not a number."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))

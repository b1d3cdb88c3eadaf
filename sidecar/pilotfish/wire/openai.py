"""OpenAI chat-completions wire types: the canonical request every translator starts from.

The request model validates what the sidecar relies on (model, messages, stream, token limits) and
keeps every other field as sent (``extra="allow"``) so that OpenAI-format members receive options
we do not know about yet. Responses and chunks stay plain dicts: they are built by translators and
serialised once, and a model layer there would only cost time on the hot path.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

import pydantic

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]

ChatCompletion = dict[str, Any]  # an OpenAI `chat.completion` object
ChatChunk = dict[str, Any]  # an OpenAI `chat.completion.chunk` object


class _Wire(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)


class FunctionCall(_Wire):
    name: str
    arguments: str


class ToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Wire):
    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None


class Message(_Wire):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @pydantic.model_validator(mode="after")
    def _content_where_required(self) -> Message:
        if self.role in ("system", "developer", "user", "tool") and self.content is None:
            raise ValueError(f"content is required for role '{self.role}'")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("tool_call_id is required for role 'tool'")
        return self

    def text(self) -> str:
        """All text of this message, parts joined: for token estimates and translators."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class StreamOptions(_Wire):
    include_usage: bool = False


class _KeepsRaw(_Wire):
    """A request that also keeps the client's JSON object as sent, so OpenAI-format members receive every
    field (known or not) untouched; translators copy it, never mutate it."""

    _raw: dict[str, Any] = pydantic.PrivateAttr(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Self:
        request = cls.model_validate(body)
        request._raw = body
        return request

    @property
    def raw(self) -> dict[str, Any]:
        """The client's JSON object (the validated model's dump when built another way)."""
        return self._raw or self.model_dump(exclude_unset=True)


class ChatRequest(_KeepsRaw):
    """POST /v1/chat/completions body. ``model`` names a class, not a vendor model.

    ``raw`` keeps the body exactly as the client sent it.
    """

    model: str = pydantic.Field(min_length=1)
    messages: list[Message] = pydantic.Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = pydantic.Field(default=None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(default=None, ge=1)
    temperature: float | None = pydantic.Field(default=None, ge=0, le=2)
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    n: int | None = pydantic.Field(default=None, ge=1, le=1)
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None

    @pydantic.field_validator("tool_choice")
    @classmethod
    def _named_function(cls, value: str | dict[str, Any] | None) -> object:
        """A named tool_choice names its function in an object; every translator relies on it."""
        if isinstance(value, dict) and "function" in value and not _is_named(value["function"]):
            raise ValueError("tool_choice.function must be an object with a string 'name'")
        return value

    @pydantic.field_validator("tools")
    @classmethod
    def _named_tools(cls, value: list[dict[str, Any]] | None) -> object:
        if any("function" in tool and not _is_named(tool["function"]) for tool in value or ()):
            raise ValueError("each tool's 'function' must be an object with a string 'name'")
        return value

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


class EmbeddingsRequest(_KeepsRaw):
    """POST /v1/embeddings body. ``model`` names a class; ``raw`` keeps the client's object, as for chat.

    ``input`` is one text, a list of texts, or token ids (one array or a list of arrays), which only
    OpenAI-format members accept.
    """

    model: str = pydantic.Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = pydantic.Field(default=None, ge=1)
    user: str | None = None

    @pydantic.field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str] | list[int] | list[list[int]]) -> object:
        if isinstance(value, str):
            items: list[object] = [value]
        else:
            items = list(value)
        if not items or any(item in ("", []) for item in items):
            raise ValueError("input must be a non-empty string, array of non-empty strings, or token arrays")
        return value

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

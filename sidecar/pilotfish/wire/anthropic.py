"""Anthropic Messages API request type, for clients that call the sidecar with the Anthropic SDK.

Validates what the sidecar relies on (model, max_tokens, alternating messages, ranges); content
blocks stay plain dicts, checked by ``inbound.anthropic`` as it translates them, because the set
of block types grows faster than a model here could follow.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic


class _Wire(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)


class Message(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(_Wire):
    """POST /v1/messages body. ``model`` names a class, not a vendor model."""

    model: str = pydantic.Field(min_length=1)
    max_tokens: int = pydantic.Field(ge=1)
    messages: list[Message] = pydantic.Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | None = pydantic.Field(default=None, ge=0, le=1)
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    top_k: int | None = pydantic.Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

"""Anthropic Messages API request type, for clients that call the sidecar with the Anthropic SDK.

Validates what the sidecar relies on (model, max_tokens, alternating messages, ranges); content
blocks stay plain dicts, checked by ``inbound.anthropic`` as it translates them, because the set
of block types grows faster than a struct here could follow.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from pilotfish.wire import structs

Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Message(structs.Wire, frozen=True, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(structs.Wire, frozen=True, kw_only=True):
    """POST /v1/messages body. ``model`` names a class, not a vendor model."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

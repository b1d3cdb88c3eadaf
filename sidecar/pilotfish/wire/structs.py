"""The base of every request wire type: a frozen msgspec Struct, decoded from the JSON object a
client sent (already parsed) by one ``from_body``.

msgspec, not pydantic, because these are built once per request on the serving path: the decoder is
a C extension that validates while it builds, and the serving process need not load pydantic for it.
``strict=False`` keeps what pydantic's lax mode accepted for scalars (``"0.5"`` for a float, ``1.0``
for an int). Decoding raises ``msgspec.ValidationError``, whose message ends with the JSON path of
the field at fault; ``server.validation`` phrases it for the client.
"""

from __future__ import annotations

from typing import Any, Self

import msgspec


class FieldError(ValueError):
    """A rule on one field, checked in a struct's ``__post_init__`` (where msgspec knows only the struct's
    path): ``field`` completes the path in the client's error (``exc.__cause__`` of the ValidationError)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Unknown fields are ignored here, never refused: a request that keeps ``raw`` still sends them."""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Self:
        """The validated request; raises ``msgspec.ValidationError`` naming the field at fault."""
        return msgspec.convert(body, cls, strict=False)


class KeepsRaw(Wire, frozen=True, kw_only=True, dict=True):
    """A request that also keeps the client's JSON object as sent, so OpenAI-format members receive every
    field (known or not) untouched; translators copy it, never mutate it. It is held outside the fields
    (``dict=True``), so no key a client sends can set it."""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Self:
        request = msgspec.convert(body, cls, strict=False)
        msgspec.structs.force_setattr(request, "_raw", body)
        return request

    @property
    def raw(self) -> dict[str, Any]:
        """The client's JSON object (the fields given, when built by keyword)."""
        raw: dict[str, Any] | None = self.__dict__.get("_raw")
        return raw if raw is not None else msgspec.to_builtins(self)


def problem(exc: msgspec.ValidationError) -> tuple[str, str]:
    """(what is wrong, where): msgspec's message split at its " - at `$.messages[0].role`" suffix, the
    path without the ``$.`` ("" for the body itself)."""
    text = str(exc)
    detail, at, path = text.rpartition(" - at `$")
    return (detail, path.removesuffix("`").lstrip(".")) if at else (text, "")

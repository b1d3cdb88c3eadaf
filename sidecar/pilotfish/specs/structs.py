"""The one msgspec configuration every runtime spec shares: the api's wire shape, frozen.

camelCase on the wire (``rename="camel"`` is pydantic's ``to_camel`` for our names; explicit names
such as ``baseURL`` are given per field), unknown fields refused so a document from a newer operator
that this sidecar would misread is rejected, not half-served. Construction is keyword-only as with
pydantic; msgspec does not inherit ``kw_only``, and mypy does not see ``frozen`` inherited, so each
subclass says ``frozen=True, kw_only=True`` itself.
"""

from __future__ import annotations

import msgspec


class Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Base of every runtime spec."""

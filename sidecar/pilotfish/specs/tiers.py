"""The rules of a class with tiers, as the sidecar evaluates them (``failover.tiers``).

``pilotfish.api.tiers`` documents each field and keeps the ladder's own checks (TiersSpec); what the
routes document carries of it is the rules, checked here the same way.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from pilotfish.specs import structs

MAX_TIERS = 8  # a ladder is a handful of price/capability steps, not a catalogue
MAX_RULES = 32
# An HTTP header name (RFC 9110 token), matched case-insensitively.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
HeaderValue = Annotated[str, msgspec.Meta(max_length=256)]
LabelName = Annotated[str, msgspec.Meta(max_length=317)]


class HeaderMatch(structs.Spec, frozen=True, kw_only=True):
    """A request header the app sets, such as x-pilotfish-tier: frontier."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=HEADER_NAME_PATTERN)]
    values: Annotated[tuple[HeaderValue, ...], msgspec.Meta(min_length=1, max_length=16)]


class TierMatch(structs.Spec, frozen=True, kw_only=True):
    """Conditions on one request; every condition given must hold. At least one must be given."""

    prompt_tokens_at_least: Annotated[int, msgspec.Meta(ge=0)] | None = None
    prompt_tokens_below: Annotated[int, msgspec.Meta(ge=1)] | None = None
    has_tools: bool | None = None
    has_response_format: bool | None = None
    max_tokens_at_least: Annotated[int, msgspec.Meta(ge=1)] | None = None
    header: HeaderMatch | None = None
    pod_labels: Annotated[dict[LabelName, HeaderValue], msgspec.Meta(max_length=16)] | None = None

    def __post_init__(self) -> None:
        if all(not getattr(self, name) and getattr(self, name) is not False for name in self.__struct_fields__):
            raise ValueError("set at least one condition (an empty match would catch every request)")


class TierRule(structs.Spec, frozen=True, kw_only=True):
    """Send the requests that match `when` to the class `tier`."""

    tier: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    when: TierMatch

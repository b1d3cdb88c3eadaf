"""The one outbound HTTP call an adapter builds and ``upstream`` sends: a plain value, no behaviour."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP call, fully built: ``upstream`` sends it as is."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    stream: bool
    method: str = "POST"

    def __repr__(self) -> str:  # headers carry the API key: never print them
        return f"UpstreamRequest({self.method} {self.url}, stream={self.stream})"

"""The one scrubber: upstream text passes through here before it reaches a client, a log or a trace.

A provider, or a gateway between us and it, may echo what it received, the key included ("invalid key
sk-..."). Two passes make such text safe to show:

- every key this sidecar holds is removed by value (``Scrubber``, fed the loaded Secrets by
  ``failover.engine``): a key need not look like a key to be one;
- anything key-shaped is removed whatever its value (``scrubbed``, also applied to every ``Failure``
  as it is made): ``sk-...``, Google's ``AIza...``, bearer tokens, ``key=`` query parameters, long hex
  and long base64 runs. A secret we do not hold (another tenant's, a session token) goes too.

Then control characters go and the length is capped, so no upstream can flood a log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Upstream text is cut to this many characters after scrubbing (a cut never reveals part of a key,
# because the key is gone before the cut).
MAX_CHARS = 300
# What a Failure keeps before the held keys are removed: longer than MAX_CHARS, so that a held key
# straddling the final cut is still whole when it is removed.
RAW_MAX_CHARS = 2000
# Keys shorter than this are not removed by value: replacing every "ab" in a message would destroy it,
# and no provider issues keys that short. Key-shaped removal still applies.
MIN_SECRET_CHARS = 6
# Keys remembered across reloads: an old key (before a rotation) is still a secret.
MAX_SECRETS = 256

_KEY_SHAPED = re.compile(
    r"""
      (?i:bearer)\s+\S+                                   # Authorization: Bearer <token>
    | (?i:(?:api[-_]?)?key|token|secret|signature|sig)=[^&\s"']+  # credentials in a query string
    | sk-[A-Za-z0-9_\-]{8,}                               # OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-)
    | AIza[0-9A-Za-z_\-]{20,}                             # Google API keys (Gemini)
    | \b[0-9a-fA-F]{32,}\b                                # long hex: Azure keys, digests of secrets
    | [A-Za-z0-9+/_\-]{40,}={0,2}                         # long base64 / base64url runs: tokens, JWT parts
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def scrubbed(text: str, *, secrets: Iterable[str] = (), max_chars: int = MAX_CHARS) -> str:
    """``text`` without the given secrets, anything key-shaped or control characters, cut to ``max_chars``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _CONTROL.sub(" ", _KEY_SHAPED.sub(REDACTED, text))
    return text if len(text) <= max_chars else text[:max_chars] + "…"


class Scrubber:
    """Removes the keys this sidecar holds (longest first, so a key containing another goes whole)."""

    __slots__ = ("_known", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = dict.fromkeys(s for s in secrets if len(s) >= MIN_SECRET_CHARS)
        self._known = tuple(unique)[-MAX_SECRETS:]  # oldest first
        self._secrets = tuple(sorted(self._known, key=len, reverse=True))

    def knowing(self, secrets: Iterable[str]) -> Scrubber:
        """A scrubber that also removes ``secrets`` (keys from a reload), keeping the newest ones it had."""
        return Scrubber((*self._known, *secrets))

    def text(self, text: str, *, max_chars: int = MAX_CHARS) -> str:
        return scrubbed(text, secrets=self._secrets, max_chars=max_chars)

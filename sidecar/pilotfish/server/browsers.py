"""What keeps a web page from using ``pilotfish local`` on a developer's laptop.

A page the developer visits can post to ``http://127.0.0.1:4000`` (CSRF: a "simple" cross-origin
request, sent without asking, needs a form or text/plain Content-Type), and through DNS rebinding
(a name of the attacker's that resolves to 127.0.0.1) read the answers as same-origin. So in local
mode a request must carry a JSON Content-Type (which a page can only send after a CORS preflight,
and the API answers none) and a Host that names the loopback (a rebound page sends its own name).
The in-pod sidecar does not need this: no browser runs in a pod. Installed by ``server.app`` when
``ServerSettings.browser_guard`` is on (``modes.local``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from pilotfish.server import errors

# Hosts a request to the local API may name (any port): the loopback, by name or address.
ALLOWED_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
JSON_TYPES = frozenset({"application/json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_allowed(host: str | None) -> bool:
    """Whether a Host header names the loopback (a port, if any, is ignored)."""
    if not host:
        return False
    name = host.strip().lower()
    if name.startswith("["):
        name = name.split("]", 1)[0] + "]"
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name in ALLOWED_HOSTS


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """421 for a Host that is not the loopback, 415 for a body that is not declared JSON."""
    if not host_allowed(request.headers.get(hdrs.HOST)):
        return errors.error_response(
            421,
            "This sidecar answers only requests addressed to localhost, 127.0.0.1 or [::1].",
            code="host_not_allowed",
        )
    if request.method == "POST" and request.content_type not in JSON_TYPES:
        return errors.error_response(
            415,
            f"Send the request body as application/json (got {request.content_type!r}).",
            code="unsupported_media_type",
        )
    return await handler(request)

"""The only outbound HTTP: one ClientSession per upstream origin, aiohttp errors mapped to Failures.

Sessions live for the life of the process (a session holds the connection pool, so keep-alive
connections to each provider are reused); they are created in the app's ``cleanup_ctx`` and closed
there. Everything that can go wrong on the wire leaves this module as ``failures.AttemptFailed``.
"""

from __future__ import annotations

import asyncio
import functools
import ssl as ssl_  # `ssl` is aiohttp's parameter name
from collections.abc import AsyncGenerator, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from pilotfish import failures, memory
from pilotfish.wire import http, inflate, sse

# Error bodies are read up to this size to classify them; a provider that sends megabytes of HTML
# on a 502 must not cost us the memory.
ERROR_BODY_MAX_BYTES = 64 * 1024
# SSE is parsed this many bytes at a time, so one network read of hundreds of KiB does not become
# thousands of parsed chunks alive at once (a stream whose client stalls holds one such batch).
PARSE_BYTES = 16 * 1024
# The first bytes of a stream are parsed alone, this many: an upstream that sends a whole answer in one
# burst must not have 16 KiB of it parsed before its first content goes out. Every provider's first
# content comes within its first KiB or so (OpenAI's and Gemini's first or second event, Anthropic's
# after message_start, content_block_start and a ping); a stream read piece by piece is not changed.
FIRST_PARSE_BYTES = 2 * 1024
# Connections open at once per upstream origin: enough for hundreds of long-lived streams from one pod,
# bounded so one sidecar cannot open thousands of sockets to a provider during a surge. There is no
# process-wide cap beside it (aiohttp's default is 100 in all: the 101st concurrent stream waited for
# one to end, and a first-token timeout ended it with a 504); the API port's connection cap
# (``modes.connections``) already bounds the requests in flight, and so the upstream calls.
CONNECTIONS_PER_ORIGIN = 1024

Classify = Callable[[int, Mapping[str, str], bytes], failures.Failure]


class Sessions:
    """One ClientSession per upstream origin (scheme://host:port), created on first use."""

    def __init__(self) -> None:
        self._by_origin: dict[str, aiohttp.ClientSession] = {}

    def for_url(self, url: str) -> aiohttp.ClientSession:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        session = self._by_origin.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=CONNECTIONS_PER_ORIGIN, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            # auto_decompress off: aiohttp inflates a whole gzip piece in one go (a bomb holds the loop for
            # seconds); ``_decoded`` inflates in bounded steps and counts what comes out against the caps.
            # No cookie jar: the session is shared by every request of every app in the pod, so a cookie one
            # answer set (a CDN's, or a hostile upstream's) would be replayed on the others' calls.
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._by_origin[origin] = session
        return session

    async def close(self) -> None:
        sessions, self._by_origin = list(self._by_origin.values()), {}
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)


class UpstreamStream:
    """An open upstream response: its body read as server-sent events, or whole."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def batches(
        self, *, max_bytes: int | None = None, hold: memory.Hold | None = None
    ) -> AsyncGenerator[list[sse.Event], None]:
        """The events of each network read together: per-event async iteration costs more than parsing.

        One generator from the socket to the events (read, inflated, counted, parsed): a committed stream
        resumes each generator it passes once per network read, so reading and parsing are not two.
        ``max_bytes``/``hold``: the answer is being buffered whole; cap it and take its bytes from the budget."""
        parser = sse.SSEParser()
        size = FIRST_PARSE_BYTES
        try:
            inflater, seen = self._inflater(), 0
            async for raw in self._response.content.iter_any():
                for piece in (raw,) if inflater is None else inflater.feed(raw):
                    seen = _counted(seen, len(piece), max_bytes)
                    if hold is not None:
                        await hold.grow(len(piece))
                    start = 0
                    while start < len(piece):
                        events = parser.feed(piece[start : start + size])
                        start, size = start + size, PARSE_BYTES
                        if events:
                            yield events
                            del events  # not held while the next read is awaited (nor are ``raw`` and ``piece``)
                    if inflater is not None:
                        await asyncio.sleep(0)  # a turn of the loop between two inflated steps
                raw = piece = b""
            if inflater is not None:
                inflater.finish()
        except inflate.CorruptBody as exc:
            raise _failed(failures.FailureKind.BAD_RESPONSE, exc) from exc
        except sse.EventTooLarge as exc:
            raise too_large(str(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise failures.AttemptFailed(
                failures.Failure(kind=failures.FailureKind.STREAM_INTERRUPTED, detail=_describe(exc))
            ) from exc
        rest = parser.flush()
        if rest:
            yield rest

    async def read(self, *, max_bytes: int, hold: memory.Hold | None = None) -> bytes:
        """The whole body of a unary (non-streaming) answer, up to ``max_bytes``; a body cut short is an
        interrupted stream."""
        pieces: list[bytes] = []
        try:
            async for piece in self._decoded(max_bytes=max_bytes, hold=hold):
                pieces.append(piece)
        except (aiohttp.ClientError, OSError) as exc:
            raise failures.AttemptFailed(
                failures.Failure(kind=failures.FailureKind.STREAM_INTERRUPTED, detail=_describe(exc))
            ) from exc
        finally:
            self._response.release()
        return b"".join(pieces)

    async def _decoded(self, *, max_bytes: int | None, hold: memory.Hold | None) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, inflated in bounded steps (a turn of the loop between two), counted
        against ``max_bytes`` and taken from ``hold``."""
        inflater, seen = self._inflater(), 0
        async for raw in self._response.content.iter_any():
            try:
                for piece in (raw,) if inflater is None else inflater.feed(raw):
                    seen = _counted(seen, len(piece), max_bytes)
                    if hold is not None:
                        await hold.grow(len(piece))
                    yield piece
                    if inflater is not None:
                        await asyncio.sleep(0)
            except inflate.CorruptBody as exc:
                raise _failed(failures.FailureKind.BAD_RESPONSE, exc) from exc
        if inflater is not None:
            try:
                inflater.finish()
            except inflate.CorruptBody as exc:
                raise _failed(failures.FailureKind.BAD_RESPONSE, exc) from exc

    def _inflater(self) -> inflate.Inflater | None:
        """What inflates the body in bounded steps (aiohttp's ``auto_decompress`` is off), None for identity."""
        encoding = self._response.headers.get(aiohttp.hdrs.CONTENT_ENCODING)
        try:
            return None if inflate.is_identity(encoding) else inflate.Inflater(encoding or "")
        except inflate.UnsupportedEncoding as exc:
            raise _failed(failures.FailureKind.BAD_RESPONSE, exc) from exc

    def close(self) -> None:
        """Drop the connection: a half-read stream cannot go back to the pool."""
        self._response.close()


async def open_stream(
    sessions: Sessions,
    request: http.UpstreamRequest,
    *,
    connect_timeout: float,
    read_timeout: float | None,
    classify: Classify,
    extra_headers: Mapping[str, str] | None = None,
) -> UpstreamStream:
    """Send the request; return the stream on 2xx, raise AttemptFailed with the classified error.

    ``extra_headers``: the attempt's trace context (``traceparent``), added to what the adapter built.
    ``read_timeout``: aiohttp's socket read timeout, re-armed on every network read; None where the caller
    bounds the reads itself."""
    timeout = _client_timeout(connect_timeout, read_timeout)
    session = sessions.for_url(request.url)
    try:
        response = await session.request(
            request.method,
            request.url,
            data=request.body,
            headers={"Accept-Encoding": inflate.ACCEPT_ENCODING, **request.headers, **(extra_headers or {})},
            timeout=timeout,
            # Never follow: aiohttp would resend x-api-key / x-goog-api-key / api-key (it strips only
            # Authorization) and, on a 307/308, the prompt, to whatever host the Location names.
            allow_redirects=False,
        )
    except aiohttp.ConnectionTimeoutError as exc:
        raise _failed(failures.FailureKind.CONNECT_TIMEOUT, exc) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise _failed(failures.FailureKind.FIRST_TOKEN_TIMEOUT, exc) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise _failed(failures.FailureKind.CONNECT, exc) from exc
    if response.status < 300:
        return UpstreamStream(response)
    if response.status < 400:
        response.close()  # not read: a redirect's body is of no use to us
        raise failures.AttemptFailed(
            failures.Failure(
                kind=failures.FailureKind.REDIRECT,
                status=response.status,
                detail=f"the upstream answered {response.status} (a redirect); redirects are never followed",
            )
        )
    try:
        body = await response.content.read(ERROR_BODY_MAX_BYTES)
    except (TimeoutError, aiohttp.ClientError, OSError):
        body = b""
    finally:
        response.release()
    raise failures.AttemptFailed(classify(response.status, response.headers, body))


@functools.lru_cache(maxsize=64)  # a handful of classes' timeouts: built once each, not per attempt
def _client_timeout(connect: float, read: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


def _counted(seen: int, size: int, max_bytes: int | None) -> int:
    """Bytes of the body so far, ``size`` more; past ``max_bytes`` the answer is too large."""
    seen += size
    if max_bytes is not None and seen > max_bytes:
        raise too_large(f"the answer exceeded the class's limit of {max_bytes} bytes")
    return seen


def too_large(detail: str) -> failures.AttemptFailed:
    return failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.RESPONSE_TOO_LARGE, detail=detail))


def _failed(kind: failures.FailureKind, exc: BaseException) -> failures.AttemptFailed:
    return failures.AttemptFailed(failures.Failure(kind=kind, detail=_describe(exc)))


def _describe(exc: BaseException) -> str:
    """Exception class and message, without URLs' query strings or headers."""
    text = str(exc).split("?", 1)[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OperatorUnreachable(failures.PilotfishError):
    """The operator's allowance endpoint did not answer usefully (network, TLS, timeout, or not a 200)."""


async def post_to_operator(
    url: str,
    *,
    body: bytes,
    token: str,
    ca_pem: str | None,
    timeout: float,
    max_bytes: int,
) -> bytes:
    """One JSON POST to the operator (``budgets.allowances``), on a short-lived session: it happens every
    few seconds, and a session per call never keeps a socket to a replica that went away."""
    ssl: ssl_.SSLContext | bool = ssl_.create_default_context(cadata=ca_pem) if ca_pem else True
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session,
            session.post(url, data=body, headers=headers, ssl=ssl, allow_redirects=False) as response,
        ):
            data = await response.content.read(max_bytes + 1)
            if response.status != 200 or len(data) > max_bytes:
                raise OperatorUnreachable(f"the operator answered {response.status}: {data[:200]!r}")
            return data
    except (aiohttp.ClientError, TimeoutError, OSError, ssl_.SSLError) as exc:
        raise OperatorUnreachable(_describe(exc)) from exc

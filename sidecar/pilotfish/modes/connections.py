"""Who may hold a connection to the sidecar, and for how long: the listeners of both ports.

aiohttp alone gives a connection all the time it wants to send its request head and accepts as
many connections as the process has file descriptors. Then 1,100 idle connections to the admin
port left no descriptor to reach any upstream (every API request a 502) and made /readyz time out.
So each port listens through a ``Gate``:

- a request head (request line and headers) must be complete ``HEAD_SECONDS`` after the
  connection opens, or the connection is closed; between requests aiohttp's keep-alive timeout
  (``KEEPALIVE_SECONDS``) closes idle ones, and ``server.bodies`` bounds a body that stops coming;
- at most ``cap`` connections are open; at the cap a new one evicts the oldest connection that has
  not sent a whole request head (so a flood of idle connections cannot lock a kubelet probe out),
  or is refused if every connection is busy;
- the caps leave half of the file descriptors for upstream calls (``caps``).

Used by ``modes.serve`` for the API and the admin port.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import resource
import time
from collections.abc import Callable

from aiohttp import web

HEAD_SECONDS = 10.0  # a client's request head is a few hundred bytes: ten seconds is ample
KEEPALIVE_SECONDS = 75.0  # idle keep-alive connections are closed after this (aiohttp keepalive_timeout)
FDS_KEPT_FOR_PROCESS = 64  # listening sockets, mounted files being read, DNS, logs
ADMIN_CONNECTIONS = 32  # kubelet probes, one or two Prometheus, the operator's sweep, pilotfish top
API_CONNECTIONS_MAX = 4096  # enough for any pod's app; more would be a leak in the app
LOG_EVERY_SECONDS = 10.0  # at most one line per port per this long about refused or closed connections

_log = logging.getLogger("pilotfish.connections")


@dataclasses.dataclass(frozen=True, slots=True)
class Caps:
    api: int
    admin: int


def caps(open_files: int) -> Caps:
    """Connection caps for a process allowed ``open_files`` descriptors: half of what is not kept for the
    process and the admin port goes to API clients, the other half stays for upstream calls."""
    spare = max(0, open_files - FDS_KEPT_FOR_PROCESS - ADMIN_CONNECTIONS)
    return Caps(api=max(8, min(API_CONNECTIONS_MAX, spare // 2)), admin=ADMIN_CONNECTIONS)


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Gate:
    """The open connections of one port, oldest first."""

    def __init__(
        self,
        *,
        name: str,
        cap: int,
        head_seconds: float = HEAD_SECONDS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.cap = cap
        self.head_seconds = head_seconds
        self.counts: collections.Counter[str] = collections.Counter()  # refused, evicted, head_timeout
        self._open: collections.OrderedDict[_Guarded, None] = collections.OrderedDict()
        self._now = now
        self._reported: collections.Counter[str] = collections.Counter()
        self._reported_at = -LOG_EVERY_SECONDS

    def note(self, what: str) -> None:
        """Count a refusal, an eviction or a head timeout; say so at most once per LOG_EVERY_SECONDS (a
        flood must not become a flood of log lines)."""
        self.counts[what] += 1
        if self._now() - self._reported_at >= LOG_EVERY_SECONDS:
            new = self.counts - self._reported
            self._reported, self._reported_at = self.counts.copy(), self._now()
            _log.warning(
                "%s port: %s (cap %d open connections)",
                self.name,
                ", ".join(f"{count} {kind}" for kind, count in sorted(new.items())),
                self.cap,
            )

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, connection: _Guarded) -> bool:
        if len(self._open) >= self.cap:
            idle = next((c for c in self._open if not c.head_done), None)
            if idle is None:
                self.note("refused")
                return False
            self.note("evicted")
            idle.close()
        self._open[connection] = None
        return True

    def leave(self, connection: _Guarded) -> None:
        self._open.pop(connection, None)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the gate and the head deadline."""

    def __init__(self, inner: asyncio.Protocol, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, to find the head's end across two reads
        self._admitted = False
        self.head_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._gate.admit(self):
            transport.abort()
            return
        self._admitted = True
        self._inner.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_later(self._gate.head_seconds, self._head_overdue)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if not self.head_done:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.head_done = True
                if self._timer is not None:
                    self._timer.cancel()
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._gate.leave(self)
        if self._admitted:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _head_overdue(self) -> None:
        if not self.head_done:
            self._gate.note("closed for a request head not sent in time")
            self.close()


async def listen(runner: web.AppRunner, *, host: str, port: int, gate: Gate) -> asyncio.Server:
    """Listen for ``runner``'s application behind ``gate``; the caller closes the returned server."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    factory: Callable[[], asyncio.Protocol] = lambda: _Guarded(server(), gate)  # noqa: E731
    # backlog is also how many connections asyncio accepts in one go, before any is admitted or evicted:
    # kept small beside the cap so a burst cannot take the descriptors the cap is there to keep
    backlog = max(8, min(128, gate.cap // 4))
    return await asyncio.get_running_loop().create_server(factory, host, port, reuse_address=True, backlog=backlog)

"""The in-flight memory budget: how many bytes of request bodies and buffered answers the sidecar holds at once.

Per-request caps (the body limit, a class's ``limits``) bound one request; they do not bound eight
at once. Every request therefore takes what it buffers from one process-wide ``MemoryBudget``
through its ``Hold``, step by step as the bytes arrive, and gives it all back when it ends. A step
that does not fit waits (bounded by ``wait``) for others to finish; if it still does not fit, the
request is refused with ``OverBudget`` (a 503 the client may retry) instead of the pod being
OOM-killed with every request in it.

Bytes are weighted: a buffered body or answer is parsed and re-encoded while it is held, so its
real cost is a few times its size (``WEIGHT``). Created by ``server.app``; taken from by
``server.bodies`` (request bodies) and ``upstream`` (buffered answers).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

# The budget of a sidecar with the chart's 128Mi limit: an idle sidecar is about 50 MiB resident;
# this leaves the rest for interpreter garbage and socket buffers.
DEFAULT_BYTES = 48 * 1024 * 1024
# What holding one byte costs: the bytes themselves, the parsed objects, and the re-encoded copy.
WEIGHT = 3
# How long a request waits for others to give memory back before it is refused.
DEFAULT_WAIT_SECONDS = 30.0
# Once this much has been given back and nothing is held, the C heap is trimmed: glibc keeps freed
# arenas mapped, so without it a burst leaves the process tens of MB above idle for good.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


class OverBudget(Exception):
    """The bytes a request needs are not available, even after waiting."""


class MemoryBudget:
    """Bytes in flight, process-wide; one per sidecar."""

    def __init__(self, total: int = DEFAULT_BYTES, *, wait: float = DEFAULT_WAIT_SECONDS) -> None:
        self.total = total
        self.wait = wait
        self.used = 0
        self.peak = 0  # the most ever held at once
        self._waiters: list[asyncio.Future[None]] = []  # takers waiting for bytes to come back
        self._freed_since_trim = 0

    def hold(self) -> Hold:
        """A new, empty hold for one request."""
        return Hold(self)

    async def _take(self, size: int) -> None:
        if size > self.total:
            raise OverBudget(f"{size} bytes can never fit in the in-flight budget of {self.total}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while self.used + size > self.total:
            freed = loop.create_future()
            self._waiters.append(freed)
            try:
                async with asyncio.timeout_at(deadline):
                    await freed
            except TimeoutError:
                raise OverBudget(
                    f"the in-flight memory budget ({self.total} bytes) stayed full for {self.wait:g}s"
                ) from None
            finally:
                if freed in self._waiters:
                    self._waiters.remove(freed)
        self.used += size
        self.peak = max(self.peak, self.used)

    def _give_back(self, size: int) -> None:
        self.used -= size
        self._freed_since_trim += size
        if self.used == 0 and self._freed_since_trim >= TRIM_AFTER_BYTES:
            self._freed_since_trim = 0
            asyncio.get_running_loop().call_soon(trim_heap)  # after the response that held it is gone
        waiters, self._waiters = self._waiters, []
        for freed in waiters:  # each re-checks whether it fits now
            if not freed.done():
                freed.set_result(None)


class Hold:
    """What one request holds of the budget; ``release`` gives it all back (idempotent)."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    async def grow(self, size: int) -> None:
        """Hold ``size`` more bytes (weighted); raises OverBudget."""
        weighted = size * WEIGHT
        await self._budget._take(weighted)
        self.held += weighted

    def sibling(self) -> Hold:
        """A new hold on the same budget: for an attempt's answer, released alone if the attempt fails."""
        return Hold(self._budget)

    def adopt(self, other: Hold) -> None:
        """Take over what ``other`` holds: the committed answer lives as long as the request."""
        self.held, other.held = self.held + other.held, 0

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self._budget._give_back(held)


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, looked up at the first trim: ctypes (0.4 MiB resident) is not loaded by a
    sidecar that never needs it. Found among the symbols the interpreter already links (libc's, with
    glibc), so the lookup runs no ``ldconfig`` from inside the loop."""
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


def trim_heap() -> None:
    """Give freed heap memory back to the kernel (glibc ``malloc_trim``; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

"""The routes the sidecar serves right now, and whether the newest document was accepted.

Both modes publish here (``modes.sidecar`` from mounted files, ``modes.local`` from rendered
manifests); the API port reads ``snapshot`` once per request, so a reload never tears a request
between two documents. A rejected document leaves the last good snapshot in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from pilotfish.routes import document
from pilotfish.specs import refs


class Snapshot(Protocol):
    """A validated document plus the key values it references (read from Secrets)."""

    @property
    def document(self) -> document.RoutesDocument: ...

    @property
    def keys(self) -> Mapping[tuple[str, str], refs.ApiKey]: ...

    @property
    def digest(self) -> str: ...


Listener = Callable[[Snapshot], None]


class LiveRoutes:
    """Holder of the current snapshot; listeners hear about every accepted one."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.error: str | None = None  # why the newest document was rejected, while it is
        self.loaded_at: float | None = None  # wall clock of the last accepted document
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if self.snapshot is not None:
            listener(self.snapshot)

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.error = None
        self.loaded_at = time.time()
        for listener in self._listeners:
            listener(snapshot)

    def reject(self, error: str) -> None:
        self.error = error

    @property
    def ready(self) -> bool:
        """Serving a document; a rejected newer one does not make a serving sidecar unready."""
        return self.snapshot is not None

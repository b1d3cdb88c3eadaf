"""The edge between the local ledger and its allowance source: admit requests, report usage, refill allowances.

``server.serving`` asks ``admit`` before a request is routed and calls ``settle`` when it ends. A
request that finds its allowance empty waits for one refill (shared by every request waiting at that
moment, at most ``REFILL_WAIT_SECONDS``); a background loop reports usage and tops allowances up every
``REPORT_SECONDS`` so that, in steady traffic, no request waits at all. The source is the operator in a
cluster (``OperatorSource``: the HTTP call goes through ``pilotfish.upstream``, the sidecar's only
outbound HTTP) and the process itself in ``pilotfish local`` (``budgets.counters``). If the operator
cannot be reached, the ledger's fail-open allowance applies (docs/budgets.md states the bound).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
from collections.abc import Callable
from typing import Protocol

from pilotfish import upstream
from pilotfish.budgets import ledger, protocol
from pilotfish.routes import document
from pilotfish.specs import budget

REPORT_SECONDS = 2.0  # how often usage is reported and allowances topped up
# The longest a request waits for the operator before failing open. Generous: an operator slow under load
# (TokenReview, a conditional status write) is not an unreachable one, and failing open costs allowance.
REFILL_WAIT_SECONDS = 10.0
MAX_REPLY_BYTES = 256 * 1024
MAX_TOKEN_BYTES = 16 * 1024  # a projected ServiceAccount token is about 1 KiB
MAX_CA_BYTES = 64 * 1024  # a CA bundle of a few certificates

_log = logging.getLogger("pilotfish.budgets")


@dataclasses.dataclass(frozen=True)
class AllowanceSettings:
    """Where the operator's allowance endpoint is and how this pod proves who it is."""

    url: str  # https://pilotfish-operator.pilotfish-system.svc:9443
    namespace: str  # this pod's namespace ("": the routes document's); the operator checks it against the token
    token_file: str  # the projected ServiceAccount token (audience "pilotfish"); re-read on each call
    ca_file: str | None = None  # the CA that signed the operator's serving certificate
    ca_pem: str | None = None  # the same, as PEM text (injected as an environment variable); wins over ca_file
    pod: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What ``admit`` decided: go (perhaps to ``route``, a downgrade), or refuse with ``verdict``."""

    route: document.ClassRoute | None
    ticket: ledger.Ticket | None
    verdict: ledger.Verdict  # OK, or the budget that refused or downgraded
    failed_open: bool = False


class SourceUnreachable(Exception):
    """The allowance source did not answer (the operator: connection, TLS, timeout, not a 200, a bad reply)."""


class Source(Protocol):
    """Where allowances come from: reports usage, answers one grant per ask."""

    async def exchange(
        self, request: protocol.AllowanceRequest, *, doc: document.RoutesDocument
    ) -> protocol.AllowanceReply: ...


class OperatorSource:
    """The operator's allowance endpoint, with this pod's ServiceAccount token (container mode)."""

    def __init__(self, settings: AllowanceSettings) -> None:
        self.settings = settings

    async def exchange(
        self, request: protocol.AllowanceRequest, *, doc: document.RoutesDocument
    ) -> protocol.AllowanceReply:
        namespace = self.settings.namespace or doc.namespace
        url = self.settings.url.rstrip("/") + protocol.PATH.format(namespace=namespace)
        body = protocol.AllowanceRequest(pod=self.settings.pod, asks=request.asks)
        try:
            token = _read_token(self.settings.token_file)
            ca = self.settings.ca_pem or (_read_text(self.settings.ca_file) if self.settings.ca_file else None)
            data = await upstream.post_to_operator(
                url,
                body=protocol.encode(body),
                token=token,
                ca_pem=ca,
                timeout=REFILL_WAIT_SECONDS + 5,
                max_bytes=MAX_REPLY_BYTES,
            )
            return protocol.decode_reply(data)
        except (upstream.OperatorUnreachable, OSError, ValueError) as exc:
            raise SourceUnreachable(str(exc)) from exc


class Allowances:
    """One per sidecar: the ledger and the conversation with its allowance source."""

    def __init__(self, source: Source, *, wall: Callable[[], float]) -> None:
        self.source = source
        self.ledger = ledger.Ledger(wall=wall)
        self._refill: asyncio.Task[bool] | None = None
        self.reachable: bool | None = None  # None until the first call
        self._doc: document.RoutesDocument | None = None  # the routes document last seen (its Budgets)
        # the live routes (``run``): the newest document, so a quota added by a reload is granted at once
        self._routes: Callable[[], document.RoutesDocument | None] = lambda: None

    async def admit(self, doc: document.RoutesDocument, route: document.ClassRoute) -> Decision:
        """Admit a request for ``route`` against its budgets; a spent ``downgrade`` budget sends it to its
        cheaper class (once: a spent budget there refuses)."""
        covering = doc.budgets_of(route.name)
        self._doc = doc
        if not covering:
            return Decision(route, None, ledger.Verdict(ledger.Outcome.OK))
        verdict, failed_open = await self.verdict(covering)
        if verdict.outcome is ledger.Outcome.OK:
            return Decision(route, self.ledger.admit(covering), verdict, failed_open)
        spec = verdict.spec
        if spec is None or spec.action is not budget.Action.DOWNGRADE or spec.downgrade_to is None:
            return Decision(None, None, verdict, failed_open)
        cheaper = doc.classes.get(spec.downgrade_to)
        if cheaper is None:
            return Decision(None, None, verdict, failed_open)
        below = doc.budgets_of(cheaper.name)
        second, _ = await self.verdict(below) if below else (ledger.Verdict(ledger.Outcome.OK), False)
        if second.outcome is not ledger.Outcome.OK:
            return Decision(None, None, second, failed_open)
        return Decision(cheaper, self.ledger.admit(below), verdict, failed_open)

    def settle(self, ticket: ledger.Ticket | None, *, tokens: int, micro_usd: int) -> None:
        if ticket is not None and ticket.accounts:
            self.ledger.settle(ticket, tokens=tokens, micro_usd=micro_usd)

    async def run(self, routes: Callable[[], document.RoutesDocument | None]) -> None:
        """Report and top up every ``REPORT_SECONDS`` for the life of the sidecar."""
        self._routes = routes
        while True:
            doc = routes()
            if doc is not None:
                self.ledger.forget_except(doc.counted())
                self._doc = doc
            await self._refill_once()
            await asyncio.sleep(REPORT_SECONDS)

    async def verdict(self, covering: ledger.Covering) -> tuple[ledger.Verdict, bool]:
        """Whether ``covering`` has allowance left here, refilling from the source first when it is empty
        (failing open within the bound when the operator cannot be reached); and whether it failed open."""
        verdict = self.ledger.verdict(covering)
        if verdict.outcome is not ledger.Outcome.EMPTY:
            return verdict, False
        empty = verdict
        reached = await self._refill_once()
        if reached and self.ledger.verdict(covering).outcome is ledger.Outcome.EMPTY:
            # the refill this joined was sent before this account needed one (a background report, or
            # one sent in the window that just ended): ask once more, for this account
            reached = await self._refill_once()
        failed_open = not reached and self.ledger.fail_open() > 0
        verdict = self.ledger.verdict(covering)
        if verdict.outcome is ledger.Outcome.EMPTY:  # the operator answered, but had nothing to give yet
            verdict = dataclasses.replace(verdict, outcome=ledger.Outcome.SPENT, retry_after=1.0)
        if failed_open and verdict.outcome is ledger.Outcome.OK:  # name the budget that failed open
            verdict = dataclasses.replace(empty, outcome=ledger.Outcome.OK)
        return verdict, failed_open

    async def _refill_once(self) -> bool:
        """One report-and-refill; concurrent callers share the call in flight. True when the operator answered."""
        if self._refill is None or self._refill.done():
            self._refill = asyncio.ensure_future(self._post())
        try:
            return await asyncio.wait_for(asyncio.shield(self._refill), REFILL_WAIT_SECONDS)
        except TimeoutError:
            return False

    async def _post(self) -> bool:
        asks = self.ledger.asks()
        self._doc = self._routes() or self._doc
        if not asks or self._doc is None:
            return True
        try:
            reply = await self.source.exchange(protocol.AllowanceRequest(asks=asks), doc=self._doc)
        except SourceUnreachable as exc:
            if self.reachable is not False:
                _log.warning("budget allowances: the operator is unreachable (%s); failing open within bounds", exc)
            self.reachable = False
            return False
        self.reachable = True
        self.ledger.reported(asks, reply.grants)
        return True


def _read_text(path: str) -> str:
    return pathlib.Path(path).read_bytes()[:MAX_CA_BYTES].decode("ascii")


def _read_token(path: str) -> str:
    data = pathlib.Path(path).read_bytes()[:MAX_TOKEN_BYTES]
    return data.decode("ascii").strip()

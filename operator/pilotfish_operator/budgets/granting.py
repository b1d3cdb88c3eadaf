"""The allowance endpoint: sidecars report usage and get allowances, the object's status keeps the count.

What is counted is a Budget or a ModelClass member's provider quota (``budget.Counted``; ``homes`` says
where each one's counters live); everything below is the same for both.

Served on the webhook's TLS port (``POST /v1/namespaces/{ns}/allowances``) by every replica. A caller
must present a ServiceAccount token for audience ``pilotfish``, which the API server reviews
(TokenReview, cached by a digest of the token for ``REVIEW_CACHE_SECONDS``); the token's namespace must
be the path's: a pod draws only on its own namespace's budgets, and all it can do is report usage
and take allowance. Each replica reserves blocks of the limit in the Budget's status (a conditional
write, ``accounts``) and hands them out grant by grant; reported usage is written back every
``FLUSH_SECONDS``, when the 80% and 100% events fire and the gauge is set.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from pilotfish.api import budget as budget_api  # `budget` names objects below
from pilotfish.budgets import protocol, windows
from pilotfish.specs import budget as budget_specs
from pilotfish_operator import kube, metrics
from pilotfish_operator.budgets import accounts, homes

REVIEW_CACHE_SECONDS = 60.0  # a reviewed token is trusted this long (projected tokens live an hour)
REVIEW_CACHE_SIZE = 4096  # tokens remembered; one per pod, so a namespace of thousands of pods still fits
FLUSH_SECONDS = 1.0
SPEC_CACHE_SECONDS = 5.0  # a changed limit reaches the grants this late at most
CAS_TRIES = 8  # conditional writes retried on conflict with another replica
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

log = logging.getLogger("pilotfish.operator.budgets")
PlanKey = tuple[str, budget_api.Counted]  # namespace, what is counted


@dataclasses.dataclass
class Block:
    """Units this replica reserved in the Budget's status and has not granted yet, for one window."""

    window: str
    left: int = 0
    spent_at: int | None = None  # the limit at which the status had nothing left to reserve this window


class Granting:
    """Every replica's allowance state: reviewed tokens, reserved blocks, usage not yet written."""

    def __init__(self, api: kube.Kube, *, wall: Callable[[], float] = time.time) -> None:
        self.api, self._wall = api, wall
        self._reviews: collections.OrderedDict[str, tuple[float, str | None]] = collections.OrderedDict()
        self._blocks: dict[tuple[str, budget_api.Counted, budget_api.Limit], Block] = {}
        self._pending: dict[PlanKey, dict[budget_api.Limit, dict[str, int]]] = {}
        self._locks: dict[PlanKey, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._specs: dict[PlanKey, tuple[float, budget_specs.BudgetSpec | None]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post(protocol.PATH.replace("{namespace}", "{namespace}"), self.post_allowances)

    async def post_allowances(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        caller = await self._caller(request.headers.get("Authorization", ""))
        if caller is None:
            metrics.ALLOWANCE_CALLS.labels(result="unauthenticated").inc()
            return _error(401, "a ServiceAccount token for audience 'pilotfish' is required")
        if caller != namespace:
            metrics.ALLOWANCE_CALLS.labels(result="forbidden").inc()
            return _error(403, f"this token belongs to namespace {caller!r}, not {namespace!r}")
        try:
            body = await request.content.read(protocol.MAX_BODY_BYTES + 1)
            if len(body) > protocol.MAX_BODY_BYTES:
                raise ValueError("body too large")
            asks = protocol.decode_request(body).asks
        except ValueError as exc:  # protocol.Malformed names the field at fault: asks[0].used
            metrics.ALLOWANCE_CALLS.labels(result="invalid").inc()
            return _error(400, f"not an allowance request: {str(exc)[:300]}")
        grants = [await self._grant(namespace, ask) for ask in asks]
        metrics.ALLOWANCE_CALLS.labels(result="granted").inc()
        reply = protocol.AllowanceReply(grants=[g for g in grants if g is not None])
        return web.Response(body=protocol.encode(reply), content_type="application/json")

    async def _caller(self, authorization: str) -> str | None:
        """The namespace of the ServiceAccount whose token this is, as the API server says; None if not one."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 16 * 1024:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._reviews.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            ok, user = await asyncio.to_thread(self.api.review_token, token, audience=protocol.AUDIENCE)
        except Exception as exc:  # the API server is down: refuse, the sidecar fails open within its bound
            log.warning("TokenReview failed: %s", exc)
            return None
        namespace = user.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":")[0] if ok else None
        if ok and not user.startswith(SERVICE_ACCOUNT_PREFIX):
            namespace = None  # a user's token is not a pod's
        self._reviews[digest] = (time.monotonic() + REVIEW_CACHE_SECONDS, namespace)
        while len(self._reviews) > REVIEW_CACHE_SIZE:
            self._reviews.popitem(last=False)
        return namespace

    async def _grant(self, namespace: str, ask: protocol.Ask) -> protocol.Grant | None:
        counted = ask.counted()
        spec = await self._spec(namespace, counted)
        value = spec.limit_of(ask.limit) if spec else None
        if spec is None or value is None:
            return None  # no such budget or quota (deleted, or never had this limit): the sidecar forgets it
        window = windows.window_of(ask.limit, spec.spend_period, wall=self._wall())
        if ask.used:
            per_window = self._pending.setdefault((namespace, counted), {}).setdefault(ask.limit, {})
            per_window[ask.window] = per_window.get(ask.window, 0) + ask.used
        amount = 0
        exhausted = False
        if ask.want and ask.window == window.key:
            need = max(0, windows.grant_size(value) - ask.balance)
            block = max(windows.block_size(value), need)
            amount, exhausted = await self._take(
                namespace, counted, ask.limit, window, need, block=block, limit_value=value
            )
        return protocol.Grant.answering(ask, window, amount=amount, exhausted=exhausted, wall=self._wall())

    async def _spec(self, namespace: str, counted: budget_api.Counted) -> budget_specs.BudgetSpec | None:
        """The counter's limits, read at most every ``SPEC_CACHE_SECONDS`` (every conditional write reads them too)."""
        cached = self._specs.get((namespace, counted))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        obj = await asyncio.to_thread(self.api.get_custom, namespace, homes.plural(counted), counted.name)
        spec = homes.limits(counted, obj)
        self._specs[(namespace, counted)] = (time.monotonic() + SPEC_CACHE_SECONDS, spec)
        if len(self._specs) > REVIEW_CACHE_SIZE:
            self._specs.clear()
        return spec

    async def _take(
        self,
        namespace: str,
        counted: budget_api.Counted,
        limit: budget_api.Limit,
        window: windows.Window,
        need: int,
        *,
        block: int,
        limit_value: int,
    ) -> tuple[int, bool]:
        """Up to ``need`` units from this replica's block, reserving another ``block`` units when it runs dry.
        Once the status has nothing left, the spent sidecars asking every 2 s cost no write (until the window
        ends or the limit changes): a daily budget spent at noon must not write its status all afternoon."""
        async with self._locks[(namespace, counted)]:
            held = self._blocks.get((namespace, counted, limit))
            if held is None or held.window != window.key:
                held = self._blocks[(namespace, counted, limit)] = Block(window.key)
            exhausted = held.left < need and held.spent_at == limit_value
            if held.left < need and not exhausted:
                got = await self._commit(namespace, counted, reserve={limit: (window, block)})
                held.left += got.get(limit, 0)
                exhausted = held.left < need
                held.spent_at = limit_value if exhausted else None
            amount = min(need, held.left)
            held.left -= amount
            return amount, exhausted

    async def flush(self) -> None:
        """Write the usage reported since the last flush into every counter's status."""
        for namespace, counted in list(self._pending):
            async with self._locks[(namespace, counted)]:
                try:
                    await self._commit(namespace, counted, reserve={})
                except Exception as exc:  # kept in _pending: written with the next flush
                    log.warning("%s %s/%s: usage not written yet: %s", counted.kind, namespace, counted.describe(), exc)

    async def run_flush(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def _commit(
        self,
        namespace: str,
        counted: budget_api.Counted,
        *,
        reserve: dict[budget_api.Limit, tuple[windows.Window, int]],
    ) -> dict[budget_api.Limit, int]:
        """One conditional write of the counter's status: pending usage added, blocks reserved (called under
        the counter's lock). Returns the units reserved per limit."""
        pending = self._pending.pop((namespace, counted), {})
        plural = homes.plural(counted)
        try:
            for _ in range(CAS_TRIES):
                obj = await asyncio.to_thread(self.api.get_custom, namespace, plural, counted.name)
                spec = homes.limits(counted, obj)
                if obj is None or spec is None:
                    return {}
                changes = _changes(spec, self._wall(), pending, reserve)
                current = homes.counters(counted, obj) or {}
                applied = accounts.apply(current, spec, changes)
                if applied.status == current:
                    return applied.reserved  # nothing to write (nothing reported, nothing left to reserve)
                version = obj["metadata"]["resourceVersion"]
                written = await asyncio.to_thread(
                    self.api.patch_status_at,
                    namespace,
                    plural,
                    counted.name,
                    resource_version=version,
                    status=homes.status_patch(counted, obj, applied.status),
                )
                if written:
                    pending = {}
                    if counted.kind is budget_api.CountedKind.BUDGET:
                        await self._after_write(namespace, obj, spec, applied)
                    return applied.reserved
            return {}
        finally:
            for limit, per_window in pending.items():  # not written: keep it for the next try
                mine = self._pending.setdefault((namespace, counted), {}).setdefault(limit, {})
                for window, used in per_window.items():
                    mine[window] = mine.get(window, 0) + used

    async def _after_write(
        self, namespace: str, obj: dict[str, Any], spec: budget_specs.BudgetSpec, applied: accounts.Applied
    ) -> None:
        name = obj["metadata"]["name"]
        for limit in spec.limits():
            share = accounts.ratio(applied.status, spec, limit)
            metrics.BUDGET_USED.labels(namespace=namespace, budget=name, limit=limit.value).set(share)
        for limit, threshold in applied.crossed:
            spent = threshold >= 100
            message = (
                f"{limit.value}: {applied.status[limit.value]['used']} of {spec.limit_of(limit)} used in window "
                f"{applied.status[limit.value]['window']} ({threshold}%); action {spec.action.value}"
            )
            involved = {"apiVersion": f"{kube.GROUP}/{kube.VERSION}", "kind": budget_api.KIND, "name": name}
            involved.update(namespace=namespace, uid=obj["metadata"].get("uid"))
            reason = "BudgetSpent" if spent else "BudgetNearlySpent"
            try:
                await asyncio.to_thread(
                    self.api.event, namespace, involved, type_="Warning", reason=reason, message=message
                )
            except Exception as exc:
                log.warning("budget %s/%s: event %s not posted: %s", namespace, name, reason, exc)


def _changes(
    spec: budget_specs.BudgetSpec,
    wall: float,
    pending: dict[budget_api.Limit, dict[str, int]],
    reserve: dict[budget_api.Limit, tuple[windows.Window, int]],
) -> list[accounts.Change]:
    period = spec.spend_period
    return [
        accounts.Change(
            limit=limit,
            window=reserve[limit][0] if limit in reserve else windows.window_of(limit, period, wall=wall),
            reserve=reserve[limit][1] if limit in reserve else 0,
            used=dict(pending.get(limit, {})),
        )
        for limit in spec.limits()
    ]


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

"""Level-triggered reconciliation, one namespace at a time.

Any change to a ModelClass, a ProviderCredential, a Secret they reference (watched, or passed over every
few seconds where the operator may not watch Secrets: ``secret_access``) or the routes ConfigMap
marks its namespace dirty; a worker per namespace then reads everything there and makes the world
match ``desired.plan``. Changes that arrive while a pass runs coalesce into one more pass. A pass
that writes nothing (the usual case, including the watch events our own writes cause) costs three
list calls and no write, so there is no hot loop.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pilotfish.routes import document
from pilotfish_operator import conditions, desired, kube, metrics, secret_access
from pilotfish_operator.canary import runner

log = logging.getLogger("pilotfish.operator")
PLURALS = {"ModelClass": "modelclasses", "ProviderCredential": "providercredentials", "Budget": "budgets"}
RETRY_SECONDS = (1, 2, 5, 10, 30)


class Reconciler:
    def __init__(
        self,
        api: kube.Kube,
        *,
        debounce: float = 0.05,
        canary_tick: float = 10.0,
        secrets: secret_access.SecretAccess | None = None,
    ) -> None:
        self.api = api
        self.secrets = secrets or secret_access.SecretAccess(api)
        self._resync: dict[str, asyncio.TimerHandle] = {}  # namespace → its next pass, without a Secret watch
        self.debounce = debounce
        self.canary_tick = canary_tick  # seconds between passes while a canary is rolling out
        self._dirty: set[str] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._secrets_used: dict[str, set[str]] = {}  # namespace → Secret names its credentials reference
        # namespace → routes digest (or "unreachable") → running sidecars; the sweeper fills it
        self.propagation: Callable[[str], Mapping[str, int] | None] = lambda namespace: None
        # namespace → credential → why its provider rejects it, from the same sweep (None: no sidecar read)
        self.rejections: Callable[[str], Mapping[str, str] | None] = lambda namespace: None
        # namespace → class → member id → why it cannot continue a stream, from the same sweep (None: no sidecar)
        self.continuations: Callable[[str], Mapping[str, Mapping[str, str]] | None] = lambda namespace: None

    def trigger(self, namespace: str) -> None:
        self._dirty.add(namespace)
        if namespace not in self._workers:
            self._workers[namespace] = asyncio.get_running_loop().create_task(self._work(namespace))

    def knows(self, namespace: str) -> bool:
        """Whether this replica reconciles the namespace (kopf sent it an event: it is the active one)."""
        return namespace in self._secrets_used

    def uses_secret(self, namespace: str, name: str) -> bool:
        return name in self._secrets_used.get(namespace, ())

    async def idle(self) -> None:
        """Wait until no pass is pending (tests and shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def _work(self, namespace: str) -> None:
        failures = 0
        try:
            while namespace in self._dirty:
                await asyncio.sleep(self.debounce)
                self._dirty.discard(namespace)
                try:
                    plan = await asyncio.to_thread(self.reconcile, namespace)
                    failures = 0
                    if any(runner.is_active(status.get("canary")) for status in plan.class_status.values()):
                        asyncio.get_running_loop().call_later(self.canary_tick, self.trigger, namespace)
                    self._schedule_resync(namespace)
                except secret_access.NamespaceTerminating:
                    log.debug("namespace %s is being deleted; not reconciled", namespace)
                    self._dirty.discard(namespace)
                except Exception as exc:  # an API hiccup: try again later, never crash the operator
                    metrics.RECONCILES.labels(result="error").inc()
                    delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                    failures += 1
                    log.warning("reconcile of namespace %s failed (%s); retrying in %ss", namespace, exc, delay)
                    await asyncio.sleep(delay)
                    self._dirty.add(namespace)
        finally:
            del self._workers[namespace]

    def _schedule_resync(self, namespace: str) -> None:
        """Without a watch on Secrets, pass over a namespace whose credentials use Secrets now and then."""
        if self.secrets.watches_secrets:
            return
        pending = self._resync.pop(namespace, None)
        if pending is not None:
            pending.cancel()
        if self._secrets_used.get(namespace):
            loop = asyncio.get_running_loop()
            self._resync[namespace] = loop.call_later(secret_access.RESYNC_SECONDS, self.trigger, namespace)

    def reconcile(self, namespace: str) -> desired.NamespacePlan:
        """One full pass over a namespace (blocking)."""
        classes = self.api.list_custom(namespace, PLURALS["ModelClass"])
        credentials = self.api.list_custom(namespace, PLURALS["ProviderCredential"])
        self._secrets_used[namespace] = {
            ref["name"] for c in credentials if (ref := (c.get("spec") or {}).get("apiKeySecretRef"))
        }
        secrets = self.secrets.secret_keys(namespace, names=self._secrets_used[namespace], needed=bool(credentials))
        now = datetime.datetime.now(datetime.UTC)
        ticks = {
            obj["metadata"]["name"]: tick
            for obj in classes
            if (tick := runner.tick_class(obj, namespace=namespace, now=now)) is not None
        }
        plan = desired.plan(
            namespace,
            classes=classes,
            credentials=credentials,
            secrets=secrets,
            at=conditions.now(),
            canaries={name: tick.status.to_wire() for name, tick in ticks.items()},
            sidecars=self.propagation(namespace),
            rejected=self.rejections(namespace),
            cannot_continue=self.continuations(namespace),
            budgets=self.api.list_custom(namespace, PLURALS["Budget"], missing_ok=True),
        )
        wrote = self._apply_configmap(namespace, plan)
        by_kind = {"ModelClass": classes, "ProviderCredential": credentials}
        statuses = {"ModelClass": plan.class_status, "ProviderCredential": plan.credential_status}
        for kind, objects in by_kind.items():
            for obj in objects:
                name = obj["metadata"]["name"]
                if desired.status_differs(obj.get("status"), statuses[kind][name]):
                    self.api.patch_status(namespace, PLURALS[kind], name, statuses[kind][name])
        involved = {(kind, o["metadata"]["name"]): o for kind, objs in by_kind.items() for o in objs}
        for event in plan.events:
            self._event(namespace, involved[(event.kind, event.name)], event.type, event.reason, event.message)
        for name, tick in ticks.items():
            obj = involved[("ModelClass", name)]
            for step in tick.events:
                self._event(namespace, obj, step.type, step.reason, step.message)
            consumed = (("promote",) if tick.clear_promote else ()) + tick.consumed
            if consumed:  # one-shot commands acted on: cleared, so the next one is a new request
                cleared = dict.fromkeys(consumed)
                self.api.patch_object(namespace, PLURALS["ModelClass"], name, {"spec": {"canary": cleared}})
        if wrote:
            for obj in classes:
                self._event(
                    namespace, obj, "Normal", "RoutesUpdated", f"{document.CONFIGMAP_NAME} now at digest {plan.digest}"
                )
        metrics.RECONCILES.labels(result="ok").inc()
        return plan

    def _apply_configmap(self, namespace: str, plan: desired.NamespacePlan) -> bool:
        current = self.api.get_configmap(namespace, document.CONFIGMAP_NAME)
        if plan.configmap is None:
            if current is not None and _ours(current):
                self.api.delete_configmap(namespace, document.CONFIGMAP_NAME)
                metrics.ROUTES_WRITES.labels(action="delete").inc()
                log.info("deleted %s/%s: no ModelClass left", namespace, document.CONFIGMAP_NAME)
            return False
        if not desired.configmap_differs(current, plan.configmap):
            return False
        self.api.put_configmap(plan.configmap, current)
        metrics.ROUTES_WRITES.labels(action="create" if current is None else "update").inc()
        log.info("wrote %s/%s digest %s", namespace, document.CONFIGMAP_NAME, plan.digest)
        return True

    def _event(self, namespace: str, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        involved = {
            "api_version": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "uid": obj["metadata"].get("uid"),
        }
        try:
            self.api.event(namespace, involved, type_=type_, reason=reason, message=message)
        except Exception as exc:  # an Event is best effort; the status already says it
            log.warning("could not post event %s on %s/%s: %s", reason, namespace, obj["metadata"]["name"], exc)


def _ours(configmap: dict[str, Any]) -> bool:
    labels = (configmap.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in desired.MANAGED_BY.items())

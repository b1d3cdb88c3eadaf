"""The admission webhook server: ``POST /mutate-pods`` (sidecar injection) and ``POST /validate``.

Every operator replica serves it, active or standby: peering only gates the reconcilers. The
decisions live in ``inject`` and ``validate``; this module speaks AdmissionReview v1 over TLS and
reloads the certificate when its files change (cert-manager rotates them in place). A failure here
answers "allowed" without a patch: the chart's ``failurePolicy: Ignore`` intent, and the missed-
injection sweep reports the pod afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
import time
from typing import Any

from aiohttp import web

from pilotfish_operator import inject, injector_config, kube, metrics, validate
from pilotfish_operator.budgets import granting

log = logging.getLogger("pilotfish.operator.webhook")
API = web.AppKey("api", kube.Kube)
CONFIG = web.AppKey("config", injector_config.InjectorConfig)
TASKS = web.AppKey("tasks", set)


def build_app(
    api: kube.Kube, config: injector_config.InjectorConfig, grants: granting.Granting | None = None
) -> web.Application:
    """Admission, and (with ``grants``) the sidecars' budget allowances, on one TLS port."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[API], app[CONFIG], app[TASKS] = api, config, set()
    app.router.add_post("/mutate-pods", mutate_pods)
    app.router.add_post("/validate", validate_object)
    if grants is not None:
        grants.routes(app)
    return app


async def mutate_pods(request: web.Request) -> web.Response:
    started = time.perf_counter()
    review = await _review(request)
    if isinstance(review, web.Response):
        return review
    admission = review["request"]
    namespace = admission.get("namespace") or ""
    pod = admission.get("object") or {}
    api = request.app[API]
    try:
        secrets = await asyncio.to_thread(_referenced_secrets, api, namespace)
    except Exception as exc:
        log.warning("injection skipped in %s: cannot list ProviderCredentials: %s", namespace, exc)
        decision = inject.Decision([], "CredentialsUnavailable")
    else:
        decision = inject.decide(pod, secrets=secrets, config=request.app[CONFIG])
    metrics.INJECTIONS.labels(result="injected" if decision.injected else "skipped", reason=decision.reason).inc()
    if not admission.get("dryRun") and decision.reason != "AlreadyInjected":
        _post_event(request.app, api, namespace, pod, decision)
    response: dict[str, Any] = {"uid": admission["uid"], "allowed": True}
    if decision.injected:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
    if decision.warnings:
        response["warnings"] = list(decision.warnings)
    metrics.ADMISSION_SECONDS.labels(webhook="mutate-pods").observe(time.perf_counter() - started)
    return _answer(review, response)


async def validate_object(request: web.Request) -> web.Response:
    started = time.perf_counter()
    review = await _review(request)
    if isinstance(review, web.Response):
        return review
    admission = review["request"]
    obj = admission.get("object") or {}
    found = validate.problems(obj)
    kind = str(obj.get("kind"))
    metrics.VALIDATIONS.labels(kind=kind, allowed=str(not found).lower()).inc()
    response: dict[str, Any] = {"uid": admission["uid"], "allowed": not found}
    if found:
        name = (obj.get("metadata") or {}).get("name", "")
        response["status"] = {
            "code": 422,
            "reason": "Invalid",
            "message": f'{kind} "{name}" is invalid: ' + "; ".join(found),
        }
    metrics.ADMISSION_SECONDS.labels(webhook="validate").observe(time.perf_counter() - started)
    return _answer(review, response)


async def _review(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        review = await request.json()
        review["request"]["uid"]
    except (ValueError, KeyError, TypeError):
        return web.json_response(
            {"error": "expected an admission.k8s.io/v1 AdmissionReview with a request"}, status=400
        )
    return dict(review)


def _answer(review: dict[str, Any], response: dict[str, Any]) -> web.Response:
    return web.json_response(
        {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview", "response": response}
    )


def _referenced_secrets(api: kube.Kube, namespace: str) -> list[str]:
    credentials = api.list_custom(namespace, "providercredentials")
    return sorted({ref["name"] for c in credentials if (ref := (c.get("spec") or {}).get("apiKeySecretRef"))})


def _post_event(
    app: web.Application, api: kube.Kube, namespace: str, pod: dict[str, Any], decision: inject.Decision
) -> None:
    """Off the admission path: the API server is waiting for our answer, not for the Event."""
    meta = pod.get("metadata") or {}
    involved = {
        "api_version": "v1",
        "kind": "Pod",
        "name": meta.get("name") or meta.get("generateName"),
        "namespace": namespace,
    }
    if decision.injected:
        type_, reason, message = "Normal", "Injected", "pilotfish sidecar injected"
    else:
        type_, reason, message = "Normal", "InjectionSkipped", f"pilotfish sidecar not injected: {decision.reason}"

    async def post() -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(api.event, namespace, involved, type_=type_, reason=reason, message=message)

    task = asyncio.get_running_loop().create_task(post())
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


class ReloadingTLS:
    """An SSL context whose certificate is re-read when the files change."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp = self._mtimes()
        self.context.load_cert_chain(cert, key)

    def _mtimes(self) -> tuple[float, float]:
        return os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:  # mid-rotation: keep the old one, try again next time
            log.warning("webhook certificate not reloaded: %s", exc)
            return False
        self._stamp = stamp
        log.info("webhook certificate reloaded")
        return True

    async def watch(self, interval: float = 10.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
